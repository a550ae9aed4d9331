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

from tms_stack.commands.check import run_check
from tms_stack.logic.pool_lock import compute
from tms_stack.models.diagnostics import Severity, TmsError
from tms_stack.repo.atomic import replace_files
from tms_stack.repo.lockfile import dump_lock, lock_path, read_lock
from tms_stack.repo.yamlio import round_trip

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


def node_class_option(offered: Mapping[str, Any], name: str | None) -> str | None:
    """`--node-class NAME`: a class the policies offer (Limits spec.nodeClasses), refused before
    any file is touched, with the classes there are."""
    if name is None or name in offered:
        return name
    listed = ", ".join(sorted(offered)) or "none (policies Limits spec.nodeClasses)"
    raise TmsError(f"--node-class {name!r}: not a node class of the policies; offered: {listed}")


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
    # The policies may require CODEOWNERS to be in step (rule codeowners.stale): check reads it too.
    codeowners = root / ".github" / "CODEOWNERS"
    if codeowners.is_file() and not codeowners.is_symlink():
        (dest / ".github").mkdir()
        shutil.copyfile(codeowners, dest / ".github" / "CODEOWNERS")
    # Rules read the stack files too (autorenew.telemetry): without them an auto-renew lease was
    # written and only then failed `tms check` (issue 26).
    for stack in root.glob("Pulumi.*.yaml"):
        if stack.is_file() and not stack.is_symlink():
            shutil.copy2(stack, dest / stack.name)


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
                    lock_text = dump_lock(result.lock)
                    _apply(scratch, {lock_path(scratch).relative_to(scratch): lock_text})
        after = run_check(scratch)
        new = [d for d in after.all() if d.severity is Severity.ERROR and (d.file, d.rule, d.message) not in old]
    if new:
        raise TmsError("the change would not pass `tms check`:\n" + "\n".join(
            f"  {d.location()}: {d.message} [{d.rule}]" for d in new), new)
    # Every file of the edit, the lock included, changes together or not at all (issue 22).
    final: dict[Path, str | None] = {root / path: text for path, text in rel.items()}
    current = lock_path(root)
    if lock_text is not None and (not current.exists() or current.read_text(encoding="utf-8") != lock_text):
        final[current] = lock_text
    return replace_files(final)
