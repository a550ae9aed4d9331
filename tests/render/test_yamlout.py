"""The object emitter writes YAML that any reader loads back to exactly the rendered object."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tms_stack.render.yamlout import dump_object

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63), st.floats(allow_nan=False),
                    st.text(max_size=30), st.sampled_from(["yes", "no", "on", "0x10", "1e3", "- a", "a: b", "#x",
                                                           "multi\nline\n", "  lead\n", "{}", "[]", "~", "null"]))
values = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=4),
                                                   st.dictionaries(st.text(max_size=12), c, max_size=4)),
                      max_leaves=25)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=12), values, min_size=1, max_size=6))
def test_round_trip(obj: dict) -> None:
    text = dump_object(obj)
    assert yaml.safe_load(text) == obj


class _Tagged(dict):  # type: ignore[type-arg]
    """A dict subclass: the fast path hands anything but exact dicts and lists back to _emit."""


odd = st.one_of(scalars, st.floats(), st.tuples(st.integers(), st.text(max_size=3)),
                st.sampled_from(["a\nb\n", "x\n\n", "\ttab\n", "- item\n", "key: v\n"]))
mixed = st.recursive(odd, lambda c: st.one_of(
    st.lists(c, max_size=4), st.dictionaries(st.text(max_size=12), c, max_size=4),
    st.dictionaries(st.one_of(st.integers(), st.booleans(), st.none(), st.text(max_size=5)), c,
                    max_size=3).map(_Tagged)), max_leaves=30)


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(st.text(max_size=12), mixed, min_size=1, max_size=6))
def test_fast_path_writes_the_same_bytes_as_the_definition(obj: dict) -> None:
    """dump_object's fast path (issue 27) against _emit, the emitter it replaced, on any shape:
    lists of lists, empty collections, dict subclasses, non-string keys, floats, tuples, blocks."""
    from tms_stack.render.yamlout import dump_object_reference

    assert dump_object(obj) == dump_object_reference(obj)


def test_rendered_objects_round_trip_through_a_yaml_parser(tmp_path: Path) -> None:
    """Every object the example renders reads back as itself, through libyaml's C loader too."""
    from tests.conftest import copy_example
    from tms_stack.commands.render import render_root
    from tms_stack.render import all_objects
    from tms_stack.render.yamlout import dump_object_reference

    example_objects = all_objects(render_root(copy_example(tmp_path / "repo"), "example",
                                              datetime(2026, 11, 22, tzinfo=UTC)))
    assert len(example_objects) > 20
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for obj in example_objects:
        text = dump_object(obj)
        assert text == dump_object_reference(obj)
        assert yaml.load(text, Loader=loader) == obj
