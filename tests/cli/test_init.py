"""`tms init DIR`: a fleet repository from package data that passes `tms check`, takes a lease,
has workflows derived from this repository's own (pinned tms-stack, no tool-repository paths,
actionlint-clean) and refuses a non-empty folder with exit 3."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.lifecycle.test_workflows import _actionlint
from tms_stack.scaffold import DeriveError, derive_all, derive_workflow

TMS = str(ROOT / ".venv" / "bin" / "tms")


def tms(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([TMS, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "NO_COLOR": "1"})
    assert "Traceback" not in out.stdout + out.stderr
    return out


def test_derived_files_match_this_repository() -> None:
    """Edit a workflow, CODEOWNERS or .gitattributes, and this fails until
    `python tools/derive_scaffold.py` is run (the scaffold must not drift from the template)."""
    derived = ROOT / "tms_stack" / "scaffold" / "derived"
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
    files = {p.relative_to(fleet).as_posix() for p in fleet.rglob("*") if p.is_file()}
    assert files == set(doc["files"]) == {
        ".gitattributes", ".gitignore", ".github/CODEOWNERS", ".github/workflows/deploy.yml",
        ".github/workflows/prune.yml", ".github/workflows/review.yml", ".github/workflows/review-comment.yml",
        "Pulumi.prod.yaml", "Pulumi.yaml", "README.md", "leases/.gitkeep", "pools/.gitkeep",
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

    assert tms(fleet, "check").returncode == 0
    # The README's lease example, as an engineer runs it in the new fleet.
    create = tms(fleet, "lease", "create", "my-model", "-m", "name=my_model,uri=https://models.example.com/m.zip",
                 "--owner", "my-team", "--duration", "8h")
    assert create.returncode == 0, create.stdout + create.stderr
    check = tms(fleet, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "1 lease(s)" in check.stdout


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
    bad = tms(tmp_path, "init", str(tmp_path / "new"), "--stack", "Prod\n")
    assert bad.returncode == 2 and "--stack" in bad.stderr and not (tmp_path / "new").exists()
