"""The shell of deploy.yml's and prune.yml's steps, run as GitHub runs a `run:` (bash -eo pipefail)
on real git repositories with the real `tms`:

- deploy's `pulumi up` step decides what to deploy: the whole stack without a recorded deploy, on
  the schedule and for an unknown commit; only `tms plan --targets` URNs on a push after a
  recorded deploy; nothing when nothing changed; and records the commit only after a successful
  up. `pulumi` is a recording stand-in here (its tag store is a file): the engine's own behaviour
  with `--target` is tested against a real API server in tests/e2e/test_pulumi_engine.py.
- prune's push step pushes to main even when main moved meanwhile and says so for the deploy
  job (pushed=true, the pushed sha); its first step refuses PR mode without PRUNE_TOKEN."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, copy_example

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}
EXPIRES = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")

FAKE_PULUMI = r"""#!/usr/bin/env bash
# Records every call (one argument per line, then a blank line); a file is the stack's tag store.
printf '%s\n' "$@" >> "$PULUMI_LOG"; echo >> "$PULUMI_LOG"
if [ "$1 $2" = "stack select" ]; then exit 0; fi
if [ "$1 $2 $3" = "stack tag get" ]; then
  line="$(grep -s "^$4=" "$PULUMI_TAGS" | tail -1)" || { echo "error: stack tag $4 not found" >&2; exit 255; }
  echo "${line#*=}"; exit 0
fi
if [ "$1 $2 $3" = "stack tag set" ]; then echo "$4=$5" >> "$PULUMI_TAGS"; exit 0; fi
if [ "$1 $2 $3" = "stack tag rm" ]; then
  grep -v "^$4=" "$PULUMI_TAGS" > "$PULUMI_TAGS.new" || true; mv "$PULUMI_TAGS.new" "$PULUMI_TAGS"; exit 0
fi
if [ "$1" = up ]; then exit "${PULUMI_UP_RC:-0}"; fi
if [ "$1" = preview ]; then exit 0; fi
echo "fake pulumi: unexpected call: $*" >&2; exit 99
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, env={**os.environ, **GIT_ENV}, check=True,
                          capture_output=True, text=True).stdout.strip()


def workflow_step(workflow: str, job: str, name: str) -> dict[str, Any]:
    flow = yaml.safe_load((ROOT / ".github" / "workflows" / workflow).read_text())
    return next(s for s in flow["jobs"][job]["steps"] if s.get("name") == name)


def run_step(step: dict[str, Any], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=cwd,
                          env={"HOME": os.environ["HOME"], **GIT_ENV, **env}, capture_output=True, text=True,
                          timeout=300)


def lease(name: str, model: str) -> str:
    return (f"apiVersion: tms-stack/v1\nkind: Lease\nmetadata:\n  name: {name}\n  owner: team-risk\n"
            f"spec:\n  models:\n    - name: {model}\n      uri: model://s3-models/{name}/m\n  expires: {EXPIRES}\n")


# --- deploy -----------------------------------------------------------------------------------------

class Deploy:
    def __init__(self, tmp_path: Path) -> None:
        self.repo = copy_example(tmp_path / "repo")
        (self.repo / ".venv").symlink_to(ROOT / ".venv", target_is_directory=True)
        (self.repo / ".gitignore").write_text(".venv\n")
        (self.repo / "leases" / "speech.yaml").write_text(lease("speech", "asr"))
        git(self.repo, "init", "-q", "-b", "main")
        self.commit("base")
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "pulumi").write_text(FAKE_PULUMI)
        (bin_dir / "pulumi").chmod(0o755)
        self.log, self.tags, self.temp = tmp_path / "pulumi.log", tmp_path / "tags", tmp_path / "runner-temp"
        self.temp.mkdir()
        self.home = tmp_path / "pulumi-home"
        (self.home / "logs").mkdir(parents=True)                       # what an earlier command left
        self.path = f"{bin_dir}:/usr/bin:/bin"

    def commit(self, message: str) -> str:
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "--allow-empty", "-m", message)
        return git(self.repo, "rev-parse", "HEAD")

    def run(self, targeted: bool, up_rc: int = 0) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
        self.log.write_text("")
        step = workflow_step("deploy.yml", "up", "pulumi up")
        assert set(step["env"]) == {"PULUMI_ACCESS_TOKEN"}
        job_env = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())["jobs"]["up"]["env"]
        assert set(job_env) == {"STACK", "TARGETED", "TMS_CACHE"} and job_env["TMS_CACHE"] == "memory"
        proc = run_step(step, self.repo, {"PATH": self.path, "STACK": "example", "TARGETED": str(targeted).lower(),
                                          "TMS_CACHE": job_env["TMS_CACHE"],
                                          "RUNNER_TEMP": str(self.temp), "PULUMI_LOG": str(self.log),
                                          "PULUMI_TAGS": str(self.tags), "PULUMI_UP_RC": str(up_rc),
                                          "NO_COLOR": "1", "PULUMI_HOME": str(self.home)})
        # the CLI's automatic debug log is off: a plain file where it would write its folder
        assert proc.returncode != 0 or (self.home / "logs").is_file()
        calls = [c.splitlines() for c in self.log.read_text().split("\n\n") if c.strip()]
        return proc, calls

    def tag(self, name: str) -> str | None:
        lines = self.tags.read_text().splitlines() if self.tags.exists() else []
        values = [line.split("=", 1)[1] for line in lines if line.startswith(name + "=")]
        return values[-1] if values else None

    def deployed(self) -> str | None:
        return self.tag("tms:deployed")


