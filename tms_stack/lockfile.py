"""Reading and writing `pools/placement.lock.yaml`."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from tms_stack.diagnostics import TmsError
from tms_stack.loader import LOCK_FILE, validation_diagnostics
from tms_stack.models.lock import PlacementLock
from tms_stack.yamlio import parse_file

HEADER = (
    "# Written by `tms pool lock`: which pool instance holds which pooled lease, and the Triton\n"
    "# backends learned for each model. Commit it; review its diff like any other change.\n"
)


def lock_path(root: Path) -> Path:
    return root / "pools" / LOCK_FILE


def read_lock(root: Path) -> PlacementLock | None:
    path = lock_path(root)
    if not path.exists():
        return None
    display = f"pools/{LOCK_FILE}"
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
