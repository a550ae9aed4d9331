"""Every command, fed bad arguments and bad files: one line `error: ...` on stderr naming what to
fix, the documented exit code (docs/cli.md), and never a traceback (issue 14).

The cases are generated from the click command tree, so a new command or option is covered
without editing this file."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from tests.conftest import copy_example
from tms_stack.cli import app

EXIT_USAGE = 2


class _AnyStr(str):
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)

    __hash__ = str.__hash__


ANY_STR = _AnyStr()


def _leaves(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    subs = getattr(command, "commands", None)
    if subs is None:
        yield path, command
        return
    for name, sub in sorted(subs.items()):
        yield from _leaves(sub, (*path, name))


COMMANDS = list(_leaves(typer.main.get_command(app)))


def _options(command: Any) -> list[Any]:
    return [p for p in command.params if p.param_type_name == "option" and not p.hidden]


def _kind(param: Any) -> str:
    """int, float, choice or other, from typer's description of the option's annotation."""
    desc = param.type_descriptor
    if getattr(desc, "is_choice", False):
        return "choice"
    annotation = getattr(desc, "annotation", None)
    return {int: "int", float: "float"}.get(annotation, "other")  # type: ignore[call-overload]


def _cases() -> Iterator[Any]:
    """(command path, arguments, what stderr must mention)."""
    for path, cmd in COMMANDS:
        name = " ".join(path)
        yield pytest.param(path, ["--no-such-option"], "No such option", id=f"{name}: unknown option")
        arguments = [p for p in cmd.params if p.param_type_name == "argument"]
        if not arguments:
            yield pytest.param(path, ["extra-word"], "unexpected extra argument", id=f"{name}: extra argument")
        if any(a.required for a in arguments):
            yield pytest.param(path, [], "Missing argument", id=f"{name}: missing argument")
        if arguments:
            yield pytest.param(path, ["word\n"], "control character", id=f"{name}: argument with a newline")
        for opt in _options(cmd):
            flag = opt.opts[0]
            if opt.is_flag or opt.count:
                continue
            yield pytest.param(path, [flag], "requires an argument", id=f"{name} {flag}: no value")
            yield pytest.param(path, [flag, "value\n"], "control character", id=f"{name} {flag}: trailing newline")
            kind = _kind(opt)
            if kind in ("int", "float"):
                yield pytest.param(path, [flag, "many"], flag, id=f"{name} {flag}: not a number")
            elif kind == "choice":
                yield pytest.param(path, [flag, "bogus"], flag, id=f"{name} {flag}: not a choice")
        names = {o.opts[0] for o in _options(cmd)}
        if "--output" in names:
            yield pytest.param(path, ["-o", "yaml"], "text|json", id=f"{name}: -o yaml")
            yield pytest.param(path, ["-o", "json", "--no-such-option"], "JSON", id=f"{name}: -o json, bad option")
        if "--root" in names:
            yield pytest.param(path, ["--root", "/no/such/folder"], "no such folder", id=f"{name}: --root missing")
        if "--root" in names and "--output" in names:
            # An error found after parsing (not by click) is JSON too when JSON was asked.
            yield pytest.param(path, ["-o", "json", "--root", "/no/such/folder"], "JSON:no such folder",
                               id=f"{name}: -o json, --root missing")
        if "--now" in names:
            yield pytest.param(path, ["--now", "yesterday"], "is not a time", id=f"{name}: --now yesterday")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = copy_example(tmp_path_factory.mktemp("bad-args") / "fleet")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "example"], cwd=repo, check=True)
    return repo


def _valid_base(path: tuple[str, ...], out: Path) -> list[str]:
    """A valid invocation's arguments and required options, so that the bad one is what is reported."""
    image = "nvcr.io/nvidia/tritonserver:24.08-py3"
    return {
        ("lease", "create"): ["-m", "name=m,uri=model://s3-models/m", "--owner", "me"],
        ("lease", "renew"): ["ranker"], ("lease", "release"): ["ranker"], ("lease", "status"): ["ranker"],
        ("lease", "name", "create"): ["zz", "ranker"], ("lease", "name", "move"): ["fraud", "ranker", "--force"],
        ("lease", "name", "delete"): ["fraud", "--force"],
        ("pool", "status"): ["shared-t4-pool"], ("pool", "delete"): ["shared-t4-pool"],
        ("pool", "create"): ["new-pool-x", "-q", "4"], ("allowlist", "add"): [image], ("allowlist", "rm"): [image],
        ("pool", "merge-driver"): ["a", "b", "c", "d"], ("render",): ["--out", str(out)],
        ("init",): [str(out.parent / "init-fleet")],
    }.get(path, [])


