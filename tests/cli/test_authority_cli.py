"""The verbs in the by-owner layout, `tms lease migrate`, `tms codeowners` and the `tms doctor`
check of GitHub's branch protection (against a stand-in GitHub API on loopback that records each
call). docs/security.md, "Who may change what"."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_doctor import checks_of, doctor
from tests.conftest import ROOT, copy_example
from tests.security.test_authority import declare_approvers, git, make_by_owner
from tests.support.triton import free_port
from tms_stack.commands.doctor.github import branch_protection_check

TMS = str(ROOT / ".venv" / "bin" / "tms")
NOW = "2026-11-22T00:00:00Z"
M = "name=m,uri=model://s3-models/m"


def tms(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([TMS, *args], cwd=root, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "NO_COLOR": "1"})
    assert "Traceback" not in out.stdout + out.stderr
    return out


@pytest.fixture
def by_owner(tmp_path: Path) -> Path:
    return make_by_owner(tmp_path / "repo")


def test_verbs_find_and_write_leases_in_owner_folders(by_owner: Path) -> None:
    root = by_owner
    out = tms(root, "lease", "create", "mine", "--owner", "team-vision", "-m", M, "--now", NOW)
    assert out.returncode == 0, out.stderr
    assert (root / "leases" / "team-vision" / "mine.yaml").is_file()
    assert not (root / "leases" / "mine.yaml").exists()
    # A name taken in another folder is taken.
    again = tms(root, "lease", "create", "fraud-detector", "--owner", "team-vision", "-m", M)
    assert again.returncode == 3
    assert "leases/team-risk/fraud-detector.yaml" in again.stderr
    assert tms(root, "lease", "renew", "fraud-detector", "--duration", "2d", "--force", "--now", NOW).returncode == 0
    assert "expires: 2026-11-24T00:00:00Z" in (root / "leases/team-risk/fraud-detector.yaml").read_text()
    moved = tms(root, "lease", "name", "move", "fraud", "fraud-detector", "mine")
    assert moved.returncode == 0, moved.stderr
    assert "fraud" in (root / "leases/team-vision/mine.yaml").read_text()
    status = tms(root, "lease", "status", "mine", "-o", "json", "--now", NOW)
    assert status.returncode == 0 and json.loads(status.stdout)["owner"] == "team-vision"
    git(root, "add", "-A")
    git(root, "commit", "-qm", "mine")
    assert tms(root, "lease", "release", "mine").returncode == 0
    assert not (root / "leases/team-vision/mine.yaml").exists()
    git(root, "commit", "-qam", "release mine")
    released = tms(root, "lease", "status", "mine", "-o", "json")   # found in git history, in its folder
    assert released.returncode == 0 and json.loads(released.stdout)["state"] == "Released", released.stdout
    assert tms(root, "check", "--now", NOW).returncode == 0


def test_migrate_moves_every_lease_unchanged_and_switches_the_policy(tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "repo")
    declare_approvers(repo)
    before = {p.name: p.read_bytes() for p in (repo / "leases").glob("*.yaml")}
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "flat")
    out = tms(repo, "lease", "migrate", "-o", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["policy"] == "policies/limits.yaml" and doc["codeownersChanged"] is True
    assert {m["to"] for m in doc["moves"]} == {
        "leases/team-assist/chat-embed.yaml", "leases/team-assist/chat-small.yaml",
        "leases/team-risk/fraud-detector.yaml", "leases/team-vision/image-classifier.yaml",
        "leases/team-search/ranker.yaml", "leases/team-nlp/text-ensemble.yaml"}
    after = {p.name: p.read_bytes() for p in (repo / "leases").glob("*/*.yaml")}
    assert after == before                                  # byte for byte, comments included
    status = git(repo, "status", "--porcelain")
    assert status.count("R  leases/") == 6 and "M  policies/limits.yaml" in status and "A  .github/CODEOWNERS" in status
    limits = (repo / "policies" / "limits.yaml").read_text()
    assert "leaseLayout: by-owner" in limits
    assert "# Who may own leases and pools: budgets are per owner" in limits  # comments kept
    assert tms(repo, "check", "--now", NOW).returncode == 0
    assert tms(repo, "codeowners", "--check").returncode == 0
    # Again: nothing left to move, but the tree is dirty (staged, not committed) -> refused.
    assert tms(repo, "lease", "migrate").returncode == 3
    git(repo, "commit", "-qm", "by owner")
    again = json.loads(tms(repo, "lease", "migrate", "-o", "json").stdout)
    assert again == {"moves": [], "policy": None, "codeownersChanged": False}


def test_migrate_refuses_a_dirty_tree_and_an_unreadable_lease(tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "repo")
    declare_approvers(repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "flat")
    (repo / "leases" / "ranker.yaml").write_text((repo / "leases" / "ranker.yaml").read_text() + "# mine\n")
    dirty = tms(repo, "lease", "migrate")
    assert dirty.returncode == 3 and "uncommitted changes" in dirty.stderr and "leases/ranker.yaml" in dirty.stderr
    git(repo, "checkout", "--", "leases/ranker.yaml")
    (repo / "leases" / "ranker.yaml").write_text("kind: Lease\nmetadata: [\n")
    git(repo, "commit", "-qam", "broken")
    broken = tms(repo, "lease", "migrate")
    assert broken.returncode == 2 and "leases/ranker.yaml" in broken.stderr
    assert sorted(p.name for p in (repo / "leases").iterdir() if p.is_dir()) == []   # nothing moved
    assert git(repo, "status", "--porcelain") == ""
    outside = tms(tmp_path, "lease", "migrate", "--root", str(copy_example(tmp_path / "nogit")))
    assert outside.returncode == 3 and "not in a git work tree" in outside.stderr


def test_migrate_and_codeowners_need_declared_approvers(tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "repo")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "flat")
    for args in (("lease", "migrate"), ("codeowners",), ("codeowners", "--check")):
        out = tms(repo, *args)
        assert out.returncode == 2 and "spec.codeOwners" in out.stderr, args
    assert not (repo / ".github").exists()


def test_codeowners_writes_and_checks(by_owner: Path) -> None:
    path = by_owner / ".github" / "CODEOWNERS"
    assert tms(by_owner, "codeowners").stdout.strip() == ".github/CODEOWNERS is up to date"
    path.write_text(path.read_text().replace("@acme/risk", "@mallory"))
    stale = tms(by_owner, "codeowners", "--check")
    assert stale.returncode == 1 and ".github/CODEOWNERS:22:1" in stale.stdout and "tms codeowners" in stale.stdout
    assert tms(by_owner, "check", "--now", NOW).returncode == 1
    assert tms(by_owner, "codeowners").returncode == 0
    assert "@mallory" not in path.read_text()
    assert tms(by_owner, "check", "--now", NOW).returncode == 0


# --- tms doctor: branch protection, read from a stand-in GitHub API on loopback -------------------


class GitHub:
    """Answers GET requests from `routes` (path -> (status, body)); records every call."""

    def __init__(self, routes: dict[str, tuple[int, Any]]):
        self.routes, self.calls = routes, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                outer.calls.append({"path": self.path, "authorization": self.headers.get("Authorization"),
                                    "accept": self.headers.get("Accept")})
                status, body = outer.routes.get(self.path, (404, {"message": "Not Found"}))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def github() -> Iterator[GitHub]:
    server = GitHub({})
    yield server
    server.server.shutdown()


PROTECTION = "/repos/acme/fleet/branches/main/protection"
RULES = "/repos/acme/fleet/rules/branches/main"


def env(github: GitHub, **more: str) -> dict[str, str]:
    return {"GITHUB_API_URL": github.url, "GITHUB_REPOSITORY": "acme/fleet", **more}


CASES = [
    ("required", {PROTECTION: (200, {"required_pull_request_reviews": {"require_code_owner_reviews": True}})},
     "ok", "requires review from Code Owners"),
    ("reviews-without-code-owners", {PROTECTION: (200, {"required_pull_request_reviews":
                                                        {"require_code_owner_reviews": False}})},
     "fail", "does not require review from Code Owners"),
    ("no-review-rule", {PROTECTION: (200, {"required_status_checks": {"contexts": ["check"]}})},
     "fail", "does not require review from Code Owners"),
    ("ruleset-requires", {PROTECTION: (404, {"message": "Branch not protected"}),
                          RULES: (200, [{"type": "pull_request", "parameters": {"require_code_owner_review": True}}])},
     "ok", "a ruleset requires"),
    ("unprotected", {PROTECTION: (404, {"message": "Branch not protected"}), RULES: (200, [])},
     "fail", "not protected"),
    ("no-rights", {PROTECTION: (403, {"message": "Resource not accessible by integration"})},
     "warn", "could not be read: HTTP 403 Resource not accessible by integration"),
    ("private-without-token", {}, "warn", "HTTP 404 Not Found"),
]


@pytest.mark.parametrize(("case", "routes", "status", "detail"), CASES, ids=[c[0] for c in CASES])
def test_branch_protection(github: GitHub, tmp_path: Path, case: str, routes: dict[str, Any], status: str,
                           detail: str) -> None:
    github.routes.update(routes)
    check = branch_protection_check(tmp_path, "main", env(github, GITHUB_TOKEN="tok-123"))
    assert (check.status, check.area, check.name) == (status, "github", "code-owner review")
    assert detail in check.detail
    assert "tok-123" not in check.detail + (check.fix or "")
    assert github.calls[0] == {"path": PROTECTION, "authorization": "Bearer tok-123",
                               "accept": "application/vnd.github+json"}
    if status == "fail":
        assert "Require review from Code Owners" in (check.fix or "")


def test_branch_protection_unreadable_is_a_warning(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    check = branch_protection_check(tmp_path, "main", {"GITHUB_API_URL": closed, "GITHUB_REPOSITORY": "acme/fleet"})
    assert check.status == "warn" and "no answer" in check.detail and "no GITHUB_TOKEN" in check.detail
    unknown = branch_protection_check(tmp_path, "main", {})
    assert unknown.status == "warn" and "unknown" in unknown.detail


def test_the_repository_comes_from_the_origin_remote(github: GitHub, tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    git(tmp_path, "remote", "add", "origin", "git@github.com:acme/fleet.git")
    github.routes[PROTECTION] = (200, {"required_pull_request_reviews": {"require_code_owner_reviews": True}})
    check = branch_protection_check(tmp_path, "main", {"GITHUB_API_URL": github.url, "GH_TOKEN": "t2"})
    assert check.status == "ok" and github.calls[0]["authorization"] == "Bearer t2"
    # A branch name is one path segment of the URL, whatever it holds.
    branch_protection_check(tmp_path, "release/1.0", {"GITHUB_API_URL": github.url})
    assert github.calls[-1]["path"] == "/repos/acme/fleet/branches/release%2F1.0/protection"
    assert github.calls[-1]["authorization"] is None


def test_doctor_runs_the_check(github: GitHub, tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "fleet")
    github.routes[PROTECTION] = (200, {"required_pull_request_reviews": {"require_code_owner_reviews": False}})
    out = doctor(repo, "-o", "json", env=env(github))
    assert out.returncode == 1
    assert checks_of(out)["github code-owner review"]["status"] == "fail"
    github.routes[PROTECTION] = (200, {"required_pull_request_reviews": {"require_code_owner_reviews": True}})
    assert doctor(repo, "-o", "json", env=env(github)).returncode == 0
    calls = len(github.calls)
    skipped = checks_of(doctor(repo, "--offline", "-o", "json", env=env(github)))["github code-owner review"]
    assert skipped["status"] == "skip" and len(github.calls) == calls


def test_readme_lease_block_in_the_owner_layout(by_owner: Path, tmp_path: Path) -> None:
    """The README's lease example, run as written in a repository that was migrated to owner folders
    (tests/cli/test_readme.py runs it in the flat layout): the file lands in the owner's folder,
    where CODEOWNERS asks that owner's team."""
    from tests.cli.test_readme import created_name, env_with_tms, lease_block

    lines = [line.strip() for line in lease_block().replace("\\\n", " ").splitlines()]
    name = created_name(lines)
    remote = tmp_path / "origin.git"
    env = env_with_tms()
    subprocess.run(["bash", "-c", f"git init -q --bare {remote} && git remote add origin {remote} && "
                    "git push -q -u origin main"], cwd=by_owner, env=env, check=True, capture_output=True)
    out = subprocess.run(["bash", "-ec", "\n".join(lines)], cwd=by_owner, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"leases/team-nlp/{name}.yaml" in git(by_owner, "show", "--stat", "--format=", "HEAD")
    lines_of = [" ".join(line.split()) for line in (by_owner / ".github" / "CODEOWNERS").read_text().splitlines()]
    assert "/leases/team-nlp/ @acme/nlp @alice" in lines_of
