"""The node really runs pods: a Deployment's pod gets a bridge IP from the CNI plugin and
runs in containerd; a killed container is restarted by the kubelet."""

from __future__ import annotations

import time

import pytest

from tests.e2e.kubeapi import Kube
from tests.e2e.node.node import PAUSE_IMAGE, Node

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


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


def test_service_cluster_ip_reaches_a_ready_pod_through_kube_proxy(node_cluster: tuple[Kube, Node]) -> None:
    import requests

    from tests.e2e.node.node import HELLO_IMAGE

    kube, node = node_cluster
    kube.ensure_namespace("svc")
    kube.apply({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "hello", "namespace": "svc"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "hello"}},
                 "template": {"metadata": {"labels": {"app": "hello"}},
                              "spec": {"automountServiceAccountToken": False,
                                       "containers": [{"name": "c", "image": HELLO_IMAGE, "imagePullPolicy": "Never",
                                                       "ports": [{"containerPort": 8080}],
                                                       "readinessProbe": {"httpGet": {"path": "/", "port": 8080},
                                                                          "periodSeconds": 1}}]}}},
    })
    kube.apply({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "hello", "namespace": "svc"},
        "spec": {"selector": {"app": "hello"}, "ports": [{"port": 80, "targetPort": 8080}]},
    })
    pod = _wait_pod(kube, "svc", "app=hello",
                    lambda p: {c["type"]: c["status"] for c in p.get("status", {}).get("conditions", [])}
                    .get("Ready") == "True")
    http = requests.Session()
    http.trust_env = False  # never through an HTTP proxy from the environment
    # the pod itself answers on its bridge IP (host -> CNI bridge -> pod netns)
    direct = http.get(f"http://{pod['status']['podIP']}:8080/", timeout=5)
    assert direct.text == f"hello {pod['metadata']['name']}\n"
    ip = kube.get("v1", "Service", "hello", "svc")["spec"]["clusterIP"]
    # from the client namespace, as from another machine: the host's own outgoing requests to
    # port 80 were answered by something else on this machine kind (an HTTP 404, empty body)
    deadline = time.monotonic() + 60
    body, err = "", ""
    while time.monotonic() < deadline:
        status, text = node.client_http("GET", f"http://{ip}:80/", timeout=2)
        if status == 200:
            body = text
            break
        err = f"HTTP {status}: {text[:200]}"
        time.sleep(0.5)
    proxy_log = "\n".join(ln for ln in node.log_tail("kube-proxy", 400).splitlines() if "FLAG:" not in ln)
    import subprocess

    nat = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True).stdout
    proxy_log += "\n" + "\n".join(ln for ln in nat.splitlines() if "hello" in ln or "OUTPUT" in ln)
    assert body == f"hello {pod['metadata']['name']}\n", f"error: {err}\n{proxy_log[-3000:]}"
