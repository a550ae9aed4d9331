"""What every `tms` command shares: the repository root rule, `--stack`, `-o/--output text|json`,
the exit codes (docs/cli.md is the one table) and the handler that turns user errors into one line.

Commands take their options from here so that `--root`, `--stack` and `-o json` mean the same
thing everywhere (issue 14: verbs used `--root .` while `check` walked up)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

# Typer vendors its own click (typer._click); its exceptions are the ones its main loop handles.
from typer._click.core import Context
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperGroup

from tms_stack.models.diagnostics import ExitCode, TmsError
from tms_stack.repo.stack import load_stack_settings, shard_declarations, stack_names

# Exit codes: the one table is docs/cli.md; keep both in step.
# The one exit-code table is models/diagnostics.py's ExitCode; these names are its members.
EXIT_OK = ExitCode.OK
EXIT_FINDINGS = ExitCode.FINDINGS
EXIT_USAGE = ExitCode.USAGE
EXIT_CONFLICT = ExitCode.CONFLICT

REPO_DIRS = ("leases", "pools", "policies")


# --- repository root ---------------------------------------------------------------------------

def walk_up_to_root(start: Path) -> Path | None:
    """The nearest folder from `start` up with leases/, pools/ or policies/ (like git finds .git)."""
    start = start.resolve()
    return next((d for d in (start, *start.parents) if any((d / sub).is_dir() for sub in REPO_DIRS)), None)


def resolve_root(explicit: Path | None = None) -> Path:
    """`--root` when given (it must be a repository), else walk up from the current directory.

    Never falls back to "." silently: `cd leases && tms pool lock` once wrote leases/pools/."""
    if explicit is not None:
        if not explicit.is_dir():
            raise UsageError(f"--root {explicit}: no such folder")
        # A git work tree counts too: releasing the last lease removes leases/ (git keeps no empty
        # folders), and `tms lease status` must still find the lease in history.
        if not any((explicit / sub).is_dir() for sub in REPO_DIRS) and not (explicit / ".git").exists():
            raise UsageError(f"--root {explicit}: not a tms-stack repository "
                             "(no leases/, pools/ or policies/ folder)")
        return explicit
    found = walk_up_to_root(Path.cwd())
    if found is None:
        raise UsageError(f"no leases/, pools/ or policies/ folder in {Path.cwd()} or above: "
                         "run tms inside a tms-stack repository, or pass --root")
    return found


WaitOpt = Annotated[float | None, typer.Option(
    "--wait", metavar="SECONDS", min=0, show_default=False,
    help="when another tms command is editing the repository, wait this long for it (default: "
         "$TMS_LOCK_WAIT, else 0: refuse at once, exit 3)")]

RootOpt = Annotated[Path | None, typer.Option(
    "--root", metavar="DIR", show_default=False,
    help="repository root (default: the nearest folder up with leases/, pools/ or policies/)")]


# --- stacks --------------------------------------------------------------------------------------

def complete_stacks(incomplete: str) -> list[str]:
    """Shell completion of `--stack`: the stack files of the repository the shell is in (file
    names only: a completion runs on every TAB). Leases and pools: cli/complete.py."""
    root = walk_up_to_root(Path.cwd()) or Path.cwd()
    return sorted(n for n in stack_names(root) if n.startswith(incomplete))


StackOpt = Annotated[str | None, typer.Option(
    "--stack", metavar="NAME", show_default=False, autocompletion=complete_stacks,
    help="stack name: reads Pulumi.NAME.yaml (default: the only stack file)")]


def require_stack(root: Path, stack: str | None) -> None:
    """An unknown `--stack` is a usage error (exit 2) in every command, before any work: `tms plan`
    once exited 0 with the error inside its markdown, `tms render` exited 1 (issue 26)."""
    if stack is None:
        return
    names = stack_names(root)
    if stack not in names and stack not in shard_declarations(root):
        fail(f"--stack {stack}: no Pulumi.{stack}.yaml (stacks here: {', '.join(names) or 'none'})", EXIT_USAGE)


def stack_settings(root: Path, stack: str | None):  # type: ignore[no-untyped-def]
    """Namespace and cluster settings of the stack (`StackSettings`); defaults without a stack file."""

    return load_stack_settings(root, stack)


# --- output --------------------------------------------------------------------------------------

class OutputFormat(str, Enum):
    text = "text"
    json = "json"

    def __str__(self) -> str:
        # `output: OutputOpt = OutputFormat.text` reaches click as a default of a str option, which
        # str()s it: Python 3.11 would give "OutputFormat.text" and the callback would refuse it.
        return self.value


# Set when a command was asked for JSON (or -z porcelain), so that errors come out the same way.
_json_requested = False
_porcelain_requested = False


def _remember_output(value: OutputFormat | str | None) -> OutputFormat | None:
    """`-o/--output` is the format everywhere (kubectl): text or json. A path here is the old
    `tms render -o DIR` / `tms plan --output FILE`: say where destinations went."""
    global _json_requested
    if value is None:
        return None
    if isinstance(value, str) and not isinstance(value, OutputFormat):
        try:
            value = OutputFormat(value.strip().lower()) if value.strip().lower() in ("text", "json") else None
        except ValueError:  # pragma: no cover - guarded above
            value = None
        if value is None:
            raise typer.BadParameter(
                "-o takes text|json (the output format); write to a directory (render) or a file (plan) "
                "with --out", param_hint="'-o' / '--output'")
    _json_requested = value is OutputFormat.json
    return value


def _remember_porcelain(value: bool) -> bool:
    global _porcelain_requested
    _porcelain_requested = bool(value)
    return value


OutputOpt = Annotated[str, typer.Option(
    "--output", "-o", metavar="text|json", callback=_remember_output, show_default=False,
    autocompletion=lambda: ["text", "json"],
    help="output format: text for people, json for scripts (schemas: docs/cli.md)")]

PorcelainOpt = Annotated[bool, typer.Option(
    "--porcelain", "-z", callback=_remember_porcelain,
    help="one line per item of key:value words (tmsctl's -z)")]


def wants_json() -> bool:
    return _json_requested


def as_format(value: OutputFormat | str | None) -> OutputFormat:
    """The parsed `-o` value (the callback already refused anything but text|json)."""
    if isinstance(value, OutputFormat):
        return value
    return OutputFormat(value) if value else OutputFormat.text


def emit(fmt: OutputFormat | str, data: Any, text: str | None = None) -> None:
    """Print a result: `data` as one JSON document, or `text` (default: str(data))."""
    if as_format(fmt) is OutputFormat.json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        typer.echo(text if text is not None else str(data))


def porcelain_word(key: str, value: object) -> str:
    """`key:value` with the value made one word (tmsctl's -z output is split on whitespace)."""
    text = re.sub(r"\s+", "_", "" if value is None else str(value))
    return f"{key}:{text}"


def report_error(message: str, code: int, **data: Any) -> None:
    """The one error path: JSON on stdout when JSON was asked; else `error: ...` on stderr, and
    with -z also a `state:Refused exit:N error:...` line on stdout, so a script reading stdout
    sees the refusal (tmsctl scripts grep stdout). Always one line: a multi-line message (a
    refused render's findings) is joined."""
    message = _one_line(message, limit=1000)  # every finding of a refused edit, on one line
    if _json_requested:
        typer.echo(json.dumps({"error": message, "exit_code": code, **data}, sort_keys=True, default=str))
        return
    if _porcelain_requested:
        typer.echo(f"state:Refused exit:{code} {porcelain_word('error', message)}")
    typer.echo(f"error: {message}", err=True)


def fail(message: str, code: int = EXIT_USAGE, **data: Any) -> NoReturn:
    """A user error: one line, and the documented exit code."""
    report_error(message, code, **data)
    raise typer.Exit(code)


def write_out(out: Path | None, text: str) -> None:
    """`text` into the `--out` FILE, or onto stdout without one; a file that cannot be written is
    a one-line error."""
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        out.write_text(text)
    except OSError as exc:
        fail(f"--out {out}: {exc.strerror or exc}")


# --- the central handler ---------------------------------------------------------------------------

def _one_line(text: str, limit: int = 3) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    shown = "; ".join(lines[:limit]).replace(":; ", ": ")  # "would not pass check:" introduces its list
    return shown if len(lines) <= limit else shown + f" (+{len(lines) - limit} more)"


def describe(exc: BaseException) -> tuple[str, int] | None:
    """(message, exit code) for an error a user caused; None for a bug (which keeps its traceback)."""

    if isinstance(exc, TmsError):
        return _one_line(str(exc)), exc.exit_code
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


def _report_click(exc: ClickException) -> None:
    """One line naming what to fix (kubectl's `error: ...`), as JSON or -z when asked, instead of
    click's usage block; the command's --help is named for the rest. A group called without a
    command (`tms lease`) shows its help, as click does, with the usage-error code."""
    if isinstance(exc, NoArgsIsHelpError):
        exc.show()
        return
    message = _one_line(exc.format_message())
    where = getattr(exc, "ctx", None)
    if isinstance(exc, UsageError) and where is not None:
        message += f" (see: {where.command_path} --help)"
    report_error(message, exc.exit_code)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _single_line_words(args: list[str]) -> None:
    """Every word of a command line is one line of printable text: names, owners, durations, URIs
    and paths are validated whole, so `ranker\n` or `8h\n` never reaches a file, a label or a
    Kubernetes name half-stripped (the project's rule: full-match, no trailing newline)."""
    for i, word in enumerate(args):
        bad = _CONTROL.search(word)
        if bad:
            before = args[i - 1] if i and args[i - 1].startswith("-") and "=" not in args[i - 1] else ""
            where = f"{before} {word!r}" if before else repr(word)  # name the option: `--stack 'Prod\n'`
            raise UsageError(f"{where}: contains the control character {bad.group()!r}: every argument must "
                             "be a single line of printable text")


def _asked_json(args: list[str]) -> bool:
    """`-o json`, `-ojson`, `--output json`, `--output=json` (and check's `--format`/`-f json`)."""
    for i, word in enumerate(args):
        if word == "--":
            return False
        if word in ("-o", "--output", "-f", "--format"):
            if i + 1 < len(args) and args[i + 1].strip().lower() == "json":
                return True
        elif word.lower() in ("-ojson", "--output=json", "-fjson", "--format=json"):
            return True
    return False


class TmsGroup(TyperGroup):
    """Root group: every user error leaves as one line and a documented exit code, never a traceback."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        # A parse error (unknown option, missing value) comes before `-o`'s callback has run:
        # look at the words themselves, so that an error is JSON whenever JSON was asked.
        global _json_requested, _porcelain_requested
        _json_requested, _porcelain_requested = _asked_json(args), False
        # The root's own options (`tms --bogus`) are parsed before invoke(): same one line.
        try:
            _single_line_words(args)
            return super().parse_args(ctx, args)
        except ClickException as exc:
            _report_click(exc)
            raise typer.Exit(exc.exit_code) from None

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except ClickException as exc:
            _report_click(exc)
            raise typer.Exit(exc.exit_code) from None
        except Exception as exc:  # noqa: BLE001 - classified below; bugs are re-raised
            known = describe(exc)
            if known is None:
                raise
            message, code = known
            report_error(message, code)
            sys.stderr.flush()
            raise typer.Exit(code) from None


# --- help readable by people -----------------------------------------------------------------------

def _readable_types() -> None:
    """Typer prints Python type names (`<list[str]>`, `<bool>`) in help; show what to type instead:
    nothing for flags, TEXT/INTEGER/PATH, and `TEXT...` for repeatable options."""
    from typer import core

    names = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "path": "PATH", "datetime": "TIME",
             "int range": "INTEGER", "float range": "NUMBER"}  # the range itself is shown as [x>=1]

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
                # An argument's metavar is already its name in the help column ("DIR", not "DIR DIR").
                return None if isinstance(self, core.TyperArgument) else str(self.metavar)
            if getattr(self, "is_flag", False) or getattr(self, "count", False):
                return None
            return readable(_original(self, ctx))

        cls.display_type_rich = display_type_rich  # type: ignore[method-assign]


_readable_types()
