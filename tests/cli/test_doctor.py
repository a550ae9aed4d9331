"""`tms doctor` without a cluster: tools, layout, every stack file, `tms check`, Prometheus (a real
one, and a closed port), `-o json`. The cluster checks run against kube-apiserver in
tests/e2e/test_doctor.py."""

from __future__ import annotations

import json
import os
import shutil
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
    # Doctor says which agent image will run: the release's tag can move (a warning, with how to
    # pin it); a digest never does; a stack's own image is named as it is.
    agent = checks["stack Pulumi.example.yaml agentImage"]
    assert agent["status"] == "warn" and agent["detail"].startswith("will run ghcr.io/tms-stack/agent:0.1.0, by tag")
    assert "docker buildx imagetools inspect" in agent["fix"] and "docker/agent.Dockerfile" in agent["fix"]
    stack = repo / "Pulumi.example.yaml"
    text = stack.read_text()
    stack.write_text(text.replace("ghcr.io/tms-stack/agent:0.1.0", "registry.example.com/tms-agent:1"))
    agent = checks_of(doctor(repo, "--offline", "-o", "json"))["stack Pulumi.example.yaml agentImage"]
    assert agent["status"] == "ok" and agent["detail"].startswith("will run registry.example.com/tms-agent:1 (by tag")
    pinned = "ghcr.io/tms-stack/agent:0.1.0@sha256:" + "0" * 64
    stack.write_text(text.replace("ghcr.io/tms-stack/agent:0.1.0", pinned))
    agent = checks_of(doctor(repo, "--offline", "-o", "json"))["stack Pulumi.example.yaml agentImage"]
    assert agent == {"area": "stack", "name": "Pulumi.example.yaml agentImage", "status": "ok",
                     "detail": f"will run {pinned} (pinned by digest)", "fix": None}


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


def test_doctor_warns_when_a_hand_edit_would_block_every_later_deploy(tmp_path: Path) -> None:
    """The example sets kubernetes:enablePatchForce; without it (or with "false") a deploy after a
    `kubectl edit` fails with a server-side apply conflict, so doctor warns (docs/lifecycle.md)."""
    repo = copy_example(tmp_path / "fleet")
    assert "stack Pulumi.example.yaml drift" not in checks_of(doctor(repo, "--offline", "-o", "json"))
    stack = repo / "Pulumi.example.yaml"
    text = stack.read_text()
    for edited in (text.replace('kubernetes:enablePatchForce: "true"', 'kubernetes:enablePatchForce: "false"'),
                   "\n".join(line for line in text.splitlines() if "enablePatchForce" not in line) + "\n"):
        assert edited != text
        stack.write_text(edited)
        warned = checks_of(doctor(repo, "--offline", "-o", "json"))["stack Pulumi.example.yaml drift"]
        assert warned["status"] == "warn" and 'kubernetes:enablePatchForce: "true"' in warned["fix"]


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


def _local_index(root: Path, version: str) -> str:
    """A PEP 503 index in files, holding one (metadata-only) wheel of tms-stack `version`."""
    import zipfile

    project = root / "simple" / "tms-stack"
    project.mkdir(parents=True)
    wheel = f"tms_stack-{version}-py3-none-any.whl"
    info = f"tms_stack-{version}.dist-info"
    with zipfile.ZipFile(project / wheel, "w") as z:
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: tms-stack\nVersion: {version}\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", "")
    (project / "index.html").write_text(f'<html><body><a href="{wheel}">{wheel}</a></body></html>\n')
    return (root / "simple").as_uri()


def test_doctor_checks_that_the_pin_resolves_with_pips_configuration(tmp_path: Path) -> None:
    """A fleet's requirements.txt is what every workflow installs (issue 26: `tms-stack==0.1.0` that
    no index had). Doctor asks pip, configured as the user's pip is (here: PIP_INDEX_URL)."""
    fleet = tmp_path / "fleet"
    made = subprocess.run([str(ROOT / ".venv" / "bin" / "tms"), "init", str(fleet)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    index = _local_index(tmp_path / "index", "0.1.0")
    env = {"PIP_INDEX_URL": index, "PIP_FIND_LINKS": "", "PIP_NO_CACHE_DIR": "1"}
    pin = checks_of(doctor(fleet, "-o", "json", "--offline"))["repository tms-stack pin"]
    assert pin["status"] == "skip"
    pin = checks_of(doctor(fleet, "-o", "json", env=env))["repository tms-stack pin"]
    assert pin == {"area": "repository", "name": "tms-stack pin", "status": "ok", "fix": None,
                   "detail": f"tms-stack==0.1.0 resolves from {index} (pip configuration)"}
    (fleet / "requirements.txt").write_text("tms-stack==0.2.0\n")
    out = doctor(fleet, "-o", "json", env=env)
    assert out.returncode == 1
    pin = checks_of(out)["repository tms-stack pin"]
    assert pin["status"] == "fail" and pin["detail"].startswith(f"tms-stack==0.2.0 does not resolve from {index}")
    assert "No matching distribution found for tms-stack==0.2.0" in pin["detail"] and "PIP_INDEX_URL" in pin["fix"]
    # The file's own --index-url wins, as it does for `pip install -r`; credentials are never shown.
    (fleet / "requirements.txt").write_text(f"--index-url {index}\ntms-stack==0.1.0\n")
    pin = checks_of(doctor(fleet, "-o", "json", env={**env, "PIP_INDEX_URL": "https://u:secret@127.0.0.1:9/"}))
    assert pin["repository tms-stack pin"]["detail"] == f"tms-stack==0.1.0 resolves from {index} (requirements.txt)"
    assert "secret" not in json.dumps(pin)


def test_doctor_warns_when_the_branch_is_not_the_one_the_workflows_run_on(tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "fleet")
    shutil.copytree(ROOT / ".github", repo / ".github")

    def branch() -> dict[str, Any]:
        return checks_of(doctor(repo, "-o", "json", "--offline"))["repository branch"]

    assert branch() == {"area": "repository", "name": "branch", "status": "warn", "fix": "git init -b main",
                        "detail": "not a git repository: the workflows run on `main`"}
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "master"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], cwd=repo, check=True)
    warned = branch()
    assert warned["status"] == "warn" and warned["fix"] == "git branch -m master main"
    assert "pushes to main" in warned["detail"]
    subprocess.run(["git", "branch", "-m", "master", "main"], cwd=repo, check=True)
    assert branch()["status"] == "ok"
    # A clone of a forge whose default branch is master: the workflows would never deploy.
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(origin)], check=True)
    subprocess.run(["git", "--git-dir", str(origin), "branch", "-m", "main", "master"], check=True)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(origin), str(clone)], check=True)
    subprocess.run(["git", "switch", "-q", "-c", "main"], cwd=clone, check=True)
    remote = checks_of(doctor(clone, "-o", "json", "--offline"))["repository branch"]
    assert remote["status"] == "warn" and remote["detail"].startswith("origin's default branch is master")
