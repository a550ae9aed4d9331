"""The placement lock never blocks two honest pull requests (issue 14).

Real git, real branches: two branches each add a pooled lease and run `tms pool lock`; merging one
into the other conflicts in pools/placement.lock.yaml with git's text merge, and merges cleanly with
the shipped driver (.gitattributes + the one `git config` line of docs/pools.md), after which
`tms check` passes. A lock left with conflict markers is exit 2 with the commands that fix it, and
those commands, run as printed, do fix it."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import copy_example

ROOT = Path(__file__).resolve().parents[2]
NOW = "2026-11-22T00:00:00Z"
LOCK = "pools/placement.lock.yaml"

LEASE = """apiVersion: tms-stack/v1
kind: Lease
metadata:
  name: {name}
  owner: team-assist
spec:
  models:
    - name: {name}_model
      uri: model://s3-models/chat/{name}
      backends: [python]
  expires: 2027-02-01T00:00:00Z
  pool: {{name: {pool}, quota: {quota}}}
"""


def tms_argv() -> list[str]:
    return [sys.executable, "-c", "from tms_stack.cli import main; main()"]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}


def sh(repo: Path, command: str, ok: bool | None = True) -> subprocess.CompletedProcess[str]:
    """Run a shell line in the repository with `tms` meaning this checkout's tool."""
    fn = f"tms() {{ {shlex.join(tms_argv())} \"$@\"; }}; "
    out = subprocess.run(["bash", "-c", fn + command], cwd=repo, env=env(), capture_output=True, text=True,
                         timeout=120)
    if ok is not None:
        assert (out.returncode == 0) == ok, f"{command}: {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out


def documented_driver_line() -> str:
    text = (ROOT / "docs" / "pools.md").read_text()
    lines = re.findall(r'^git config merge\.tms-lock\.driver .*$', text, re.M)
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = copy_example(tmp_path / "fleet")
    (repo / ".gitattributes").write_text((ROOT / ".gitattributes").read_text())
    sh(repo, "git init -q -b main . && git add -A && git commit -qm example")
    return repo


def add_lease(repo: Path, branch: str, name: str, pool: str = "shared-t4-pool", quota: int = 1) -> None:
    sh(repo, f"git checkout -q -b {branch} main")
    (repo / "leases" / f"{name}.yaml").write_text(LEASE.format(name=name, pool=pool, quota=quota))
    sh(repo, "tms pool lock --no-learn")
    sh(repo, f"git add -A && git commit -qm 'lease {name}'")
    assert sh(repo, f"tms check --now {NOW}").returncode == 0


def placed(repo: Path) -> dict[str, dict[int, list[str]]]:
    data = yaml.safe_load((repo / LOCK).read_text())
    return {pool: {i["index"]: i["leases"] for i in p["instances"]} for pool, p in data["pools"].items()}


def enable_driver(repo: Path) -> None:
    line = documented_driver_line()
    # The documented line, with `tms` meaning this checkout's tool (git runs it through sh).
    sh(repo, line.replace('"tms ', '"' + shlex.join(tms_argv()).replace('"', '\\"') + " "))
    assert "merge-driver %O %A %B %P" in sh(repo, "git config merge.tms-lock.driver").stdout


def test_two_pooled_leases_conflict_without_the_driver(repo: Path) -> None:
    add_lease(repo, "alpha", "alpha")
    add_lease(repo, "beta", "beta")
    merge = sh(repo, "git merge --no-edit alpha", ok=False)
    assert f"CONFLICT (content): Merge conflict in {LOCK}" in merge.stdout
    # The conflicted lock is unreadable input: exit 2 and the exact commands to fix it.
    check = sh(repo, f"tms check --now {NOW}", ok=False)
    assert check.returncode == 2, check
    fix = f"git checkout --ours {LOCK} && tms pool lock && git add {LOCK}"
    assert f"{LOCK}:" in check.stdout and "unresolved merge conflict" in check.stdout and fix in check.stdout
    assert "Traceback" not in check.stdout + check.stderr
    lock = sh(repo, "tms pool lock --no-learn", ok=False)
    assert lock.returncode == 2 and fix in lock.stderr and "Traceback" not in lock.stderr
    assert lock.stderr.count("\n") == 1
    # The printed commands, run as printed, resolve it.
    sh(repo, fix.replace("tms pool lock", "tms pool lock --no-learn"))
    assert sh(repo, f"tms check --now {NOW}").returncode == 0
    sh(repo, "git commit -qm merge")
    assert {"alpha", "beta"} <= {n for inst in placed(repo)["shared-t4-pool"].values() for n in inst}


