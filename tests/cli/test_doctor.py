"""`tms doctor` without a cluster: tools, layout, every stack file, `tms check`, Prometheus (a real
one, and a closed port), `-o json`. The cluster checks run against kube-apiserver in
tests/e2e/test_doctor.py."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, copy_example
from tests.support.prometheus import start_prometheus
from tests.support.triton import free_port

NOW = "2026-11-22T00:00:00Z"


def doctor(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "TMS_PROMETHEUS_URL")}
    # no ~/.kube/config: the cluster checks are skipped, and say how to run them
    base["HOME"] = str(repo.parent)
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "tms"), "doctor", "--now", NOW, *args], cwd=repo,
                         capture_output=True, text=True, timeout=120, env={**base, **(env or {})})
    assert "Traceback" not in out.stdout + out.stderr
    return out


def checks_of(out: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    return {f"{c['area']} {c['name']}": c for c in json.loads(out.stdout)["checks"]}


def test_doctor_on_the_example_without_a_cluster(tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "fleet")
    out = doctor(repo)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["STATUS", "AREA", "CHECK", "DETAIL"]
    assert any(line.startswith("SKIP") and "no kubeconfig" in line for line in lines)
    assert lines[-1].startswith("0 failed,")
    checks = checks_of(doctor(repo, "-o", "json"))
    assert checks["stack Pulumi.example.yaml"] == {"area": "stack", "name": "Pulumi.example.yaml", "status": "ok",
                                                   "detail": "namespace triton", "fix": None}
    assert checks["repository tms check"]["status"] == "ok"
    assert checks["tools python"]["status"] == "ok"
    assert checks["cluster kubeconfig"]["status"] == "skip"
    assert checks["cluster kubeconfig"]["fix"] == "tms doctor --kubeconfig FILE [--context NAME]"
    assert checks["repository lock merge driver"]["status"] == "warn"
    # The unpublished default agent image is known without a cluster (a first deploy would sit in
    # ImagePullBackOff); a stack naming its own image is fine.
    agent = checks["stack Pulumi.example.yaml agentImage"]
    assert agent["status"] == "warn" and "docker build" in agent["fix"]
    stack = repo / "Pulumi.example.yaml"
    stack.write_text(stack.read_text().replace("ghcr.io/tms-stack/agent:0.1.0", "registry.example.com/tms-agent:1"))
    assert "stack Pulumi.example.yaml agentImage" not in checks_of(doctor(repo, "--offline", "-o", "json"))


def test_doctor_warns_when_configmaps_would_be_replaced_on_every_edit(tmp_path: Path) -> None:
    """The example sets kubernetes:enableConfigMapMutable; a stack file without it (or with
    "false") gets a warning saying what it costs and the line to add (docs/rendering.md)."""
    repo = copy_example(tmp_path / "fleet")
    assert "stack Pulumi.example.yaml ConfigMaps" not in checks_of(doctor(repo, "--offline", "-o", "json"))
    stack = repo / "Pulumi.example.yaml"
    text = stack.read_text()
    for edited in (text.replace('kubernetes:enableConfigMapMutable: "true"', 'kubernetes:enableConfigMapMutable: "false"'),
                   "\n".join(line for line in text.splitlines() if "enableConfigMapMutable" not in line) + "\n"):
        assert edited != text
        stack.write_text(edited)
        warned = checks_of(doctor(repo, "--offline", "-o", "json"))["stack Pulumi.example.yaml ConfigMaps"]
        assert warned["status"] == "warn" and 'kubernetes:enableConfigMapMutable: "true"' in warned["fix"]


def test_doctor_fails_on_a_bad_second_stack_file_and_a_check_finding(tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "fleet")
    (repo / "Pulumi.staging.yaml").write_text("config:\n  tms-stack:namspace: staging\n")
    out = doctor(repo, "--stack", "example", "-o", "json")
    assert out.returncode == 1
    doc = json.loads(out.stdout)
    assert doc["ok"] is False and doc["summary"]["fail"] >= 1
    staging = checks_of(out)["stack Pulumi.staging.yaml"]
    assert staging["status"] == "fail" and "namspace" in staging["detail"]
    (repo / "Pulumi.staging.yaml").unlink()
    (repo / "leases" / "fraud-detector.yaml").write_text("apiVersion: tms-stack/v1\nkind: Lease\n")
    out = doctor(repo, "-o", "json")
    assert out.returncode == 1
    checks = checks_of(out)
    assert checks["repository tms check"]["status"] == "fail"
    assert "leases/fraud-detector.yaml:" in checks["repository tms check"]["detail"]


def test_doctor_on_an_emptied_template(tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "fleet")
    for sub in ("leases", "pools"):
        for f in (repo / sub).iterdir():
            f.unlink()
    out = doctor(repo, "-o", "json")
    assert out.returncode == 0, out.stdout
    assert checks_of(out)["repository tms check"]["detail"] == "0 leases, 0 pools, no findings"


@pytest.mark.slow
def test_doctor_reaches_prometheus_or_says_it_cannot(tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "fleet")
    prom = start_prometheus(tmp_path / "prom", [])
    try:
        ok = checks_of(doctor(repo, "-o", "json", env={"TMS_PROMETHEUS_URL": prom.url}))["prometheus query"]
    finally:
        prom.stop()
    assert ok["status"] == "ok" and prom.url in ok["detail"]
    dead = f"http://127.0.0.1:{free_port()}"
    out = doctor(repo, "-o", "json", env={"TMS_PROMETHEUS_URL": dead})
    assert out.returncode == 1
    failed = checks_of(out)["prometheus query"]
    assert failed["status"] == "fail" and "ConnectionError" in failed["detail"] and dead in failed["fix"]
    # Not configured: skipped, not failed.
    assert checks_of(doctor(repo, "-o", "json"))["prometheus query"]["status"] == "skip"


def test_doctor_with_an_unknown_stack_is_a_usage_error(tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "fleet")
    out = doctor(repo, "--stack", "nope")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == "error: --stack nope: no Pulumi.nope.yaml (stacks here: example)\n"
    as_json = doctor(repo, "--stack", "nope", "-o", "json")
    assert as_json.returncode == 2 and json.loads(as_json.stdout)["exit_code"] == 2
