"""What a user waits for, through the repository's own workflow files on the real node: pull request
opened -> review result and plan comment, merge -> model answering, merge -> a moved name answering
from its new lease, prune's scheduled run -> the expired lease's objects gone.

It runs the day-in-the-life test (tests/e2e/node/test_node_day.py: act, the Pulumi engine built from
../shared/vendor, kubelet + containerd, the CPU Triton) and prints the times that test measured, as a
markdown table for bench/RESULTS.md. GitHub's own delays are not in them (queueing a run, starting
`workflow_run` after the review, a scheduled run's interval and lateness).

Usage: .venv/bin/python bench/user_waits.py [--runs N]   (needs root, like the node tests)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/e2e/node/test_node_day.py"


def one_run(out: Path) -> dict:
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-s", TEST],
                       cwd=ROOT, env={**os.environ, "TMS_BENCH_OUT": str(out)})
    if p.returncode != 0 or not out.exists():
        raise SystemExit(f"the day-in-the-life test failed (exit {p.returncode}): no times to report")
    return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            print(f"[bench] run {i + 1}/{args.runs} of {TEST} ...", flush=True)
            results.append(one_run(Path(tmp) / f"run-{i}.json"))
    print(table(results))


def table(results: list[dict]) -> str:
    """The markdown table of one or more runs' times (the JSON the test writes)."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    lines = [f"commit {commit}, {len(results)} run(s); median (min-max) seconds", "",
             "| what the user waits for | seconds |", "| --- | --- |"]
    for what in results[0]["waits_s"]:
        values = [r["waits_s"][what] for r in results]
        spread = f" ({min(values):.0f}-{max(values):.0f})" if len(values) > 1 else ""
        lines.append(f"| {what} | {statistics.median(values):.0f}{spread} |")
    moves = [(r["requests_during_move"], r["failed_during_move"]) for r in results]
    lines += ["", f"requests through the moved name: {sum(m[0] for m in moves)}, "
              f"failed: {sum(m[1] for m in moves)}"]
    return "\n".join(lines)

if __name__ == "__main__":
    main()