def _one_error_line(result: Any) -> str:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    # `note: ...` lines (no cluster configured) are not the error; the error is one line.
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("note: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize(("path", "args", "says"), list(_cases()))
def test_bad_arguments(fleet: Path, monkeypatch: pytest.MonkeyPatch, path: tuple[str, ...], args: list[str],
                       says: str) -> None:
    monkeypatch.chdir(fleet)
    before = subprocess.run(["git", "status", "--porcelain"], cwd=fleet, capture_output=True, text=True).stdout
    base = [] if "Missing argument" in says else _valid_base(path, fleet.parent / "out")
    result = CliRunner().invoke(app, [*path, *base, *args])
    assert result.exit_code == EXIT_USAGE, (result.exit_code, result.stdout, result.stderr)
    if says.startswith("JSON"):  # JSON was asked: the error is one JSON document on stdout, none on stderr
        assert json.loads(result.stdout) == {"error": ANY_STR, "exit_code": EXIT_USAGE}, result.stdout
        assert (says.partition(":")[2] or "No such option") in json.loads(result.stdout)["error"]
        assert "error:" not in result.stderr and "Traceback" not in result.stderr
        return
    line = _one_error_line(result)
    assert says.lower() in line.lower(), line
    assert result.stdout == "", result.stdout
    after = subprocess.run(["git", "status", "--porcelain"], cwd=fleet, capture_output=True, text=True).stdout
    assert after == before, "a refused command changed the repository"


def test_the_matrix_covers_every_command() -> None:
    """The tree walk found the commands (a broken walk would make the matrix vacuous)."""
    found = {" ".join(p) for p, _ in COMMANDS}
    assert {"check", "render", "plan", "prune", "lease create", "lease name move", "pool lock",
            "allowlist add"} <= found
    assert len(list(_cases())) > 4 * len(found)


# --- bad files ------------------------------------------------------------------------------------

BROKEN = "kind: Lease\nspec: [unclosed\n"

# Commands that read the repository, with valid arguments; each must name the broken file.
READERS = [
    ["check"], ["render", "--out", "OUT"], ["prune", "--dry-run"],
    ["lease", "list"], ["lease", "status", "ranker"], ["lease", "renew", "ranker"],
    ["lease", "create", "x-new", "--owner", "me", "-m", "name=m,uri=model://s3-models/m"],
    ["lease", "name", "list"], ["lease", "name", "create", "zz", "ranker"],
    ["pool", "list"], ["pool", "status", "shared-t4-pool"], ["pool", "lock", "--no-learn"], ["pool", "rebalance"],
    ["allowlist", "list"],
]
# Not here: `lease release` deletes its file without reading the others (releasing is how a user gets
# out of a broken state); `allowlist add` edits only policies/allowlist.yaml; `tms plan` reports
# unreadable files inside the markdown it posts (exit 0: the comment must still be written).


# Commands that read the stack file (namespace, settings): a broken one is named, exit 2. (The
# other verbs only edit leases/, pools/ or policies/ and do not read it.)
STACK_READERS = [["check"], ["render", "--out", "OUT"], ["prune", "--dry-run"], ["lease", "list"],
                 ["lease", "status", "ranker"]]
# (`tms doctor` reports a broken stack file as a failed check, exit 1: tests/cli/test_doctor.py.)


@pytest.mark.parametrize("where,args", [(w, a) for w in ("leases/zz-broken.yaml", "pools/zz-broken.yaml",
                                                         "policies/limits.yaml") for a in READERS]
                         + [("Pulumi.example.yaml", a) for a in STACK_READERS],
                         ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_bad_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, args: list[str]) -> None:
    repo = copy_example(tmp_path / "fleet")
    (repo / where).write_text(BROKEN)
    monkeypatch.chdir(repo)
    args = [str(tmp_path / "out") if a == "OUT" else a for a in args]
    as_json = CliRunner().invoke(app, [*args, "-o", "json"])  # the same error, as one JSON document
    assert as_json.exit_code == EXIT_USAGE and "Traceback" not in as_json.stdout + as_json.stderr, as_json.stdout
    doc = json.loads(as_json.stdout)
    if args[0] == "check":  # check's own document (docs/check-json.md) carries its findings
        assert doc["exitCode"] == EXIT_USAGE and where in json.dumps(doc["diagnostics"]), doc
    else:
        assert doc["exit_code"] == EXIT_USAGE and where in doc["error"] and "error" not in as_json.stderr, doc
    result = CliRunner().invoke(app, args)
    if args[0] == "check":  # check reports every finding, one per line, then its summary
        assert result.exit_code == EXIT_USAGE and where in result.stdout, result.stdout
        assert "Traceback" not in result.stdout + result.stderr
        return
    assert result.exit_code == EXIT_USAGE, (result.exit_code, result.stdout, result.stderr)
    line = _one_error_line(result)
    assert where in line, line
    if args[:2] == ["lease", "list"] and not where.startswith("Pulumi."):
        # The readable leases are still listed (issue 14: skipped silently).
        assert "fraud-detector" in result.stdout
    shutil.rmtree(repo)


@pytest.mark.parametrize("args", [["--no-such-option"], ["no-such-command"], ["lease", "no-such-command"]])
def test_bad_root_and_group_arguments(args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == EXIT_USAGE
    assert _one_error_line(result).endswith("--help)")


def test_a_group_without_a_command_shows_its_help() -> None:
    result = CliRunner().invoke(app, ["lease"])
    assert result.exit_code == EXIT_USAGE and "Commands:" in result.stderr and "error:" not in result.stderr


# Files that parse as YAML but are not what their folder holds: every command (from the tree) with
# valid arguments either works or stops with one `error:` line naming the file; never a traceback
# (`tms lease status` hit a KeyError, `tms lease name create` a ValueError, `tms allowlist add` a
# TypeError on such files).
WRONG_SHAPE = {
    "leases/ranker.yaml": "apiVersion: tms-stack/v1\nkind: Lease\nmetadata: 7\nspec: {}\n",
    "policies/allowlist.yaml": "apiVersion: tms-stack/v1\nkind: Allowlist\nspec: 5\n",
    "Pulumi.example.yaml": "config: 5\n",
}
REPO_COMMANDS = [p for p, _ in COMMANDS if p[0] not in ("agent", "agent-key")]


@pytest.mark.parametrize("where", sorted(WRONG_SHAPE))
@pytest.mark.parametrize("path", REPO_COMMANDS, ids=" ".join)
def test_files_of_the_wrong_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str,
                                  path: tuple[str, ...]) -> None:
    repo = copy_example(tmp_path / "fleet")
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "x"], cwd=repo, check=True)
    (repo / where).write_text(WRONG_SHAPE[where])
    monkeypatch.chdir(repo)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    extra = {("plan",): ["--base", "HEAD"], ("doctor",): ["--offline"], ("prune",): ["--dry-run"]}.get(path, [])
    result = CliRunner().invoke(app, [*path, *_valid_base(path, tmp_path / "out"), *extra])
    assert "Traceback" not in result.stdout + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 1, 2, 3), result.exit_code
    if result.exit_code and path not in {("check",), ("doctor",), ("plan",)}:  # those report in their output
        _one_error_line(result)  # (the refusal may be of the valid arguments themselves, e.g. owner 'me')
