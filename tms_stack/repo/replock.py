"""The repository lock: one editing command at a time per checkout (issue 22).

An editor's save hook, a script and a person can run `tms lease renew` at the same moment; each
read the files, computed its change and wrote, so one change was silently lost (two pooled
`lease create`s lost a placement in 4 of 6 rounds). Every command that edits a repository holds
this lock from before it reads until after it wrote, so edits run one after another and each sees
the last one's result. Reads (`tms check`, `tms plan`) never take it.

The lock is an advisory `flock` on a file that is never committed: inside the checkout's git
folder (`.git/tms-edit.lock`; a linked worktree's own git folder) or, outside git, in the
temporary folder (`tms-edit-<hash of the root's path>.lock`): never a file in the work tree. The kernel releases it when the process ends, however it ends, so a killed
command never leaves a stale lock. The file holds the holder's pid and command line for the message.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tms_stack.models.diagnostics import Conflict, TmsError

LOCK_NAME = "tms-edit.lock"
WAIT_ENV = "TMS_LOCK_WAIT"
_POLL = 0.05


class LockBusy(Conflict):
    """Another command holds the lock (and the wait, if any, ran out): exit 3, conflict."""


def git_dir(root: Path) -> Path | None:
    """The git folder of the checkout holding `root` (a worktree's `.git` file is followed)."""
    for folder in (root, *root.parents):
        dot = folder / ".git"
        if dot.is_dir():
            return dot
        if dot.is_file():
            text = dot.read_text(encoding="utf-8", errors="replace").strip()
            if text.startswith("gitdir:"):
                target = Path(text.removeprefix("gitdir:").strip())
                return target if target.is_absolute() else (folder / target).resolve()
            return None
    return None


def lock_file(root: Path) -> Path:
    """In the git folder; outside git, in the temporary folder under a name derived from the root's
    real path (a command never adds a file to the repository, not even a refused one)."""
    real = root.resolve()
    found = git_dir(real)
    if found is not None:
        return found / LOCK_NAME
    digest = hashlib.sha256(str(real).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"tms-edit-{digest}.lock"


def wait_seconds(option: float | None) -> float:
    """`--wait SECONDS`, else $TMS_LOCK_WAIT, else 0 (refuse at once)."""
    if option is not None:
        return max(0.0, option)
    text = os.environ.get(WAIT_ENV, "").strip()
    if not text:
        return 0.0
    try:
        return max(0.0, float(text))
    except ValueError:
        raise TmsError(f"{WAIT_ENV}={text!r}: a number of seconds to wait for the repository lock") from None


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return "another tms command"
    return text.splitlines()[0] if text else "another tms command"


@contextlib.contextmanager
def repository_lock(root: Path, wait: float = 0.0) -> Iterator[Path]:
    """Hold the repository lock; raise LockBusy (exit 3) when it stays taken for `wait` seconds."""
    path = lock_file(root)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:  # another user's lock file: a read-only descriptor locks as well
        fd = os.open(path, os.O_RDONLY)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    who = _holder(path)
                    waited = f"waited {wait:g} s; " if wait else ""
                    raise LockBusy(f"the repository is being edited by {who} ({waited}lock {path}): run again "
                                   f"when it is done, or wait for it with --wait SECONDS (or {WAIT_ENV}=SECONDS)"
                                   ) from None
                time.sleep(_POLL)
        command = " ".join(["tms", *sys.argv[1:]])[:200]
        with contextlib.suppress(OSError):  # only for the message; a full disk must not stop the edit
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} (`{command}`)\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the flock
