"""Rendered leases on the real node: `tms render` output of tests/fixtures/node applied to a
control plane whose only node is a kubelet + containerd, running the locally built Triton
(tritonserver from the nvidia-pytriton wheel, CPU) and agent images; models come from versitygw
on the node's bridge address; requests go through the Service's ClusterIP from a client network
namespace (kube-proxy's rules, as from another machine)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.kubeapi import Kube
from tests.e2e.node.node import GATEWAY, Node
from tests.e2e.node.stack import NodeStack, ready, restarts
from tests.support.s3server import S3Server, start_s3
from tests.support.triton import write_python_model

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def s3(node_cluster: tuple[Kube, Node], tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """versitygw on the bridge address (pods reach the host there), with the test models."""
    gen = start_s3(host=GATEWAY)
    server = next(gen)
    src = tmp_path_factory.mktemp("models")
    write_python_model(src / "addone", "addone", add=1)
    write_python_model(src / "broken", "broken", fail=True)
    write_python_model(src / "addtwo", "addtwo", add=2)
    client = server.client()
    client.create_bucket(Bucket="models")
    for f in sorted(src.rglob("*")):
        if f.is_file():
            client.upload_file(str(f), "models", f.relative_to(src).as_posix())
    try:
        yield server
    finally:
        gen.close()


def _expires(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def bespoke(node_cluster: tuple[Kube, Node], s3: S3Server, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[NodeStack, float]]:
    """The fixture's bespoke lease `adder` applied; yields the stack and seconds to Ready."""
    kube, node = node_cluster
    stack = NodeStack(tmp_path_factory.mktemp("bespoke") / "repo", kube, node, s3, "node-bespoke")
    stack.write_lease("adder", {
        "apiVersion": "tms-stack/v1", "kind": "Lease", "metadata": {"name": "adder", "owner": "team-node"},
        "spec": {"models": [{"name": "addone", "uri": "model://s3-models/addone", "backends": ["python"]}],
                 "expires": _expires(2),
                 "triton": {"resources": {"cpu": "500m", "gpu": 0, "systemMemory": "1Gi",
                                          "sharedMemory": "64Mi", "repositorySize": "256Mi"}}}})
    stack.admin_secrets()
    start = time.monotonic()
    stack.apply()
    stack.wait_ready("adder", 240)
    try:
        yield stack, time.monotonic() - start
    finally:
        kube.delete("v1", "Namespace", stack.namespace)


def test_bespoke_lease_becomes_ready_and_answers_through_its_service(bespoke: tuple[NodeStack, float]) -> None:
    stack, took = bespoke
    pod = stack.wait_ready("adder")
    assert pod["spec"]["nodeName"] == stack.node.name
    assert {c["name"]: c["image"] for c in pod["spec"]["containers"]} == {
        "triton": stack.node.images["triton"], "agent": stack.node.images["agent"]}
    # the model came from S3, was loaded by the agent into the pod's own Triton, and answers
    assert stack.infer("adder", "addone", 41.0) == 42.0
    print(f"bespoke lease Ready {took:.1f}s after apply")
    # Issue 23 #7: the tritonserver image serves under the rendered securityContext, and the kernel
    # says so: Triton runs as uid 1000, the agent as 1001, no capabilities, no new privileges,
    # seccomp filtering on.
    triton = next(c for c in pod["spec"]["containers"] if c["name"] == "triton")
    assert triton["securityContext"]["runAsUser"] == 1000
    assert triton["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    procs = _processes()
    servers = [p for p in procs if p["exe"].endswith("tritonserver") and "--model-repository=/models" in p["cmd"]]
    # the launcher is a Python script: the agent's cmdline is `/usr/bin/python3 /usr/local/bin/tms agent ...`
    agents = [p for p in procs if re.search(r"(^|/)tms agent( |$)", p["cmd"])]
    assert servers and agents, procs
    for p in servers:
        assert (p["uid"], p["cap_eff"], p["no_new_privs"], p["seccomp"]) == ("1000", 0, "1", "2"), p
    for p in agents:
        assert (p["uid"], p["cap_eff"], p["no_new_privs"], p["seccomp"]) == ("1001", 0, "1", "2"), p


def _processes() -> list[dict]:
    """Every process on this machine (the node's containers included) with its identity."""
    import os

    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = dict(line.split(":\t", 1) for line in open(f"/proc/{pid}/status").read().splitlines()
                          if ":\t" in line)
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace").strip()
            exe = cmd.split(" ", 1)[0]
        except OSError:
            continue
        out.append({"pid": pid, "exe": exe, "cmd": cmd, "uid": status.get("Uid", "").split()[0],
                    "cap_eff": int(status.get("CapEff", "0"), 16), "no_new_privs": status.get("NoNewPrivs", ""),
                    "seccomp": status.get("Seccomp", "")})
    return out


def test_renewing_the_lease_leaves_its_pod_running(bespoke: tuple[NodeStack, float]) -> None:
    stack, _ = bespoke
    before = stack.wait_ready("adder")
    rs_before = {o["metadata"]["name"] for o in stack.kube.list("apps/v1", "ReplicaSet", stack.namespace)}
    dep_before = stack.kube.get("apps/v1", "Deployment", "adder", stack.namespace)
    stack.tms("lease", "renew", "adder", "--duration", "30d")
    objs = stack.apply()
    cm = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "adder")
    assert _expires(30)[:10] in cm["data"]["desired.json"], "the renewal did not reach the rendered ConfigMap"
    time.sleep(5)  # a roll would have created a new ReplicaSet and pod by now
    dep = stack.kube.get("apps/v1", "Deployment", "adder", stack.namespace)
    # (the Deployment's generation does move: the API server bumps it when annotations change,
    # and the expires-at annotation does; only the template decides a roll)
    assert dep["spec"]["template"] == dep_before["spec"]["template"], "renewing changed the pod template"
    rs_after = {o["metadata"]["name"] for o in stack.kube.list("apps/v1", "ReplicaSet", stack.namespace)}
    assert rs_after == rs_before
    pods = stack.pods("adder")
    assert [p["metadata"]["uid"] for p in pods] == [before["metadata"]["uid"]]
    assert ready(pods[0]) and restarts(pods[0]) == restarts(before)
    assert stack.infer("adder", "addone", 1.0) == 2.0


def test_killed_triton_is_restarted_and_the_agent_reloads_its_models(
        bespoke: tuple[NodeStack, float], node_cluster: tuple[Kube, Node]) -> None:
    stack, _ = bespoke
    _kube, node = node_cluster
    pod = stack.wait_ready("adder")
    before = restarts(pod)["triton"]
    cid = next(c["containerID"] for c in pod["status"]["containerStatuses"] if c["name"] == "triton")
    node.ctr("tasks", "kill", "-s", "KILL", cid.split("://", 1)[1])
    # the kubelet starts Triton again (empty: explicit model control), the agent sees the new
    # Triton and loads the lease's model again; only then does the Service answer again
    pod = stack.wait_ready("adder", 180, pred=lambda p: restarts(p).get("triton", 0) > before)
    assert stack.infer("adder", "addone", 9.0, timeout_s=120) == 10.0
