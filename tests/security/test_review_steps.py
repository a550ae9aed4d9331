"""The review workflow's `check` job, its `run:` steps executed as written (issue 10's done-when):
against a pull request that edits the tool's code and `policies/` and adds an over-limit lease, the
plan flags both admin-owned edits and the check still fails the lease.

Twice: in this repository (the base's scripts/trusted-review.sh runs the base's tms_stack/) and
in a fleet made by `tms init`, whose derived review.yml has no scripts/ and installs the
tms-stack that the BASE's requirements.txt pins (here a wheel built from this tree) into a fresh
environment. The `uses:` steps are played by the test: the two checkouts are git worktrees at the
paths and refs the workflow names; the artifact upload checks that its files exist. An
expression the test does not know fails the test instead of being guessed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, copy_example

EXPIRES = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}
PR_NUMBER = "17"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, env={**os.environ, **GIT_ENV}, check=True,
                          capture_output=True, text=True).stdout


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def lease(name: str, uri: str, gpu: int) -> str:
    return (f"apiVersion: tms-stack/v1\nkind: Lease\nmetadata:\n  name: {name}\n  owner: team-risk\n"
            f"spec:\n  models:\n    - name: m\n      uri: {uri}\n  expires: {EXPIRES}\n"
            f"  triton:\n    resources: {{cpu: 2, gpu: {gpu}, systemMemory: 16Gi}}\n")


class Unknown(Exception):
    pass


def expression(expr: str, ctx: dict[str, str]) -> str:
    """The few `${{ }}` expressions of the check job, evaluated for a pull_request event."""
    def one(m: re.Match[str]) -> str:
        inner = m.group(1).strip()
        for alternative in inner.split("||"):
            key = alternative.strip()
            if key not in ctx:
                raise Unknown(f"expression {inner!r}: {key!r} unknown to the test")
            if ctx[key]:
                return ctx[key]
        return ""
    return re.sub(r"\$\{\{(.*?)\}\}", one, expr)


def condition(expr: str | None, workspace: Path, ctx: dict[str, str]) -> bool:
    if expr is None:
        return True
    text = str(expr)
    text = re.sub(r"hashFiles\('([^']+)'\) != ''", lambda m: str((workspace / m.group(1)).exists()), text)
    text = text.replace("always()", "True").replace("github.event_name == 'pull_request'",
                                                    str(ctx["github.event_name"] == "pull_request"))
    text = text.replace("&&", " and ")
    if not re.fullmatch(r"[\sA-Za-z]*", text) or set(text.split()) - {"True", "False", "and"}:
        raise Unknown(f"condition {expr!r} unknown to the test")
    return bool(eval(text))  # only True/False/and remain


def run_check_job(workflow: Path, repo: Path, base_ref: str, pr_ref: str, workspace: Path,
                  path: str) -> dict[str, Any]:
    """Play the `check` job of `workflow` in `workspace`; returns each run step's exit code."""
    job = yaml.safe_load(workflow.read_text())["jobs"]["check"]
    base_sha = git(repo, "rev-parse", base_ref).strip()
    pr_sha = git(repo, "rev-parse", pr_ref).strip()
    ctx = {"github.event.pull_request.base.sha": base_sha, "github.event.merge_group.base_sha": "",
           "github.event.pull_request.number": PR_NUMBER, "github.event_name": "pull_request"}
    runner_temp = workspace.parent / "runner-temp"
    runner_temp.mkdir()
    env = {**GIT_ENV, "PATH": path, "HOME": os.environ["HOME"], "RUNNER_TEMP": str(runner_temp),
           "GITHUB_OUTPUT": str(runner_temp / "output"), "XDG_CACHE_HOME": os.environ.get(
               "XDG_CACHE_HOME", str(Path.home() / ".cache"))}
    codes: dict[str, Any] = {}
    failed = False
    for step in job["steps"]:
        if "always()" not in str(step.get("if", "")) and failed:
            continue
        if not condition(step.get("if"), workspace, ctx):
            continue
        uses = str(step.get("uses", ""))
        if uses.startswith("actions/checkout@"):
            ref = expression(str(step["with"].get("ref", "")), ctx) or pr_sha
            assert step["with"]["persist-credentials"] is False
            git(repo, "worktree", "add", "-q", "--detach", str(workspace / step["with"]["path"]), ref)
        elif uses.startswith("actions/setup-python@"):
            continue
        elif uses.startswith("actions/upload-artifact@"):
            files = [workspace / p for p in step["with"]["path"].split()]
            codes["artifact"] = [p.name for p in files if p.is_file()]
        elif uses:
            raise Unknown(f"step uses {uses}: unknown to the test")
        else:
            step_env = {k: expression(str(v), ctx) for k, v in (step.get("env") or {}).items()}
            proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", step["run"]], cwd=workspace,
                                  env={**env, **step_env}, capture_output=True, text=True, timeout=900)
            codes[step.get("name", step["run"])] = proc.returncode
            assert "Traceback" not in proc.stderr, proc.stderr
            failed = failed or proc.returncode != 0
    return codes


