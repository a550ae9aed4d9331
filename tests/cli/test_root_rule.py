"""One repository root rule for every command (issue 14: verbs used `--root .` while `check` walked
up, so `cd leases && tms pool lock` wrote a stray `leases/pools/placement.lock.yaml` with exit 0, and
`tms lease list` outside a repository printed nothing with exit 0).

The commands are taken from the click command tree: a new command with `--root` is covered here
without editing this file."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from tests.cli.test_bad_args import _valid_base
from tests.conftest import copy_example
from tms_stack.cli import app

NOW = "2026-11-22T00:00:00Z"


def _leaves(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    subs = getattr(command, "commands", None)
    if subs is None:
        return [(path, command)]
    return [leaf for name, sub in sorted(subs.items()) for leaf in _leaves(sub, (*path, name))]


def _options(command: Any) -> set[str]:
    return {o for p in command.params for o in getattr(p, "opts", [])}


ROOTED = [path for path, cmd in _leaves(typer.main.get_command(app)) if "--root" in _options(cmd)]
STACKED = {path for path, cmd in _leaves(typer.main.get_command(app)) if "--stack" in _options(cmd)}


def _args(path: tuple[str, ...], out: Path) -> list[str]:
    """A valid invocation (the same one test_bad_args uses), with a fixed time where one is taken."""
    extra = {("plan",): ["--base", "HEAD"], ("prune",): ["--dry-run"], ("pool", "lock"): ["--no-learn"],
             ("doctor",): ["--offline"]}.get(path, [])
    now = ["--now", NOW] if "--now" in _options(dict(_leaves(typer.main.get_command(app)))[path]) else []
    return [*path, *_valid_base(path, out), *extra, *now]


def _fleet(where: Path) -> Path:
    repo = copy_example(where)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    # A fixed date: both copies get the same commit id, which the plan prints.
    date = {"GIT_AUTHOR_DATE": "2026-11-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-11-01T00:00:00Z"}
    subprocess.run([*git, "commit", "-qm", "example"], cwd=repo, check=True, env={**os.environ, **date})
    return repo


def _changes(repo: Path) -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=repo,
                          capture_output=True, text=True, check=True).stdout


def test_the_tree_has_the_commands_of_the_issue() -> None:
    names = {" ".join(p) for p in ROOTED}
    assert {"pool lock", "lease list", "lease status", "prune", "render", "plan", "lease create"} <= names


@pytest.mark.parametrize("path", ROOTED, ids=" ".join)
def test_outside_a_repository_every_command_stops_with_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              path: tuple[str, ...]) -> None:
    nowhere = tmp_path / "not-a-repo"
    nowhere.mkdir()
    monkeypatch.chdir(nowhere)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    result = CliRunner().invoke(app, _args(path, tmp_path / "out"))
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert "leases/, pools/ or policies/" in result.stderr and "Traceback" not in result.stderr
    assert list(nowhere.iterdir()) == [], "a command outside a repository wrote into the current folder"


@pytest.mark.parametrize("path", ROOTED, ids=" ".join)
def test_from_a_subfolder_every_command_acts_on_the_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               path: tuple[str, ...]) -> None:
    """The same command from the root and from leases/ (two identical copies): same exit code, same
    output, same files changed, and nothing written under leases/ but lease files."""
    monkeypatch.delenv("KUBECONFIG", raising=False)
    results = []
    for where in ("", "leases"):
        repo = _fleet(tmp_path / f"from-{where or 'root'}" / "fleet")
        monkeypatch.chdir(repo / where)
        result = CliRunner().invoke(app, _args(path, tmp_path / f"out-{where or 'root'}"))
        assert "Traceback" not in result.stdout + result.stderr
        stray = [p for p in (repo / "leases").rglob("*") if p.is_dir() or p.suffix != ".yaml"]
        assert not stray, stray
        tag = where or "root"
        stdout = result.stdout.replace(f"out-{tag}", "OUT").replace(f"from-{tag}", "FROM")
        results.append((result.exit_code, stdout, _changes(repo)))
    assert results[0] == results[1]


def test_pool_lock_from_leases_writes_the_repositorys_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's own line: `cd leases && tms pool lock`."""
    repo = _fleet(tmp_path / "fleet")
    (repo / "pools" / "placement.lock.yaml").unlink()
    monkeypatch.chdir(repo / "leases")
    result = CliRunner().invoke(app, ["pool", "lock", "--no-learn"])
    assert result.exit_code == 0, result.stderr
    assert (repo / "pools" / "placement.lock.yaml").is_file()
    assert not (repo / "leases" / "pools").exists()


def test_every_command_that_renders_or_reads_the_cluster_takes_stack() -> None:
    """Issue 14: `--stack` on every command that renders or reads the cluster."""
    tree = dict(_leaves(typer.main.get_command(app)))
    renders = {("render",), ("plan",), ("prune",), ("doctor",)}
    reads_cluster = {p for p, cmd in tree.items() if "--kubeconfig" in _options(cmd)}
    assert reads_cluster >= {("lease", "status"), ("lease", "list"), ("doctor",)}
    assert renders | reads_cluster <= STACKED, sorted(renders | reads_cluster - STACKED)
