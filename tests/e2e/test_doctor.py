"""`tms doctor` against a real API server (the kube-apiserver fixture with RBAC on): what is missing
before the first deploy is named with the command that fixes it; once the admin prerequisites
exist those checks pass; a deploy identity without enough RBAC is told which verbs it lacks."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.e2e.example import ExampleRepo, create_admin_prerequisites
from tests.e2e.kubeapi import Kube

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
NOW = "2026-11-22T00:00:00Z"


def doctor(repo: ExampleRepo, kubeconfig: Path, *args: str) -> tuple[int, dict[str, dict[str, Any]]]:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "TMS_PROMETHEUS_URL")}
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "tms"), "doctor", "--stack", "example", "-o", "json", "--now", NOW,
                          "--kubeconfig", str(kubeconfig), *args], cwd=repo.path, capture_output=True,
                         text=True, timeout=120, env=env)
    assert "Traceback" not in out.stderr, out.stderr
    doc = json.loads(out.stdout)
    assert doc["ok"] == (out.returncode == 0)
    return out.returncode, {c["name"]: c for c in doc["checks"]}


def test_doctor_names_what_is_missing_then_passes(tmp_path: Path, kube: Kube, namespace: str,
                                                  control_plane) -> None:  # type: ignore[no-untyped-def]
    repo = ExampleRepo(tmp_path / "repo", namespace)
    code, checks = doctor(repo, control_plane.kubeconfig)
    assert code == 1
    assert checks["reachable"]["status"] == "ok" and "Kubernetes v1." in checks["reachable"]["detail"]
    assert checks["namespace"]["status"] == "ok"
    # The kinds the example renders are served (prometheus-operator's CRDs are installed) and the
    # admin token may do everything with them.
    for name in ("rbac deployments.apps", "rbac podmonitors.monitoring.coreos.com",
                 "rbac prometheusrules.monitoring.coreos.com", "rbac horizontalpodautoscalers.autoscaling"):
        assert checks[name]["status"] == "ok", checks[name]
    # Nothing of the admin's exists yet: each Secret is named with the command that creates it.
    secret = checks["Secret s3-access-key"]
    assert secret["status"] == "fail" and secret["fix"] == (
        f"kubectl -n {namespace} create secret generic s3-access-key --from-file=value=FILE")
    assert checks["PersistentVolumeClaim triton-models-nfs"]["status"] == "fail"
    # The HPAs read Pods metrics: prometheus-adapter's APIService is not registered here.
    adapter = checks["v1beta1.custom.metrics.k8s.io"]
    assert adapter["status"] == "fail" and "prometheus-adapter" in adapter["fix"]
    # The unpublished default agent image: one warning, from the stack file (also without a cluster).
    assert checks["Pulumi.example.yaml agentImage"]["status"] == "warn"
    assert "ghcr.io/tms-stack/agent:0.1.0" not in checks

    made = create_admin_prerequisites(kube, repo)
    code, checks = doctor(repo, control_plane.kubeconfig)
    # The helper leaves out the stack's imagePullSecrets (kwok pulls nothing); doctor does not.
    pull = checks["Secret ngc-container-pull"]
    assert pull["status"] == "fail" and "does not exist" in pull["detail"]
    kube.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ngc-container-pull", "namespace": namespace},
                "type": "kubernetes.io/dockerconfigjson", "stringData": {".dockerconfigjson": '{"auths": {}}'}})
    code, checks = doctor(repo, control_plane.kubeconfig)
    for thing in made:
        kind, _, name = thing.partition(" ")
        assert checks[f"{kind} {name.split('/')[-1]}"]["status"] == "ok", thing
    failed = sorted(name for name, c in checks.items() if c["status"] == "fail")
    assert failed == ["v1beta1.custom.metrics.k8s.io"], failed  # no adapter in the test cluster

    code, checks = doctor(repo, control_plane.kubeconfig, "--namespace", "nope-not-here")
    assert checks["namespace"]["status"] == "fail" and checks["namespace"]["fix"] == "kubectl create namespace nope-not-here"


def test_doctor_reports_missing_rbac_for_a_limited_identity(tmp_path: Path, kube: Kube, namespace: str,
                                                           control_plane) -> None:  # type: ignore[no-untyped-def]
    repo = ExampleRepo(tmp_path / "repo", namespace)
    ns = namespace
    kube.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "deployer", "namespace": ns}})
    kube.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "half", "namespace": ns},
                "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"]}]})
    kube.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "half", "namespace": ns},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "half"},
                "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": ns}]})
    token = kube.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/deployer/token",
                         json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                               "spec": {"expirationSeconds": 3600}}).json()["status"]["token"]
    config = json.loads(control_plane.kubeconfig.read_text())
    config["users"] = [{"name": "admin", "user": {"token": token}}]
    limited = tmp_path / "deployer.kubeconfig"
    limited.write_text(json.dumps(config))

    code, checks = doctor(repo, limited)
    assert code == 1
    deployments = checks["rbac deployments.apps"]
    assert deployments["status"] == "fail"
    assert deployments["detail"] == f"this identity may not create, patch, delete deployments.apps in {ns}"
    assert "--verb=get,list,create,patch,delete --resource=deployments.apps" in deployments["fix"]
    assert checks["rbac configmaps"]["detail"].startswith("this identity may not get, list, create")
    # It may not read namespaces or Secrets either: said so, not reported as missing.
    assert checks["namespace"]["status"] == "warn"
    assert checks["Secret s3-access-key"]["status"] == "warn"


def test_doctor_on_an_unreachable_server(tmp_path: Path, control_plane) -> None:  # type: ignore[no-untyped-def]
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = json.loads(control_plane.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(json.dumps(config))
    repo = ExampleRepo(tmp_path / "repo", "default")
    code, checks = doctor(repo, dead)
    assert code == 1
    assert checks["reachable"]["status"] == "fail" and f"127.0.0.1:{port}" in checks["reachable"]["detail"]
