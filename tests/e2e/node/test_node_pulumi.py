"""The product's whole promise in one test (issue 12, item 3): a lease file in git becomes a
serving model. The real `pulumi up` (the engine built from the vendored sources, the Kubernetes
provider, the project's program tms_stack/__main__.py, no skipAwait) deploys tests/fixtures/node
onto the real node: Pulumi's awaits see the Deployment become available only once the kubelet
reports the pod Ready (the agent fetched the model from S3 and loaded it into the pod's Triton),
and an inference request then goes through the rendered Service's ClusterIP from the client
network namespace. Editing the lease file (a renewal and a second model) and `pulumi up` again
brings the new model to the same pod; `pulumi destroy` removes what the stack deployed and
leaves the admin's Secrets."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from ruamel.yaml import YAML

from tests.e2e.conftest import Pulumi, pulumi_environment
from tests.e2e.example import Key, assert_server_holds, fmt, key, live_objects
from tests.e2e.kubeapi import Kube
from tests.e2e.node.node import Node
from tests.e2e.node.stack import STACK, NodeStack, ready, restarts
from tests.e2e.node.test_node_leases import s3  # noqa: F401  (the module's S3 server fixture)
from tests.support.s3server import S3Server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

NAMESPACE = "node-pulumi"
SMALL = {"cpu": "500m", "gpu": 0, "systemMemory": "1Gi", "sharedMemory": "64Mi", "repositorySize": "256Mi"}


def _expires(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def deployable(node_cluster: tuple[Kube, Node], s3: S3Server, pulumi_tools: list[str],  # noqa: F811
               cluster_tools: dict[str, dict], tmp_path: Path) -> Iterator[tuple[NodeStack, Pulumi]]:
    """tests/fixtures/node as a Pulumi project with one bespoke lease, the admin's Secrets, and a
    stack `node` in a file backend of its own, pointed at the node's control plane."""
    kube, node = node_cluster
    # the stack's monitoring group holds a PodMonitor and a PrometheusRule: their CRDs, as on a
    # cluster with prometheus-operator (nothing acts on them here)
    kube.install_crds([d for f in cluster_tools["crds"]["files"]
                       for d in yaml.safe_load_all(Path(f).read_text()) if d])
    stack = NodeStack(tmp_path / "repo", kube, node, s3, NAMESPACE)
    stack.write_lease("adder", {
        "apiVersion": "tms-stack/v1", "kind": "Lease", "metadata": {"name": "adder", "owner": "team-node"},
        "spec": {"models": [{"name": "addone", "uri": "model://s3-models/addone", "backends": ["python"]}],
                 "expires": _expires(2), "triton": {"resources": SMALL}}})
    stack.admin_secrets()
    (tmp_path / "home").mkdir()
    (tmp_path / "state").mkdir()
    pulumi = Pulumi(stack.make_pulumi_project(),
                    pulumi_environment(pulumi_tools, node.kubeconfig, tmp_path / "home", tmp_path / "state"))
    pulumi.run("stack", "init", STACK)
    try:
        yield stack, pulumi
    finally:
        kube.delete("v1", "Namespace", NAMESPACE)


def _rendered(stack: NodeStack) -> dict[Key, dict]:
    return {key(o): o for o in stack.render(monitoring=True)}


def _managers(obj: dict) -> set[str]:
    return {m.get("manager", "") for m in obj["metadata"].get("managedFields") or []}


