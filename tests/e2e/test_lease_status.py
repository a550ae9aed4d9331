"""`tms lease status` against a real API server (the kube-apiserver fixture, kwok nodes running the
pods): State, readiness and events from the cluster through the `kubernetes` client; and the TLS
Certificates accepted by the API server under cert-manager's own CRD."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.e2e.example import ExampleRepo, Key, create_admin_prerequisites, require_render
from tests.e2e.kubeapi import ApiError, Kube

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
NOW = "2026-11-22T00:00:00Z"
ORDER = ["ServiceAccount", "Secret", "ConfigMap", "Service"]


def _apply(kube: Kube, objs: dict[Key, dict]) -> None:
    for _k, obj in sorted(objs.items(), key=lambda kv: ORDER.index(kv[0][1]) if kv[0][1] in ORDER else len(ORDER)):
        kube.apply(obj, manager="tms-render")


def _status(repo: ExampleRepo, kubeconfig: Path, lease: str) -> dict[str, Any]:
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "tms"), "lease", "status", lease, "-o", "json", "--now", NOW,
                          "--kubeconfig", str(kubeconfig)], cwd=repo.path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def _until_valid(repo: ExampleRepo, kubeconfig: Path, lease: str) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while True:
        status = _status(repo, kubeconfig, lease)
        if status["state"] == "Valid" or time.monotonic() > deadline:
            return status
        time.sleep(2)


def test_lease_status_reads_state_readiness_and_events_from_the_cluster(
        tmp_path: Path, kube: Kube, namespace: str, control_plane) -> None:  # type: ignore[no-untyped-def]
    require_render()
    repo = ExampleRepo(tmp_path / "repo", namespace)
    create_admin_prerequisites(kube, repo)
    kubeconfig = control_plane.kubeconfig
    # Declared but not deployed yet: Pending, and it says why.
    before = _status(repo, kubeconfig, "image-classifier")
    assert before["state"] == "Pending" and "not deployed" in before["note"]
    _apply(kube, repo.render(tmp_path / "out"))
    bespoke = _until_valid(repo, kubeconfig, "image-classifier")
    assert bespoke["state"] == "Valid", bespoke
    assert bespoke["readied"]
    # kwok's pods run no agent: the API server's pod proxy gets no answer, and status says so
    # (with a real node the agent's /metrics give per-model readiness: tests/parity/test_status.py).
    assert bespoke["note"].startswith("per-model readiness unknown: the agent of pod image-classifier-")
    assert bespoke["models"][0]["status"] == "Ready"
    assert any(e["object"] == "Deployment/image-classifier" and "Scaled up replica set" in e["message"]
               for e in bespoke["events"]), bespoke["events"]
    pooled = _until_valid(repo, kubeconfig, "ranker")  # served by the pool's instance
    assert pooled["state"] == "Valid" and pooled["deployment"] == "cpu-inference-pool-0", pooled
    assert all(e["object"].split("/")[1].startswith("cpu-inference-pool-0") for e in pooled["events"])
    listed = subprocess.run([str(ROOT / ".venv" / "bin" / "tms"), "lease", "list", "-o", "json", "--now", NOW,
                             "--kubeconfig", str(kubeconfig)], cwd=repo.path, capture_output=True, text=True, timeout=60)
    states = {r["lease"]: r["state"] for r in json.loads(listed.stdout)}
    assert states["image-classifier"] == "Valid" and states["ranker"] == "Valid", states
    # Past `expires`: Expired without asking the cluster.
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "tms"), "lease", "status", "image-classifier", "--now",
                          "2030-01-01T00:00:00Z", "--kubeconfig", str(kubeconfig)], cwd=repo.path,
                         capture_output=True, text=True, timeout=60)
    assert "State: Expired" in out.stdout


def test_rendered_certificates_are_accepted_under_cert_managers_crd(
        tmp_path: Path, kube: Kube, namespace: str) -> None:
    require_render()
    repo = ExampleRepo(tmp_path / "repo", namespace)
    repo.set_stack_config("tms-stack:tls", {"issuerName": "tms-ca", "privateKeyAlgorithm": "RSA",
                                             "privateKeySize": 2048})
    certs = {k: v for k, v in repo.render(tmp_path / "out").items() if k[1] == "Certificate"}
    assert len(certs) >= 4
    for obj in certs.values():
        kube.apply(obj, manager="tms-render")
        live = kube.get(obj["apiVersion"], "Certificate", obj["metadata"]["name"], namespace)
        assert live is not None and live["spec"]["issuerRef"]["name"] == "tms-ca"
    broken = json.loads(json.dumps(next(iter(certs.values()))))
    broken["metadata"]["name"] = "broken"
    broken["spec"]["privateKey"]["algorithm"] = "DSA"
    with pytest.raises(ApiError):
        kube.apply(broken, manager="tms-render")