def path_with_python(tmp_path: Path) -> str:
    """PATH as on a runner after setup-python: `python`/`python3` and the system tools, no tms."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real = getattr(sys, "_base_executable", sys.executable)
    for name in ("python", "python3"):
        (bin_dir / name).symlink_to(real)
    return f"{bin_dir}:/usr/local/bin:/usr/bin:/bin"


def assert_refused_and_flagged(out: Path, code_file: str) -> None:
    check = (out / "check.txt").read_text()
    plan = (out / "plan.md").read_text()
    assert (out / "exit-code").read_text().strip() == "1", check
    assert "resources.maximum" in check and "gpu: 8 exceeds the admin maximum 4" in check, check
    admin = plan.index("Admin-owned changes")
    head = plan[admin:plan.index("policy violation")]
    assert f"`{code_file}` (changed)" in head and "`policies/allowlist.yaml` (changed)" in head, plan
    assert "docker.io/attacker/miner:latest" in head


def test_review_steps_in_this_repository(tmp_path: Path) -> None:
    repo = tmp_path / "origin"
    copy_example(repo)
    shutil.copytree(ROOT / "tms_stack", repo / "tms_stack", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "scripts", repo / "scripts")
    shutil.copy2(ROOT / "pyproject.toml", repo / "pyproject.toml")
    git(repo, "init", "-q", "-b", "main")
    commit_all(repo, "main")
    git(repo, "checkout", "-q", "-b", "evil")
    rules = repo / "tms_stack" / "rules" / "resources.py"
    rules.write_text(rules.read_text().replace("if value > getattr(hi, attr):", "if False:"))
    with (repo / "policies" / "allowlist.yaml").open("a") as f:
        f.write("    - docker.io/attacker/miner:latest\n")
    (repo / "leases" / "big-gpu.yaml").write_text(lease("big-gpu", "model://s3-models/big-gpu/m", 8))
    commit_all(repo, "evil")
    git(repo, "checkout", "-q", "main")

    workspace = tmp_path / "workspace"
    workspace.mkdir()
    codes = run_check_job(ROOT / ".github" / "workflows" / "review.yml", repo, "main", "evil", workspace,
                          path_with_python(tmp_path))
    assert list(codes.values()).count(1) == 1, codes          # the review step, and only it, fails
    assert codes["artifact"] == ["plan.md", "pr-number"]
    assert (workspace / "review" / "pr-number").read_text() == f"{PR_NUMBER}\n"
    assert_refused_and_flagged(workspace / "review", "tms_stack/rules/resources.py")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This tree as the wheel a fleet would install (built from a copy: no build/ in the repo)."""
    src = tmp_path_factory.mktemp("src")
    shutil.copytree(ROOT / "tms_stack", src / "tms_stack", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(src)],
                   check=True, capture_output=True, timeout=600)
    return next(out.glob("tms_stack-*.whl"))


def test_review_steps_in_a_fleet_made_by_init(tmp_path: Path, wheel: Path) -> None:
    repo = tmp_path / "fleet"
    init = subprocess.run([str(ROOT / ".venv" / "bin" / "tms"), "init", str(repo), "--stack", "prod",
                           "--tool-spec", str(wheel)], capture_output=True, text=True, timeout=120)
    assert init.returncode == 0, init.stderr
    assert not (repo / "scripts").exists()
    git(repo, "init", "-q", "-b", "main")
    commit_all(repo, "fleet")
    git(repo, "checkout", "-q", "-b", "evil")
    program = repo / "program" / "__main__.py"
    program.write_text(program.read_text() + "import os  # anything at all\n")
    allowlist = repo / "policies" / "allowlist.yaml"
    allowlist.write_text(allowlist.read_text().replace(
        "    - nvcr.io/nvidia/tritonserver:24.08-py3\n",
        "    - nvcr.io/nvidia/tritonserver:24.08-py3\n    - docker.io/attacker/miner:latest\n"))
    # The PR also tries to choose its own checker: the review installs the BASE's pin instead.
    (repo / "requirements.txt").write_text("tms-stack-that-does-not-exist==9.9.9\n")
    (repo / "leases" / "big-gpu.yaml").write_text(lease("big-gpu", "https://models.example.com/m.zip", 8))
    commit_all(repo, "evil")
    git(repo, "checkout", "-q", "main")

    workspace = tmp_path / "workspace"
    workspace.mkdir()
    codes = run_check_job(repo / ".github" / "workflows" / "review.yml", repo, "main", "evil", workspace,
                          path_with_python(tmp_path))
    assert list(codes.values()).count(1) == 1, codes
    assert codes["artifact"] == ["plan.md", "pr-number"]
    assert_refused_and_flagged(workspace / "review", "program/__main__.py")
    assert "`requirements.txt` (changed)" in (workspace / "review" / "plan.md").read_text()
