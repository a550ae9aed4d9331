"""Volume leases and pool instances on the real node (issue 11 defects 1, 3 and 4): a lease whose
model sits on a PersistentVolume (hostPath) becomes Ready and answers; a pool instance hosting a
good and a broken lease stays Ready and keeps serving the good one; a lease that needs new
Secrets joins it without restarting anything."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.kubeapi import Kube
from tests.e2e.node.node import Node
from tests.e2e.node.stack import NodeStack, ready, restarts
from tests.e2e.node.test_node_leases import s3  # noqa: F401  (the module's S3 server fixture)
from tests.support.s3server import S3Server
from tests.support.triton import write_python_model

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SMALL = {"cpu": "500m", "gpu": 0, "systemMemory": "1Gi", "sharedMemory": "64Mi", "repositorySize": "256Mi"}


def _expires(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def stack(node_cluster: tuple[Kube, Node], s3: S3Server, tmp_path,  # noqa: F811
          request: pytest.FixtureRequest) -> Iterator[NodeStack]:  # type: ignore[no-untyped-def]
    kube, node = node_cluster
    ns = "node-" + request.node.name.removeprefix("test_").replace("_", "-")[:40].strip("-")
    st = NodeStack(tmp_path / "repo", kube, node, s3, ns)
    (st.path / "leases" / "adder.yaml").unlink()
    st.admin_secrets()
    try:
        yield st
    finally:
        kube.delete("v1", "Namespace", ns)


def test_volume_lease_becomes_ready_and_answers(stack: NodeStack, tmp_path: Path) -> None:
    """Defect 1: the claim is mounted into Triton too, so the agent's link into /models resolves."""
    volume = tmp_path / "volume"
    write_python_model(volume / "models" / "addone", "addone", add=1)
    pv = stack.volume_claim(volume)
    stack.write_lease("vol", {
        "apiVersion": "tms-stack/v1", "kind": "Lease", "metadata": {"name": "vol", "owner": "team-node"},
        "spec": {"models": [{"name": "addone", "uri": "model://node-volume/models/addone", "backends": ["python"]}],
                 "expires": _expires(2), "triton": {"resources": SMALL}}})
    try:
        stack.apply()
        stack.wait_ready("vol", 90)
        assert stack.infer("vol", "addone", 1.0) == 2.0
    finally:
        stack.kube.delete("v1", "PersistentVolume", pv)
        shutil.rmtree(volume, ignore_errors=True)


def test_pool_instance_with_a_broken_lease_keeps_serving_the_good_one(stack: NodeStack, tmp_path: Path) -> None:
    """Defect 4: readiness is the agent's first pass, never one lease's state afterwards."""
    pv = stack.volume_claim(tmp_path / "volume")  # a pool instance mounts every policy volume
    stack.write_lease("good", {
        "apiVersion": "tms-stack/v1", "kind": "Lease", "metadata": {"name": "good", "owner": "team-node"},
        "spec": {"models": [{"name": "addone", "uri": "model://s3-models/addone", "backends": ["python"]}],
                 "expires": _expires(2), "pool": {"name": "node-pool", "quota": 1}}})
    stack.write_lease("bad", {
        "apiVersion": "tms-stack/v1", "kind": "Lease", "metadata": {"name": "bad", "owner": "team-node"},
        "spec": {"models": [{"name": "broken", "uri": "model://s3-models/broken", "backends": ["python"]}],
                 "expires": _expires(2), "pool": {"name": "node-pool", "quota": 1}}})
    stack.write_pool("node-pool", {
        "apiVersion": "tms-stack/v1", "kind": "Pool", "metadata": {"name": "node-pool", "owner": "team-node"},
        "spec": {"instanceQuota": 4, "instances": {"min": 1, "max": 1}, "backendUniqueness": False,
                 "triton": {"resources": SMALL}}})
    stack.tms("pool", "lock")
    stack.apply()
    instance = "node-pool-0"
    try:
        stack.wait_ready(instance, 90)
        assert stack.infer("good", "addone", 5.0) == 6.0
        # and it stays so while the broken lease keeps failing its retries
        start = time.monotonic()
        while time.monotonic() - start < 20:
            assert stack.infer("good", "addone", 1.0, timeout_s=5) == 2.0
            time.sleep(2)
        pod = stack.wait_ready(instance, 5)

        # defect 3: a lease needing Secrets no hosted lease uses joins: only its ConfigMap and
        # Service change, the instance's pod keeps running (no roll, no restart)
        stack.write_lease("third", {
            "apiVersion": "tms-stack/v1", "kind": "Lease", "metadata": {"name": "third", "owner": "team-node"},
            "spec": {"models": [{"name": "addtwo", "uri": "model://s3-more/addtwo", "backends": ["python"]}],
                     "expires": _expires(2), "pool": {"name": "node-pool", "quota": 1}}})
        stack.tms("pool", "lock")
        template = stack.kube.get("apps/v1", "Deployment", instance, stack.namespace)["spec"]["template"]
        stack.apply()
        assert stack.infer("third", "addtwo", 1.0, timeout_s=120) == 3.0
        # The agent saw the new lease through its watch of the ConfigMap (its projected token, its
        # Role), not the kubelet's later refresh of the mounted file (docs/agent.md).
        agent_log = stack.node.container_logs(stack.namespace, n=400)
        assert "watching ConfigMap" in agent_log and "cannot watch" not in agent_log, agent_log[-3000:]
        assert re.search(r"desired models changed \(ConfigMap \(API server\)\): .*third\[addtwo\]", agent_log), \
            agent_log[-3000:]
        assert stack.kube.get("apps/v1", "Deployment", instance, stack.namespace)["spec"]["template"] == template
        after = stack.pods(instance)
        assert [p["metadata"]["uid"] for p in after] == [pod["metadata"]["uid"]]
        assert restarts(after[0]) == restarts(pod) and ready(after[0])
        assert stack.infer("good", "addone", 2.0) == 3.0
    finally:
        stack.kube.delete("v1", "PersistentVolume", pv)
