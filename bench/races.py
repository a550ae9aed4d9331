"""Races of issue 22, counted: how many changes reported as done were lost, and how many lock reads
saw half a file. Runs against this checkout, or `--code DIR` (another checkout's root, e.g. the
commit before the fix) to give the "before" numbers of bench/RESULTS.md.

    python bench/races.py --rounds 6
    python bench/races.py --rounds 6 --code /tmp/old-checkout

Each round starts two real `tms` processes behind a file barrier (tests/lifecycle/test_races.py
asserts the same outcomes); with the repository lock they run with `--wait` (older code has no
such option and runs without)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parents[1]
NOW = "2026-11-22T00:00:00Z"
BARRIER = """
import os, sys, time
barrier = sys.argv.pop(1)
import tms_stack.cli, tms_stack.commands.check, tms_stack.commands.edits
while not os.path.exists(barrier):
    time.sleep(0.001)
from tms_stack.cli import main
main()
"""


class Runner:
    def __init__(self, code: Path) -> None:
        self.code = code
        self.env = {**os.environ, "PYTHONPATH": str(code), "TMS_OWNER": "team-assist"}
        helps = subprocess.run([sys.executable, "-c", "from tms_stack.cli import main; main()", "lease", "renew",
                                "--help"], capture_output=True, text=True, env=self.env, cwd=code).stdout
        self.wait = ["--wait", "300"] if "--wait" in helps else []

    def race(self, root: Path, *commands: list[str]) -> list[int]:
        barrier = root.parent / f"go-{time.monotonic_ns()}"
        procs = [subprocess.Popen([sys.executable, "-c", BARRIER, str(barrier), *argv, *self.wait, "--root", str(root)],
                                  cwd=self.code, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for argv in commands]
        time.sleep(3)
        barrier.touch()
        return [proc.wait(timeout=600) for proc in procs]


def fresh(base: Path, n: int) -> Path:
    root = base / f"r{n}"
    for part in ("leases", "pools", "policies"):
        shutil.copytree(HERE / "tests" / "fixtures" / "example" / part, root / part)
    return root


def placed(root: Path) -> set[str]:
    text = (root / "pools" / "placement.lock.yaml").read_text()
    data = yaml.safe_load(text) if text.strip() else None
    return {n for p in (data or {}).get("pools", {}).values() for i in p["instances"] for n in i["leases"]}


def lease(root: Path, name: str) -> dict[str, Any] | None:
    path = root / "leases" / f"{name}.yaml"
    if not path.exists():
        return None
    return yaml.safe_load(path.read_text()) or {}


def scenarios(runner: Runner, base: Path, rounds: int) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    pooled = ["-p", "shared-t4-pool", "--quota", "1", "--now", NOW]

    def tally(name: str, lost: bool, refused: bool) -> None:
        row = out.setdefault(name, {"rounds": 0, "lost": 0, "refused": 0})
        row["rounds"] += 1
        row["lost"] += lost
        row["refused"] += refused

    n = 0
    for _ in range(rounds):
        n += 1
        root = fresh(base, n)
        codes = runner.race(root, *(["lease", "create", x, "-m", f"name={x}_m,uri=model://s3-models/c/{x},backend=python",
                                     *pooled] for x in ("alpha", "beta")))
        done = [x for x, c in zip(("alpha", "beta"), codes, strict=True) if c == 0]
        tally("two pooled creates", any(x not in placed(root) or lease(root, x) is None for x in done), len(done) < 2)
        n += 1
        root = fresh(base, n)
        codes = runner.race(root, ["lease", "renew", "ranker", "--duration", "150d", "--now", NOW],
                            ["lease", "renew", "ranker", "--duration", "200d", "--now", NOW])
        final = str((lease(root, "ranker") or {}).get("spec", {}).get("expires"))
        tally("two renews", codes[1] == 0 and not final.startswith("2027-06-10"), 0 in codes and codes != [0, 0])
        n += 1
        root = fresh(base, n)
        codes = runner.race(root, ["lease", "release", "ranker"],
                            ["lease", "renew", "ranker", "--duration", "250d", "--now", NOW])
        tally("release with renew", codes[0] == 0 and lease(root, "ranker") is not None, codes != [0, 0])
        n += 1
        root = fresh(base, n)
        codes = runner.race(root, ["lease", "name", "move", "chat", "chat-small", "ranker"],
                            ["lease", "name", "move", "chat", "chat-small", "fraud-detector"])
        holders = [p.stem for p in (root / "leases").glob("*.yaml")
                   if "chat" in ((yaml.safe_load(p.read_text()) or {}).get("spec", {}).get("names") or [])]
        tally("two name moves", len(holders) != 1 or codes.count(0) != 1, codes.count(0) < 2)
    return out


WRITER = """
import sys
from pathlib import Path
from tms_stack.repo.lockfile import write_lock
from tms_stack.models.lock import PlacementLock
import yaml
root, count, a, b = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
locks = [PlacementLock.model_validate(yaml.safe_load(t)) for t in (a, b)]
crashes = 0
for i in range(count):
    try:
        write_lock(root, locks[i % 2])
    except Exception:
        crashes += 1
print(crashes)
"""

READER = """
import sys
from pathlib import Path
path, stop, good = Path(sys.argv[1]), Path(sys.argv[2]), set(sys.argv[3:])
reads = partial = 0
while not stop.exists():
    try:
        text = path.read_text()
    except FileNotFoundError:
        text = ""
    reads += 1
    partial += text not in good
print(reads, partial)
"""


def lock_writes(runner: Runner, base: Path, writes: int) -> dict[str, int]:
    sys.path.insert(0, str(HERE))
    from tms_stack.repo.lockfile import dump_lock, read_lock

    root = fresh(base, 10_000)
    a = read_lock(root)
    assert a is not None
    b = a.model_copy(update={"backends": {f"model://s3-models/x/{i}": ["python"] for i in range(40)}})
    good = [dump_lock(a), dump_lock(b)]
    lock = root / "pools" / "placement.lock.yaml"
    lock.write_text(good[0])
    stop = base / "stop"
    readers = [subprocess.Popen([sys.executable, "-c", READER, str(lock), str(stop), *good], env=runner.env,
                                stdout=subprocess.PIPE, text=True) for _ in range(2)]
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(writes // 4), *good], cwd=runner.code,
                                env=runner.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
               for _ in range(4)]
    crashes = sum(int(w.communicate()[0] or 0) for w in writers)
    stop.touch()
    counts = [tuple(map(int, r.communicate()[0].split())) for r in readers]
    return {"writes": writes, "writer_crashes": crashes, "reads": sum(c[0] for c in counts),
            "partial_reads": sum(c[1] for c in counts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, default=HERE, help="the checkout whose tms_stack runs")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--writes", type=int, default=3000)
    args = parser.parse_args()
    runner = Runner(args.code.resolve())
    with tempfile.TemporaryDirectory(prefix="tms-races-") as tmp:
        report = {"code": str(args.code), "wait": bool(runner.wait),
                  "races": scenarios(runner, Path(tmp), args.rounds),
                  "lock_writes": lock_writes(runner, Path(tmp), args.writes)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
