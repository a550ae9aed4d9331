"""Scalars resolve by the YAML 1.2 core schema (as ruamel and Kubernetes tooling read them), not
PyYAML's YAML 1.1: a lease means the same thing to `tms check` as to the round-trip editors."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from tms_stack.diagnostics import UnreadableInput
from tms_stack.yamlio import parse

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
