"""Reading and writing `pools/placement.lock.yaml`."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from tms_stack.diagnostics import Diagnostic, TmsError, UnreadableInput
from tms_stack.loader import LOCK_FILE, validation_diagnostics
from tms_stack.models.lock import PlacementLock
from tms_stack.yamlio import parse_file

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


def read_lock(root: Path) -> PlacementLock | None:
    path = lock_path(root)
    if not path.exists():
        return None
    display = DISPLAY
    try:
        marker = conflict_line(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        marker = 0  # parse_file reports it
    if marker:
        message = f"unresolved merge conflict in the placement lock: run `{CONFLICT_FIX}`"
        raise UnreadableInput(f"{display}:{marker}:1: {message}",
                              [Diagnostic(display, marker, 1, "lock.conflict", message)])
    doc = parse_file(path, display)
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
    """Write the lock; returns whether the file changed."""
    path = lock_path(root)
    text = dump_lock(lock)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return True
