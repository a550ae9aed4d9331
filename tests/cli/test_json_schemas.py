"""docs/cli.md documents the keys of every `-o json` document; this runs each command and compares.

A command that gains `-o` without a row in the table fails here, and so does a key added, renamed
or dropped on either side."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tests.conftest import copy_example
from tms_stack.cli import app

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
NOW = ["--now", "2026-11-22T00:00:00Z"]
IMAGE = "nvcr.io/nvidia/tritonserver:99.01-py3"
M = "name=m,uri=model://s3-models/m"

# In this order on one repository: the verbs build on each other (create, then rename, then release).
RUNS: list[tuple[str, list[str]]] = [
    ("tms check", ["check"]),
    ("tms render", ["render", "--out", "{tmp}/out", *NOW]),
    ("tms prune", ["prune", "--dry-run", *NOW]),
    ("tms plan", ["plan", "--base", "HEAD", *NOW]),
    ("tms plan --targets", ["plan", "--base", "HEAD", "--targets", "--stack", "example", *NOW]),
    ("tms doctor", ["doctor", "--offline", *NOW]),
    ("tms init", ["init", "{tmp}/new-fleet"]),
    ("tms codeowners", ["codeowners", "--root", "{tmp}/new-fleet"]),
    ("tms lease migrate", ["lease", "migrate", "--root", "{tmp}/new-fleet"]),
    ("tms lease create", ["lease", "create", "json-lease", "--owner", "team-risk", "-m", M]),
    ("tms lease status", ["lease", "status", "json-lease"]),
    ("tms lease list", ["lease", "list", *NOW]),
    ("tms lease renew", ["lease", "renew", "json-lease"]),
    ("tms lease name create", ["lease", "name", "create", "jn", "json-lease"]),
    ("tms lease name move", ["lease", "name", "move", "jn", "json-lease", "ranker"]),
    ("tms lease name delete", ["lease", "name", "delete", "jn", "ranker"]),
    ("tms lease name list", ["lease", "name", "list"]),
    ("tms lease release", ["lease", "release", "json-lease"]),
    ("tms pool create", ["pool", "create", "json-pool-x", "-q", "4", "--owner", "team-risk"]),
    ("tms pool list", ["pool", "list"]),
    ("tms pool status", ["pool", "status", "shared-t4-pool"]),
    ("tms pool delete", ["pool", "delete", "json-pool-x"]),
    ("tms pool lock", ["pool", "lock", "--no-learn"]),
    ("tms pool rebalance", ["pool", "rebalance"]),
    ("tms allowlist add", ["allowlist", "add", IMAGE]),
    ("tms allowlist rm", ["allowlist", "rm", IMAGE]),
    ("tms allowlist list", ["allowlist", "list"]),
    ("tms shard list", ["shard", "list"]),
    ("tms shard moves", ["shard", "moves", "--base", "HEAD"]),
]


def documented() -> dict[str, tuple[str, set[str]]]:
    """command -> (document kind, its top-level keys; for 'object by ...': each value's keys)."""
    text = DOC.read_text()
    section = text.split("## JSON documents", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, set[str]]] = {}
    for line in section.splitlines():
        m = re.match(r"\| `(tms [^`]+)` \| ([^|]+) \| (.+) \|$", line)
        if not m:
            continue
        keys = m.group(3)
        keys = keys.split("each:", 1)[1] if "each:" in keys else keys
        while re.search(r"\([^()]*\)", keys):  # nested key lists and remarks are not top-level keys
            keys = re.sub(r"\([^()]*\)", "", keys)
        rows[m.group(1)] = (m.group(2).strip(), set(re.findall(r"`(\w+)`", keys)))
    return rows


def _json_commands() -> set[str]:
    found: set[str] = set()

    def walk(cmd: object, path: tuple[str, ...]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs is not None:
            for name, sub in subs.items():
                walk(sub, (*path, name))
        elif any(p.name == "output" for p in cmd.params):  # type: ignore[attr-defined]
            found.add(" ".join(("tms", *path)))

    walk(typer.main.get_command(app), ())
    return found - {"tms leases"}  # the alias of `tms lease list`


def test_every_json_command_is_documented_and_run_here() -> None:
    rows = documented()
    assert _json_commands() <= set(rows), sorted(_json_commands() - set(rows))
    assert {c for c, _ in RUNS} == set(rows)


def test_the_documented_keys_are_the_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = copy_example(tmp_path / "fleet")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "example"], cwd=repo, check=True)
    monkeypatch.chdir(repo)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    rows = documented()
    for command, args in RUNS:
        args = [a.replace("{tmp}", str(tmp_path)) for a in args]
        if command == "tms lease migrate":  # moves files with git mv: the new fleet, committed
            fleet = tmp_path / "new-fleet"
            subprocess.run(["git", "init", "-q", "-b", "main"], cwd=fleet, check=True)
            subprocess.run(["git", "add", "-A"], cwd=fleet, check=True)
            subprocess.run([*git, "commit", "-qm", "fleet"], cwd=fleet, check=True)
        result = CliRunner().invoke(app, [*args, "-o", "json"])
        assert result.exit_code == 0, (command, result.stdout, result.stderr)
        data = json.loads(result.stdout)
        kind, keys = rows[command]
        if kind == "array of objects":
            assert isinstance(data, list) and data, (command, data)
            actual = set(data[0])
        elif kind.startswith("object by"):
            assert isinstance(data, dict) and data, (command, data)
            actual = set(next(iter(data.values())))
        else:
            assert isinstance(data, dict), (command, data)
            actual = set(data)
        assert actual == keys, f"{command}: documented {sorted(keys)}, printed {sorted(actual)}"
