"""Golden test of the pull-request plan for a change that adds, changes and removes leases."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import ROOT

TMS = str(ROOT / ".venv" / "bin" / "tms")
GOLDEN = ROOT / "tests" / "golden" / "plan.md"
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_AUTHOR_DATE": "2026-11-20T00:00:00Z",
           "GIT_COMMITTER_DATE": "2026-11-20T00:00:00Z"}


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env={**os.environ, **GIT_ENV})


def test_plan_markdown_golden(example_repo: Path) -> None:
    git(example_repo, "init", "-q", "-b", "main")
    git(example_repo, "add", "-A")
    git(example_repo, "commit", "-qm", "base")
    # added: a new bespoke lease; changed: more GPUs and an alias; removed: ranker (pooled)
    (example_repo / "leases" / "speech.yaml").write_text(
        "apiVersion: tms-stack/v1\nkind: Lease\nmetadata: {name: speech, owner: team-risk}\n"
        "spec:\n  models: [{name: asr, uri: 'model://s3-models/speech/asr'}]\n  expires: 2026-11-22T12:00:00Z\n"
        "  triton: {resources: {gpu: 2}}\n")
    fd = example_repo / "leases" / "fraud-detector.yaml"
    fd.write_text(fd.read_text().replace("gpu: 2,", "gpu: 3,").replace("names: [fraud]", "names: [fraud, risk]"))
    (example_repo / "leases" / "ranker.yaml").unlink()
    subprocess.run([TMS, "pool", "lock"], cwd=example_repo, check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    out = subprocess.run([TMS, "plan", "--base", "main", "--now", "2026-11-22T00:00:00Z"], cwd=example_repo,
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(out.stdout)
    assert out.stdout == GOLDEN.read_text()


def test_plan_shows_violations_with_links(example_repo: Path) -> None:
    git(example_repo, "init", "-q", "-b", "main")
    git(example_repo, "add", "-A")
    git(example_repo, "commit", "-qm", "base")
    fd = example_repo / "leases" / "fraud-detector.yaml"
    fd.write_text(fd.read_text().replace("cpu: 4,", "cpu: 40,"))
    env = {**os.environ, "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/fleet"}
    out = subprocess.run([TMS, "plan", "--base", "main", "--now", "2026-11-22T00:00:00Z"], cwd=example_repo,
                         capture_output=True, text=True, env=env, timeout=120)
    assert ":x: **1 policy violation(s)**" in out.stdout
    assert "(https://github.com/acme/fleet/blob/" in out.stdout and "leases/fraud-detector.yaml#L22)" in out.stdout
    assert "fix the errors above to see the objects that will change" in out.stdout


def test_plan_names_the_pods_that_restart_and_only_those(example_repo: Path) -> None:
    """A renewal and a pooled lease that needs a Secret no tenant used restart nothing (issue 11
    #2, #3); more GPUs for a bespoke lease restarts its pods, and the plan says so."""
    import json

    from tests.render.test_pod_semantics import _add_private_lease

    git(example_repo, "init", "-q", "-b", "main")
    git(example_repo, "add", "-A")
    git(example_repo, "commit", "-qm", "base")
    fd = example_repo / "leases" / "fraud-detector.yaml"
    fd.write_text(fd.read_text().replace("expires: 2027-06-30T18:00:00Z", "expires: 2027-08-30T18:00:00Z"))
    _add_private_lease(example_repo)

    def plan() -> dict:
        out = subprocess.run([TMS, "plan", "--base", "main", "--now", "2026-11-22T00:00:00Z", "-o", "json"],
                             cwd=example_repo, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)  # type: ignore[no-any-return]

    quiet = plan()
    assert "Deployment/triton/fraud-detector" in quiet["objects"]["update"]  # its metadata: the expiry
    assert "ConfigMap/triton/shared-t4-pool-0" in quiet["objects"]["update"]
    assert "Deployment/triton/shared-t4-pool-0" not in quiet["objects"]["update"]
    assert quiet["restarts"] == []
    fd.write_text(fd.read_text().replace("gpu: 2,", "gpu: 3,"))
    assert plan()["restarts"] == ["Deployment/triton/fraud-detector"]


def test_plan_names_its_real_base_and_the_agent_image_once(example_repo: Path) -> None:
    """Issue 25 #3: "Compared with `main` at <sha>" showed HEAD's sha; the pull request's branch is
    a commit ahead of main here, so the two differ. An agentImage change was listed twice."""
    git(example_repo, "init", "-q", "-b", "main")
    git(example_repo, "add", "-A")
    git(example_repo, "commit", "-qm", "base")
    base_sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=example_repo, capture_output=True,
                              text=True, check=True).stdout.strip()
    git(example_repo, "checkout", "-q", "-b", "pr")
    stack = example_repo / "Pulumi.example.yaml"
    stack.write_text(stack.read_text().replace("ghcr.io/tms-stack/agent:0.1.0", "ghcr.io/tms-stack/agent:0.2.0"))
    git(example_repo, "commit", "-qam", "new agent")
    head_sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=example_repo, capture_output=True,
                              text=True, check=True).stdout.strip()
    assert head_sha != base_sha
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    out = subprocess.run([TMS, "plan", "--base", "main", "--now", "2026-11-22T00:00:00Z"], cwd=example_repo,
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"Compared with `main` at `{base_sha[:12]}`" in out.stdout
    assert head_sha[:12] not in out.stdout
    assert out.stdout.count("tms-stack:agentImage") == 1, out.stdout
