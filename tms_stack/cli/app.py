"""The `tms` application object, its root options and `tms check`.

Command groups live in sibling modules and are registered explicitly in `tms_stack.cli`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from tms_stack.cli.common import TmsGroup, _remember_output, as_format
from tms_stack.cli.common import find_root as _find_root

# cls=TmsGroup: no user error leaves as a traceback (tms_stack/cli/common.py); rich tracebacks off
# so that a real bug prints a plain one that can be pasted into an issue.
# rich_markup_mode=None: click's plain help, which wraps help text but never cuts an option name
# (rich's tables cut `--autoscaling-metric-...` at 80 columns).
app = typer.Typer(no_args_is_help=True, cls=TmsGroup, pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"max_content_width": 100},
                  help="GitOps for NVIDIA Triton fleets: leases, pools and policies as YAML in git.")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version
        try:
            typer.echo(f"tms {version('tms-stack')}")
        except PackageNotFoundError:
            typer.echo("tms (not installed as a package)")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="print the version and exit")] = False,
) -> None:
    """GitOps for NVIDIA Triton fleets: leases, pools and policies as YAML in git."""


class Format(str, Enum):
    text = "text"
    github = "github"
    json = "json"


def parse_now(value: str | None) -> datetime | None:
    if value is None:
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a time: use ISO 8601 UTC, e.g. 2026-12-01T18:00:00Z") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _repo_root(paths: list[Path]) -> tuple[Path, list[str]]:
    """`tms check [PATHS]`: a repository root, or files/folders inside the current repository."""
    if len(paths) == 1 and paths[0].is_dir() and any((paths[0] / d).is_dir() for d in ("leases", "pools", "policies")):
        return paths[0], []
    # The repository is the nearest folder up from here (or from the first path) with leases/,
    # pools/ or policies/, so `tms check fraud.yaml` works from inside leases/ too.
    find_root = _find_root
    first = paths[0].resolve() if paths else Path.cwd()
    root = find_root(Path.cwd().resolve()) or find_root(first if first.is_dir() else first.parent)
    if root is None:
        # "OK: 0 leases" in the wrong folder would pass a CI job that checks nothing.
        raise typer.BadParameter(f"no leases/, pools/ or policies/ folder in {first} or above: "
                                 "run tms check inside a tms-stack repository")
    only = []
    for p in paths:
        if not p.exists():
            raise typer.BadParameter(f"{p}: no such file or folder")
        try:
            only.append(p.resolve().relative_to(root.resolve()).as_posix())
        except ValueError:
            raise typer.BadParameter(f"{p} is outside the repository {root}") from None
    return root, only


@app.command()
def check(
    paths: Annotated[list[Path] | None, typer.Argument(help="repository root, or files/folders to report on")] = None,
    format: Annotated[Format, typer.Option("--format", "-f", help="text | github | json")] = Format.text,
    now: Annotated[str | None, typer.Option(metavar="TIME", help="evaluate expiry at this UTC time (default: now)")] = None,
    output: Annotated[str | None, typer.Option(
        "--output", "-o", metavar="text|json", callback=_remember_output, show_default=False,
        help="output format, same as --format (json: docs/check-json.md)")] = None,
) -> None:
    """Validate every lease, pool and policy. Exit 0 clean, 1 violations, 2 unreadable input.

    Examples: tms check | tms check leases/fraud-detector.yaml | tms check -o json"""
    from tms_stack.check import FORMATTERS, run_check

    if output is not None:
        format = Format(as_format(output).value)

    root, only = _repo_root(paths or [])
    progress = None
    if format is Format.text and sys.stderr.isatty():
        def progress(done: int, total: int) -> None:
            if total >= 1000:
                print(f"\rloading {done}/{total} files", end="" if done < total else "\n", file=sys.stderr)
    result = run_check(root, parse_now(now), only, progress)
    typer.echo(FORMATTERS[format.value](result))
    raise typer.Exit(result.exit_code)
