"""The CLI is a package with explicit registration, and the core is free of CLI code (issue 14:
`tms_stack/cli.py` registered command modules by importing them and ignoring
`ModuleNotFoundError`, and the `cli_*.py` files sat among the core modules).

Also: the exit codes in code are the one table of docs/cli.md."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import typer

from tms_stack.cli import app, common

PACKAGE = Path(__file__).resolve().parents[2] / "tms_stack"
DOCS = PACKAGE.parent / "docs" / "cli.md"
CLI_LIBRARIES = {"typer", "click", "rich"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
            if node.module.startswith("tms_stack.cli"):
                found.add("tms_stack.cli")
    return found


def test_no_cli_modules_among_the_core() -> None:
    assert not (PACKAGE / "cli.py").exists()
    assert not list(PACKAGE.glob("cli_*.py"))
    assert (PACKAGE / "cli" / "__init__.py").is_file()


def test_the_core_imports_no_cli_code() -> None:
    """Outside tms_stack/cli/, nothing imports typer/click/rich or the CLI package: the CLI is an edge."""
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        if "cli" in path.relative_to(PACKAGE).parts[:1]:
            continue
        bad = _imports(path) & (CLI_LIBRARIES | {"tms_stack.cli"})
        if bad:
            offenders[str(path.relative_to(PACKAGE))] = sorted(bad)
    assert not offenders, offenders


def test_registration_is_explicit() -> None:
    """No import of the project's modules guarded by `except ImportError/ModuleNotFoundError` in the
    CLI: a missing module is a crash at import, not a command that silently disappears."""
    for path in (PACKAGE / "cli").glob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Try):
                # Only the project's own modules: a third-party import may be optional.
                guarded = any(isinstance(n, ast.ImportFrom) and (n.module or "").startswith("tms_stack")
                              or isinstance(n, ast.Import) and any(a.name.startswith("tms_stack") for a in n.names)
                              for stmt in node.body for n in ast.walk(stmt))
                caught = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
                assert not (guarded and caught & {"ImportError", "ModuleNotFoundError"}), (path.name, caught)
    # Every command module under tms_stack/cli/ with a register() contributes a command to the tree.
    registered = {c.callback.__module__ for c in _commands(typer.main.get_command(app))}
    modules = {f"tms_stack.cli.{p.stem}" for p in (PACKAGE / "cli").glob("*.py")
               if re.search(r"^def register\(", p.read_text(), re.M)}
    assert modules and modules <= registered, sorted(modules - registered)


def _commands(cmd: object) -> list:  # type: ignore[type-arg]
    subs = getattr(cmd, "commands", None)
    return [cmd] if subs is None else [c for sub in subs.values() for c in _commands(sub)]


def test_exit_codes_are_the_documented_table() -> None:
    section = DOCS.read_text().split("## Exit codes", 1)[1]
    rows = dict(re.findall(r"^\| *(\d) *\| *([^|]+?) *\|$", section, re.M))
    assert set(rows) == {"0", "1", "2", "3"}, rows
    assert (common.EXIT_OK, common.EXIT_FINDINGS, common.EXIT_USAGE, common.EXIT_CONFLICT) == (0, 1, 2, 3)
    assert "findings" in rows["1"] and "usage" in rows["2"] and "exists" in rows["3"], rows
