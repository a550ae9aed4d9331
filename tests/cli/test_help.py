"""`--help` of every command: readable at 80 columns, with examples that match the command tree,
option names never cut, and no Python type names (issue 14)."""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from tms_stack.cli import app
from tms_stack.cli.examples import EXAMPLES

ROOT = typer.main.get_command(app)


def _leaves(cmd: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    subs = getattr(cmd, "commands", None)
    if subs is None:
        return [(path, cmd)]
    return [leaf for name, sub in sorted(subs.items()) for leaf in _leaves(sub, (*path, name))]


LEAVES = _leaves(ROOT)
GROUPS = [(), ("lease",), ("lease", "name"), ("pool",), ("allowlist",)]


def _help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=80, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("path", [p for p, _ in LEAVES] + GROUPS, ids=lambda p: " ".join(p) or "tms")
def test_help_fits_80_columns_and_names_options_whole(path: tuple[str, ...]) -> None:
    text = _help(path)
    long = [line for line in text.splitlines() if len(line) > 80]
    assert not long, long
    assert not re.search(r"<(list\[|bool>|str>|int>|path>)", text), text
    # The description reads as prose: no docstring indentation left inside it ("the program     entry").
    description = text.split("Examples:", 1)[0].split("\n\n", 1)[-1]
    assert not re.search(r"\S {3,}\S", description.split("\nOptions:", 1)[0].split("\nCommands:", 1)[0]), text
    # An argument is named once ("DIR  a new folder", not "DIR DIR").
    assert not re.search(r"(?m)^  ([A-Z]+) \1\b", text), text
    cmd = dict(LEAVES).get(path)
    if cmd is not None:
        for param in cmd.params:
            if param.param_type_name == "option" and not param.hidden:
                for opt in param.opts:
                    assert re.search(rf"(^|[\s,]){re.escape(opt)}([\s,=]|$)", text, re.M), (opt, text)


@pytest.mark.parametrize(("path", "cmd"), LEAVES, ids=lambda p: " ".join(p) if isinstance(p, tuple) else "")
def test_every_command_shows_examples(path: tuple[str, ...], cmd: Any) -> None:
    text = _help(path)
    assert "Examples:" in text and f"tms {' '.join(path)}" in text.split("Examples:", 1)[1], text


def _resolve(words: list[str]) -> tuple[Any, list[str]]:
    cmd, rest = ROOT, list(words)
    while getattr(cmd, "commands", None) is not None and rest and rest[0] in cmd.commands:
        cmd, rest = cmd.commands[rest.pop(0)], rest
    return cmd, rest


@pytest.mark.parametrize("key", sorted(EXAMPLES))
def test_examples_use_real_commands_and_options(key: str) -> None:
    """Each example names this command, and only options the command has."""
    joined = "\n".join(EXAMPLES[key]).replace("\\\n", " ")
    for line in joined.splitlines():
        for segment in re.split(r"&&|\|", line):  # `tms ... && git ...`, `tms ... | grep ...`
            words = shlex.split(segment)
            if words[:1] == ["tms"]:
                check(key, line, words[1:])
    assert max(len(x) for x in EXAMPLES[key]) <= 74, key


def check(key: str, line: str, words: list[str]) -> None:
    cmd, rest = _resolve(words)
    assert getattr(cmd, "commands", None) is None and cmd.name == key.split()[-1], (key, line)
    known = {o for p in cmd.params for o in getattr(p, "opts", [])} | {"--help"}
    used = {w.split("=", 1)[0] for w in rest if w.startswith("-")}
    assert used <= known, (key, line, used - known)


# --- issue 26: -h, whole summaries, internal commands hidden, one placeholder style ---------------

def test_dash_h_is_help_everywhere() -> None:
    for path in [(), ("lease",), ("lease", "create"), ("pool", "status"), ("init",)]:
        short = CliRunner().invoke(app, [*path, "-h"], terminal_width=80, env={"COLUMNS": "80"})
        assert short.exit_code == 0, short.stderr
        assert short.stdout == _help(path)


def test_top_level_help_shows_whole_summaries_and_hides_the_pod_commands() -> None:
    text = _help(())
    listed = text.split("Commands:", 1)[1]
    names = re.findall(r"(?m)^  (\S+)", listed)
    assert "agent" not in names and "agent-key" not in names, names
    assert {"check", "render", "plan", "prune", "doctor", "init", "version", "lease", "pool"} <= set(names)
    assert "..." not in listed, listed
    flat = " ".join(listed.split())
    for name in names:
        summary = ROOT.commands[name].get_short_help_str(limit=10_000)
        assert " ".join(summary.split()) in flat, (name, summary)
    # Hidden, not gone: the pods run them.
    assert CliRunner().invoke(app, ["agent-key", "--help"]).exit_code == 0


@pytest.mark.parametrize("path", [p for p, _ in LEAVES] + GROUPS, ids=lambda p: " ".join(p) or "tms")
def test_placeholders_are_one_style(path: tuple[str, ...]) -> None:
    """NAME for a required argument, [NAME] optional, NAME... repeated, INTEGER/TEXT for option values."""
    text = _help(path)
    usage = text.splitlines()[0]
    assert "{" not in usage and not re.search(r"\[[a-z]", usage), usage
    assert "INT RANGE" not in text and "FLOAT RANGE" not in text, text
    assert not re.search(r"(?m)^  [A-Z_]+ TEXT\b", text), text  # an argument's name says what it is
