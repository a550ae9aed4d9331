"""Every tmsctl verb end to end on a temporary git repository, refusals included."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

TMS = str(ROOT / ".venv" / "bin" / "tms")
NOW = "2026-11-22T00:00:00Z"


def run(repo: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([TMS, *args], cwd=repo, capture_output=True, text=True, timeout=120)
    if ok:
        assert out.returncode == 0, out.stdout + out.stderr
    return out


def check(repo: Path) -> None:
    out = subprocess.run([TMS, "check", "--now", NOW], cwd=repo, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


@pytest.fixture
def repo(example_repo: Path) -> Path:
    subprocess.run(["git", "init", "-q"], cwd=example_repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=example_repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "base"], cwd=example_repo,
                   check=True)
    return example_repo


def changed(repo: Path) -> set[str]:
    out = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
    return {line[3:] for line in out.splitlines()}


def test_lease_create_bespoke_autoscaled(repo: Path) -> None:
    out = run(repo, "lease", "create", "sentiment", "--owner", "team-nlp", "-m", "name=tok,uri=model://shared-nfs/tok",
              "-m", "name=clf,uri=https://models.example.com/private/clf.zip,count=2", "--duration", "8h",
              "--triton-resources", "cpu=4;gpu=1;system-memory=8Gi", "--enable-autoscaling",
              "--autoscaling-max-replicas", "3", "--autoscaling-metric", "queueTime=200ms", "--auto-renew",
              "--activity-window", "30m", "--name", "sentiment-latest", "--now", NOW)
    assert "created leases/sentiment.yaml, expires 2026-11-22T08:00:00Z" in out.stdout
    assert "Commit the change" in out.stdout
    text = (repo / "leases" / "sentiment.yaml").read_text()
    assert "expires: 2026-11-22T08:00:00Z" in text and "queueTime:" in text
    check(repo)
    assert changed(repo) == {"leases/sentiment.yaml"}


def test_lease_create_pooled_updates_the_lock(repo: Path) -> None:
    out = run(repo, "lease", "create", "tiny", "--owner", "team-assist", "-m",
              "name=tiny,uri=model://s3-models/tiny,backend=python", "-p", "shared-t4-pool", "--quota", "1",
              "-z", "--now", NOW)
    assert json.loads(out.stdout)["ok"] is True
    assert changed(repo) == {"leases/tiny.yaml", "pools/placement.lock.yaml"}
    check(repo)


@pytest.mark.parametrize("args, message", [
    (["--triton-image", "nvcr.io/nvidia/tritonserver:22.01-py3"], "not on the allowlist"),
    (["-p", "shared-t4-pool", "--quota", "9"], "exceeds the instanceQuota 8"),
    (["--name", "fraud"], "already taken by leases/fraud-detector.yaml"),
    (["--triton-resources", "gpu=9"], "gpu: 9 exceeds the admin maximum 4"),
    (["--duration", "800d"], "more than the admin maximum duration"),
])
def test_lease_create_refusals(repo: Path, args: list[str], message: str) -> None:
    out = run(repo, "lease", "create", "nope", "--owner", "team-x", "-m", "name=m,uri=model://s3-models/m",
              *args, "--now", NOW, ok=False)
    assert out.returncode == 1
    assert "refused" in out.stderr and message in out.stderr, out.stderr
    assert not (repo / "leases" / "nope.yaml").exists()
    assert changed(repo) == set()


def test_lease_create_refuses_an_existing_lease(repo: Path) -> None:
    out = run(repo, "lease", "create", "ranker", "--owner", "x", "-m", "name=m,uri=model://s3-models/m", ok=False)
    assert out.returncode == 2 and "exists already" in out.stderr


def test_list_and_status(repo: Path) -> None:
    rows = json.loads(run(repo, "lease", "list", "-z").stdout)
    assert [r["name"] for r in rows][0] == "image-classifier"
    assert {r["name"] for r in rows} == {"chat-embed", "chat-small", "fraud-detector", "image-classifier", "ranker",
                                         "text-ensemble"}
    status = run(repo, "lease", "status", "fraud-detector").stdout
    assert "no Triton URL given" in status and "preprocess, fraud_xgb" in status
    unreachable = json.loads(run(repo, "lease", "status", "fraud-detector", "-z", "--triton-url",
                                 "http://127.0.0.1:9").stdout)
    assert "unreachable" in unreachable["live"]["error"]


def test_renew_changes_only_the_expires_line(repo: Path) -> None:
    before = (repo / "leases" / "fraud-detector.yaml").read_text().splitlines()
    run(repo, "lease", "renew", "fraud-detector", "--duration", "48h", "--now", NOW)
    after = (repo / "leases" / "fraud-detector.yaml").read_text().splitlines()
    diff = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert diff == [("  expires: 2027-06-30T18:00:00Z", "  expires: 2026-11-24T00:00:00Z")]


def test_release_deletes_the_file_and_its_names(repo: Path) -> None:
    run(repo, "lease", "release", "text-ensemble")
    assert changed(repo) == {"leases/text-ensemble.yaml"}
    names = json.loads(run(repo, "lease", "name", "list", "-z").stdout)
    assert {n["name"] for n in names} == {"chat", "fraud"}


def test_names_create_move_delete_keep_comments(repo: Path) -> None:
    run(repo, "lease", "name", "create", "vision", "--lease", "image-classifier")
    ic = (repo / "leases" / "image-classifier.yaml").read_text()
    assert ic.startswith("# Bespoke lease with every Triton setting") and "names: [vision]" in ic
    refused = run(repo, "lease", "name", "create", "fraud", "--lease", "image-classifier", ok=False)
    assert refused.returncode == 1 and "already taken" in refused.stderr
    run(repo, "lease", "name", "move", "fraud", "--lease", "image-classifier")
    assert "names: [vision, fraud]" in (repo / "leases" / "image-classifier.yaml").read_text()
    fd = (repo / "leases" / "fraud-detector.yaml").read_text()
    assert "names:" not in fd and fd.startswith("# Autoscaled bespoke lease")
    run(repo, "lease", "name", "delete", "vision")
    assert {n["name"]: n["lease"] for n in json.loads(run(repo, "lease", "name", "list", "-z").stdout)} == {
        "chat": "chat-small", "fraud": "image-classifier", "nlp-latest": "text-ensemble", "text": "text-ensemble"}
    check(repo)


def test_allowlist_add_list_rm(repo: Path) -> None:
    run(repo, "allowlist", "add", "nvcr.io/nvidia/tritonserver:24.10-py3")
    text = (repo / "policies" / "allowlist.yaml").read_text()
    assert text.startswith("# Triton images leases and pools may use")
    assert "    - nvcr.io/nvidia/tritonserver:24.10-py3" in text
    assert "24.10-py3" in run(repo, "allowlist", "list").stdout
    run(repo, "allowlist", "rm", "nvcr.io/nvidia/tritonserver:24.10-py3")
    in_use = run(repo, "allowlist", "rm", "nvcr.io/nvidia/tritonserver:24.08-py3", ok=False)
    assert in_use.returncode == 1 and "refused" in in_use.stderr
    assert "default image nvcr.io/nvidia/tritonserver:24.08-py3 is not in images" in in_use.stderr
    assert (repo / "policies" / "allowlist.yaml").read_text() == (ROOT / "policies" / "allowlist.yaml").read_text()


def test_pool_verbs(repo: Path) -> None:
    run(repo, "pool", "create", "a100-large-pool", "-q", "4", "-c", "0,2", "--triton-resources", "cpu=8;gpu=2")
    assert "a100-large-pool" in run(repo, "pool", "list").stdout
    refused = run(repo, "pool", "create", "tiny", "-q", "4", ok=False)
    assert refused.returncode == 1 and "8-512 characters" in refused.stderr
    in_use = run(repo, "pool", "delete", "shared-t4-pool", ok=False)
    assert in_use.returncode == 2 and "used by chat-embed, chat-small" in in_use.stderr
    run(repo, "pool", "delete", "a100-large-pool")
    status = json.loads(run(repo, "pool", "status", "shared-t4-pool", "-z").stdout)
    assert status["instances"][0]["used"] == 7 and status["instances"][0]["free"] == 1
    check(repo)
