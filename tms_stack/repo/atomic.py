"""The one way tms writes a file: whole or not at all (issue 22).

A new version goes to a unique temporary file in the same folder (so that renaming it is atomic),
is flushed and fsynced, and only then renamed over the target; the folder is fsynced so the
rename survives a crash. On any failure the temporary file is removed and the target keeps its old
bytes: a full disk never leaves a 0-byte lease, and a reader never sees half a lock.

An edit of several files (`tms lease name move`, a release that also rewrites the placement lock)
is a `Transaction`: every new version and a backup of every old one are prepared first, then the
renames run; if one fails, the ones already done are undone from the backups, so either every file
changed or none did, and the error says which.

Temporary files are named `.<target>.<pid>.<random>.tms-tmp`: never a fixed name that two writers
share, and recognisable (`is_temp_file`) so that `tms check` can tell a write in progress from a
leftover of a killed one, which it reports with "delete it" (never "rename it into place": a
leftover may be partial).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tms_stack.models.diagnostics import TmsError

TEMP_SUFFIX = ".tms-tmp"
_TEMP = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.(?:tms-tmp|tms-old)$")
# A temporary file younger than this whose writer is still running is a write in progress.
IN_PROGRESS_SECONDS = 600.0


class WriteFailed(TmsError):
    """A write the file system refused; the message says which files changed (normally none)."""


def is_temp_file(name: str) -> bool:
    return bool(_TEMP.match(name)) or name.endswith(TEMP_SUFFIX)


def temp_in_progress(path: Path) -> bool:
    """Whether a temporary file belongs to a tms process that is still writing it (so a reader
    running at the same moment ignores it rather than reporting a leftover)."""
    found = _TEMP.match(path.name)
    if not found:
        return False
    try:
        if time.time() - path.lstat().st_mtime > IN_PROGRESS_SECONDS:
            return False
        os.kill(int(found["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # the process exists (another user's) or the file vanished meanwhile
    return True


def _temp_name(target: Path, kind: str = "tms-tmp") -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.{kind}")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # a platform that cannot open folders: the rename itself is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on folders; the data itself was synced
    finally:
        os.close(fd)


def _mode_for(target: Path) -> int:
    try:
        return target.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _write_temp(target: Path, data: bytes) -> Path:
    """A synced temporary file beside `target` holding `data`; removed again on any failure."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(target)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fchmod(fd, _mode_for(target))
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.close(fd)
    return tmp


def _bytes(data: str | bytes) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else data


def write_atomic(target: Path, data: str | bytes) -> None:
    """Replace `target` with `data` (str: UTF-8), whole or not at all. Raises WriteFailed."""
    try:
        tmp = _write_temp(target, _bytes(data))
    except OSError as exc:
        raise WriteFailed(f"could not write {target}: {exc.strerror or exc}; it was left as it was") from None
    try:
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise WriteFailed(f"could not replace {target}: {exc.strerror or exc}; it was left as it was") from None
    _fsync_dir(target.parent)


@dataclass
class _Step:
    target: Path
    new: Path | None = None      # prepared new version (None: delete the target)
    backup: Path | None = None   # the old version (hard link, else copy); None: target was absent
    done: bool = False


@dataclass
class Transaction:
    """Several files replaced or deleted together, all or nothing (see the module docstring)."""

    changes: dict[Path, bytes | None] = field(default_factory=dict)

    def write(self, target: Path, data: str | bytes) -> None:
        self.changes[target] = _bytes(data)

    def delete(self, target: Path) -> None:
        self.changes[target] = None

    def commit(self) -> list[Path]:
        """Apply every change; returns the targets. Raises WriteFailed saying what happened."""
        steps: list[_Step] = []
        try:
            for target, data in self.changes.items():
                if data is None and not (target.exists() or target.is_symlink()):
                    continue  # deleting what is not there: nothing to do
                step = _Step(target)
                steps.append(step)
                if data is not None:
                    step.new = _write_temp(target, data)
                if target.exists() or target.is_symlink():
                    step.backup = _backup(target)
        except OSError as exc:
            _discard(steps)
            failed = steps[-1].target if steps else None
            raise WriteFailed(f"could not prepare {failed}: {exc.strerror or exc}; nothing was changed") from None
        for step in steps:
            try:
                if step.new is not None:
                    os.replace(step.new, step.target)
                    step.new = None
                else:
                    step.target.unlink()
                step.done = True
            except OSError as exc:
                undone = _undo(steps)
                _discard(steps)
                why = f"could not {'write' if self.changes[step.target] is not None else 'delete'} " \
                      f"{step.target}: {exc.strerror or exc}"
                if undone:
                    raise WriteFailed(f"{why}; restored {', '.join(map(str, undone))}: nothing was changed") from None
                raise WriteFailed(f"{why}; nothing was changed") from None
        for folder in {s.target.parent for s in steps}:
            _fsync_dir(folder)
        _discard(steps)
        return [s.target for s in steps]


def _backup(target: Path) -> Path:
    backup = _temp_name(target, "tms-old")
    try:
        os.link(target, backup)  # no space needed, and the old bytes stay exactly as they were
    except OSError:
        backup = _write_temp(target, target.read_bytes())
    return backup


def _undo(steps: list[_Step]) -> list[Path]:
    """Put back every target already changed; returns those restored. A restore that fails is
    named in the error the caller raises next (it cannot be hidden)."""
    restored: list[Path] = []
    failures: list[str] = []
    for step in reversed(steps):
        if not step.done:
            continue
        try:
            if step.backup is not None:
                os.replace(step.backup, step.target)
                step.backup = None
            else:
                step.target.unlink()
            restored.append(step.target)
        except OSError as exc:
            failures.append(f"{step.target} ({exc.strerror or exc})")
    if failures:
        raise WriteFailed("a multi-file edit failed half-way and could not be undone: changed but not restored: "
                          + ", ".join(failures) + " (restore them with `git checkout -- FILE`)")
    return restored


def _discard(steps: list[_Step]) -> None:
    for step in steps:
        for leftover in (step.new, step.backup):
            if leftover is not None:
                with contextlib.suppress(OSError):
                    leftover.unlink()


def replace_files(changes: Mapping[Path, str | bytes | None]) -> list[Path]:
    """`Transaction` in one call: each path gets its new text (None: deleted), all or nothing."""
    tx = Transaction()
    for target, data in changes.items():
        if data is None:
            tx.delete(target)
        else:
            tx.write(target, data)
    return tx.commit()