def test_the_driver_merges_two_pooled_leases(repo: Path) -> None:
    enable_driver(repo)
    add_lease(repo, "alpha", "alpha")
    add_lease(repo, "beta", "beta")
    before = placed(repo)["shared-t4-pool"]
    assert before == {0: ["chat-embed", "chat-small", "beta"]}  # 5 + 2 + 1 of 8
    merge = sh(repo, "git merge --no-edit alpha")
    assert "CONFLICT" not in merge.stdout
    assert "tms: merged pools/placement.lock.yaml from the merged leases; moved: alpha" in merge.stderr
    # Both filled instance 0's last slot: ours keeps it, theirs' lease gets an instance of its own.
    assert placed(repo)["shared-t4-pool"] == {0: ["chat-embed", "chat-small", "beta"], 1: ["alpha"]}
    assert sh(repo, "git status --porcelain").stdout == ""
    assert sh(repo, f"tms check --now {NOW}").returncode == 0


def test_the_driver_keeps_both_where_their_reviews_put_them(repo: Path) -> None:
    """Leases in different pools (and a lease that fits next to the other): nothing moves."""
    enable_driver(repo)
    add_lease(repo, "alpha", "alpha", pool="cpu_inference_pool", quota=2)
    alpha = placed(repo)
    add_lease(repo, "beta", "beta", quota=1)
    beta = placed(repo)
    merge = sh(repo, "git merge --no-edit alpha")
    assert "moved" not in merge.stderr
    assert placed(repo) == {"cpu_inference_pool": alpha["cpu_inference_pool"], "shared-t4-pool": beta["shared-t4-pool"]}
    assert sh(repo, f"tms check --now {NOW}").returncode == 0


def test_the_driver_in_a_rebase_and_with_a_removed_lease(repo: Path) -> None:
    """`git rebase main` replays the branch's lock commit; main meanwhile removed chat-small."""
    enable_driver(repo)
    add_lease(repo, "alpha", "alpha", quota=1)
    sh(repo, "git checkout -q main && git rm -q leases/chat-small.yaml && tms pool lock --no-learn "
             "&& git add -A && git commit -qm 'release chat-small'")
    sh(repo, "git checkout -q alpha")
    rebase = sh(repo, "git rebase main")
    assert "CONFLICT" not in rebase.stdout + rebase.stderr
    assert placed(repo)["shared-t4-pool"] == {0: ["chat-embed", "alpha"]}
    assert sh(repo, f"tms check --now {NOW}").returncode == 0


def test_the_driver_leaves_a_conflict_when_the_merged_leases_do_not_fit(repo: Path) -> None:
    """Both sides take the pool's last free capacity: no honest merge; git's markers and the fix."""
    (repo / "pools" / "shared-t4-pool.yaml").write_text(
        (repo / "pools" / "shared-t4-pool.yaml").read_text().replace("max: 4", "max: 1"))
    sh(repo, "git commit -qam 'one instance'")
    enable_driver(repo)
    add_lease(repo, "alpha", "alpha")
    add_lease(repo, "beta", "beta")
    merge = sh(repo, "git merge --no-edit alpha", ok=False)
    assert "lease alpha cannot be placed" in merge.stderr
    assert f"git checkout --ours {LOCK} && tms pool lock && git add {LOCK}" in merge.stderr
    assert "<<<<<<< ours" in (repo / LOCK).read_text()
    assert sh(repo, f"tms check --now {NOW}", ok=False).returncode == 2
    # The driver itself, run by hand on git's three stages of the same merge: exit 2 (git reads any
    # non-zero exit as a conflict), markers in OURS, one line naming the fix.
    sh(repo, f"git show :1:{LOCK} > ../base.yaml && git show :2:{LOCK} > ../ours.yaml "
             f"&& git show :3:{LOCK} > ../theirs.yaml")
    driver = sh(repo, f"tms pool merge-driver ../base.yaml ../ours.yaml ../theirs.yaml {LOCK}", ok=False)
    assert driver.returncode == 2, driver
    assert driver.stderr.count("\n") == 1 and "lease alpha cannot be placed" in driver.stderr
    assert f"after the merge run: git checkout --ours {LOCK} && tms pool lock && git add {LOCK}" in driver.stderr
    assert "<<<<<<< ours" in (repo.parent / "ours.yaml").read_text()
