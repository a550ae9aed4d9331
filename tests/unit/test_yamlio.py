"""Scalars resolve by the YAML 1.2 core schema (as ruamel and Kubernetes tooling read them), not
PyYAML's YAML 1.1: a lease means the same thing to `tms check` as to the round-trip editors."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tms_stack.models.diagnostics import UnreadableInput
from tms_stack.repo.yamlio import parse

SCALARS = [
    ("010", 10),            # 1.1: octal 8
    ("0o10", 8),            # 1.1: a string
    ("0x1F", 31),
    ("1e3", 1000.0),        # 1.1: a string (no dot)
    ("1_000", "1_000"),     # 1.1: 1000
    ("yes", "yes"), ("no", "no"), ("on", "on"),  # 1.1: booleans
    ("true", True), ("False", False),
    ("~", None), ("null", None), ("", None),
    ("'010'", "010"), ('"true"', "true"),
    (".inf", float("inf")), ("-.5", -0.5), ("+1", 1),
    ("12345678901234567890123456789012345678901", "12345678901234567890123456789012345678901"),
    ("2026-01-01", date(2026, 1, 1)),
    ("2026-01-01T00:00:00Z", datetime(2026, 1, 1, tzinfo=UTC)),
    ("2026-01-01 00:00:00", datetime(2026, 1, 1, tzinfo=UTC)),  # no zone: UTC, as YAML defines it
    ("2026-13-01", "2026-13-01"),
    ("!!str 12", "12"),
    ("<<", "<<"),
]


@pytest.mark.parametrize(("text", "value"), SCALARS, ids=[s[0] or "empty" for s in SCALARS])
def test_plain_scalars_follow_yaml_1_2(text: str, value: object) -> None:
    assert parse(f"a: {text}\n", "x.yaml").data == {"a": value}


@pytest.mark.parametrize(("text", "line", "col", "message"), [
    ("a: 1\n<<: {b: 2}\n", 2, 1, "merge keys"),
    ("a: 1\na: 2\n", 2, 1, "duplicate key 'a'"),
    ("a: !!binary aGk=\n", 1, 4, "unsupported YAML tag"),
    ("a: !custom 1\n", 1, 4, "unsupported YAML tag !custom"),
    ("? [a]\n: 1\n", 1, 3, "mapping keys must be plain strings"),
    ("a: 1\n---\nb: 2\n", 3, 1, "more than one YAML document"),
])
def test_refused_yaml_names_the_place(text: str, line: int, col: int, message: str) -> None:
    with pytest.raises(UnreadableInput) as info:
        parse(text, "x.yaml")
    (diag,) = info.value.diagnostics
    assert (diag.file, diag.line, diag.col, diag.rule) == ("x.yaml", line, col, "yaml")
    assert message in diag.message


def test_positions_of_keys_and_values() -> None:
    doc = parse("spec:\n  models:\n    - name: m\n      uri: 'x'\n", "x.yaml")
    assert (doc.pos(("spec", "models", 0, "uri")).line, doc.pos(("spec", "models", 0, "uri")).col) == (4, 12)
    assert doc.key_pos(("spec", "models")).line == 2
    assert doc.pos(("spec", "models", 0, "missing")).line == 3  # nearest existing ancestor


_PIECES = ["a: 1\n", "- x\n", "  b: &x 2\n", "c: *x\n", "d: !!str 3\n", "e: |\n  t\n", "f: 'q'\n", "g: [1, {h: 2}]\n",
           "<<: {a: 1}\n", "k: !foo 1\n", "? [a]\n: b\n", "n: 0x1F\n", "o: 2026-01-01\n", "p: 2026-01-01T00:00:00Z\n",
           "q: .inf\n", "r: ~\n", "s: null\n", "t: TRUE\n", "u: -1.5e3\n", "v: 010\n", "w: &y [1]\nz: *y\n",
           "  - deep: [[[x]]]\n", "a: 2\n", "m: {x: &s v, y: *s}\n", "l: [&t !!str 1, *t]\n", "i: >\n  f\n",
           "j: [&u v, *u, !!int 3]\n", "- &c d\n", "- *c\n", "- !!str 4\n", "- |\n  e\n"]


def _outcome(text: str, inline: bool) -> object:
    try:
        doc = parse(text, "x.yaml", _inline=inline)
    except UnreadableInput as exc:
        return str(exc), exc.diagnostics
    return repr(doc.data), doc.values, doc.keys, doc.forms


@settings(max_examples=1500, deadline=None)
@given(st.one_of(st.lists(st.sampled_from(_PIECES), min_size=1, max_size=8).map("".join),
                 st.text(alphabet="ab: -[]{},&*!|>'\"\n~01.", max_size=60)))
def test_inlined_scalars_read_as_the_plain_walk_does(text: str) -> None:
    """The walk handles scalars inside their parent's loop (issue 27); the same text walked node by
    node gives the same data, positions, forms and errors."""
    assert _outcome(text, True) == _outcome(text, False)
