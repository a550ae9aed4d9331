"""Two commands at once on one checkout never lose a change (issue 22).

Each race starts real `tms` processes that wait on a file barrier and then run the same instant.
With the repository lock they run one after another (`--wait`) or the later one is refused with
exit 3; whatever each reports as done is in the files afterwards, and `tms check` passes. Before
the lock, two pooled creates lost a placement, a renew or a release reported success with its
change gone, two name moves left a name on two leases.

The lock writer itself is raced too: 3,000 writes from four processes against two readers, every
read a whole version (the fixed `placement.lock.tmp` name gave writer crashes and partial reads)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import copy_example

ROOT = Path(__file__).resolve().parents[2]
NOW = "2026-11-22T00:00:00Z"

BARRIER = """
import os, sys, time
barrier = sys.argv.pop(1)
while not os.path.exists(barrier):
    time.sleep(0.001)
from tms_stack.cli import main
main()
"""

POOLED = ["-m", "name={name}_m,uri=model://s3-models/chat/{name}", "-p", "shared-t4-pool", "--quota", "1",
          "--owner", "team-assist", "--now", NOW]


def race(root: Path, *commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """Start every command, let them all import, then release them at once."""
    barrier = root.parent / f"go-{time.monotonic_ns()}"
    # Imports first (a fraction of a second each), so that the barrier really is the start line.
    preload = "import tms_stack.cli, tms_stack.commands.check, tms_stack.commands.edits\n"
    procs = [subprocess.Popen([sys.executable, "-c", preload + BARRIER, str(barrier), *argv, "--root", str(root)],
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for argv in commands]
    time.sleep(3)
    barrier.touch()
    outs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        outs.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    return outs


def tms(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from tms_stack.cli import main; main()", *args], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)


def placed(root: Path) -> set[str]:
    data = yaml.safe_load((root / "pools" / "placement.lock.yaml").read_text())
    return {n for p in data["pools"].values() for i in p["instances"] for n in i["leases"]}


def expires(root: Path, lease: str) -> str:
    return str(yaml.safe_load((root / "leases" / f"{lease}.yaml").read_text())["spec"]["expires"])


def test_two_pooled_creates_both_land(tmp_path: Path) -> None:
    for round_ in range(4):
        root = copy_example(tmp_path / f"r{round_}")
        outs = race(root, *(["lease", "create", name, *(a.format(name=name) for a in POOLED), "--wait", "120"]
                            for name in ("alpha", "beta")))
        assert [o.returncode for o in outs] == [0, 0], [o.stderr for o in outs]
        assert {"alpha", "beta"} <= placed(root)
        assert tms(root, "check", str(root), "--now", NOW).returncode == 0


def test_without_wait_the_second_is_refused_and_the_first_lands(tmp_path: Path) -> None:
    root = copy_example(tmp_path / "repo")
    outs = race(root, *(["lease", "create", name, *(a.format(name=name) for a in POOLED)] for name in ("alpha", "beta")))
    codes = sorted(o.returncode for o in outs)
    assert codes in ([0, 0], [0, 3]), [o.stderr for o in outs]
    for out, name in zip(outs, ("alpha", "beta"), strict=True):
        if out.returncode == 0:
            assert name in placed(root)
        else:
            assert "the repository is being edited by pid" in out.stderr and "--wait SECONDS" in out.stderr
            assert out.stderr.count("\n") == 1
            assert not (root / "leases" / f"{name}.yaml").exists()
    assert tms(root, "check", str(root), "--now", NOW).returncode == 0


def test_two_renews_and_a_release_with_a_renew(tmp_path: Path) -> None:
    root = copy_example(tmp_path / "repo")
    short, long_ = race(root, ["lease", "renew", "ranker", "--duration", "150d", "--now", NOW, "--wait", "120"],
                        ["lease", "renew", "ranker", "--duration", "200d", "--now", NOW, "--wait", "120"])
    # Serially: 150d then 200d (both done), or 200d then 150d (refused: it would shorten). The 200d
    # renewal is never lost.
    assert long_.returncode == 0 and short.returncode in (0, 1), (short.stderr, long_.stderr)
    assert expires(root, "ranker").startswith("2027-06-10")  # NOW + 200 days
    release, renew = race(root, ["lease", "release", "ranker", "--wait", "120"],
                          ["lease", "renew", "ranker", "--duration", "250d", "--now", NOW, "--wait", "120"])
    assert release.returncode == 0, release.stderr
    assert not (root / "leases" / "ranker.yaml").exists()  # the release is never undone by the renew
    assert renew.returncode in (0, 1), renew.stderr
    if renew.returncode == 1:
        assert "no lease 'ranker'" in renew.stderr


def test_two_name_moves_leave_the_name_on_one_lease(tmp_path: Path) -> None:
    root = copy_example(tmp_path / "repo")
    outs = race(root, ["lease", "name", "move", "chat", "chat-small", "ranker", "--wait", "120"],
                ["lease", "name", "move", "chat", "chat-small", "fraud-detector", "--wait", "120"])
    assert sorted(o.returncode for o in outs) == [0, 1], [o.stderr for o in outs]
    holders = [p.stem for p in (root / "leases").glob("*.yaml")
               if "chat" in (yaml.safe_load(p.read_text())["spec"].get("names") or [])]
    winner = ["ranker", "fraud-detector"][[o.returncode for o in outs].index(0)]
    assert holders == [winner]
    assert tms(root, "check", str(root), "--now", NOW).returncode == 0


WRITER = """
import sys
from pathlib import Path
from tms_stack.repo.lockfile import read_lock, write_lock
root, count = Path(sys.argv[1]), int(sys.argv[2])
a = read_lock(root)
b = a.model_copy(update={"backends": {f"model://s3-models/x/{i}": ["python"] for i in range(40)}})
crashes = 0
for i in range(count):
    try:
        write_lock(root, a if i % 2 else b)
    except Exception as exc:
        crashes += 1