def ups(calls: list[list[str]]) -> list[list[str]]:
    return [c for c in calls if c[0] == "up"]


@pytest.fixture
def deploy(tmp_path: Path) -> Deploy:
    return Deploy(tmp_path)


def test_first_deploy_is_the_whole_stack_and_is_recorded(deploy: Deploy) -> None:
    proc, calls = deploy.run(targeted=True)
    assert proc.returncode == 0, proc.stderr
    assert calls[0] == ["stack", "select", "example"]
    assert ups(calls) == [["up", "--yes", "--skip-preview", "--refresh"]]
    assert deploy.deployed() == git(deploy.repo, "rev-parse", "HEAD")


def test_a_push_after_a_recorded_deploy_targets_what_changed(deploy: Deploy) -> None:
    deploy.run(targeted=True)
    speech = deploy.repo / "leases" / "speech.yaml"
    speech.write_text(speech.read_text().replace("name: asr", "name: asr2"))
    head = deploy.commit("change speech")
    proc, calls = deploy.run(targeted=True)
    assert proc.returncode == 0, proc.stderr
    [up] = ups(calls)
    assert up[:3] == ["up", "--yes", "--skip-preview"]
    targets = up[3:]
    assert targets and all(t.startswith("--target=urn:pulumi:example::tms-stack::") for t in targets)
    assert "--target=urn:pulumi:example::tms-stack::tms:index:Lease::speech" in targets
    assert not [t for t in targets if "::fraud-detector" in t]
    assert deploy.deployed() == head


def test_nothing_changed_deploys_nothing(deploy: Deploy) -> None:
    deploy.run(targeted=True)
    head = deploy.commit("empty")
    proc, calls = deploy.run(targeted=True)
    assert proc.returncode == 0, proc.stderr
    assert ups(calls) == [] and deploy.deployed() == head


def test_the_schedule_and_an_unknown_commit_deploy_the_whole_stack(deploy: Deploy) -> None:
    deploy.run(targeted=True)
    deploy.commit("empty")
    _, calls = deploy.run(targeted=False)
    assert ups(calls) == [["up", "--yes", "--skip-preview", "--refresh"]]
    deploy.tags.write_text("tms:deployed=" + "f" * 40 + "\n")   # e.g. a commit rewritten away
    _, calls = deploy.run(targeted=True)
    assert ups(calls) == [["up", "--yes", "--skip-preview", "--refresh"]]


def test_a_failed_up_records_nothing_and_the_next_deploy_still_carries_it(deploy: Deploy) -> None:
    deploy.run(targeted=True)
    first = deploy.deployed()
    speech = deploy.repo / "leases" / "speech.yaml"
    speech.write_text(speech.read_text().replace("name: asr", "name: asr2"))
    deploy.commit("change speech")
    proc, _ = deploy.run(targeted=True, up_rc=1)
    assert proc.returncode != 0 and deploy.deployed() == first
    deploy.commit("a later, unrelated commit")
    proc, calls = deploy.run(targeted=True)
    assert proc.returncode == 0
    assert "--target=urn:pulumi:example::tms-stack::tms:index:Lease::speech" in ups(calls)[0]


# --- review's preview ---------------------------------------------------------------------------------

