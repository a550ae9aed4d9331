"""Reading and writing `pools/placement.lock.yaml`."""

from __future__ import annotations

import dataclasses
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import yaml
from pydantic import ValidationError

from tms_stack.models.diagnostics import Diagnostic, TmsError, UnreadableInput
from tms_stack.models.lock import PlacementLock
from tms_stack.repo.atomic import write_atomic
from tms_stack.repo.loader import LOCK_FILE, validation_diagnostics
from tms_stack.repo.parsecache import blob_id
from tms_stack.repo.yamlio import parse_file

HEADER = (
    "# Written by `tms pool lock`: which pool instance holds which pooled lease, and the Triton\n"
    "# backends learned for each model. Commit it; review its diff like any other change.\n"
)


DISPLAY = f"pools/{LOCK_FILE}"
# What to run when git left the lock conflicted: any side will do, `tms pool lock` recomputes the
# placement from the merged leases (existing placements stay put). docs/pools.md, "Lock conflicts".
CONFLICT_FIX = f"git checkout --ours {DISPLAY} && tms pool lock && git add {DISPLAY}"
_MARKERS = ("<<<<<<<", "=======", ">>>>>>>", "|||||||")


def conflict_line(text: str) -> int:
    """1-based line of the first git conflict marker, 0 when there is none."""
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith(_MARKERS) and (len(line) == 7 or line[7] in " \t"):
            return number
    return 0


def lock_path(root: Path) -> Path:
    return root / "pools" / LOCK_FILE


# Within `shared_reads()`: lock text (git blob id) -> the lock read from it.
_SHARED: ContextVar[dict[str, PlacementLock | None] | None] = ContextVar("tms_lock_reads", default=None)


@contextmanager
def shared_reads() -> Iterator[None]:
    """One read per lock content while a review runs: `tms plan` asks for the base's and the
    head's lock seven times (rules, placement moves, rendering), ~1 s each at 10,000 leases.
    Callers inside must not change the lock they are given (rules and rendering never do)."""
    token = _SHARED.set({})
    try:
        yield
    finally:
        _SHARED.reset(token)


def read_lock(root: Path) -> PlacementLock | None:
    path = lock_path(root)
    if not path.exists():
        return None
    shared = _SHARED.get()
    if shared is None:
        return _read_lock(path)
    try:
        key = blob_id(path.read_bytes()) if not path.is_symlink() else None
    except OSError:
        key = None
    if key is None:
        return _read_lock(path)
    if key not in shared:
        shared[key] = _read_lock(path)  # a lock that does not read raises every time, never stored
    return shared[key]


def _read_lock(path: Path) -> PlacementLock | None:
    display = DISPLAY
    try:
        marker = conflict_line(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        marker = 0  # parse_file reports it
    if marker:
        message = f"unresolved merge conflict in the placement lock: run `{CONFLICT_FIX}`"
        raise UnreadableInput(f"{display}:{marker}:1: {message}",
                              [Diagnostic(display, marker, 1, "lock.conflict", message)])
    try:
        doc = parse_file(path, display)
    except UnreadableInput as exc:
        # An empty or broken lock: `tms pool lock` rebuilds it (placing every lease afresh).
        rebuild = " (rebuild it with `tms pool lock`)"
        raise UnreadableInput(str(exc) + rebuild, [dataclasses.replace(d, message=d.message + rebuild)
                                                   for d in exc.diagnostics]) from None
    try:
        return PlacementLock.model_validate(doc.data)
    except ValidationError as exc:
        diags = validation_diagnostics(display, doc, PlacementLock, exc)
        raise TmsError("invalid placement lock (regenerate it with `tms pool lock`):\n"
                       + "\n".join(f"{d.location()}: {d.message}" for d in diags), diags) from None


def dump_lock(lock: PlacementLock) -> str:
    data = lock.model_dump(mode="json")
    return HEADER + yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)


def write_lock(root: Path, lock: PlacementLock) -> bool:
    """Write the lock whole or not at all (repo.atomic); returns whether the file changed."""
    path = lock_path(root)
    text = dump_lock(lock)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    write_atomic(path, text)
    return True


def lock_at(root: Path, ref: str) -> PlacementLock | None:
    """The lock as committed at git `ref` (`tms pool lock --base`); None when `ref` has none or
    it does not parse (the review then places from scratch too: rules/lock.py `base_lock`).
    Raises TmsError when git does not know `ref`."""
    known = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd=root,
                           capture_output=True, text=True)
    if known.returncode != 0:
        raise TmsError(f"git does not know {ref!r}: fetch it first (git fetch origin), or name another ref")
    shown = subprocess.run(["git", "show", f"{ref}:{DISPLAY}"], cwd=root, capture_output=True)
    if shown.returncode != 0:
        return None
    with tempfile.TemporaryDirectory(prefix="tms-lock-") as tmp:
        lock_path(Path(tmp)).parent.mkdir()
        lock_path(Path(tmp)).write_bytes(shown.stdout)
        try:
            return read_lock(Path(tmp))
        except TmsError:
            return None
