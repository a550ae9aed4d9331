"""Issue 23 on the real node: a pool instance hosting a healthy lease, a lease that fails on every
retry, and a lease whose download hangs (a zip trickling from the host).

- the healthy lease answers through its Service with 0 failed requests while its neighbour fails
  (placement never puts two leases serving one model name on an instance, so a *shared* model
  exists only inside one desired document: tests/agent/test_agent_outages.py covers that case);
- Triton killed: the Service stops routing to the pod within seconds, and the pod is Ready again
  as soon as the healthy lease is reloaded, while the hanging download still runs (readiness is
  sampled from Triton, never from a pass)."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import pytest

from tests.e2e.kubeapi import Kube
from tests.e2e.node.node import GATEWAY, Node
from tests.e2e.node.stack import NodeStack, restarts
from tests.e2e.node.test_node_leases import s3  # noqa: F401  (the module's S3 server fixture)
from tests.e2e.node.test_node_pools_volumes import SMALL, _expires, stack  # noqa: F401
from tests.support.triton import write_python_model
from tests.support.zipserver import serve_dir

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _lease(name: str, models: list[dict]) -> dict:
    return {"apiVersion": "tms-stack/v1", "kind": "Lease", "metadata": {"name": name, "owner": "team-node"},
            "spec": {"models": models, "expires": _expires(2), "pool": {"name": "node-pool", "quota": 1}}}


def _routed(st: NodeStack, service: str) -> int:
    ep = st.kube.get("v1", "Endpoints", service, st.namespace) or {}
    return sum(len(s.get("addresses") or []) for s in ep.get("subsets") or [])


def test_pool_instance_under_a_hanging_download_and_a_failing_neighbour(
        stack: NodeStack, node_cluster: tuple[Kube, Node], tmp_path: Path) -> None:  # noqa: F811
    _kube, node = node_cluster
    src = tmp_path / "src"
    write_python_model(src / "slowzip", "slowzip")
    web = tmp_path / "web"
    web.mkdir()
    with zipfile.ZipFile(web / "slowzip.zip", "w") as zf:
        for f in sorted(src.joinpath("slowzip").rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(src / "slowzip").as_posix())
    server, url = serve_dir(web, host=GATEWAY)
    server.trickle["/slowzip.zip"] = 0.5
    pv = stack.volume_claim(tmp_path / "volume")  # a pool instance mounts every policy volume
    addone = {"name": "addone", "uri": "model://s3-models/addone", "backends": ["python"]}
    stack.write_lease("good", _lease("good", [addone]))
    stack.write_lease("bad", _lease("bad", [{"name": "broken", "uri": "model://s3-models/broken",
                                             "backends": ["python"]}]))
    stack.write_pool("node-pool", {
        "apiVersion": "tms-stack/v1", "kind": "Pool", "metadata": {"name": "node-pool", "owner": "team-node"},
        "spec": {"instanceQuota": 4, "instances": {"min": 1, "max": 1}, "backendUniqueness": False,
                 "triton": {"resources": SMALL}}})
    stack.tms("pool", "lock")
    stack.apply()
    instance = "node-pool-0"
    try:
        stack.wait_ready(instance, 180)
        assert stack.infer("good", "addone", 5.0) == 6.0
        # 0 failed requests of the healthy lease while its neighbour fails and retries.
        counts = {"ok": 0, "failed": 0}
        ip = stack.service_ip("good")
        body = {"inputs": [{"name": "INPUT0", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
        start = time.monotonic()
        while time.monotonic() - start < 25:
            status, _ = node.client_http("POST", f"http://{ip}:8000/v2/models/addone/infer", body, timeout=5)
            counts["ok" if status == 200 else "failed"] += 1
        log = node.container_logs(stack.namespace, n=400)
        assert "lease bad failed" in log, log[-3000:]
        assert counts["failed"] == 0 and counts["ok"] > 5, counts
        print(f"healthy lease beside a failing neighbour on the real node: {counts}")

        stack.write_lease("slow", _lease("slow", [{"name": "slowzip", "uri": f"{url}/slowzip.zip",
                                                   "backends": ["python"]}]))
        stack.tms("pool", "lock")
        stack.apply()
        deadline = time.monotonic() + 60
        while server.bytes_sent == 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        pod = stack.wait_ready(instance, 10)
        before = restarts(pod)["triton"]
        cid = next(c["containerID"] for c in pod["status"]["containerStatuses"] if c["name"] == "triton")
        node.ctr("tasks", "kill", "-s", "KILL", cid.split("://", 1)[1])
        killed = time.monotonic()
        deadline = killed + 30
        while _routed(stack, "good") and time.monotonic() < deadline:
            time.sleep(0.2)
        unrouted = time.monotonic() - killed
        assert unrouted < 15, unrouted
        pod = stack.wait_ready(instance, 120, pred=lambda p: restarts(p).get("triton", 0) > before)
        back = time.monotonic() - killed
        assert stack.infer("good", "addone", 9.0, timeout_s=30) == 10.0
        sent = server.bytes_sent
        assert sent < (web / "slowzip.zip").stat().st_size, "the hanging download should still be running"
        print(f"Triton killed: Service stopped routing after {unrouted:.1f} s; Ready again after {back:.1f} s "
              f"with the slow download still running ({sent} bytes sent)")
    finally:
        server.shutdown()
        stack.kube.delete("v1", "PersistentVolume", pv)
