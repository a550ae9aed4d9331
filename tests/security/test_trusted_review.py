"""The trusted checker, end to end: scripts/trusted-review.sh on real git checkouts.

A fixture repository (this project's tms_stack/ and pyproject.toml plus the example data) is
committed on `main`; pull requests are branches; base and PR are `git worktree` checkouts, as the
review workflow has them. The script installs the base's dependencies into a cached venv (the
first run of a session takes ~30 s) and runs the base's code on the PR's data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import ROOT, copy_example

SCRIPT = ROOT / "scripts" / "trusted-review.sh"
EXPIRES = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout


def lease(name: str, owner: str, gpu: int | None = None, alias: str | None = None) -> str:
    text = (f"apiVersion: tms-stack/v1\nkind: Lease\nmetadata:\n  name: {name}\n  owner: {owner}\n"
            f"spec:\n  models:\n    - name: m\n      uri: model://s3-models/{name}/m\n  expires: {EXPIRES}\n")
    if alias:
        text += f"  names: [{alias}]\n"
    if gpu is not None:
        text += f"  triton:\n    resources: {{cpu: 2, gpu: {gpu}, systemMemory: 16Gi}}\n"
    return text


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository laid out like a fork of this template, `main` checked in."""
    r = tmp_path / "origin"
    copy_example(r)
    shutil.copytree(ROOT / "tms_stack", r / "tms_stack", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", r / "pyproject.toml")
    git(r, "init", "-q", "-b", "main")
    git(r, "add", "-A")
    git(r, "commit", "-q", "-m", "main")
    return r


def branch(repo: Path, name: str, files: dict[str, str], start: str = "main") -> None:
    git(repo, "checkout", "-q", "-b", name, start)
    for rel, text in files.items():
        (repo / rel).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", name)
    git(repo, "checkout", "-q", "main")


def checkout(repo: Path, ref: str, dest: Path) -> Path:
    git(repo, "worktree", "add", "-q", "--detach", str(dest), ref)
    return dest


def review(base: Path, pr: Path, out: Path) -> tuple[int, str, dict, str]:
    proc = subprocess.run([str(SCRIPT), str(base), str(pr), str(out)], capture_output=True, text=True,
                          timeout=900)
    assert (out / "exit-code").read_text().strip() == str(proc.returncode), proc.stderr
    return (proc.returncode, (out / "check.txt").read_text(), json.loads((out / "check.json").read_text()),
            (out / "plan.md").read_text())


def own_code_check(pr: Path) -> int:
    """What the old review.yml did: the PR's own tms_stack/ judging the PR."""
    env = {**os.environ, "PYTHONPATH": str(pr)}
    code = "import sys; sys.argv[0] = 'tms'; from tms_stack.cli import main; main()"
    proc = subprocess.run([sys.executable, "-c", code, "check", str(pr)], cwd=pr, env=env,
                          capture_output=True, text=True)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode


def test_a_pr_that_disables_a_rule_in_tool_code_is_still_refused(repo: Path, tmp_path: Path) -> None:
    rules = "tms_stack/rules/resources.py"
    code = (repo / rules).read_text()
    assert "if value > getattr(hi, attr):" in code
    allowlist = (repo / "policies/allowlist.yaml").read_text()
    branch(repo, "evil", {
        rules: code.replace("if value > getattr(hi, attr):", "if False:"),
        "policies/allowlist.yaml": allowlist + "    - docker.io/attacker/miner:latest\n",
        "leases/big-gpu.yaml": lease("big-gpu", "team-risk", gpu=8),
    })
    base = checkout(repo, "main", tmp_path / "base")
    pr = checkout(repo, "evil", tmp_path / "pr")
    # The attack works against a checker that runs the PR's code: this test could fail.
    assert own_code_check(pr) == 0
    rc, text, js, plan = review(base, pr, tmp_path / "out")
    assert rc == 1, text
    assert "resources.maximum" in text and "gpu: 8 exceeds the admin maximum 4" in text
    assert any(d["rule"] == "resources.maximum" and d["file"] == "leases/big-gpu.yaml" for d in js["diagnostics"])
    assert "policy violation" in plan and "big-gpu" in plan
    # Both admin-owned edits are called out above everything else.
    admin = plan.index("Admin-owned changes")
    assert admin < plan.index("policy violation") < plan.index("Added leases")
    head = plan[admin:plan.index("policy violation")]
    assert "`tms_stack/rules/resources.py` (changed)" in head and "`policies/allowlist.yaml` (changed)" in head
    assert "`allowlist images + docker.io/attacker/miner:latest`" in head


def test_a_clean_pr_passes(repo: Path, tmp_path: Path) -> None:
    branch(repo, "clean", {"leases/small-one.yaml": lease("small-one", "team-nlp")})
    rc, text, js, plan = review(checkout(repo, "main", tmp_path / "base"),
                                checkout(repo, "clean", tmp_path / "pr"), tmp_path / "out")
    assert rc == 0, text
    assert js["ok"] is True and js["summary"]["leases"] == 7
    assert ":white_check_mark:" in plan and "1 lease(s) added" in plan and "small-one" in plan
    assert "Admin-owned" not in plan


def test_nothing_from_the_pr_checkout_is_imported_or_run(repo: Path, tmp_path: Path) -> None:
    """A PR that plants code where Python might pick it up: sitecustomize, a .pth, a tms_stack whose
    import leaves a mark. None of it may run."""
    mark = tmp_path / "pwned"
    payload = f"import pathlib; pathlib.Path({str(mark)!r}).write_text('ran')\n"
    init = (repo / "tms_stack" / "__init__.py").read_text()
    branch(repo, "plant", {"tms_stack/__init__.py": payload + init, "sitecustomize.py": payload,
                           "usercustomize.py": payload, "leases/evil.pth": "import os; " + payload})
    pr = checkout(repo, "plant", tmp_path / "pr")
    rc, text, js, plan = review(checkout(repo, "main", tmp_path / "base"), pr, tmp_path / "out")
    assert not mark.exists()
    assert rc == 1 and "leases/evil.pth" in text     # files.layout: not a lease file


def test_merge_queue_catches_two_branches_that_each_pass(repo: Path, tmp_path: Path) -> None:
    """Same alias in two PRs, and a budget that each PR alone respects: only checking the merged
    result (merge_group) catches them."""
    branch(repo, "pr-a", {"leases/vision-a.yaml": lease("vision-a", "team-vision", gpu=4, alias="shared-alias")})
    branch(repo, "pr-b", {"leases/vision-b.yaml": lease("vision-b", "team-vision", gpu=4, alias="shared-alias")})
    base = checkout(repo, "main", tmp_path / "base")
    for name in ("pr-a", "pr-b"):
        rc, text, _, _ = review(base, checkout(repo, name, tmp_path / name), tmp_path / f"out-{name}")
        assert rc == 0, f"{name} alone: {text}"
    # The merge queue's commit: main + pr-a + pr-b.
    git(repo, "checkout", "-q", "-b", "merge-group", "main")
    git(repo, "merge", "-q", "--no-edit", "pr-a")
    git(repo, "merge", "-q", "--no-edit", "pr-b")
    git(repo, "checkout", "-q", "main")
    rc, text, js, plan = review(base, checkout(repo, "merge-group", tmp_path / "merged"), tmp_path / "out-merged")
    assert rc == 1, text
    rules = {d["rule"] for d in js["diagnostics"] if d["severity"] == "error"}
    assert "budget.gpus" in rules, text
    assert rules & {"names.clash", "names.owner", "names.unique"}, text
    assert "shared-alias" in text


def test_usage_line(tmp_path: Path) -> None:
    proc = subprocess.run([str(SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 64
    assert proc.stderr.strip() == "usage: scripts/trusted-review.sh <base-dir> <pr-dir> <out-dir>"


def test_the_review_judges_against_the_base_lock_and_refuses_compiled_files(repo: Path, tmp_path: Path) -> None:
    """Issue 21: a hand-written lock that is a stable placement (plain `tms check` passes it) and a
    `.pyc` Python would import instead of the reviewed source are refused by the review, which
    passes its base to check; running the base's code leaves no bytecode in the base checkout."""
    lock = (repo / "pools/placement.lock.yaml").read_text()
    widened = lock.replace("backends: [python]", "backends: [python, tensorrt]")
    assert widened != lock
    git(repo, "checkout", "-q", "-b", "evil-lock", "main")
    (repo / "pools/placement.lock.yaml").write_text(widened)
    (repo / "tms_stack/__pycache__").mkdir()
    (repo / "tms_stack/__pycache__/check.cpython-311.pyc").write_bytes(b"\x00")
    git(repo, "add", "-f", "-A")
    git(repo, "commit", "-q", "-m", "evil-lock")
    git(repo, "checkout", "-q", "main")
    base = checkout(repo, "main", tmp_path / "base")
    pr = checkout(repo, "evil-lock", tmp_path / "pr")
    assert own_code_check(pr) == 0  # without the base, the lock passes
    rc, text, js, plan = review(base, pr, tmp_path / "out")
    assert rc == 1, text
    rules = {(d["rule"], d["file"]) for d in js["diagnostics"]}
    assert ("lock.derived", "pools/placement.lock.yaml") in rules, text
    assert ("files.generated", "tms_stack/__pycache__") in rules, text
    assert "tms pool lock --base" in text
    assert "`tms_stack/__pycache__/check.cpython-311.pyc` (added)" in plan
    assert not list(base.rglob("__pycache__")), "the review wrote bytecode into the base checkout"
