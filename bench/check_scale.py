"""`tms check` on a generated repository of N leases and P pools: wall time and peak RSS, beside its
yardstick measured in the same run: a Python started the same way that reads and parses the same
files with libyaml's C loader (`yaml.load(..., Loader=yaml.CSafeLoader)`), the parse floor.

Targets: under 10 s and under 1 GiB (issue 2); within 2x of the yardstick (issue 27).
Each run times the yardstick, then the check, back to back, so both see the same load.
Usage: .venv/bin/python bench/check_scale.py [--leases N] [--pools P] [--runs R] [--tree DIR] [--before DIR]
--tree DIR: time the CLI of another checkout (e.g. `git archive main` unpacked) on the same
repository; the generator and the yardstick stay this tree's.
--before DIR: also time DIR's CLI in every run, right after the yardstick and before this tree's:
a before/after table from one run, both beside the same yardstick.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import ROOT, generate  # noqa: E402

# This tree's CLI (or --tree's), whatever an editable install in the venv points at.
TMS = [sys.executable, "-c", "from tms_stack.cli import main; main()"]
os.environ["PYTHONPATH"] = str(ROOT)

# The yardstick: every file `tms check` reads, read and parsed by libyaml's C loader, nothing else.
PARSE_FLOOR = [sys.executable, "-c", (
    "import pathlib, yaml\n"
    "for folder in ('policies', 'leases', 'pools'):\n"
    "    for path in sorted(pathlib.Path(folder).rglob('*.yaml')):\n"
    "        yaml.load(path.read_bytes(), Loader=yaml.CSafeLoader)\n")]
CHECK_ARGS = ["check", "--now", "2026-11-22T00:00:00Z"]


def use_tree(tree: Path) -> None:
    """Run `tree`'s CLI instead of this one's (its tms_stack first on the path)."""
    os.environ["PYTHONPATH"] = tree_path(tree)


def tree_path(tree: Path) -> str:
    """The PYTHONPATH that runs `tree`'s CLI."""
    if not (tree / "tms_stack" / "cli" / "__init__.py").is_file():
        raise SystemExit(f"{tree}: no tms_stack package there")
    return str(tree.resolve())


@dataclass
class Run:
    wall: float      # seconds
    cpu: float       # user + system seconds of the child: steadier than wall on a shared machine
    rss: float       # peak RSS of the child, MiB
    code: int        # exit code


def measure(cmd: list[str], cwd: Path, pythonpath: str | None = None) -> Run:
    """`cmd` in `cwd`, with `pythonpath` (another tree's CLI) instead of the current one if given."""
    env = None if pythonpath is None else {**os.environ, "PYTHONPATH": pythonpath}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, _, rusage = _wait4(proc)
    return Run(time.perf_counter() - start, rusage.ru_utime + rusage.ru_stime, rusage.ru_maxrss / 1024,
               proc.returncode)


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, int]:
    """(seconds, peak RSS MiB of the child, exit code)"""
    run = measure(cmd, cwd)
    return run.wall, run.rss, run.code


def _wait4(proc: subprocess.Popen) -> tuple[int, int, resource.struct_rusage]:
    pid, status, rusage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return pid, status, rusage


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--leases", type=int, default=10_000)
    ap.add_argument("--pools", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tree", type=Path, help="time this checkout's CLI instead of this tree's")
    ap.add_argument("--before", type=Path, help="also time this checkout's CLI in every run (before/after)")
    args = ap.parse_args()
    if args.tree:
        use_tree(args.tree)
    before_path = tree_path(args.before) if args.before else None
    with tempfile.TemporaryDirectory() as tmp:
        repo = generate(Path(tmp) / "repo", args.leases, args.pools)
        print(f"generated {args.leases} leases, {args.pools} pools in {repo}; CLI from "
              f"{os.environ['PYTHONPATH']}" + (f", before: {before_path}" if before_path else ""), flush=True)
        secs, rss, rc = timed([*TMS, "pool", "lock", "--no-learn"], repo)
        print(f"tms pool lock: {secs:.2f} s, peak RSS {rss:.0f} MiB (exit {rc})", flush=True)
        checks: list[Run] = []
        floors: list[Run] = []
        befores: list[Run] = []
        for run in range(args.runs):
            floor = measure(PARSE_FLOOR, repo)
            assert floor.code == 0, f"the yardstick failed with exit {floor.code}"
            if before_path:
                before = measure([*TMS, *CHECK_ARGS], repo, before_path)
                assert before.code == 0, f"tms check (before) failed with exit {before.code}"
                befores.append(before)
                print(f"run {run + 1}: before: tms check {before.wall:.2f} s ({before.cpu:.2f} CPU s): "
                      f"{before.wall / floor.wall:.2f}x wall, {before.cpu / floor.cpu:.2f}x CPU of the parse; "
                      f"peak RSS {before.rss:.0f} MiB", flush=True)
            check = measure([*TMS, *CHECK_ARGS], repo)
            assert check.code == 0, f"tms check failed with exit {check.code}"
            checks.append(check)
            floors.append(floor)
            print(f"run {run + 1}: C-loader parse {floor.wall:.2f} s ({floor.cpu:.2f} CPU s), tms check "
                  f"{check.wall:.2f} s ({check.cpu:.2f} CPU s): {check.wall / floor.wall:.2f}x wall, "
                  f"{check.cpu / floor.cpu:.2f}x CPU; peak RSS {check.rss:.0f} MiB", flush=True)
        wall = statistics.median(c.wall for c in checks)
        peak = max(c.rss for c in checks)
        print(f"tms check on {args.leases} leases / {args.pools} pools: median {wall:.2f} s "
              f"(min {min(c.wall for c in checks):.2f}, max {max(c.wall for c in checks):.2f}), "
              f"{statistics.median(c.cpu for c in checks):.2f} CPU s, peak RSS {peak:.0f} MiB; "
              f"target < 10 s and < 1024 MiB: {'PASS' if wall < 10 and peak < 1024 else 'FAIL'}")
        ratios = [c.wall / f.wall for c, f in zip(checks, floors, strict=True)]
        cpu_ratios = [c.cpu / f.cpu for c, f in zip(checks, floors, strict=True)]
        ratio = statistics.median(ratios)
        print(f"yardstick (C-loader parse of the same files): median {statistics.median(f.wall for f in floors):.2f} s, "
              f"{statistics.median(f.cpu for f in floors):.2f} CPU s; check / parse: median {ratio:.2f}x wall "
              f"(per run {', '.join(f'{r:.2f}' for r in ratios)}), {statistics.median(cpu_ratios):.2f}x CPU "
              f"(per run {', '.join(f'{r:.2f}' for r in cpu_ratios)}); target <= 2x: {'PASS' if ratio <= 2 else 'FAIL'}")
        if befores:
            print(f"before ({before_path}): median {statistics.median(b.wall for b in befores):.2f} s, "
                  f"{statistics.median(b.cpu for b in befores):.2f} CPU s, peak RSS {max(b.rss for b in befores):.0f} MiB; "
                  f"check / parse: median "
                  f"{statistics.median(b.wall / f.wall for b, f in zip(befores, floors, strict=True)):.2f}x wall, "
                  f"{statistics.median(b.cpu / f.cpu for b, f in zip(befores, floors, strict=True)):.2f}x CPU; "
                  f"after / before: {statistics.median(c.wall / b.wall for c, b in zip(checks, befores, strict=True)):.2f}x "
                  "wall")

if __name__ == "__main__":
    main()
