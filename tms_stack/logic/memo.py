"""Answers shared inside one command, keyed by the identity of what they are computed from.

A review loads two trees, and every file the pull request did not change is the very same parsed
object in both (repo/parsecache.py). A pure function of such objects (a lease's effective values,
the shape of what it renders) then has the same answer for the head and the base, and for each
rule that asks: computing it once per object instead of once per tree and per rule is what makes
the second tree cheap (issue 27: `tms plan` computed each lease's effective values five times).

Nothing is shared unless a command opens a scope (`shared_answers()`), and the scope holds every
object it keyed on, so an id can never be reused by another object while its answer is kept. A
function memoised here must be pure in the objects it names (the parsed models are never changed
after loading: rules and renderers only read them) and its answer must not be changed by callers.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")

_scope: ContextVar[dict[tuple[Any, ...], tuple[tuple[object, ...], Any]] | None] = ContextVar(
    "tms_shared_answers", default=None)


@contextmanager
def shared_answers() -> Iterator[None]:
    """Share answers for the duration of the block (one command). Nested blocks share the outer one's."""
    if _scope.get() is not None:
        yield
        return
    token = _scope.set({})
    try:
        yield
    finally:
        _scope.reset(token)


def by_identity(kind: str, objects: tuple[object, ...], values: tuple[Hashable, ...],
                compute: Callable[[], T]) -> T:
    """`compute()`, or the answer it gave before in this scope for the same `objects` (by identity)
    and equal `values`. Outside a scope, always `compute()`."""
    memo = _scope.get()
    if memo is None:
        return compute()
    key = (kind, *map(id, objects), *values)
    hit = memo.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], objects, strict=True)):
        return hit[1]  # type: ignore[no-any-return]
    answer = compute()
    memo[key] = (objects, answer)
    return answer
