"""`tms check` on a generated repository of 10,000 leases and 50 pools: wall time and peak RSS.

Target (issue 2): under 10 s and under 1 GiB on the 2-core CI machine.
Usage: .venv/bin/python bench/check_scale.py [--leases N] [--pools P] [--runs R]
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import ROOT, generate  # noqa: E402

# This tree's CLI, whatever an editable install in the venv points at.
TMS = [sys.executable, "-c", "from tms_stack.cli import main; main()"]
os.environ["PYTHONPATH"] = str(ROOT)


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, int]:
    """(seconds, peak RSS MiB of the child, exit code)"""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, _, rusage = _wait4(proc)
    return time.perf_counter() - start, rusage.ru_maxrss / 1024, proc.returncode


def _wait4(proc: subprocess.Popen) -> tuple[int, int, resource.struct_rusage]:
    pid, status, rusage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return pid, status, rusage


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--leases", type=int, default=10_000)
    ap.add_argument("--pools", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = generate(Path(tmp) / "repo", args.leases, args.pools)
        print(f"generated {args.leases} leases, {args.pools} pools in {repo}", flush=True)
        secs, rss, rc = timed([*TMS, "pool", "lock", "--no-learn"], repo)
        print(f"tms pool lock: {secs:.2f} s, peak RSS {rss:.0f} MiB (exit {rc})", flush=True)
        times, peaks = [], []
        for run in range(args.runs):
            secs, rss, rc = timed([*TMS, "check", "--now", "2026-11-22T00:00:00Z"], repo)
            assert rc == 0, f"tms check failed with exit {rc}"
            times.append(secs)
            peaks.append(rss)
            print(f"run {run + 1}: tms check {secs:.2f} s, peak RSS {rss:.0f} MiB", flush=True)
        print(f"tms check on {args.leases} leases / {args.pools} pools: median {statistics.median(times):.2f} s "
              f"(min {min(times):.2f}, max {max(times):.2f}), peak RSS {max(peaks):.0f} MiB; "
              f"target < 10 s and < 1024 MiB: {'PASS' if max(times) < 10 and max(peaks) < 1024 else 'FAIL'}")


if __name__ == "__main__":
    main()
