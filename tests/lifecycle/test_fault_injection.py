"""Every file tms writes is written whole or not at all (issue 22), under real faults.

- A full disk: a size-limited tmpfs mounted in a private mount namespace (`unshare -m`), filled to
  the last byte; each edit of the issue (lease create, renew, name move, release of a pooled lease,
  pool lock, prune's renewal) must fail with one line and leave every file exactly as it was (no
  0-byte lease, no empty lock, no temporary file), and `tms check` must still pass.
- An immutable second file (`chattr +i`): `tms lease name move` must change neither lease.
- An injected failure of the last rename of a multi-file edit (os.replace patched in the CLI's own
  process): the files already renamed are put back.

The old code (write_text in place) fails each of these: it left 0-byte files, or the name on
neither lease."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import copy_example

ROOT = Path(__file__).resolve().parents[2]
NOW = "2026-11-22T00:00:00Z"


def _can_mount() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


needs_mount = pytest.mark.skipif(not _can_mount(), reason="needs root and unshare -m (a private mount namespace)")


def tms(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from tms_stack.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "TMS_OWNER": "team-assist", **(env or {})})


def on_full_disk(tmp_path: Path, scenario: str) -> dict:  # type: ignore[type-arg]
    mount = tmp_path / "small"
    mount.mkdir()
    script = (f'mount -t tmpfs -o size=2m tmpfs "{mount}" && '
              f'exec "{sys.executable}" -m tests.support.fullfs "{mount}" {scenario}')
    out = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


@needs_mount
@pytest.mark.parametrize("scenario", ["create", "renew", "move", "release-pooled", "pool-lock", "prune-renewal"])
def test_a_full_disk_changes_nothing(tmp_path: Path, scenario: str) -> None:
    report = on_full_disk(tmp_path, scenario)
    assert report["code"] != 0, report
    # Nothing changed: the same files, the same sizes, no temporary file left behind.
    assert report["after"] == report["before"], (report["stderr"], report["after"])
    assert all(size > 0 for size in report["after"].values())
    if scenario != "prune-renewal":
        err = report["stderr"]
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert "No space left on device" in err and "left as it was" in err or "nothing was changed" in err, err
        assert report["code"] == 2, err
    if scenario != "pool-lock":  # pool-lock's repository has a lease waiting for the lock (stale on purpose)
        assert report["check"] == 0, report["check_out"]


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _chattr_works(path: Path) -> bool:
    return shutil.which("chattr") is not None and subprocess.run(["chattr", "+i", str(path)],
                                                                 capture_output=True).returncode == 0


def test_name_move_onto_an_immutable_lease_changes_neither(tmp_path: Path) -> None:
    root = copy_example(tmp_path / "repo")
    target = root / "leases" / "ranker.yaml"
    before = {p.name: p.read_bytes() for p in (root / "leases").iterdir()}
    if not _chattr_works(target):
        pytest.skip("chattr +i is not available here (needs root and a file system that supports it)")
    try:
        out = tms("lease", "name", "move", "chat", "chat-small", "ranker", "--root", str(root))
    finally:
        subprocess.run(["chattr", "-i", str(target)], check=True)
    assert out.returncode == 2, out
    assert "Operation not permitted" in out.stderr and "nothing was changed" in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1
    assert {p.name: p.read_bytes() for p in (root / "leases").iterdir()} == before
    assert tms("check", str(root), "--now", NOW).returncode == 0


INJECT = """
import os, sys
real = os.replace
failing = sys.argv.pop(1)
def replace(src, dst, *a, **k):
    if str(dst).endswith(failing):
        raise OSError(5, "Input/output error (injected)")
    return real(src, dst, *a, **k)
os.replace = replace
from tms_stack.cli import main
main()
"""


@pytest.mark.parametrize(("argv", "fails_on"), [
    (["lease", "name", "move", "chat", "chat-small", "ranker"], "leases/ranker.yaml"),
    (["lease", "release", "chat-small"], "pools/placement.lock.yaml"),
])
def test_a_failed_rename_puts_back_what_was_already_renamed(tmp_path: Path, argv: list[str], fails_on: str) -> None:
    root = copy_example(tmp_path / "repo")
    before = snapshot(root)
    out = subprocess.run([sys.executable, "-c", INJECT, fails_on, *argv, "--root", str(root)],
                         capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 2, out
    assert f"{fails_on}: Input/output error (injected)" in out.stderr and "nothing was changed" in out.stderr
    assert snapshot(root) == before


def test_an_empty_lock_is_rebuilt_by_pool_lock_as_check_says(tmp_path: Path) -> None:
    """What an older tms left on a full disk: a 0-byte lock. `tms pool lock` refused to rebuild it."""
    root = copy_example(tmp_path / "repo")
    (root / "pools" / "placement.lock.yaml").write_text("")
    check = tms("check", str(root), "--now", NOW)
    assert check.returncode == 2 and "(rebuild it with `tms pool lock`)" in check.stdout, check.stdout
    lock = tms("pool", "lock", "--no-learn", "--root", str(root))
    assert lock.returncode == 0, lock.stderr
    assert "placing every pooled lease afresh" in lock.stderr and lock.stderr.count("\n") == 1
    assert tms("check", str(root), "--now", NOW).returncode == 0
