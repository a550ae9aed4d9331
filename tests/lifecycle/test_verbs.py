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
              "--autoscaling-max-replicas", "3", "--autoscaling-metric-queue-time", "enable",
              "--autoscaling-metric-queue-time-threshold", "200ms", "--auto-renew",
              "--auto-renew-activity-window", "30m", "--alias", "sentiment-latest", "--now", NOW)
    assert out.stdout.startswith("Lease sentiment\nState: Pending\nExpires: 2026-11-22T08:00:00Z\n"), out.stdout
    assert "Commit to deploy: git add leases/sentiment.yaml" in out.stdout
    text = (repo / "leases" / "sentiment.yaml").read_text()
    assert "expires: 2026-11-22T08:00:00Z" in text and "queueTime:\n          enabled: true\n          threshold: 200ms" in text
    check(repo)
    assert changed(repo) == {"leases/sentiment.yaml"}


def test_lease_create_pooled_updates_the_lock(repo: Path) -> None:
    out = run(repo, "lease", "create", "tiny", "--owner", "team-assist", "-m",
              "name=tiny,uri=model://s3-models/tiny,backend=python", "-p", "SHARED-T4-POOL", "--quota", "1",
              "-o", "json", "--now", NOW)
    assert json.loads(out.stdout)["pool"] == "shared-t4-pool"  # pool names are case-insensitive
    assert "name: shared-t4-pool" in (repo / "leases" / "tiny.yaml").read_text()
    assert changed(repo) == {"leases/tiny.yaml", "pools/placement.lock.yaml"}
    check(repo)


@pytest.mark.parametrize("args, message", [
    (["--triton-image", "nvcr.io/nvidia/tritonserver:22.01-py3"], "not on the allowlist"),
    (["-p", "shared-t4-pool", "--quota", "9"], "exceeds the instanceQuota 8"),
    (["--alias", "fraud"], "already taken by leases/fraud-detector.yaml"),
    (["--triton-resources", "gpu=9"], "gpu: 9 exceeds the admin maximum 4"),
    (["--duration", "800d"], "more than the admin maximum duration"),
])
def test_lease_create_refusals(repo: Path, args: list[str], message: str) -> None:
    out = run(repo, "lease", "create", "nope", "--owner", "team-x", "-m", "name=m,uri=model://s3-models/m",
              *args, "--now", NOW, ok=False)
    assert out.returncode == 1
    assert "refused" in out.stderr and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert not (repo / "leases" / "nope.yaml").exists()
    assert changed(repo) == set()


def test_lease_create_refuses_an_existing_lease(repo: Path) -> None:
    out = run(repo, "lease", "create", "ranker", "--owner", "x", "-m", "name=m,uri=model://s3-models/m", ok=False)
    assert out.returncode == 3 and "exists already" in out.stderr  # a conflict (docs/cli.md)


def test_list_and_status(repo: Path) -> None:
    listed = subprocess.run([TMS, "lease", "list", "-o", "json", "--now", NOW, "--kubeconfig", str(repo / "none")],
                            cwd=repo, capture_output=True, text=True)
    assert "State from the files only" in listed.stderr
    rows = json.loads(listed.stdout)
    assert {r["state"] for r in rows} == {"Unknown"}
    assert [r["lease"] for r in rows][0] == "image-classifier"
    assert {r["lease"] for r in rows} == {"chat-embed", "chat-small", "fraud-detector", "image-classifier", "ranker",
                                          "text-ensemble"}
    env_free = {"KUBECONFIG": str(repo / "no-kubeconfig")}
    out = subprocess.run([TMS, "lease", "status", "fraud-detector", "--now", NOW], cwd=repo, capture_output=True,
                         text=True, env={**__import__("os").environ, **env_free})
    assert out.returncode == 0, out.stderr
    # No cluster: Unknown, as `tms lease list` says (not a guessed Pending), and why.
    assert "State: Unknown" in out.stdout and "State from the files only" in out.stdout
    assert "preprocess model://s3-models/fraud/preprocess Unknown" in out.stdout
    expired = run(repo, "lease", "status", "fraud-detector", "--now", "2028-01-01T00:00:00Z").stdout
    assert "State: Expired" in expired


def test_renew_uses_the_leases_renewal_duration_and_changes_only_the_expires_line(repo: Path) -> None:
    # fraud-detector: autoRenew.renewalDuration 4h, expires 2027-06-30T18:00:00Z.
    early = run(repo, "lease", "renew", "fraud-detector", "--now", "2027-06-30T16:00:00Z")
    assert "Expires: 2027-06-30T20:00:00Z" in early.stdout
    before = (repo / "leases" / "fraud-detector.yaml").read_text().splitlines()
    shorter = run(repo, "lease", "renew", "fraud-detector", "--duration", "48h", "--now", NOW, ok=False)
    assert shorter.returncode == 1 and "earlier" in shorter.stderr and "--force" in shorter.stderr
    run(repo, "lease", "renew", "fraud-detector", "--duration", "48h", "--force", "--now", NOW)
    after = (repo / "leases" / "fraud-detector.yaml").read_text().splitlines()
    diff = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert diff == [("  expires: 2027-06-30T20:00:00Z", "  expires: 2026-11-24T00:00:00Z")]


