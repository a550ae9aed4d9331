"""`tms pool lock/status/rebalance` on copies of the example repository, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import EXAMPLE
from tms_stack.cli import app
from tms_stack.repo.lockfile import read_lock

LOCK = "pools/placement.lock.yaml"


def tms(repo: Path, *args: str, ok: bool = True) -> str:
    result = CliRunner().invoke(app, [*args, "--root", str(repo)])
    assert (result.exit_code == 0) == ok, result.output
    return result.output


def check(repo: Path, ok: bool = True) -> str:
    result = CliRunner().invoke(app, ["check", str(repo), "--now", "2026-11-22T00:00:00Z"])
    assert (result.exit_code == 0) == ok, result.output
    return result.output


def add_lease(repo: Path, name: str, quota: int, backends: str = "[python]", pool: str = "shared-t4-pool") -> None:
    (repo / "leases" / f"{name}.yaml").write_text(f"""apiVersion: tms-stack/v1
kind: Lease
metadata:
  name: {name}
  owner: team-assist
spec:
  models:
    - name: {name.replace('-', '_')}
      uri: model://s3-models/{name}
      backends: {backends}
  expires: 2027-02-01T00:00:00Z
  pool: {{name: {pool}, quota: {quota}}}
""")


def where(repo: Path, pool: str = "shared-t4-pool") -> dict[str, int]:
    lock = read_lock(repo)
    assert lock is not None
    return {lease: inst.index for inst in lock.pools[pool].instances for lease in inst.leases}


def test_committed_example_lock_is_current(example_repo: Path) -> None:
    out = tms(example_repo, "pool", "lock", "--no-learn")
    assert "unchanged" in out
    assert (example_repo / LOCK).read_text() == (EXAMPLE / LOCK).read_text()


def test_status_shows_instances_quota_and_backends(example_repo: Path) -> None:
    text = tms(example_repo, "pool", "status", "shared-t4-pool")
    assert "shared-t4-pool-0" in text and "chat-embed(5), chat-small(2)" in text
    data = json.loads(tms(example_repo, "pool", "status", "shared-t4-pool", "-o", "json"))
    assert data["instances"] == [{"instance": "shared-t4-pool-0", "leases": ["chat-embed", "chat-small"],
                                  "used": 7, "free": 1, "backends": ["python"]}]
    # `_` and capitals in pool names map to a Kubernetes name; lookup is case-insensitive.
    data = json.loads(tms(example_repo, "pool", "status", "CPU_inference_pool", "-o", "json"))
    assert [i["instance"] for i in data["instances"]] == ["cpu-inference-pool-0"]
    assert "no pool named 'nope-pool-x'" in tms(example_repo, "pool", "status", "nope-pool-x", ok=False)


def test_new_lease_best_fit_and_others_stay(example_repo: Path) -> None:
    before = where(example_repo)
    add_lease(example_repo, "tiny-one", 1)          # fits the free slot of instance 0
    add_lease(example_repo, "big-onnx", 6, "[onnxruntime]")  # other backend: a new instance
    tms(example_repo, "pool", "lock", "--no-learn")
    after = where(example_repo)
    assert {k: after[k] for k in before} == before
    assert after["tiny-one"] == 0 and after["big-onnx"] == 1
    assert "OK" in check(example_repo)


def test_lock_refuses_what_does_not_fit(example_repo: Path) -> None:
    pool = example_repo / "pools" / "shared-t4-pool.yaml"
    pool.write_text(pool.read_text().replace("instances: {min: 1, max: 4}", "instances: {min: 1, max: 1}"))
    add_lease(example_repo, "too-big", 4)
    lock_before = (example_repo / LOCK).read_text()
    out = tms(example_repo, "pool", "lock", "--no-learn", ok=False)
    assert ("lease too-big cannot be placed: pool shared-t4-pool is full: needs quota 4, largest free slot 1, "
            "instances at max 1") in out
    assert (example_repo / LOCK).read_text() == lock_before, "a failed lock must not rewrite the file"
    report = check(example_repo, ok=False)
    assert "leases/too-big.yaml:12" in report and "[pool.full]" in report


@pytest.mark.parametrize("write", [False, True])
def test_rebalance_reports_moves_and_writes_on_request(example_repo: Path, write: bool) -> None:
    # cpu_inference_pool: instanceQuota 4, max 3, holds ranker (1).
    for name, quota in (("frag-a", 3), ("frag-b", 2), ("frag-c", 2), ("frag-d", 2), ("frag-e", 2)):
        add_lease(example_repo, name, quota, pool="cpu_inference_pool")
    tms(example_repo, "pool", "lock", "--no-learn")
    assert where(example_repo, "cpu_inference_pool") == {
        "ranker": 0, "frag-a": 0, "frag-b": 1, "frag-c": 1, "frag-d": 2, "frag-e": 2}
    for name in ("frag-a", "frag-c", "frag-e"):
        (example_repo / "leases" / f"{name}.yaml").unlink()
    tms(example_repo, "pool", "lock", "--no-learn")
    fragmented = where(example_repo, "cpu_inference_pool")
    assert fragmented == {"ranker": 0, "frag-b": 1, "frag-d": 2}, "removals move nobody"
    lock_text = (example_repo / LOCK).read_text()
    text = tms(example_repo, "pool", "rebalance")
    # The emptiest instance is drained into the fullest hole that fits; nobody else moves.
    assert "cpu_inference_pool: 3 -> 2 instances, 1 lease(s) would move: ranker" in text
    summary = json.loads(tms(example_repo, "pool", "rebalance", "-o", "json", *(["--write"] if write else [])))
    assert summary["cpu_inference_pool"] == {"instances_before": 3, "instances_after": 2, "moved": ["ranker"]}
    assert summary["shared-t4-pool"]["moved"] == []
    if not write:
        assert (example_repo / LOCK).read_text() == lock_text
        return
    assert where(example_repo, "cpu_inference_pool") == {"ranker": 1, "frag-b": 1, "frag-d": 2}
    # The written lock is current: a later `pool lock` keeps it and `tms check` accepts it.
    assert "unchanged" in tms(example_repo, "pool", "lock", "--no-learn")
    assert "OK" in check(example_repo)


def test_status_verbose_names_owner_expiry_and_models(example_repo: Path) -> None:
    data = json.loads(tms(example_repo, "pool", "status", "shared-t4-pool", "-o", "json", "-v"))
    assert data["instances"][0]["details"][1] == {
        "lease": "chat-small", "quota": 2, "owner": "team-assist", "expires": "2027-02-01T00:00:00+00:00",
        "models": ["chat_small"]}


def test_create_takes_instance_defaults_from_policy(example_repo: Path) -> None:
    out = json.loads(tms(example_repo, "pool", "create", "gpu-a100-pool", "-q", "4", "-c", "1,*", "--owner", "team-platform", "-o", "json"))
    assert [Path(p).name for p in out["written"]] == ["gpu-a100-pool.yaml", "placement.lock.yaml"]
    text = (example_repo / "pools" / "gpu-a100-pool.yaml").read_text()
    assert "min: 1" in text and "max: 8" in text  # policies/limits.yaml: pools.maxInstances 8
    assert "1,x" in tms(example_repo, "pool", "create", "gpu-b100-pool", "-q", "4", "-c", "1,x", ok=False)
    assert not (example_repo / "pools" / "gpu-b100-pool.yaml").exists()
    # The lock now lists the new pool with its minimum of one (empty) instance.
    lock = read_lock(example_repo)
    assert lock is not None and [i.index for i in lock.pools["gpu-a100-pool"].instances] == [0]
