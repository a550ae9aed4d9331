"""A pull request that changes only leases/ and pools/ does not wait for the tool's test suite
(issue 14: every lease PR waited 13 minutes); any other change runs it. scripts/pr-scope.sh on real
git branches, and the review workflow's test job gating every step on its answer."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, copy_example

SCOPE = str(ROOT / "scripts" / "pr-scope.sh")
ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@example.com", "PATH": "/usr/bin:/bin"}


def sh(repo: Path, command: str) -> str:
    return subprocess.run(["bash", "-c", command], cwd=repo, env=ENV, check=True, capture_output=True,
                          text=True, timeout=60).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = copy_example(tmp_path / "fork")
    (repo / "tms_stack").mkdir()
    (repo / "tms_stack" / "x.py").write_text("x = 1\n")
    sh(repo, "git init -q -b main . && git add -A && git commit -qm base && git update-ref refs/remotes/origin/main HEAD")
    return repo


@pytest.mark.parametrize("change,tool", [
    ("echo '# more' >> leases/ranker.yaml && rm leases/chat-embed.yaml", "false"),
    ("echo '# more' >> pools/placement.lock.yaml && cp leases/ranker.yaml leases/new-one.yaml", "false"),
    ("echo '# more' >> leases/ranker.yaml && echo 'y = 2' >> tms_stack/x.py", "true"),
    ("echo '# more' >> policies/limits.yaml", "true"),
    ("echo 'config: {}' > Pulumi.other.yaml", "true"),
    ("git mv leases/ranker.yaml tests-ranker.yaml", "true"),
])
def test_scope(repo: Path, change: str, tool: str) -> None:
    sh(repo, f"git checkout -q -b pr && {change} && git add -A && git commit -qm pr")
    assert sh(repo, f"{SCOPE} origin/main") == f"tool={tool}\n"


def test_unknown_base_or_empty_diff_runs_the_suite(repo: Path) -> None:
    assert sh(repo, f"{SCOPE} origin/main") == "tool=true\n"  # nothing changed
    assert sh(repo, f"{SCOPE} origin/nope") == "tool=true\n"


def test_review_test_job_gates_every_step_on_the_scope() -> None:
    job = yaml.safe_load((ROOT / ".github" / "workflows" / "review.yml").read_text())["jobs"]["test"]
    steps = job["steps"]
    scope = next(i for i, s in enumerate(steps) if s.get("id") == "scope")
    assert steps[0]["with"]["fetch-depth"] == 0  # the base must be in the clone for the diff
    assert "./scripts/pr-scope.sh" in steps[scope]["run"] and "$GITHUB_OUTPUT" in steps[scope]["run"]
    after = steps[scope + 1:]
    assert any(s.get("run") == "make test" for s in after)
    assert all(s.get("if") == "steps.scope.outputs.tool == 'true'" for s in after)
