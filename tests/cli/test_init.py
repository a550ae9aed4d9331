"""`tms init DIR`: a fleet repository from package data that passes `tms check`, takes a lease,
has workflows derived from this repository's own (pinned tms-stack, no tool-repository paths,
actionlint-clean) and refuses a non-empty folder with exit 3."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.lifecycle.test_workflows import _actionlint
from tms_stack.commands.scaffold import DeriveError, derive_all, derive_workflow

TMS = str(ROOT / ".venv" / "bin" / "tms")


def tms(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([TMS, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "NO_COLOR": "1"})
    assert "Traceback" not in out.stdout + out.stderr
    return out


def test_derived_files_match_this_repository() -> None:
    """Edit a workflow, CODEOWNERS or .gitattributes, and this fails until
    `python tools/derive_scaffold.py` is run (the scaffold must not drift from the template)."""
    derived = ROOT / "tms_stack" / "commands" / "scaffold" / "derived"
    expected = derive_all(ROOT)
    stored = {p.relative_to(derived).as_posix() for p in derived.rglob("*") if p.is_file()}
    assert stored == set(expected)
    for rel, text in expected.items():
        assert (derived / rel).read_text() == text, f"{rel} drifted: run python tools/derive_scaffold.py"


def test_derivation_refuses_what_a_fleet_does_not_have() -> None:
    workflow = "jobs:\n  x:\n    steps:\n      - run: ./scripts/trusted-review.sh a b c\n"
    with pytest.raises(DeriveError, match=r"review.yml: `- run: ./scripts/trusted-review.sh a b c`"):
        derive_workflow("review.yml", workflow)
    with pytest.raises(DeriveError, match=r"`- run: ./base/scripts/other.sh`"):
        derive_workflow("review.yml", workflow.replace("./scripts/trusted-review.sh a b c", "./base/scripts/other.sh"))
    # The tool's own test job goes; the others stay.
    text = derive_workflow("review.yml", "jobs:\n  check:\n    steps:\n      - run: ./scripts/bootstrap.sh\n"
                                         "  test:\n    steps:\n      - run: make test\n")
    assert "  check:" in text and "  test:" not in text and ".venv/bin/pip install -r requirements.txt" in text


def test_init_scaffolds_a_fleet_that_checks_and_takes_a_lease(tmp_path: Path) -> None:
    fleet = tmp_path / "my-fleet"
    out = tms(tmp_path, "init", str(fleet), "--stack", "prod", "--namespace", "ml-serving", "-o", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["toolSpec"] == "tms-stack==0.1.0"
    files = {p.relative_to(fleet).as_posix() for p in fleet.rglob("*") if p.is_file() and ".git" not in p.parts}
    assert files == set(doc["files"]) == {
        ".gitattributes", ".gitignore", ".github/CODEOWNERS", ".github/workflows/deploy.yml",
        ".github/workflows/prune.yml", ".github/workflows/review.yml", ".github/workflows/review-comment.yml",
        "Pulumi.prod.yaml", "Pulumi.yaml", "README.md", "leases/my-team/.gitkeep", "pools/.gitkeep",
        "policies/allowlist.yaml", "policies/limits.yaml", "policies/repositories.yaml", "program/__main__.py",
        "requirements.txt"}
    for rel in files:
        text = (fleet / rel).read_text()
        assert not re.search(r"@[A-Z_]+@", text), f"{rel}: placeholder left"
    assert yaml.safe_load((fleet / "Pulumi.prod.yaml").read_text())["config"]["tms-stack:namespace"] == "ml-serving"
    assert yaml.safe_load((fleet / "Pulumi.yaml").read_text())["main"] == "program/"
    compile((fleet / "program" / "__main__.py").read_text(), "__main__.py", "exec")
    assert (fleet / "requirements.txt").read_text().splitlines()[-1] == "tms-stack==0.1.0"
    for wf in ("review", "deploy", "prune"):
        text = (fleet / ".github" / "workflows" / f"{wf}.yml").read_text()
        assert "pip install -r " in text and "scripts/" not in text
        assert "make test" not in text
    assert "|| 'prod'" in (fleet / ".github" / "workflows" / "deploy.yml").read_text()
    assert "merge=tms-lock" in (fleet / ".gitattributes").read_text()
    lint = subprocess.run([_actionlint(), *map(str, sorted((fleet / ".github" / "workflows").glob("*.yml")))],
                          capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    # CODEOWNERS is generated from the fleet's own policies (owner folders) and names only paths a
    # fleet has: `tms check` finds it in step.
    owners_text = (fleet / ".github" / "CODEOWNERS").read_text()
    patterns = [line.split()[0] for line in owners_text.splitlines() if line.strip() and not line.startswith("#")]
    assert "/leases/my-team/" in patterns and "/tms_stack/" not in patterns
    for pattern in patterns:
        # The lock is written by `tms pool lock` once a pool exists; its line keeps it approver-free.
        if pattern not in ("*", "/pools/placement.lock.yaml"):
            assert list(fleet.glob(pattern.strip("/"))), f"CODEOWNERS names {pattern}, which a fleet does not have"
    assert "/leases/my-team/ @your-org/my-team" in [" ".join(line.split()) for line in owners_text.splitlines()]
    assert tms(fleet, "codeowners", "--check").returncode == 0
    # The repository exists, on the branch the workflows run on (issue 26: git's default was master).
    assert doc["branch"] == "main"
    assert subprocess.run(["git", "symbolic-ref", "HEAD"], cwd=fleet, capture_output=True, text=True,
                          check=True).stdout.strip() == "refs/heads/main"
    assert "git init" not in " ".join(doc["next"])
    # The stack runs the agent image released with this version (a digest when this is a release
    # build: tests/lifecycle/test_release_install.py).
    from tms_stack.models.release import default_agent_image
    assert doc["agentImage"] == default_agent_image()
    assert yaml.safe_load((fleet / "Pulumi.prod.yaml").read_text())["config"]["tms-stack:agentImage"] == doc["agentImage"]
    # CODEOWNERS names only what a fleet has (or will: the lock appears with the first pool).
    owned = [line.split()[0] for line in (fleet / ".github" / "CODEOWNERS").read_text().splitlines()
             if line.strip() and not line.startswith("#") and line.split()[0] != "*"]
    for path in owned:
        matches = list(fleet.glob(path.strip("/"))) if "*" in path else [fleet / path.strip("/")]
        assert path == "/pools/placement.lock.yaml" or any(m.exists() for m in matches), path
    assert "/requirements.txt" in owned and "/program/" in owned and "/tms_stack/" not in owned

    assert tms(fleet, "check").returncode == 0
    # The fleet README's lease example, as an engineer runs it in the new fleet (issue 26: it
    # named model://REPOSITORY/PATH, which an unedited fleet refuses).
    readme = (fleet / "README.md").read_text().split("## Add a lease", 1)[1]
    block = re.search(r"```bash\n(.*?)```", readme, re.S)
    assert block
    (create_line,) = [line for line in block.group(1).splitlines() if line.startswith("tms lease create ")]
    create = tms(fleet, *shlex.split(create_line)[1:])
    assert create.returncode == 0, create.stdout + create.stderr
    check = tms(fleet, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "1 lease(s)" in check.stdout
    # by-owner layout: the lease went into its owner's folder, as the README's `git add` says.
    assert (fleet / "leases" / "my-team" / "my-model.yaml").is_file()
    assert "git add leases/my-team/my-model.yaml" in (fleet / "README.md").read_text()


def test_init_refuses_a_non_empty_folder_with_exit_3(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine\n")
    out = tms(tmp_path, "init", str(taken))
    assert out.returncode == 3
    assert out.stderr == f"error: {taken} is not empty: tms init writes into a new or empty folder only\n"
    assert sorted(p.name for p in taken.iterdir()) == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    assert tms(tmp_path, "init", str(tmp_path / "file")).returncode == 3
    json_out = tms(tmp_path, "init", str(taken), "-o", "json")
    assert json_out.returncode == 3 and json.loads(json_out.stdout)["exit_code"] == 3
    # An empty folder is fine; a bad stack name is a usage error (2).
    (tmp_path / "empty").mkdir()
    assert tms(tmp_path, "init", str(tmp_path / "empty")).returncode == 0
    assert (tmp_path / "empty" / ".git").is_dir()
    bad = tms(tmp_path, "init", str(tmp_path / "new"), "--stack", "Prod\n")
    assert bad.returncode == 2 and "--stack" in bad.stderr and not (tmp_path / "new").exists()


def test_init_pins_the_running_version_or_the_flag_and_an_index(tmp_path: Path) -> None:
    from tms_stack import __version__

    out = tms(tmp_path, "init", str(tmp_path / "a"), "-o", "json")
    assert json.loads(out.stdout)["toolSpec"] == f"tms-stack=={__version__}"  # an editable install: the index
    git_spec = f"tms-stack @ git+https://github.com/acme/tms-stack@v{__version__}"
    out = tms(tmp_path, "init", str(tmp_path / "b"), "--tool-spec", git_spec,
              "--index-url", "https://packages.example.com/simple/", "-o", "json")
    assert out.returncode == 0, out.stderr
    lines = (tmp_path / "b" / "requirements.txt").read_text().splitlines()
    assert lines[-2:] == ["--index-url https://packages.example.com/simple/", git_spec]
    # Credentials never go into the repository.
    bad = tms(tmp_path, "init", str(tmp_path / "c"), "--index-url", "https://user:secret@packages.example.com/simple/")
    assert bad.returncode == 2 and "without credentials" in bad.stderr and not (tmp_path / "c").exists()


def test_default_pin_follows_a_git_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Installed from a git URL (pip's direct_url.json): the fleet pins that URL at that commit."""
    from tms_stack.commands import scaffold

    commit = "1" * 40
    record = json.dumps({"url": "https://github.com/acme/tms-stack", "vcs_info": {"vcs": "git", "commit_id": commit}})

    class Dist:
        def read_text(self, name: str) -> str | None:
            return record if name == "direct_url.json" else None

    monkeypatch.setattr(scaffold, "distribution", lambda name: Dist())
    assert scaffold.default_tool_spec() == f"tms-stack @ git+https://github.com/acme/tms-stack@{commit}"
    record = json.dumps({"url": "file:///work/tms-stack", "dir_info": {"editable": True}})
    assert scaffold.default_tool_spec().startswith("tms-stack==")
