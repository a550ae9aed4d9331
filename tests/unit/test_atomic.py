"""repo/atomic.py and repo/replock.py in one process: an injected write failure leaves the target
as it was and no temporary file; temporary names are unique; `tms check` calls a leftover
temporary file what it is (delete it, never rename it into place) and ignores one being written;
the repository lock refuses a second holder with exit-3 wording and waits when asked."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tms_stack.repo import atomic
from tms_stack.repo.atomic import Transaction, WriteFailed, write_atomic
from tms_stack.repo.loader import load_repository
from tms_stack.repo.replock import LockBusy, lock_file, repository_lock


def test_a_failing_write_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "lease.yaml"
    target.write_text("old\n")
    real = os.write

    def half(fd: int, data: bytes | memoryview) -> int:  # writes a little, then the disk is full
        if len(data) > 4:
            return real(fd, bytes(data[:4]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "write", half)
    with pytest.raises(WriteFailed, match="No space left on device; it was left as it was"):
        write_atomic(target, "new content\n")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lease.yaml"]


def test_a_failing_fsync_is_a_failure_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "lock.yaml"
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(WriteFailed):
        write_atomic(target, "x")
    assert list(tmp_path.iterdir()) == []


def test_temporary_names_are_unique_and_mode_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "placement.lock.yaml"
    target.write_text("a")
    target.chmod(0o640)
    names = {atomic._temp_name(target).name for _ in range(200)}
    assert len(names) == 200 and all(n.startswith(".placement.lock.yaml.") for n in names)
    write_atomic(target, "b")
    assert target.read_text() == "b" and (target.stat().st_mode & 0o777) == 0o640


def test_a_transaction_that_fails_late_restores_every_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, c = (tmp_path / n for n in ("a.yaml", "b.yaml", "c.yaml"))
    a.write_text("a0")
    b.write_text("b0")
    real = os.replace

    def replace(src: str | Path, dst: str | Path) -> None:
        if Path(dst) == c:
            raise OSError(errno.EPERM, "Operation not permitted")
        real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    tx = Transaction()
    tx.write(a, "a1")
    tx.delete(b)
    tx.write(c, "c1")
    with pytest.raises(WriteFailed, match=r"could not write .*c.yaml: Operation not permitted; restored .*: "
                                          "nothing was changed"):
        tx.commit()
    assert (a.read_text(), b.read_text(), c.exists()) == ("a0", "b0", False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.yaml", "b.yaml"]


def test_check_says_delete_a_leftover_and_ignores_a_write_in_progress(example_repo: Path) -> None:
    (example_repo / "pools" / "placement.lock.tmp").write_text("apiVersion: tms-stack/v1\n")  # the old fixed name
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (example_repo / "leases" / f".ranker.yaml.{dead.stdout.strip()}.0badc0de.tms-tmp").write_text("apiV")
    (example_repo / "leases" / f".chat-small.yaml.{os.getpid()}.0badc0de.tms-tmp").write_text("apiV")  # running
    found = {d.file: d.message for d in load_repository(example_repo).diagnostics if d.rule == "files.layout"}
    assert set(found) == {"pools/placement.lock.tmp", f"leases/.ranker.yaml.{dead.stdout.strip()}.0badc0de.tms-tmp"}
    assert "(the lock is recomputed with `tms pool lock`)" in found["pools/placement.lock.tmp"]
    for message in found.values():
        assert "delete it" in message and "never rename it into place" in message
        assert "rename it to" not in message


def test_the_repository_lock_refuses_then_waits(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    assert lock_file(tmp_path) == tmp_path / ".git" / "tms-edit.lock"
    with repository_lock(tmp_path):
        with pytest.raises(LockBusy, match=r"being edited by pid \d+ .*--wait SECONDS \(or TMS_LOCK_WAIT=SECONDS\)"):
            with repository_lock(tmp_path):
                pass
        started = time.monotonic()
        with pytest.raises(LockBusy, match="waited 0.3 s"):
            with repository_lock(tmp_path, wait=0.3):
                pass
        assert time.monotonic() - started >= 0.3
    holder = threading.Thread(target=_hold, args=(tmp_path, 0.5))
    holder.start()
    time.sleep(0.1)
    with repository_lock(tmp_path, wait=30):  # taken as soon as the holder lets go
        pass
    holder.join()


def _hold(root: Path, seconds: float) -> None:
    with repository_lock(root):
        time.sleep(seconds)