def test_pulumi_up_of_a_lease_file_serves_through_its_service_follows_an_edit_and_destroy_removes_it(
        deployable: tuple[NodeStack, Pulumi]) -> None:
    stack, pulumi = deployable
    kube = stack.kube
    rendered = _rendered(stack)
    assert {(k[1], k[3]) for k in rendered} >= {("Deployment", "adder"), ("Service", "adder"),
                                                 ("ConfigMap", "adder")}, sorted(map(fmt, rendered))

    # 1. `pulumi up`: it returns only once its awaits saw the Deployment available, which on
    # this node means the kubelet's readiness probe passed (the agent loaded the model)
    start = time.monotonic()
    pulumi.up()
    up_s = time.monotonic() - start
    live = assert_server_holds(kube, rendered)
    dep = live[("apps/v1", "Deployment", NAMESPACE, "adder")]
    assert any("pulumi" in m for m in _managers(dep)), f"not deployed by Pulumi: {_managers(dep)}"
    assert "pulumi.com/skipAwait" not in (dep["metadata"].get("annotations") or {})
    assert (dep.get("status") or {}).get("availableReplicas") == 1, dep.get("status")
    pods = stack.pods("adder")
    assert len(pods) == 1 and ready(pods[0]), stack.describe("adder", pods)
    pod = pods[0]
    assert pod["spec"]["nodeName"] == stack.node.name
    assert {c["name"]: c["image"] for c in pod["spec"]["containers"]} == {
        "triton": stack.node.images["triton"], "agent": stack.node.images["agent"]}
    # 2. an inference request through the rendered Service, from outside the node
    # (when this test is the package's first, kube-proxy may still be waiting for the node's IPs
    # before it writes any rule, ~30 s after the node started: see docs/real-engine.md)
    assert stack.infer("adder", "addone", 41.0) == 42.0
    first_answer_s = time.monotonic() - start
    outputs = json.loads(pulumi.run("stack", "output", "--json").stdout)
    assert outputs["leases"] == ["adder"], outputs
    print(f"\npulumi up {up_s:.1f}s (the pod Ready when it returned); pulumi up start -> first answered "
          f"inference {first_answer_s:.1f}s")

    # 3. the lease file changes as a merged pull request would change it: renewed, and a
    # second model. Only the lease's ConfigMap and the Deployment's annotations change, so the
    # same pod picks the model up (kubelet ConfigMap refresh -> agent) without a restart
    stack.tms("lease", "renew", "adder", "--duration", "30d")
    lease_file = stack.path / "leases" / "adder.yaml"
    rt = YAML()  # round trip: the file stays as `tms lease renew` wrote it, plus the model
    rt.indent(mapping=2, sequence=4, offset=2)
    rt.width = 4096
    lease = rt.load(lease_file.read_text())
    lease["spec"]["models"].append({"name": "addtwo", "uri": "model://s3-models/addtwo", "backends": ["python"]})
    with lease_file.open("w") as fh:
        rt.dump(lease, fh)
    renewed_to = str(lease["spec"]["expires"])[:10]
    after = _rendered(stack)
    changed = {fmt(k) for k in after if after[k] != rendered.get(k)}
    assert f"ConfigMap {NAMESPACE}/adder" in changed, changed
    template = dep["spec"]["template"]
    cm_key = ("v1", "ConfigMap", NAMESPACE, "adder")
    cm_uid = live_objects(kube, rendered)[cm_key]["metadata"]["uid"]
    start = time.monotonic()
    pulumi.up()
    live = assert_server_holds(kube, after)
    assert live[("apps/v1", "Deployment", NAMESPACE, "adder")]["spec"]["template"] == template
    # the stack sets kubernetes:enableConfigMapMutable: the ConfigMap was updated, never deleted
    assert live[cm_key]["metadata"]["uid"] == cm_uid, "the ConfigMap was replaced, not updated"
    desired = json.loads(live[("v1", "ConfigMap", NAMESPACE, "adder")]["data"]["desired.json"])
    assert renewed_to > _expires(2)[:10] and renewed_to in json.dumps(desired), "the renewal did not reach the pod"
    assert stack.infer("adder", "addtwo", 1.0, timeout_s=180) == 3.0
    print(f"second pulumi up start -> the added model answers {time.monotonic() - start:.1f}s")
    assert stack.infer("adder", "addone", 1.0) == 2.0
    now = stack.pods("adder")
    assert [p["metadata"]["uid"] for p in now] == [pod["metadata"]["uid"]], "the edit replaced the pod"
    assert restarts(now[0]) == restarts(pod), "the edit restarted a container"

    # 4. `pulumi destroy` removes every object the stack deployed (the pods go with their
    # Deployment), and only those: the admin's Secrets stay
    ip = stack.service_ip("adder")
    pulumi.run("destroy", "--yes", "--skip-preview")
    left = [fmt(k) for k, v in live_objects(kube, after).items() if v is not None]
    assert not left, f"left behind by pulumi destroy: {left}"
    deadline = time.monotonic() + 120
    while stack.pods("adder") and time.monotonic() < deadline:
        time.sleep(1)
    assert not stack.pods("adder"), stack.describe("adder")
    status, text = stack.node.client_http("POST", f"http://{ip}:8000/v2/models/addone/infer", {}, timeout=3)
    assert status != 200, f"the destroyed Service still answers: {text[:200]}"
    assert kube.get("v1", "Secret", "s3-access-key", NAMESPACE) is not None, "destroy removed an admin Secret"
    resources = json.loads(pulumi.run("stack", "export").stdout)["deployment"].get("resources") or []
    assert not resources, [r["urn"] for r in resources]
