"""Node classes on the real node (issue 25): the node is labelled and tainted like a managed GPU
node pool (`NoSchedule`); `tms render` output of leases that choose a class is applied. The lease
whose class selects the label and tolerates the taint runs there and answers; a lease on a class
no node has, and a lease without a class (no toleration), are refused by the scheduler: Pending,
PodScheduled False, reason Unschedulable."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.kubeapi import Kube
from tests.e2e.node.node import GATEWAY, Node
from tests.e2e.node.stack import NodeStack
from tests.support.s3server import S3Server, start_s3
from tests.support.triton import write_python_model

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

LABEL, TAINT = "tms-stack.test/gpu-pool", "tms-stack.test/gpu"
MANAGER = "tms-e2e-node-classes"
CLASSES = {
    "tainted-pool": {"nodeSelector": {LABEL: "tainted"},
                     "tolerations": [{"key": TAINT, "operator": "Exists", "effect": "NoSchedule"}],
                     "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                         "nodeSelectorTerms": [{"matchExpressions": [
                             {"key": LABEL, "operator": "In", "values": ["tainted"]}]}]}}}},
    "elsewhere": {"nodeSelector": {LABEL: "elsewhere"},
                  "tolerations": [{"key": TAINT, "operator": "Exists", "effect": "NoSchedule"}]},
}


@pytest.fixture(scope="module")
def s3(node_cluster: tuple[Kube, Node], tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    gen = start_s3(host=GATEWAY)
    server = next(gen)
    src = tmp_path_factory.mktemp("models")
    write_python_model(src / "addone", "addone", add=1)
    client = server.client()
    client.create_bucket(Bucket="models")
    for f in sorted(src.rglob("*")):
        if f.is_file():
            client.upload_file(str(f), "models", f.relative_to(src).as_posix())
    try:
        yield server
    finally:
        gen.close()


def _lease(name: str, node_class: str | None) -> dict:
    expires = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    triton: dict = {"resources": {"cpu": "500m", "gpu": 0, "systemMemory": "1Gi", "sharedMemory": "64Mi",
                                  "repositorySize": "256Mi"}}
    if node_class:
        triton["nodeClass"] = node_class
    return {"apiVersion": "tms-stack/v1", "kind": "Lease", "metadata": {"name": name, "owner": "team-node"},
            "spec": {"models": [{"name": "addone", "uri": "model://s3-models/addone", "backends": ["python"]}],
                     "expires": expires, "triton": triton}}


def _unschedulable(stack: NodeStack, instance: str, timeout_s: float = 60) -> str:
    """The scheduler's message once it refused the lease's pod (and the pod stays Pending)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for pod in stack.pods(instance):
            conds = [c for c in (pod.get("status") or {}).get("conditions", []) if c["type"] == "PodScheduled"]
            if conds and conds[0]["status"] == "False" and conds[0].get("reason") == "Unschedulable":
                assert pod["status"].get("phase") == "Pending" and not pod["spec"].get("nodeName"), pod["status"]
                return str(conds[0].get("message", ""))
        time.sleep(0.5)
    raise AssertionError(f"{instance} was not refused by the scheduler:\n{stack.describe(instance)}")


def test_a_lease_runs_on_its_class_and_nowhere_else(node_cluster: tuple[Kube, Node], s3: S3Server,
                                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    kube, node = node_cluster
    stack = NodeStack(tmp_path_factory.mktemp("classes") / "repo", kube, node, s3, "node-classes")
    stack._edit_yaml(stack.path / "policies" / "limits.yaml", lambda d: d["spec"].update({"nodeClasses": CLASSES}))
    stack.write_lease("placed", _lease("placed", "tainted-pool"))
    stack.write_lease("homeless", _lease("homeless", "elsewhere"))
    stack.write_lease("plain", _lease("plain", None))
    # The node as a managed GPU node pool: labelled, and tainted so that only tolerating pods land.
    kube.apply({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node.name, "labels": {LABEL: "tainted"}},
                "spec": {"taints": [{"key": TAINT, "value": "present", "effect": "NoSchedule"}]}}, manager=MANAGER)
    try:
        stack.admin_secrets()
        objs = stack.apply()
        spec = next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "placed"
                    )["spec"]["template"]["spec"]
        assert spec["nodeSelector"] == {LABEL: "tainted"} and spec["tolerations"][0]["key"] == TAINT
        pod = stack.wait_ready("placed", 300)
        assert pod["spec"]["nodeName"] == node.name
        assert stack.infer("placed", "addone", 41.0) == 42.0
        # No node has the class's label: refused, whatever it tolerates.
        assert "node affinity/selector" in _unschedulable(stack, "homeless")
        # No class: no toleration of the GPU pool's taint.
        assert "untolerated taint" in _unschedulable(stack, "plain")
    finally:
        kube.delete("v1", "Namespace", stack.namespace)
        # Give the label and the taint back: the field manager that set them applies nothing.
        kube.apply({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node.name}}, manager=MANAGER)
    after = kube.get("v1", "Node", node.name) or {}
    assert LABEL not in after["metadata"].get("labels", {}) and not after["spec"].get("taints")
