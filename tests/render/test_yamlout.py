"""The object emitter writes YAML that any reader loads back to exactly the rendered object."""

from __future__ import annotations

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
