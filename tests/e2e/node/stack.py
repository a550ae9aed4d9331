"""The stack on the real node: a copy of tests/fixtures/node pointed at the locally built images
and the S3 server on the node's bridge address, `tms render` of it, the admin's Secrets, and the
rendered objects applied as kubectl would (server-side apply). Shared by the node tests and
bench/node_latency.py."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.conftest import ADMIN_TOKEN, ControlPlane
from tests.e2e.kubeapi import ApiError, Kube
from tests.e2e.node.node import GATEWAY, Node, stack_images
from tests.support.s3server import S3Server

ROOT = Path(__file__).resolve().parents[3]
FIXTURE = ROOT / "tests" / "fixtures" / "node"
STACK = "node"
ORDER = ["Namespace", "ServiceAccount", "Secret", "ConfigMap", "PersistentVolume", "PersistentVolumeClaim",
         "Service"]
OBJ = dict[str, Any]


# Two nodes on one host break each other: both bridges take 10.244.0.0/24 and the gateway
# address the S3 server listens on, and a node's teardown (`kube-proxy --cleanup`, the
# KUBE-FIREWALL chain) removes the other's iptables rules. Seen when two checkouts ran the node
# tests at once (pods unreachable, "connection refused"); a host-wide lock serialises them.
NODE_LOCK = Path("/tmp/tms-e2e-node.lock")


@contextmanager
def _one_node_per_host() -> Iterator[None]:
    import fcntl

    with NODE_LOCK.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"[tms-node] waiting for another node test run on this host ({NODE_LOCK}) ...", flush=True)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextmanager
def node_cluster_running(workdir: Path, cluster_tools: dict[str, dict],
                         sync_frequency: str | None = None) -> Iterator[tuple[Kube, Node]]:
    """A control plane of its own (no kwok nodes) and the node, Ready, with kube-proxy and the
    stack's images imported. ``sync_frequency``: the kubelet's (default 1m). One at a time per
    host (see NODE_LOCK)."""
    with _one_node_per_host():
        yield from _node_cluster(workdir, cluster_tools, sync_frequency)


def _node_cluster(workdir: Path, cluster_tools: dict[str, dict],
                  sync_frequency: str | None) -> Iterator[tuple[Kube, Node]]:
    cp = ControlPlane(workdir, cluster_tools, advertise=GATEWAY)
    node = Node(cp.kubeconfig, sync_frequency=sync_frequency)
    try:
        cp.start()
        kube = Kube(cp.server, ADMIN_TOKEN, str(cp.workdir / "pki" / "ca.crt"))
        images = stack_images()  # the Triton and agent images: built once, cached
        node.start(images=[tar for _ref, tar in images.values()])
        node.images = {k: ref for k, (ref, _tar) in images.items()}
        deadline = time.monotonic() + 90
        while True:
            n = kube.get("v1", "Node", node.name)
            conds = {c["type"]: c["status"] for c in ((n or {}).get("status") or {}).get("conditions", [])}
            if conds.get("Ready") == "True":
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"node {node.name} not Ready after 90s: {conds}\n{node.log_tail('kubelet')}")
            time.sleep(0.5)
        node.start_proxy()
        yield kube, node
    finally:
        node.stop()
        cp.stop()


class NodeStack:
    def __init__(self, path: Path, kube: Kube, node: Node, s3: S3Server, namespace: str):
        shutil.copytree(FIXTURE, path)
        self.path, self.kube, self.node, self.s3, self.namespace = path, kube, node, s3, namespace
        self._edit_yaml(path / f"Pulumi.{STACK}.yaml", lambda d: d["config"].update({
            "tms-stack:namespace": namespace, "tms-stack:agentImage": node.images["agent"]}))
        self._edit_yaml(path / "policies" / "allowlist.yaml", lambda d: d["spec"].update({
            "default": node.images["triton"], "images": [node.images["triton"]]}))
        self._edit_yaml(path / "policies" / "repositories.yaml",
                        lambda d: [r.update({"endpoint": s3.endpoint}) for r in d["spec"]["s3"]])
        self.renders = 0

    @staticmethod
    def _edit_yaml(f: Path, change) -> None:  # type: ignore[no-untyped-def]
        doc = yaml.safe_load(f.read_text())
        change(doc)
        f.write_text(yaml.safe_dump(doc, sort_keys=False))

    def tms(self, *args: str) -> subprocess.CompletedProcess:
        p = subprocess.run([str(ROOT / ".venv" / "bin" / "tms"), *args], cwd=self.path, capture_output=True,
                           text=True, timeout=300, env={**os.environ, "NO_COLOR": "1"})
        if p.returncode != 0:
            raise AssertionError(f"`tms {' '.join(args)}` exited {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def write_lease(self, name: str, doc: OBJ) -> None:
        (self.path / "leases" / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))

    def write_pool(self, name: str, doc: OBJ) -> None:
        (self.path / "pools" / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))

    def admin_secrets(self) -> None:
        """What the admin provides: the S3 keys (the server's real ones) and the repository key."""
        self.kube.ensure_namespace(self.namespace)
        for name, value in (("s3-access-key", self.s3.access_key), ("s3-secret-key", self.s3.secret_key),
                            ("s3-more-access-key", self.s3.access_key), ("s3-more-secret-key", self.s3.secret_key),
                            ("tms-repo-key", secrets.token_hex(16))):
            self.kube.apply({"apiVersion": "v1", "kind": "Secret",
                             "metadata": {"name": name, "namespace": self.namespace},
                             "stringData": {"value": value}})

    def volume_claim(self, volume: Path) -> str:
        """The admin's claim `node-models` (policies/repositories.yaml) bound to a hostPath volume;
        returns the PersistentVolume's name (cluster-scoped: delete it afterwards). A pool
        instance mounts every policy volume, so its pod needs the claim even when no lease uses it."""
        volume.mkdir(parents=True, exist_ok=True)
        for p in [volume, *volume.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)  # the agent (uid 1000) reads it
        pv = f"{self.namespace}-models"
        self.kube.apply({
            "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadOnlyMany"],
                     "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                     "hostPath": {"path": str(volume), "type": "Directory"},
                     "claimRef": {"namespace": self.namespace, "name": "node-models"}}})
        self.kube.apply({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "node-models", "namespace": self.namespace},
            "spec": {"accessModes": ["ReadOnlyMany"], "storageClassName": "", "volumeName": pv,
                     "resources": {"requests": {"storage": "1Gi"}}}})
        return pv

    def make_pulumi_project(self) -> Path:
        """Make the copy a Pulumi project running the repository's own program (tms_stack/,
        linked) in the repository's virtualenv, as tests/e2e/example.py does for the example."""
        (self.path / "tms_stack").symlink_to(ROOT / "tms_stack", target_is_directory=True)
        self._edit_yaml(self.path / "Pulumi.yaml",
                        lambda d: d["runtime"]["options"].update({"virtualenv": str(ROOT / ".venv")}))
        return self.path

    def render(self, monitoring: bool = False) -> list[OBJ]:
        """`tms check` and `tms render`; the monitoring group (PodMonitor, PrometheusRule: no
        operator here, so no CRDs unless a test installs them) only with ``monitoring``."""
        self.renders += 1
        out = self.path.parent / f"out-{self.path.name}-{self.renders}"
        self.tms("check")
        self.tms("render", "--stack", STACK, "--out", str(out))
        objs: list[OBJ] = []
        for f in sorted(out.rglob("*.y*ml")):
            if f.relative_to(out).parts[0] == "monitoring" and not monitoring:
                continue
            for doc in yaml.safe_load_all(f.read_text()):
                if doc:
                    objs += doc["items"] if doc.get("kind") == "List" else [doc]
        return objs

    def apply(self) -> list[OBJ]:
        """`tms render`, then apply every object (what others refer to first)."""
        objs = sorted(self.render(), key=lambda o: ORDER.index(o["kind"]) if o["kind"] in ORDER else len(ORDER))
        errors = []
        for o in objs:
            try:
                self.kube.apply(o, manager="tms-render")
            except ApiError as e:
                errors.append(f"{o['kind']} {o['metadata']['name']}: {e.body_message}")
        assert not errors, "the API server rejected rendered objects:\n" + "\n".join(errors)
        return objs

    # -- observing the pods ------------------------------------------------------------------

    def pods(self, instance: str) -> list[OBJ]:
        return [p for p in self.kube.list("v1", "Pod", self.namespace, selector=f"tms-stack.dev/instance={instance}")
                if not p["metadata"].get("deletionTimestamp")]

    def wait_ready(self, instance: str, timeout_s: float = 180, pred=None) -> OBJ:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout_s
        pods: list[OBJ] = []
        while time.monotonic() < deadline:
            pods = self.pods(instance)
            for p in pods:
                if ready(p) and (pred is None or pred(p)):
                    return p
                crashing = [c["name"] for c in (p.get("status") or {}).get("containerStatuses") or []
                            if c["restartCount"] >= 3
                            and (c["state"].get("waiting") or {}).get("reason") == "CrashLoopBackOff"]
                if crashing:  # do not wait out the timeout for what will not come up
                    raise AssertionError(f"{instance}: {crashing} crash-looping:\n{self.describe(instance, pods)}")
                unschedulable = [c for c in (p.get("status") or {}).get("conditions", [])
                                 if c["type"] == "PodScheduled" and c["status"] == "False"
                                 and "not found" in (c.get("message") or "")]
                if unschedulable and time.monotonic() > deadline - timeout_s + 20:
                    raise AssertionError(f"{instance}: unschedulable:\n{self.describe(instance, pods)}")
            time.sleep(0.5)
        raise AssertionError(f"no Ready pod of {instance} after {timeout_s:.0f}s:\n{self.describe(instance, pods)}")

    def describe(self, instance: str, pods: list[OBJ] | None = None) -> str:
        """What went wrong, for a failure message: pod status, events, container logs."""
        lines = []
        for p in pods if pods is not None else self.pods(instance):
            st = p.get("status") or {}
            lines.append(f"pod {p['metadata']['name']}: phase {st.get('phase')} conditions "
                         f"{[(c['type'], c['status'], c.get('message')) for c in st.get('conditions', [])]}")
            for cs in st.get("containerStatuses") or []:
                lines.append(f"  {cs['name']}: ready={cs['ready']} restarts={cs['restartCount']} state={cs['state']}")
        for e in self.kube.list("v1", "Event", self.namespace)[-15:]:
            lines.append(f"event {e.get('involvedObject', {}).get('name')}: {e.get('reason')}: {e.get('message')}")
        lines.append(self.node.container_logs(self.namespace))
        return "\n".join(lines)

    def service_ip(self, name: str) -> str:
        svc = self.kube.get("v1", "Service", name, self.namespace)
        assert svc, f"no Service {name}"
        return str(svc["spec"]["clusterIP"])

    def infer(self, service: str, model: str, value: float, timeout_s: float = 60) -> float:
        """POST an inference request to the Service's ClusterIP from the client namespace (through
        kube-proxy's rules), retrying until it answers or ``timeout_s`` passes."""
        url = f"http://{self.service_ip(service)}:8000/v2/models/{model}/infer"
        body = {"inputs": [{"name": "INPUT0", "shape": [1], "datatype": "FP32", "data": [value]}]}
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            status, text = self.node.client_http("POST", url, body, timeout=5)
            if status == 200:
                return float(yaml.safe_load(text)["outputs"][0]["data"][0])
            last = f"HTTP {status}: {text[:300]}"
            time.sleep(0.5)
        raise AssertionError(f"{model} via Service {service} did not answer in {timeout_s:.0f}s: {last}")


def ready(pod: OBJ) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions", []))


def restarts(pod: OBJ) -> dict[str, int]:
    return {c["name"]: c["restartCount"] for c in (pod.get("status") or {}).get("containerStatuses") or []}
