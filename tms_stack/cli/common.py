"""What every `tms` command shares: the repository root rule, `--stack`, `-o/--output text|json`,
the exit codes (docs/cli.md is the one table) and the handler that turns user errors into one line.

Commands take their options from here so that `--root`, `--stack` and `-o json` mean the same
thing everywhere (issue 14: verbs used `--root .` while `check` walked up)."""

from __future__ import annotations

import json
import subprocess
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

# Typer vendors its own click (typer._click); its exceptions are the ones its main loop handles.
from typer._click.core import Context
from typer._click.exceptions import ClickException, UsageError
from typer.core import TyperGroup

from tms_stack.diagnostics import TmsError

# Exit codes: the one table is docs/cli.md; keep both in step.
EXIT_OK = 0  # done, or check found nothing
EXIT_FINDINGS = 1  # policy findings (check, plan), or a refused edit that check would flag
EXIT_USAGE = 2  # usage error or unreadable input (bad option, broken YAML, unknown stack, git refused)
EXIT_CONFLICT = 3  # conflict: the thing already exists, or the change races another

REPO_DIRS = ("leases", "pools", "policies")


# --- repository root ---------------------------------------------------------------------------

def find_root(start: Path) -> Path | None:
    """The nearest folder from `start` up with leases/, pools/ or policies/ (like git finds .git)."""
    start = start.resolve()
    return next((d for d in (start, *start.parents) if any((d / sub).is_dir() for sub in REPO_DIRS)), None)


def resolve_root(explicit: Path | None = None) -> Path:
    """`--root` when given (it must be a repository), else walk up from the current directory.

    Never falls back to "." silently: `cd leases && tms pool lock` once wrote leases/pools/."""
    if explicit is not None:
        if not explicit.is_dir():
            raise UsageError(f"--root {explicit}: no such folder")
        if not any((explicit / sub).is_dir() for sub in REPO_DIRS):
            raise UsageError(f"--root {explicit}: not a tms-stack repository "
                                   "(no leases/, pools/ or policies/ folder)")
        return explicit
    found = find_root(Path.cwd())
    if found is None:
        raise UsageError(f"no leases/, pools/ or policies/ folder in {Path.cwd()} or above: "
                               "run tms inside a tms-stack repository, or pass --root")
    return found


RootOpt = Annotated[Path | None, typer.Option(
    "--root", metavar="DIR", show_default=False,
    help="repository root (default: the nearest folder up with leases/, pools/ or policies/)")]


# --- stacks --------------------------------------------------------------------------------------

StackOpt = Annotated[str | None, typer.Option(
    "--stack", metavar="NAME", show_default=False,
    help="stack name: reads Pulumi.NAME.yaml (default: the only stack file)")]


def stack_settings(root: Path, stack: str | None):  # type: ignore[no-untyped-def]
    """Namespace and cluster settings of the stack (`StackSettings`); defaults without a stack file."""
    from tms_stack.stack import load_stack_settings

    return load_stack_settings(root, stack)


# --- output --------------------------------------------------------------------------------------

class OutputFormat(str, Enum):
    text = "text"
    json = "json"


# Set when a command was asked for JSON, so that errors come out as JSON too.
_json_requested = False


def _remember_output(value: OutputFormat | None) -> OutputFormat | None:
    global _json_requested
    _json_requested = value is OutputFormat.json
    return value


OutputOpt = Annotated[OutputFormat, typer.Option(
    "--output", "-o", metavar="text|json", callback=_remember_output,
    help="text for people, json for scripts (schemas: docs/cli.md)")]


def wants_json() -> bool:
    return _json_requested


def emit(fmt: OutputFormat, data: Any, text: str | None = None) -> None:
    """Print a result: `data` as one JSON document, or `text` (default: str(data))."""
    if fmt is OutputFormat.json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        typer.echo(text if text is not None else str(data))


