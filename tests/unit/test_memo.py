"""Answers shared inside one command (logic/memo.py): reused only for the very same objects, never
outside a scope, and a check or plan gives the same answer with and without sharing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import copy_example
from tms_stack.logic import memo
from tms_stack.logic.memo import by_identity, shared_answers
from tms_stack.repo.loader import load_repository
from tms_stack.rules import check_repository

NOW = datetime(2026, 11, 22, tzinfo=UTC)


def test_an_answer_is_reused_for_the_same_object_only_and_only_inside_a_scope() -> None:
    calls: list[object] = []

    def answer(obj: object, extra: str = "") -> object:
        return by_identity("t", (obj,), (extra,), lambda: calls.append(obj) or len(calls))

    a, b = [1], [1]                         # equal, but not the same object
    assert answer(a) == 1 and answer(a) == 2  # no scope: computed every time
    with shared_answers():
        assert answer(a) == 3 and answer(a) == 3
        assert answer(b) == 4                 # equal content is not enough
        assert answer(a, "other") == 5        # nor is the same object with other values
        with shared_answers():                # a nested scope shares the outer one's answers
            assert answer(a) == 3
    with shared_answers():                    # a new command starts empty
        assert answer(a) == 6
    assert memo._scope.get() is None


def test_check_finds_the_same_with_and_without_sharing(tmp_path: Path) -> None:
    root = copy_example(tmp_path / "repo")
    # Two leases the rules must refuse, so that the answers compared are not empty.
    lease = root / "leases" / "fraud-detector.yaml"
    lease.write_text(lease.read_text().replace("cpu: 4,", "cpu: 40,"))
    plain = check_repository(load_repository(root), NOW)
    with shared_answers():
        repo = load_repository(root)
        shared = check_repository(repo, NOW)
        again = check_repository(repo, NOW)   # every answer now comes from the scope
    assert plain == shared == again
    assert any(d.rule.startswith("resources") or "cpu" in d.message for d in plain)
