"""The lock merge driver is a three-way merge of placements (issue 22): a move made on either side
(`tms pool rebalance --write`, a hand edit of the lock) survives a merge in both directions, a
rebase, a cherry-pick and a stash pop; both sides moving one lease differently is a conflict git
shows. Real git repositories, the driver set up with the line docs/pools.md prints."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.placement.test_lock_merge import LEASE, LOCK, NOW, add_lease, enable_driver, placed, sh
from tests.placement.test_lock_merge import repo as repo  # noqa: F401 - the fixture

POOL = "shared-t4-pool"


def move(repo: Path, lease: str, index: int, pool: str = POOL) -> None:
    """Move a lease to another instance by hand (a valid lock: check accepts any placement that fits)."""
    data = yaml.safe_load((repo / LOCK).read_text())
    instances = data["pools"][pool]["instances"]
    quota = backends = None
    for inst in instances:
        if lease in inst["leases"]:
            inst["leases"].remove(lease)
            quota = inst["quotas"].pop(lease)
            backends = inst["backends"]
    target = next((i for i in instances if i["index"] == index), None)
    if target is None:
        target = {"index": index, "leases": [], "backends": backends, "quotas": {}}
        instances.append(target)
        instances.sort(key=lambda i: i["index"])
    target["leases"].append(lease)
    target["quotas"][lease] = quota
    data["pools"][pool]["instances"] = [i for i in instances if i["leases"]]
    (repo / LOCK).write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=None))
    assert sh(repo, f"tms check --now {NOW}").returncode == 0


def commit(repo: Path, message: str) -> None:
    sh(repo, f"git add -A && git commit -qm '{message}'")


def packed(repo: Path, pool: str = POOL) -> dict[int, list[str]]:
    """Each instance's leases, sorted (their load order follows whichever side the merge kept)."""
    return {i: sorted(leases) for i, leases in placed(repo)[pool].items()}


def where(repo: Path, lease: str, pool: str = POOL) -> int:
    return next(i for i, leases in placed(repo)[pool].items() if lease in leases)


@pytest.fixture
def fragmented(repo: Path) -> Path:  # noqa: F811 - pytest fixture chain
    """main: chat-small moved by hand to instance 1 (two half-empty instances: rebalance packs them)."""
    enable_driver(repo)
    move(repo, "chat-small", 1)
    commit(repo, "chat-small on its own instance")
    sh(repo, "git checkout -q -b rebalanced main && tms pool rebalance --write")
    assert where(repo, "chat-small") == 0 and len(placed(repo)[POOL]) == 1
    commit(repo, "rebalance")
    add_lease(repo, "alpha", "alpha")  # from main: alpha goes best-fit onto instance 0 (5 + 1)
    assert placed(repo)[POOL] == {0: ["chat-embed", "alpha"], 1: ["chat-small"]}
    return repo


@pytest.mark.parametrize("into", ["alpha", "rebalanced"])
def test_a_rebalance_survives_a_merge_in_both_directions(fragmented: Path, into: str) -> None:
    other = "rebalanced" if into == "alpha" else "alpha"
    sh(fragmented, f"git checkout -q {into}")
    out = sh(fragmented, f"git merge --no-edit {other}")
    assert "CONFLICT" not in out.stdout
    assert packed(fragmented) == {0: ["alpha", "chat-embed", "chat-small"]}, out.stderr
    assert sh(fragmented, f"tms check --now {NOW}").returncode == 0
    assert sh(fragmented, "git status --porcelain").stdout == ""


def test_a_rebalance_survives_a_rebase(fragmented: Path) -> None:
    sh(fragmented, "git checkout -q alpha")
    out = sh(fragmented, "git rebase rebalanced")
    assert "CONFLICT" not in out.stdout + out.stderr
    assert packed(fragmented) == {0: ["alpha", "chat-embed", "chat-small"]}
    assert sh(fragmented, f"tms check --now {NOW}").returncode == 0


def test_a_rebalance_survives_a_cherry_pick(fragmented: Path) -> None:
    sh(fragmented, "git checkout -q alpha")
    out = sh(fragmented, "git cherry-pick rebalanced")
    assert "CONFLICT" not in out.stdout + out.stderr
    assert packed(fragmented) == {0: ["alpha", "chat-embed", "chat-small"]}
    assert sh(fragmented, f"tms check --now {NOW}").returncode == 0


def test_a_lease_is_merged_by_a_cherry_pick(repo: Path) -> None:  # noqa: F811
    """The issue's case: a single cherry-pick records nothing while git merges; the driver still
    finds the picked commit (it changed the lock) and merges instead of leaving a text conflict."""
    enable_driver(repo)
    add_lease(repo, "alpha", "alpha")
    add_lease(repo, "beta", "beta")
    out = sh(repo, "git cherry-pick alpha")
    assert "CONFLICT" not in out.stdout + out.stderr
    assert {"alpha", "beta"} <= {n for leases in placed(repo)[POOL].values() for n in leases}
    assert sh(repo, f"tms check --now {NOW}").returncode == 0


def test_a_hand_moved_lease_survives_a_merge_and_a_stash_pop(repo: Path) -> None:  # noqa: F811
    enable_driver(repo)
    sh(repo, "git checkout -q -b hand main")
    move(repo, "chat-small", 2)
    commit(repo, "chat-small by hand")
    add_lease(repo, "alpha", "alpha")
    # A pooled lease written but not committed, stashed with -u while main moves on.
    (repo / "leases" / "gamma.yaml").write_text(LEASE.format(name="gamma", pool=POOL, quota=1))
    sh(repo, "tms pool lock --no-learn && git stash -u -q")
    out = sh(repo, "git merge --no-edit hand")
    assert "CONFLICT" not in out.stdout and where(repo, "chat-small") == 2
    out = sh(repo, "git stash pop")
    assert "CONFLICT" not in out.stdout + out.stderr, out
    assert where(repo, "chat-small") == 2
    assert {"alpha", "gamma"} <= {n for leases in placed(repo)[POOL].values() for n in leases}
    assert sh(repo, f"tms check --now {NOW}").returncode == 0


def test_both_sides_moving_one_lease_differently_is_a_conflict(repo: Path) -> None:  # noqa: F811
    enable_driver(repo)
    sh(repo, "git checkout -q -b left main")
    move(repo, "chat-small", 1)
    commit(repo, "left")
    sh(repo, "git checkout -q -b right main")
    move(repo, "chat-small", 2)
    commit(repo, "right")
    out = sh(repo, "git merge --no-edit left", ok=False)
    assert f"CONFLICT (content): Merge conflict in {LOCK}" in out.stdout
    assert ("lease chat-small was moved on both sides (from shared-t4-pool instance 0: ours to "
            "shared-t4-pool instance 2, theirs to shared-t4-pool instance 1)") in out.stderr
    assert f"git checkout --ours {LOCK} (or --theirs) && tms pool lock && git add {LOCK}" in out.stderr
    assert sh(repo, "git status --porcelain").stdout.startswith(f"UU {LOCK}")
    assert "<<<<<<< ours" in (repo / LOCK).read_text()
    assert sh(repo, f"tms check --now {NOW}", ok=False).returncode == 2
    # The printed fix, run as printed, resolves it (theirs' move kept).
    sh(repo, f"git checkout --theirs {LOCK} && tms pool lock --no-learn && git add {LOCK} && git commit -qm m")
    assert where(repo, "chat-small") == 1
    assert sh(repo, f"tms check --now {NOW}").returncode == 0
