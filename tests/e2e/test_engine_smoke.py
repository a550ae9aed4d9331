"""Smoke tests of the end-to-end machinery itself: the control plane, the CRDs, and the real
Pulumi engine driving the real Kubernetes provider against it (a throwaway program, not ours).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.e2e.conftest import write_pulumi_project
from tests.e2e.kubeapi import ApiError, Kube

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


def test_control_plane_serves_core_apps_and_monitoring_apis(kube: Kube) -> None:
    version = kube.request("GET", "/version").json()
    assert version["gitVersion"] == "v1.34.4"
    for api_version, kind in [
        ("v1", "ConfigMap"),
        ("v1", "Service"),
        ("apps/v1", "Deployment"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("policy/v1", "PodDisruptionBudget"),
        ("monitoring.coreos.com/v1", "PodMonitor"),
        ("monitoring.coreos.com/v1", "PrometheusRule"),
    ]:
        assert kube.resource(api_version, kind)


def test_apply_is_strict_and_crd_schemas_are_enforced(kube: Kube, namespace: str) -> None:
    with pytest.raises(ApiError, match="not declared in schema|unknown field"):
        kube.apply(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": namespace},
             "data": {"a": "1"}, "dta": {}},
        )
    with pytest.raises(ApiError, match="not declared in schema|unknown field"):
        kube.apply(
            {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
             "metadata": {"name": "x", "namespace": namespace},
             "spec": {"selector": {}, "podMetricsEndpoints": [{"prot": "metrics"}]}},
        )
    pm = kube.apply(
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
         "metadata": {"name": "ok", "namespace": namespace},
         "spec": {"selector": {"matchLabels": {"app": "x"}}, "podMetricsEndpoints": [{"port": "metrics"}]}},
    )
    assert pm["metadata"]["uid"]


def test_garbage_collector_finishes_foreground_deletion(kube: Kube, namespace: str) -> None:
    import time

    dep = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "gc", "namespace": namespace},
        "spec": {"selector": {"matchLabels": {"app": "gc"}},
                 "template": {"metadata": {"labels": {"app": "gc"}},
                              "spec": {"containers": [{"name": "c", "image": "example.invalid/none:1"}]}}},
    }
    kube.apply(dep)
    kube.request("DELETE", kube.path(dep), json={"propagationPolicy": "Foreground"})
    deadline = time.monotonic() + 60
    while kube.get("apps/v1", "Deployment", "gc", namespace) is not None:
        assert time.monotonic() < deadline, "foreground deletion never completed (no garbage collector?)"
        time.sleep(0.2)


SMOKE_PROGRAM = textwrap.dedent(
    '''
    import pulumi
    import pulumi_kubernetes as k8s

    cfg = pulumi.Config()
    ns = cfg.require("namespace")
    value = cfg.get("value") or "1"
    skip = {"pulumi.com/skipAwait": "true"}  # no kubelet in the test cluster: pods never run

    cm = k8s.core.v1.ConfigMap(
        "smoke-cm", metadata={"name": "smoke", "namespace": ns}, data={"value": value})
    pm = k8s.apiextensions.CustomResource(
        "smoke-pm", api_version="monitoring.coreos.com/v1", kind="PodMonitor",
        metadata={"name": "smoke", "namespace": ns},
        spec={"selector": {"matchLabels": {"app": "smoke"}},
              "podMetricsEndpoints": [{"port": "metrics", "interval": "15s"}]})
    dep = k8s.apps.v1.Deployment(
        "smoke-dep", metadata={"name": "smoke", "namespace": ns, "annotations": skip},
        spec={"selector": {"matchLabels": {"app": "smoke"}},
              "template": {"metadata": {"labels": {"app": "smoke"}},
                           "spec": {"containers": [{"name": "c", "image": "example.invalid/none:1"}]}}})
    pulumi.export("configmap", cm.metadata.name)
    '''
)


def test_pulumi_up_preview_update_destroy_against_the_api_server(
    pulumi_factory, kube: Kube, namespace: str, tmp_path: Path, pulumi_env: dict[str, str]  # type: ignore[no-untyped-def]
) -> None:
    project = write_pulumi_project(tmp_path / "smoke", "tms-e2e-smoke", SMOKE_PROGRAM)
    pulumi = pulumi_factory(project, "smoke")
    pulumi.run("config", "set", "namespace", namespace)

    pulumi.preview()
    assert kube.get("v1", "ConfigMap", "smoke", namespace) is None  # preview changes nothing

    pulumi.up()
    assert kube.get("v1", "ConfigMap", "smoke", namespace)["data"] == {"value": "1"}
    assert kube.get("monitoring.coreos.com/v1", "PodMonitor", "smoke", namespace)["spec"]["podMetricsEndpoints"][0][
        "port"] == "metrics"
    uid = kube.get("apps/v1", "Deployment", "smoke", namespace)["metadata"]["uid"]

    pulumi.up("--expect-no-changes")

    pulumi.run("config", "set", "value", "2")
    pulumi.up()
    cm = kube.get("v1", "ConfigMap", "smoke", namespace)
    assert cm["data"] == {"value": "2"}
    assert kube.get("apps/v1", "Deployment", "smoke", namespace)["metadata"]["uid"] == uid

    # the provider came from PATH (next to pulumi): nothing was downloaded into PULUMI_HOME
    plugins = Path(pulumi_env["PULUMI_HOME"]) / "plugins"
    assert not any(p.name.startswith("resource-kubernetes") for p in plugins.glob("*")), list(plugins.glob("*"))

    # refresh: what was deleted behind the engine's back leaves the state, and the next up
    # recreates it (what the scheduled reconcile relies on after a hand edit of the cluster)
    kube.delete("v1", "ConfigMap", "smoke", namespace)
    pulumi.run("refresh", "--yes", "--skip-preview")
    state = json.loads(pulumi.run("stack", "export").stdout)
    kinds = {r["type"] for r in state["deployment"]["resources"]}
    assert "kubernetes:core/v1:ConfigMap" not in kinds and "kubernetes:apps/v1:Deployment" in kinds, kinds
    pulumi.up()
    assert kube.get("v1", "ConfigMap", "smoke", namespace)["data"] == {"value": "2"}
    assert kube.get("apps/v1", "Deployment", "smoke", namespace)["metadata"]["uid"] == uid
    pulumi.run("refresh", "--yes", "--skip-preview", "--expect-no-changes")

    pulumi.run("destroy", "--yes", "--skip-preview")
    assert kube.get("v1", "ConfigMap", "smoke", namespace) is None
    assert kube.get("monitoring.coreos.com/v1", "PodMonitor", "smoke", namespace) is None
    assert kube.get("apps/v1", "Deployment", "smoke", namespace) is None


def test_fake_nodes_run_deployments_to_available_and_fill_endpoints(kube: Kube, namespace: str) -> None:
    """kwok + scheduler + controllers: what Pulumi's Deployment and Service awaits wait for."""
    import time

    labels = {"app": "kwok-smoke"}
    kube.apply({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "kwok-smoke", "namespace": namespace},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{
                                  "name": "triton", "image": "nvcr.io/nvidia/tritonserver:24.08-py3",
                                  "ports": [{"name": "http", "containerPort": 8000}],
                                  "resources": {"limits": {"nvidia.com/gpu": "1", "cpu": "2", "memory": "4Gi"}},
                              }]}}},
    })
    kube.apply({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kwok-smoke", "namespace": namespace},
        "spec": {"selector": labels, "ports": [{"name": "http", "port": 8000, "targetPort": "http"}]},
    })
    deadline = time.monotonic() + 90
    while True:
        dep = kube.get("apps/v1", "Deployment", "kwok-smoke", namespace) or {}
        status = dep.get("status") or {}
        slices = kube.list("discovery.k8s.io/v1", "EndpointSlice", namespace, "kubernetes.io/service-name=kwok-smoke")
        ready_eps = [e for s in slices for e in (s.get("endpoints") or []) if (e.get("conditions") or {}).get("ready")]
        if status.get("availableReplicas") == 2 and len(ready_eps) == 2:
            break
        assert time.monotonic() < deadline, f"deployment status {status}, ready endpoints {ready_eps}"
        time.sleep(0.5)
    pods = kube.list("v1", "Pod", namespace, "app=kwok-smoke")
    assert {p["spec"]["nodeName"].startswith("kwok-node-") for p in pods} == {True}