def test_release_deletes_the_file_and_its_names(repo: Path) -> None:
    out = run(repo, "lease", "release", "text-ensemble")
    assert out.stdout.startswith("Lease text-ensemble\nState: Released")
    assert changed(repo) == {"leases/text-ensemble.yaml"}
    names = json.loads(run(repo, "lease", "name", "list", "-o", "json").stdout)
    assert {n["name"] for n in names} == {"chat", "fraud"}


def test_names_create_move_delete_keep_comments(repo: Path) -> None:
    out = run(repo, "lease", "name", "create", "vision", "image-classifier")
    assert out.stdout.startswith('Lease name "vision".\nTarget lease: image-classifier')
    ic = (repo / "leases" / "image-classifier.yaml").read_text()
    assert ic.startswith("# Bespoke lease with every Triton setting") and "names: [vision]" in ic
    refused = run(repo, "lease", "name", "create", "fraud", "image-classifier", ok=False)
    assert refused.returncode == 3 and "already refers to lease fraud-detector" in refused.stderr
    wrong = run(repo, "lease", "name", "move", "fraud", "ranker", "image-classifier", ok=False)
    assert wrong.returncode == 1 and "refers to lease fraud-detector, not ranker" in wrong.stderr
    run(repo, "lease", "name", "move", "fraud", "fraud-detector", "image-classifier")
    assert "names: [vision, fraud]" in (repo / "leases" / "image-classifier.yaml").read_text()
    fd = (repo / "leases" / "fraud-detector.yaml").read_text()
    assert "names:" not in fd and fd.startswith("# Autoscaled bespoke lease")
    run(repo, "lease", "name", "move", "--name", "fraud", "--target-lease", "ranker", "--force")
    assert "names: [fraud]" in (repo / "leases" / "ranker.yaml").read_text()
    needs = run(repo, "lease", "name", "delete", "vision", ok=False)
    assert needs.returncode == 2 and "--force" in needs.stderr
    run(repo, "lease", "name", "delete", "vision", "--force")
    run(repo, "lease", "name", "delete", "--name", "fraud", "--lease", "ranker")
    assert {n["name"]: n["lease"] for n in json.loads(run(repo, "lease", "name", "list", "-o", "json").stdout)} == {
        "chat": "chat-small", "nlp-latest": "text-ensemble", "text": "text-ensemble"}
    check(repo)


def test_allowlist_add_list_rm(repo: Path) -> None:
    original = (repo / "policies" / "allowlist.yaml").read_text()
    out = run(repo, "allowlist", "add", "nvcr.io/nvidia/tritonserver:24.10-py3")
    assert out.stdout.startswith("Added nvcr.io/nvidia/tritonserver:24.10-py3")
    text = (repo / "policies" / "allowlist.yaml").read_text()
    assert text.startswith("# Triton images leases and pools may use")
    assert "    - nvcr.io/nvidia/tritonserver:24.10-py3" in text
    again = run(repo, "allowlist", "add", "nvcr.io/nvidia/tritonserver:24.10-py3")  # TMS: no change, success
    assert "nothing changed" in again.stdout and (repo / "policies" / "allowlist.yaml").read_text() == text
    assert "24.10-py3" in run(repo, "allowlist", "list").stdout.splitlines()[-1]
    run(repo, "allowlist", "rm", "nvcr.io/nvidia/tritonserver:24.10-py3")
    in_use = run(repo, "allowlist", "rm", "nvcr.io/nvidia/tritonserver:24.08-py3", ok=False)
    assert in_use.returncode == 1 and "refused" in in_use.stderr
    assert "default image nvcr.io/nvidia/tritonserver:24.08-py3 is not in images" in in_use.stderr
    assert (repo / "policies" / "allowlist.yaml").read_text() == original


def test_pool_verbs(repo: Path) -> None:
    run(repo, "pool", "create", "a100-large-pool", "-q", "4", "-c", "0,2", "--triton-resources", "cpu=8;gpu=2",
        "--owner", "team-platform")
    assert "a100-large-pool" in run(repo, "pool", "list").stdout
    dup = run(repo, "pool", "create", "A100-Large-Pool", "-q", "4", ok=False)
    assert dup.returncode == 3 and "case-insensitive" in dup.stderr
    refused = run(repo, "pool", "create", "tiny", "-q", "4", ok=False)
    assert refused.returncode == 1 and "8-512 characters" in refused.stderr
    in_use = run(repo, "pool", "delete", "shared-t4-pool", ok=False)
    assert in_use.returncode == 1 and "used by chat-embed, chat-small" in in_use.stderr
    run(repo, "pool", "delete", "A100-LARGE-POOL")
    status = json.loads(run(repo, "pool", "status", "Shared-T4-Pool", "-o", "json").stdout)
    assert status["instances"][0]["used"] == 7 and status["instances"][0]["free"] == 1
    check(repo)