@pytest.mark.parametrize("sharded", [False, True])
def test_the_review_previews_every_stack_of_the_fleet(deploy: Deploy, sharded: bool) -> None:
    """review.yml's preview step, in the base checkout: one `pulumi preview` per stack, the shards
    first and each with the home stack's file (as deploy.yml's up), one plain preview otherwise."""
    if sharded:
        stack_file = deploy.repo / "Pulumi.example.yaml"
        stack_file.write_text(stack_file.read_text() + "  tms-stack:shards:\n    stacks: [example-b, example-c]\n")
    step = workflow_step("review.yml", "preview", "pulumi preview")
    assert step["working-directory"] == "base"
    assert set(step["env"]) == {"PULUMI_ACCESS_TOKEN", "STACK", "TMS_CACHE"} and step["env"]["TMS_CACHE"] == "memory"
    deploy.log.write_text("")
    proc = run_step(step, deploy.repo, {"PATH": deploy.path, "STACK": "example", "TMS_CACHE": "memory",
                                        "PULUMI_LOG": str(deploy.log), "NO_COLOR": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = [c.splitlines() for c in deploy.log.read_text().split("\n\n") if c.strip()]
    if sharded:
        assert calls == [["preview", "--stack", s, "--config-file", "Pulumi.example.yaml"]
                         for s in ("example-b", "example-c", "example")]
    else:
        assert calls == [["preview", "--stack", "example"]]


# --- prune ------------------------------------------------------------------------------------------

@pytest.fixture
def clones(tmp_path: Path) -> tuple[Path, Path, Path]:
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    seed = copy_example(tmp_path / "seed")
    git(seed, "init", "-q", "-b", "main")
    git(seed, "add", "-A")
    git(seed, "commit", "-q", "-m", "seed")
    git(seed, "push", "-q", str(origin), "main")
    work = tmp_path / "work"
    other = tmp_path / "other"
    for clone in (work, other):
        subprocess.run(["git", "clone", "-q", str(origin), str(clone)], check=True, capture_output=True)
    return origin, work, other


@pytest.mark.parametrize("main_moved", [False, True])
def test_prune_pushes_to_main_and_hands_the_commit_to_deploy(tmp_path: Path, clones: tuple[Path, Path, Path],
                                                             main_moved: bool) -> None:
    origin, work, other = clones
    (work / "leases" / "ranker.yaml").unlink()                      # what tms prune did
    temp = tmp_path / "runner-temp"
    temp.mkdir()
    (temp / "message.txt").write_text("tms prune: delete 1 expired lease\n\n- ranker\n")
    if main_moved:                                                  # someone merged meanwhile
        (other / "leases" / "chat-small.yaml").write_text((other / "leases" / "chat-small.yaml").read_text() + "# x\n")
        git(other, "commit", "-q", "-am", "meanwhile")
        git(other, "push", "-q", "origin", "main")
    output = tmp_path / "output"
    step = workflow_step("prune.yml", "prune", "Commit and push to main")
    proc = run_step(step, work, {"PATH": "/usr/bin:/bin", "RUNNER_TEMP": str(temp), "GITHUB_OUTPUT": str(output)})
    assert proc.returncode == 0, proc.stderr
    pushed = dict(line.split("=", 1) for line in output.read_text().splitlines())
    remote_main = git(work, "--git-dir", str(origin), "rev-parse", "main")
    assert pushed == {"pushed": "true", "sha": remote_main}
    files = git(work, "--git-dir", str(origin), "ls-tree", "--name-only", "main", "leases/").splitlines()
    assert "leases/ranker.yaml" not in files and "leases/chat-small.yaml" in files
    subjects = git(work, "--git-dir", str(origin), "log", "--format=%s", "main").splitlines()
    assert subjects[0] == "tms prune: delete 1 expired lease"
    assert ("meanwhile" in subjects) is main_moved


def test_prune_pushes_in_a_fleet_without_pools(tmp_path: Path, clones: tuple[Path, Path, Path]) -> None:
    """`git add -A leases pools` fails ("pathspec 'pools' did not match") where a fleet has no pools/."""
    origin, work, _ = clones
    git(work, "rm", "-r", "-q", "pools")
    git(work, "commit", "-q", "-m", "no pools")
    git(work, "push", "-q", "origin", "main")
    (work / "leases" / "ranker.yaml").unlink()
    temp = tmp_path / "runner-temp"
    temp.mkdir()
    (temp / "message.txt").write_text("tms prune: delete 1 expired lease\n")
    (work / "stray.txt").write_text("not prune's\n")              # never committed by prune
    step = workflow_step("prune.yml", "prune", "Commit and push to main")
    proc = run_step(step, work, {"PATH": "/usr/bin:/bin", "RUNNER_TEMP": str(temp),
                                 "GITHUB_OUTPUT": str(tmp_path / "output")})
    assert proc.returncode == 0, proc.stderr
    files = git(work, "--git-dir", str(origin), "ls-tree", "-r", "--name-only", "main").splitlines()
    assert "leases/ranker.yaml" not in files and "stray.txt" not in files


@pytest.mark.parametrize("mode,has_token,ok", [
    ("push", "false", True), ("push", "true", True), ("pr", "true", True), ("pr", "false", False),
    ("pull-request", "true", False)])
def test_prune_refuses_pr_mode_without_a_token_that_starts_checks(tmp_path: Path, mode: str, has_token: str,
                                                                   ok: bool) -> None:
    step = workflow_step("prune.yml", "prune", "PRUNE_MODE and its token")
    assert step["env"] == {"HAS_PRUNE_TOKEN": "${{ secrets.PRUNE_TOKEN != '' }}"}
    proc = run_step(step, tmp_path, {"PATH": "/usr/bin:/bin", "PRUNE_MODE": mode, "HAS_PRUNE_TOKEN": has_token})
    assert (proc.returncode == 0) is ok
    if mode == "pr" and not ok:
        assert proc.stdout.startswith("::error title=PRUNE_TOKEN missing::PRUNE_MODE=pr needs the repository secret "
                                      "PRUNE_TOKEN")
        assert "gets no checks" in proc.stdout
    if mode == "pull-request":
        assert "PRUNE_MODE must be push or pr" in proc.stdout
