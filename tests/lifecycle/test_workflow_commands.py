"""Every `tms` command the workflows run (this repository's and the ones `tms init` writes) works as
written, on a git copy of the fixture with an origin/main: the review job's plan once broke when
`-o/--output` became the output format (`--output plan.md` exited 2 on every pull request)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, copy_example

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
DERIVED = sorted((ROOT / "tms_stack" / "commands" / "scaffold" / "derived" / "workflows").glob("*.yml"))


def tms_lines(paths: list[Path]) -> list[tuple[str, str]]:
    found = []
    for path in paths:
        for line in path.read_text().splitlines():
            # a one-line `run:` or a line of a `run: |` block
            m = re.match(r"^\s*(?:- )?(?:run: )?(\.venv/bin/tms .*)$", line)
            if m:
                found.append((path.name, m.group(1)))
    return found


def test_the_workflows_run_tms() -> None:
    # review.yml runs tms only through the trusted review (tests/security/test_review_steps.py).
    assert {name for name, _ in tms_lines(WORKFLOWS)} == {"deploy.yml", "prune.yml"}
    assert tms_lines(DERIVED) and {c for _, c in tms_lines(DERIVED)} == {c for _, c in tms_lines(WORKFLOWS)}


@pytest.mark.parametrize("workflow,command", tms_lines(WORKFLOWS), ids=lambda v: str(v)[:60])
def test_workflow_command_runs_as_written(tmp_path: Path, workflow: str, command: str) -> None:
    repo = copy_example(tmp_path / "fleet")
    (repo / ".venv").symlink_to(ROOT / ".venv", target_is_directory=True)
    env = {**os.environ, "RUNNER_TEMP": str(tmp_path), "GITHUB_OUTPUT": str(tmp_path / "output"),
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com",
           # deploy.yml's targeted deploy: the last deployed (or pending) commit and the stack
           "deployed": "main", "base": "main", "STACK": "example"}
    setup = ("printf '.venv\\n' > .gitignore && git init -q -b main . && git add -A && git commit -qm base "
             "&& git update-ref refs/remotes/origin/main HEAD")
    subprocess.run(["bash", "-c", setup], cwd=repo, env=env, check=True, capture_output=True, timeout=60)
    line = command.replace("${{ github.base_ref }}", "main")
    assert "${{" not in line, line
    out = subprocess.run(["bash", "-c", line], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"{workflow}: {line}\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    assert "Traceback" not in out.stderr
    words = shlex.split(line)
    if "--out" in words:
        written = repo / words[words.index("--out") + 1].replace("$RUNNER_TEMP", str(tmp_path))
        # --targets with nothing changed since the base is an empty list (deploy then does nothing)
        assert written.read_text().strip() or ("--targets" in words and written.exists())
