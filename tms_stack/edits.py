"""Safe edits of user files for the tmsctl-style verbs: try the change on a scratch copy, run
`tms check` there, and only write the real files when the change adds no error. The placement
lock is brought up to date in the same step so the edit is ready to commit."""

from __future__ import annotations

import io
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tms_stack.diagnostics import Severity, TmsError
from tms_stack.yamlio import round_trip

Change = Any  # a dict (new file, dumped as YAML), str (exact new text) or None (delete)

RESOURCE_KEYS = {"cpu": "cpu", "gpu": "gpu", "system-memory": "systemMemory", "shared-memory": "sharedMemory",
                 "repository-size": "repositorySize", "systemmemory": "systemMemory",
                 "sharedmemory": "sharedMemory", "repositorysize": "repositorySize"}


def parse_resources(text: str) -> dict[str, Any]:
    """tmsctl's `cpu=4;gpu=1;system-memory=8Gi` (also `,` separated)."""
    out: dict[str, Any] = {}
    for part in text.replace(",", ";").split(";"):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        canon = RESOURCE_KEYS.get(key.strip().lower())
        if not sep or canon is None:
            raise TmsError(f"--triton-resources: {part.strip()!r}: use key=value with keys "
                           "cpu, gpu, system-memory, shared-memory, repository-size")
        value = value.strip()
        out[canon] = int(value) if value.isdigit() else value
    return out


def dump_yaml(doc: Any) -> str:
    rt = round_trip()
    buf = io.StringIO()
    rt.dump(doc, buf)
    return buf.getvalue()


def _render(change: Change) -> str | None:
    if change is None or isinstance(change, str):
        return change
    return dump_yaml(change)


def _scratch(root: Path, dest: Path) -> None:
    for part in ("leases", "pools", "policies"):
        if (root / part).is_dir():
            shutil.copytree(root / part, dest / part)


def _apply(base: Path, rel: Mapping[Path, str | None]) -> list[Path]:
    """Write (or, for None, delete) each root-relative path under `base`."""
    touched = []
    for path, text in rel.items():
        target = base / path
        if text is None:
            target.unlink(missing_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        touched.append(target)
    return touched


def checked_write(root: Path, changes: Mapping[Path, Change], update_lock: bool = True) -> list[Path]:
    """Apply `changes` (absolute or root-relative paths) if they introduce no `tms check` error."""
    from tms_stack.check import run_check
    from tms_stack.lockfile import lock_path, read_lock, write_lock
    from tms_stack.pool_lock import compute

    root = root.resolve()
    rel = {(p if p.is_absolute() else root / p).resolve().relative_to(root): _render(c) for p, c in changes.items()}
    before = run_check(root)
    old = {(d.file, d.rule, d.message) for d in before.all() if d.severity is Severity.ERROR}
    with tempfile.TemporaryDirectory(prefix="tms-edit-") as tmp:
        scratch = Path(tmp)
        _scratch(root, scratch)
        _apply(scratch, rel)
        lock_text = None
        if update_lock:
            repo_after = run_check(scratch).repo
            if repo_after.pools or any(l.spec.pool for l in repo_after.all_leases()):
                result = compute(repo_after, read_lock(scratch))
                if not result.unplaced:
                    write_lock(scratch, result.lock)
                    lock_text = lock_path(scratch).read_text(encoding="utf-8")
        after = run_check(scratch)
        new = [d for d in after.all() if d.severity is Severity.ERROR and (d.file, d.rule, d.message) not in old]
    if new:
        raise TmsError("the change would not pass `tms check`:\n" + "\n".join(
            f"  {d.location()}: {d.message} [{d.rule}]" for d in new), new)
    written = _apply(root, rel)
    if lock_text is not None:
        current = lock_path(root)
        if not current.exists() or current.read_text(encoding="utf-8") != lock_text:
            current.write_text(lock_text, encoding="utf-8")
            written.append(current)
    return written
