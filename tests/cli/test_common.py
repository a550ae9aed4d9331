"""The shared CLI conventions (tms_stack/cli/common.py): root rule, --version, no tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import copy_example
from tms_stack.cli import app
from tms_stack.cli.common import EXIT_USAGE, find_root

SRC = str(Path(__file__).resolve().parents[2])


def tms(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run([sys.executable, "-c", "from tms_stack.cli import main; main()", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("tms ")


def test_find_root_walks_up(tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "repo")
    assert find_root(repo / "leases") == repo.resolve()
    assert find_root(tmp_path) is None


def test_plan_unknown_base_shows_gits_message(tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "repo")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@e",
                    "commit", "-qm", "init"], check=True)
    out = tms(repo / "leases", "plan", "--base", "nope", "--now", "2026-11-22T00:00:00Z")
    assert out.returncode == EXIT_USAGE, out
    assert "Traceback" not in out.stderr
    assert "nope" in out.stderr and "error:" in out.stderr


@pytest.mark.parametrize("args", [["render", "-o", "out"], ["prune", "--dry-run"], ["plan"]])
def test_outside_a_repository_is_a_usage_error(tmp_path: Path, args: list[str]) -> None:
    out = tms(tmp_path, *args)
    assert out.returncode == EXIT_USAGE, out
    assert "Traceback" not in out.stderr
    assert "leases/, pools/ or policies/" in out.stderr


def test_prune_from_a_subfolder_uses_the_repository(tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "repo")
    out = tms(repo / "leases", "prune", "--dry-run", "--now", "2026-11-22T00:00:00Z")
    assert out.returncode == 0, out
    assert not (repo / "leases" / "leases").exists()