def test_the_engine_runs_the_recorded_cli_and_provider_versions(
    pulumi_factory, pulumi_tools: list[str], namespace: str, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    """The pair the tests really use: `pulumi version`, and the version the provider itself answers
    the engine (GetPluginInfo, from PULUMI_DEBUG_GRPC's log of every gRPC call; the language host
    answers the CLI's version). Built from the
    vendored sources, both must be what tools/build_pulumi.py records in its `.complete`
    (docs/real-engine.md names them)."""
    project = write_pulumi_project(tmp_path / "versions", "tms-e2e-versions", SMOKE_PROGRAM)
    pulumi = pulumi_factory(project, "versions")
    pulumi.run("config", "set", "namespace", namespace)
    cli = pulumi.run("version").stdout.strip()
    grpc_log = tmp_path / "grpc.json"
    pulumi.env = {**pulumi.env, "PULUMI_DEBUG_GRPC": str(grpc_log)}
    pulumi.preview()
    answers: dict[str, set[str]] = {}  # one line when a call starts, one with the response when it ends
    for line in grpc_log.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("method", "").endswith("/GetPluginInfo") and "response" in entry:
            answers.setdefault(entry["method"], set()).add(entry["response"].get("version"))
    assert answers.get("/pulumirpc.LanguageRuntime/GetPluginInfo") == {cli}, answers
    assert len(answers.get("/pulumirpc.ResourceProvider/GetPluginInfo", ())) == 1, answers
    (provider,) = answers["/pulumirpc.ResourceProvider/GetPluginInfo"]
    recorded = [json.loads(p.read_text()) for p in (Path(d) / ".complete" for d in pulumi_tools) if p.exists()]
    vendored = [r for r in recorded if "provider" in r]
    if vendored:  # built from ../shared/vendor: the recorded pair, nothing else
        assert (cli, provider) == (vendored[0]["cli"], vendored[0]["provider"]), (cli, provider, vendored[0])
    else:  # the Go module proxy's pins or TMS_PULUMI_BIN_DIR: at least a real answer from both
        assert cli.startswith("v3.") and provider and provider.startswith("4."), (cli, provider)
