"""Every benchmark script runs, at a tiny size, in the test suite, so that none can rot unnoticed
(issue 27: bench/render_scale.py crashed with a TypeError for weeks). The figures themselves are
bench/RESULTS.md's business; here only that each script runs to the end and prints its result.

The scripts that need real servers (engine_scale, node_latency, agent_hot_load, agent_outages) run in the suites
that build those servers: tests/unit/test_bench_scale_state.py and the e2e tests import their
helpers; listed here so a new script cannot be forgotten."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

# script -> (arguments for a tiny run, a word its output must contain)
TINY = {
    # --before with this tree: the before/after code paths run too (and the same tree writes the same bytes).
    "check_scale.py": (["--leases", "20", "--pools", "2", "--runs", "1", "--before", str(BENCH.parent)],
                       "tms check on 20 leases"),
    "render_scale.py": (["--leases", "20", "--pools", "2", "--before", str(BENCH.parent)],
                        "before and after wrote the same bytes"),
    "placement.py": (["--sizes", "50"], "50 leases"),
    "trusted_review.py": (["--leases", "20", "--pools", "2"], "review"),
    "prune_deadline.py": (["--mode", "hang", "--leases", "6", "--budget", "2s"], '"unknown": 6'),
    "races.py": (["--rounds", "1", "--writes", "40"], "partial_reads"),
    "review_scale.py": (["--leases", "20", "--pools", "2", "--runs", "1"], "plans identical"),
    # the file-side steps only: the engine runs need the control plane (bench/RESULTS.md, "Sharded stacks")
    "shard_scale.py": (["--no-engine", "--leases", "30", "--shards", "3"], "tms plan --targets (one lease of bench-"),
}
# Other ways of the same scripts, each run tiny too.
TINY_MORE = [("trusted_review.py", ["--leases", "20", "--pools", "2", "--change", "one-lease"], "one more CPU")]
# Run through their own test at a small size: soak.py by tests/lifecycle/test_soak.py; user_waits.py's
# table by tests/e2e/node/test_node_day.py (the script runs that test and prints what it measured).
RUN_BY_A_TEST = {"soak.py", "user_waits.py"}
NEEDS_REAL_SERVERS = {"engine_scale.py", "node_latency.py", "agent_hot_load.py",
                      "agent_outages.py"}  # tiny run: tests/agent/test_agent_outages.py
HELPERS = {"generate.py"}


def test_every_script_is_covered() -> None:
    scripts = {p.name for p in BENCH.glob("*.py")}
    known = set(TINY) | NEEDS_REAL_SERVERS | HELPERS | RUN_BY_A_TEST
    assert scripts == known, sorted(scripts ^ known)


@pytest.mark.parametrize("script", sorted(TINY))
def test_script_runs_at_a_tiny_size(script: str, tmp_path: Path) -> None:
    args, expect = TINY[script]
    done = subprocess.run([sys.executable, str(BENCH / script), *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert expect in done.stdout, done.stdout[-2000:]


@pytest.mark.parametrize(("script", "args", "expect"), TINY_MORE)
def test_other_ways_run_at_a_tiny_size(script: str, args: list[str], expect: str, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(BENCH / script), *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert expect in done.stdout, done.stdout[-2000:]


def test_check_pauses_the_collector_and_restores_it(example_repo: Path, now) -> None:  # type: ignore[no-untyped-def]
    """run_check turns the cyclic collector off while it loads and checks (issue 27) and leaves it
    as it found it, on success and on error."""
    import gc

    from tms_stack.commands import check

    seen: list[bool] = []
    real = check.check_repository

    def spy(repo, when, base=None, memo=None):  # type: ignore[no-untyped-def]
        seen.append(gc.isenabled())
        return real(repo, when, base, memo)

    check.check_repository = spy  # type: ignore[assignment]
    try:
        assert gc.isenabled()
        check.run_check(example_repo, now)
        assert seen == [False] and gc.isenabled()
        gc.disable()
        check.run_check(example_repo, now)
        assert not gc.isenabled()
    finally:
        gc.enable()
        check.check_repository = real