def fail(message: str, code: int = EXIT_USAGE, **data: Any) -> NoReturn:
    """A user error: one line on stderr (or a JSON object on stdout when JSON was asked)."""
    if _json_requested:
        typer.echo(json.dumps({"error": message, "exit_code": code, **data}, sort_keys=True, default=str))
    else:
        typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


# --- the central handler ---------------------------------------------------------------------------

def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return "; ".join(lines) if len(lines) <= 3 else "; ".join(lines[:3]) + f" (+{len(lines) - 3} more)"


def describe(exc: BaseException) -> tuple[str, int] | None:
    """(message, exit code) for an error a user caused; None for a bug (which keeps its traceback)."""
    from tms_stack.diagnostics import UnreadableInput

    if isinstance(exc, UnreadableInput):
        return _one_line(str(exc)), EXIT_USAGE
    if isinstance(exc, TmsError):
        return _one_line(str(exc)), EXIT_USAGE
    if isinstance(exc, subprocess.CalledProcessError):
        # Show git's own words (e.g. "fatal: invalid reference: nope"), not "returned 128".
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        cmd = " ".join(str(c) for c in exc.cmd) if isinstance(exc.cmd, list | tuple) else str(exc.cmd)
        return f"{cmd}: {_one_line(err) or f'exit status {exc.returncode}'}", EXIT_USAGE
    if isinstance(exc, FileNotFoundError | IsADirectoryError | NotADirectoryError | PermissionError):
        return f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "), EXIT_USAGE
    if isinstance(exc, OSError):
        return _one_line(str(exc)), EXIT_USAGE
    try:
        import yaml
        if isinstance(exc, yaml.YAMLError):
            return _one_line(str(exc)), EXIT_USAGE
    except ImportError:  # pragma: no cover - PyYAML is a runtime dependency
        pass
    try:
        from ruamel.yaml.error import YAMLError as RuamelError
        if isinstance(exc, RuamelError):
            return _one_line(str(exc)), EXIT_USAGE
    except ImportError:  # pragma: no cover
        pass
    return None


class TmsGroup(TyperGroup):
    """Root group: every user error leaves as one line and a documented exit code, never a traceback."""

    def invoke(self, ctx: Context) -> Any:
        global _json_requested
        _json_requested = False
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except ClickException as exc:
            # Usage errors found after `-o json` was parsed come out as JSON too.
            if not _json_requested:
                raise
            typer.echo(json.dumps({"error": exc.format_message(), "exit_code": exc.exit_code}, sort_keys=True))
            raise typer.Exit(exc.exit_code) from None
        except Exception as exc:  # noqa: BLE001 - classified below; bugs are re-raised
            known = describe(exc)
            if known is None:
                raise
            message, code = known
            if _json_requested:
                typer.echo(json.dumps({"error": message, "exit_code": code}, sort_keys=True))
            else:
                typer.echo(f"error: {message}", err=True)
            sys.stderr.flush()
            raise typer.Exit(code) from None


# --- help readable by people -----------------------------------------------------------------------

def _readable_types() -> None:
    """Typer prints Python type names (`<list[str]>`, `<bool>`) in help; show what to type instead:
    nothing for flags, TEXT/INTEGER/PATH, and `TEXT...` for repeatable options."""
    from typer import core

    names = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "path": "PATH", "datetime": "TIME"}

    def readable(label: str | None) -> str | None:
        if label is None:
            return None
        inner = label.strip("<>")
        many = inner.startswith("list[")
        inner = inner.removeprefix("list[").removesuffix("]")
        text = names.get(inner.lower(), inner if "|" in inner else inner.upper())
        return text + ("..." if many else "")

    for cls in (core.TyperOption, core.TyperArgument):
        original = cls.display_type_rich

        def display_type_rich(self: Any, ctx: Any, _original: Any = original) -> str | None:
            if self.metavar is not None:
                return str(self.metavar)
            if getattr(self, "is_flag", False) or getattr(self, "count", False):
                return None
            return readable(_original(self, ctx))

        cls.display_type_rich = display_type_rich  # type: ignore[method-assign]


_readable_types()
