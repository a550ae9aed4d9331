"""review-comment.yml's script, run as actions/github-script runs it (an async function of
`github`, `context`, `core`, `require`), with node, against a recording fake of the three GitHub
REST calls it makes (the real API is out of reach of tests). The artifact is the attacker's: a
forged number, a PR that moved on, an oversized or symlinked plan, a PR that edits .github/."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

MARKER = "<!-- tms-stack-plan -->"
HEAD = "a" * 40
LIMIT = 65536

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node (what github-script runs) is not installed")

HARNESS = r"""
const fs = require('fs');
const state = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const calls = [];
const notices = [];
const github = {
  paginate: async (fn, args) => fn(args),
  rest: {
    pulls: {
      get: async (a) => { calls.push(['pulls.get', a]); return { data: { head: { sha: state.head } } }; },
      listFiles: async (a) => { calls.push(['pulls.listFiles', a]); return state.files.map(f => ({ filename: f })); },
    },
    issues: {
      listComments: async (a) => { calls.push(['issues.listComments', a]); return state.comments; },
      updateComment: async (a) => { calls.push(['issues.updateComment', a]); },
      createComment: async (a) => { calls.push(['issues.createComment', a]); },
    },
  },
};
const context = { repo: { owner: 'org', repo: 'fleet' } };
const core = { notice: (m) => notices.push(m) };
const script = fs.readFileSync(process.argv[3], 'utf8');
const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
new AsyncFunction('github', 'context', 'core', 'require', script)(github, context, core, require)
  .then(() => console.log(JSON.stringify({ calls, notices })))
  .catch((e) => { console.log(JSON.stringify({ calls, notices, error: String(e.message) })); });
"""


def step() -> dict[str, Any]:
    flow = yaml.safe_load((ROOT / ".github" / "workflows" / "review-comment.yml").read_text())
    return next(s for s in flow["jobs"]["comment"]["steps"] if "script" in s.get("with", {}))


def post(tmp_path: Path, number: str = "17", plan: str | None = "plan", head: str = HEAD,
         files: list[str] | None = None, comments: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    art = tmp_path / "tms-plan"
    art.mkdir(exist_ok=True)
    (art / "pr-number").write_text(number + "\n")
    if plan is not None:
        (art / "plan.md").write_text(plan)
    (tmp_path / "state.json").write_text(json.dumps({"head": head, "files": files or ["leases/a.yaml"],
                                                     "comments": comments or []}))
    (tmp_path / "script.js").write_text(step()["with"]["script"])
    (tmp_path / "harness.js").write_text(HARNESS)
    env_names = step()["env"]
    assert set(env_names) == {"PLAN_DIR", "HEAD_SHA"}
    out = subprocess.run(["node", str(tmp_path / "harness.js"), str(tmp_path / "state.json"),
                          str(tmp_path / "script.js")], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "PLAN_DIR": str(art), "HEAD_SHA": HEAD})
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def writes(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, args) for name, args in result["calls"] if name in ("issues.createComment", "issues.updateComment")]


def test_a_new_plan_becomes_one_marked_comment(tmp_path: Path) -> None:
    result = post(tmp_path, plan=f"{MARKER}\n## tms-stack plan\nok\n")
    assert "error" not in result
    assert writes(result) == [("issues.createComment", {"owner": "org", "repo": "fleet", "issue_number": 17,
                                                         "body": f"{MARKER}\n## tms-stack plan\nok\n"})]


def test_the_bot_comment_is_updated_and_nobody_elses(tmp_path: Path) -> None:
    comments = [{"id": 1, "user": {"login": "mallory"}, "body": f"{MARKER}\nmine"},
                {"id": 2, "user": {"login": "github-actions[bot]"}, "body": f"{MARKER}\nold plan"}]
    result = post(tmp_path, plan="new plan\n", comments=comments)
    assert [(n, a["comment_id"], a["body"]) for n, a in writes(result)] == [
        ("issues.updateComment", 2, f"{MARKER}\nnew plan\n")]


@pytest.mark.parametrize("number", ["17; rm -rf /", "0", "-1", "17 18", "1" * 11, "", "../17"])
def test_a_forged_number_posts_nothing(tmp_path: Path, number: str) -> None:
    result = post(tmp_path, number=number)
    assert result.get("error") == "pr-number: not a pull request number"
    assert result["calls"] == []


def test_a_pr_that_moved_on_gets_its_comment_from_the_newer_review(tmp_path: Path) -> None:
    result = post(tmp_path, head="b" * 40)
    assert writes(result) == [] and "the newer review will" in result["notices"][0]


def test_the_plan_is_size_capped(tmp_path: Path) -> None:
    result = post(tmp_path, plan="x" * (4 * LIMIT + 1))
    assert writes(result) == [] and "more than 262144" in result["error"]
    result = post(tmp_path, plan="y" * (2 * LIMIT))
    [(_, args)] = writes(result)
    assert len(args["body"]) <= LIMIT and args["body"].startswith(MARKER) and "(cut:" in args["body"]


def test_a_symlinked_plan_is_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("token")
    (tmp_path / "tms-plan").mkdir()
    (tmp_path / "tms-plan" / "plan.md").symlink_to(secret)
    result = post(tmp_path, plan=None)
    assert writes(result) == [] and result["error"] == "plan.md: not a regular file"


def test_a_pr_that_edits_workflows_gets_a_caution_first(tmp_path: Path) -> None:
    result = post(tmp_path, plan=f"{MARKER}\n:white_check_mark: All checks passed\n",
                  files=["leases/a.yaml", ".github/workflows/review.yml"])
    [(_, args)] = writes(result)
    body = args["body"]
    assert body.startswith(f"{MARKER}\n> [!CAUTION]") and body.index("CAUTION") < body.index("All checks passed")
    assert "proves nothing" in body