print(crashes)
"""

READER = """
import sys, time
from pathlib import Path
path, stop, good = Path(sys.argv[1]), Path(sys.argv[2]), set(sys.argv[3:])
reads = partial = 0
while not stop.exists():
    text = path.read_text()
    reads += 1
    partial += text not in good
print(reads, partial)
"""


def test_3000_lock_writes_against_readers_never_show_half_a_lock(tmp_path: Path) -> None:
    from tms_stack.repo.lockfile import dump_lock, read_lock

    root = copy_example(tmp_path / "repo")
    a = read_lock(root)
    assert a is not None
    b = a.model_copy(update={"backends": {f"model://s3-models/x/{i}": ["python"] for i in range(40)}})
    good = [dump_lock(a), dump_lock(b)]
    (root / "pools" / "placement.lock.yaml").write_text(good[0])
    stop = tmp_path / "stop"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    lock = root / "pools" / "placement.lock.yaml"
    readers = [subprocess.Popen([sys.executable, "-c", READER, str(lock), str(stop), *good], env=env, cwd=ROOT,
                                stdout=subprocess.PIPE, text=True) for _ in range(2)]
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(root), "750"], env=env, cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    crashes = [int(w.communicate(timeout=600)[0] or -1) for w in writers]
    stop.touch()
    counts = [tuple(map(int, r.communicate(timeout=60)[0].split())) for r in readers]
    assert crashes == [0, 0, 0, 0]
    assert all(reads > 0 for reads, _ in counts)
    assert [partial for _, partial in counts] == [0, 0], counts
    assert lock.read_text() in good
    assert not [p.name for p in lock.parent.iterdir() if p.name.startswith(".")]  # no temporary file left


class _Busy:
    """Telemetry that answers "active" and, while it is being asked, a person renews the lease."""

    name = "test"

    timeout = 60.0  # seconds a question may take (ActivitySource)

    def __init__(self, root: Path) -> None:
        self.root = root

    def active(self, lease, start, end, **_: object) -> bool:  # type: ignore[no-untyped-def]
        out = tms(self.root, "lease", "renew", lease.name, "--duration", "300d", "--now", NOW, "--root", str(self.root))
        assert out.returncode == 0, out.stderr
        return True


def test_prune_never_undoes_a_renewal_made_while_it_asked_telemetry(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from tms_stack.commands.prune import decide
    from tms_stack.commands.prune_apply import apply
    from tms_stack.models.diagnostics import Conflict
    from tms_stack.repo.loader import load_repository

    root = copy_example(tmp_path / "repo")
    repo = load_repository(root)
    when = datetime(2027, 2, 1, 0, 5, tzinfo=UTC)
    result = decide(repo, when, _Busy(root))  # chat-small just expired
    assert [r.lease for r in result.renewed] == ["chat-small"]
    renewed = (root / "leases" / "chat-small.yaml").read_text()
    with pytest.raises(Conflict, match="leases/chat-small.yaml changed while prune ran"):
        apply(root, repo, result, when)
    assert (root / "leases" / "chat-small.yaml").read_text() == renewed  # the person's renewal stands
