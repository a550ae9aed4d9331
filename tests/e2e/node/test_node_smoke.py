"""The node really runs pods: a Deployment's pod gets a bridge IP from the CNI plugin and
runs in containerd; a killed container is restarted by the kubelet."""

from __future__ import annotations

import time

from tests.e2e.kubeapi import Kube
from tests.e2e.node.node import PAUSE_IMAGE, Node


def _wait_pod(kube: Kube, ns: str, label: str, pred, timeout_s: float = 60):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    pods: list = []
    while time.monotonic() < deadline:
        pods = kube.list("v1", "Pod", ns, selector=label)
        if pods and pred(pods[0]):
            return pods[0]
        time.sleep(0.5)
    raise AssertionError(f"pod {label} in {ns}: condition not met after {timeout_s}s: {pods}")


def test_deployment_pod_runs_and_restarts_on_the_real_node(node_cluster: tuple[Kube, Node]) -> None:
    kube, node = node_cluster
    kube.ensure_namespace("smoke")
    kube.apply({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "p", "namespace": "smoke"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "p"}},
                 "template": {"metadata": {"labels": {"app": "p"}},
                              "spec": {"automountServiceAccountToken": False,
                                       "containers": [{"name": "c", "image": PAUSE_IMAGE,
                                                       "imagePullPolicy": "Never"}]}}},
    })

    def ready(p: dict) -> bool:
        conds = {c["type"]: c["status"] for c in p.get("status", {}).get("conditions", [])}
        return conds.get("Ready") == "True"

    pod = _wait_pod(kube, "smoke", "app=p", ready)
    assert pod["spec"]["nodeName"] == node.name
    assert pod["status"]["podIP"].startswith("10.244.0."), pod["status"]
    cid = pod["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
    # the container is a real process in containerd: kill it, the kubelet starts it again
    node.ctr("tasks", "kill", "-s", "KILL", cid)
    pod = _wait_pod(kube, "smoke", "app=p",
                    lambda p: ready(p) and p["status"]["containerStatuses"][0]["restartCount"] >= 1, 90)
    assert pod["status"]["containerStatuses"][0]["restartCount"] >= 1
