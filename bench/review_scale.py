"""The review of a pull request that changes one lease: `tms check --base main` + `tms plan --base
main` on a generated repository of N leases (issue 27, docs/review.md). Three ways, in one run,
side by side on the same repository and the same change:

  full   TMS_CACHE=off: every file parsed, every group rendered, the base written to a scratch
         folder by each command (the yardstick)
  cold   the parse cache empty and no kept base checkout (.git/tms-stack, repo/basetree.py): the
         check parses everything, writes the cache and checks the base out; the plan reuses both
  warm   the same review again: the base's files in the cache and checked out, and both checks'
         answers kept (repo/answers.py), as when a review is run twice
  push   the pull request pushed again (a comment added to its lease, so its bytes are new) and
         reviewed with everything the warm way has: the head's check runs its rules, the plan
         reuses the check's answer and the base's

Wall and CPU seconds (user + sys of the commands), median of --runs; the plan each way
must be byte-identical to the full one's. --baseline PYTHON adds a column run with another
checkout's interpreter (e.g. the main branch before this change), same commands, no cache.
--before DIR adds a column "before" run warm, like "warm", with DIR's tms_stack first on PYTHONPATH
(this interpreter and packages): a before/after of the warm review in one run.
Target (issue 27): check + plan under 2 s, under 1 s warm, at 10,000 leases.

Usage: .venv/bin/python bench/review_scale.py [--leases 10000 1000] [--pools 50] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import ROOT, generate  # noqa: E402

NOW = "2026-11-22T00:00:00Z"
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}


def tms(python: str) -> list[str]:
    # This tree's CLI (or the baseline's), whatever an editable install points at.
    return [python, "-c", "from tms_stack.cli import main; main()"]


def review(python: str, repo: Path, env: dict[str, str]) -> dict[str, float | bytes]:
    """One review as the pull request's job runs it: check against the base, then the plan."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    check = subprocess.run([*tms(python), "check", "--base", "main", "--now", NOW], cwd=repo, env=env,
                           capture_output=True)
    mid = time.perf_counter()
    plan = subprocess.run([*tms(python), "plan", "--base", "main", "--now", NOW], cwd=repo, env=env,
                          capture_output=True)
    end = time.perf_counter()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if check.returncode != 0 or plan.returncode != 0:
        raise SystemExit(f"review failed: check exit {check.returncode}, plan exit {plan.returncode}\n"
                         f"{check.stdout.decode()[-2000:]}{check.stderr.decode()[-2000:]}{plan.stderr.decode()[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"check": mid - start, "plan": end - mid, "wall": end - start, "cpu": cpu, "out": plan.stdout}


def one_size(leases: int, pools: int, runs: int, baseline: str | None, before: Path | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="tms-review-bench-") as tmp:
        repo = generate(Path(tmp) / "repo", leases, pools)
        git = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True,  # noqa: E731
                                        env={**os.environ, **GIT_ENV})
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run([*tms(sys.executable), "pool", "lock", "--no-learn"], cwd=repo, check=True,
                       capture_output=True, env=env)
        git("init", "-q", "-b", "main")
        git("add", "-A")
        git("commit", "-qm", "base")
        git("checkout", "-qb", "pr")
        # The pull request: one bespoke lease asks for one more CPU.
        changed = repo / "leases" / "lease-00001.yaml"
        changed.write_text(changed.read_text().replace("resources: {cpu: 4, gpu: 1}", "resources: {cpu: 5, gpu: 1}"))
        git("commit", "-qam", "one lease")
        original = changed.read_text()
        print(f"generated {leases} leases, {pools} pools; the pull request changes {changed.name}", flush=True)

        ways: dict[str, tuple[str, dict[str, str] | None]] = {
            "full": (sys.executable, {"TMS_CACHE": "off"}),
            "cold": (sys.executable, None),
            "warm": (sys.executable, None),
            "push": (sys.executable, None),
        }
        if baseline:
            ways["baseline"] = (baseline, {"TMS_CACHE": "off"})
        if before:
            ways["before"] = (sys.executable, {"PYTHONPATH": str(before)})
        results: dict[str, list[dict[str, float | bytes]]] = {w: [] for w in ways}
        for r in range(runs):
            for way, (python, extra) in ways.items():
                cache = Path(tmp) / f"cache-{way}"
                warm_like = way in ("warm", "push", "before")
                if way == "cold" or (warm_like and r == 0):
                    shutil.rmtree(cache, ignore_errors=True)
                if way == "cold":
                    shutil.rmtree(repo / ".git" / "tms-stack", ignore_errors=True)
                run_env = {**env, "TMS_CACHE_DIR": str(cache), **(extra or {})}
                if way == "baseline":
                    run_env.pop("PYTHONPATH", None)     # its own checkout's tms_stack, not this one
                if warm_like and r == 0:
                    review(python, repo, run_env)   # an earlier review of the same base filled it
                if way == "push":   # a new head each run; a comment leaves the plan as it was
                    changed.write_text(original + f"# pushed again, run {r + 1}\n")
                try:
                    res = review(python, repo, run_env)
                finally:
                    changed.write_text(original)
                results[way].append(res)
                print(f"run {r + 1} {way}: check {res['check']:.2f} s + plan {res['plan']:.2f} s = "
                      f"{res['wall']:.2f} s wall, {res['cpu']:.2f} s CPU", flush=True)
        reference = results["full"][0]["out"]
        for way, rows in results.items():
            if way not in ("baseline", "before"):
                assert all(row["out"] == reference for row in rows), f"{way}: the plan differs from the full run's"
        print(f"\nreview of a one-lease pull request at {leases} leases (median of {runs}; plans identical):")
        print("| way | check | plan | check + plan (wall) | CPU | vs full |")
        print("| --- | --- | --- | --- | --- | --- |")
        full = statistics.median(float(row["wall"]) for row in results["full"])
        for way, rows in results.items():
            med = {k: statistics.median(float(row[k]) for row in rows) for k in ("check", "plan", "wall", "cpu")}
            print(f"| {way} | {med['check']:.2f} s | {med['plan']:.2f} s | {med['wall']:.2f} s | "
                  f"{med['cpu']:.2f} s | {med['wall'] / full:.2f}x |", flush=True)
        warm = statistics.median(float(row["wall"]) for row in results["warm"])
        cold = statistics.median(float(row["wall"]) for row in results["cold"])
        if leases >= 10_000:
            print(f"target at 10,000 leases: cold < 2 s {'PASS' if cold < 2 else 'FAIL'}, "
                  f"warm < 1 s {'PASS' if warm < 1 else 'FAIL'} (cold {cold:.2f} s, warm {warm:.2f} s)", flush=True)
        print(flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--leases", type=int, nargs="+", default=[10_000, 1_000])
    ap.add_argument("--pools", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--baseline", metavar="PYTHON",
                    help="another checkout's interpreter (its tms_stack installed): a fourth column")
    ap.add_argument("--before", type=Path, metavar="DIR",
                    help="another checkout (its tms_stack/ first on PYTHONPATH), run warm: a before column")
    args = ap.parse_args()
    for n in args.leases:
        one_size(n, args.pools, args.runs, args.baseline, args.before.resolve() if args.before else None)


if __name__ == "__main__":
    main()
