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
from tms_stack.cli.common import EXIT_USAGE, walk_up_to_root

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
    assert walk_up_to_root(repo / "leases") == repo.resolve()
    assert walk_up_to_root(tmp_path) is None


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


@pytest.mark.parametrize("args", [["render", "--out", "out"], ["prune", "--dry-run"], ["plan"]])
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


def _git_repo(repo: Path) -> None:
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@e",
                    "commit", "-qm", "init"], check=True)


def test_check_reports_a_typo_in_any_stack_file(tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "repo")
    text = (repo / "Pulumi.example.yaml").read_text()
    (repo / "Pulumi.prod.yaml").write_text(text.replace("tms-stack:namespace:", "tms-stack:namspace:"))
    out = tms(repo, "check", "--now", "2026-11-22T00:00:00Z")
    assert out.returncode == 1, out
    assert "Pulumi.prod.yaml:3:3" in out.stdout and "namspace" in out.stdout


def test_plan_renders_every_stack(tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "repo")
    _git_repo(repo)
    text = (repo / "Pulumi.example.yaml").read_text()
    (repo / "Pulumi.prod.yaml").write_text(text.replace("tms-stack:namespace: triton", "tms-stack:namespace: prod"))
    out = tms(repo, "plan", "--base", "HEAD", "--now", "2026-11-22T00:00:00Z")
    assert out.returncode == 0, out
    assert "could not be rendered" not in out.stdout
    assert "prod/" in out.stdout and "0 to create" not in out.stdout


def test_plan_render_error_prints_no_counts(tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "repo")
    _git_repo(repo)
    # The CLI refuses an unknown --stack before planning (exit 2, tests/cli/test_adoption.py); the
    # plan itself still says why it has no object diff when a stack does not render.
    from datetime import UTC, datetime

    from tms_stack.commands.plan import build_plan, render_markdown

    text = render_markdown(build_plan(repo, "HEAD", "nope", datetime(2026, 11, 22, tzinfo=UTC)))
    assert "could not be rendered" in text, text
    assert "to create" not in text


def test_help_shows_no_python_type_names() -> None:
    for args in (["--help"], ["check", "--help"], ["render", "--help"], ["plan", "--help"], ["prune", "--help"]):
        result = CliRunner().invoke(app, args, env={"COLUMNS": "80"})
        assert result.exit_code == 0
        assert "<bool>" not in result.output and "<list[" not in result.output and "<str>" not in result.output
    assert "--install-completion" in CliRunner().invoke(app, ["--help"]).output


def test_check_output_json_is_format_json(tmp_path: Path) -> None:
    import json

    repo = copy_example(tmp_path / "repo")
    out = tms(repo, "check", "-o", "json", "--now", "2026-11-22T00:00:00Z")
    assert out.returncode == 0, out
    assert isinstance(json.loads(out.stdout), dict)


def test_error_is_json_when_json_was_asked(tmp_path: Path) -> None:
    import json

    out = tms(tmp_path, "check", "-o", "json")
    assert out.returncode == EXIT_USAGE
    assert "Traceback" not in out.stderr
    error = json.loads(out.stdout)
    assert error["exit_code"] == EXIT_USAGE and "leases/, pools/ or policies/" in error["error"]
