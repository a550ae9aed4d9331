"""The `tms` application object, its root options and `tms check`.

Command groups live in sibling modules and are registered explicitly in `tms_stack.cli`."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from datetime import UTC, datetime
from enum import Enum
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated

import typer

from tms_stack import __version__
from tms_stack.cli.common import TmsGroup, _remember_output, as_format, walk_up_to_root
from tms_stack.commands.admin_changes import changed_files_git
from tms_stack.commands.check import FORMATTERS, load_base, parse_cache, run_check
from tms_stack.repo.answers import answers_for
from tms_stack.repo.basetree import base_tree
from tms_stack.repo.parsecache import persistent
from tms_stack.rules.context import BASE_REF

# cls=TmsGroup: no user error leaves as a traceback (tms_stack/cli/common.py); rich tracebacks off
# so that a real bug prints a plain one that can be pasted into an issue.
# rich_markup_mode=None: click's plain help, which wraps help text but never cuts an option name
# (rich's tables cut `--autoscaling-metric-...` at 80 columns).
app = typer.Typer(no_args_is_help=True, cls=TmsGroup, pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"max_content_width": 100, "help_option_names": ["-h", "--help"]},
                  help="GitOps for NVIDIA Triton fleets: leases, pools and policies as YAML in git.")


def _version_line() -> str:
    try:
        return f"tms {version('tms-stack')}"
    except PackageNotFoundError:
        return f"tms {__version__} (not installed as a package)"


def _version(value: bool) -> None:
    if value:
        typer.echo(_version_line())
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="print the version and exit")] = False,
) -> None:
    """GitOps for NVIDIA Triton fleets: leases, pools and policies as YAML in git."""


@app.command("version")
def version_cmd() -> None:
    """Print the version of tms-stack (same as tms --version).

    Example: tms version"""
    typer.echo(_version_line())


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
        raise typer.BadParameter(f"{value!r} is not a time: use ISO 8601, e.g. 2026-12-01T18:00:00Z or 2026-12-01T23:30:00+05:30") from None
    # An offset is honoured and the time converted to UTC, so everything written from it (a renewal's
    # `expires`) is the same instant with a `Z` (issue 22: 21:30+05:00 was written as 21:30Z).
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).astimezone(UTC)


def _repo_root(paths: list[Path]) -> tuple[Path, list[str]]:
    """`tms check [PATHS]`: a repository root, or files/folders inside the current repository."""
    if len(paths) == 1 and paths[0].is_dir() and any((paths[0] / d).is_dir() for d in ("leases", "pools", "policies")):
        return paths[0], []
    # The repository is the nearest folder up from here (or from the first path) with leases/,
    # pools/ or policies/, so `tms check fraud.yaml` works from inside leases/ too.
    first = paths[0].resolve() if paths else Path.cwd()
    root = walk_up_to_root(Path.cwd().resolve()) or walk_up_to_root(first if first.is_dir() else first.parent)
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
    base_dir: Annotated[Path | None, typer.Option(
        "--base-dir", metavar="DIR", help="judge against the base checked out at DIR (the trusted review): the lock "
        "must be the one derived from its lock, budget findings name what changed, compiled files and "
        "environments are refused")] = None,
    base: Annotated[str | None, typer.Option(
        "--base", metavar="REF", help="judge against this git ref of the repository (with --base-dir: only how "
        "messages name the base; default origin/main)")] = None,
    no_cache: Annotated[bool, typer.Option(
        "--no-cache", help="parse every file and run every rule, neither reading nor writing the parse cache or "
        "kept answers (docs/review.md; also TMS_CACHE=off)")] = False,
    report: Annotated[list[str] | None, typer.Option(
        "--report", metavar="FORMAT:FILE", help="also write the findings in FORMAT (text, github, json) to FILE, "
        "from the same check (repeatable; the trusted review writes all three at once)")] = None,
) -> None:
    """Validate every lease, pool and policy. Exit 0 clean, 1 violations, 2 unreadable input.

    Examples: tms check | tms check leases/fraud-detector.yaml | tms check -o json |
    tms check pr --base-dir base --base origin/main"""

    if output is not None:
        format = Format(as_format(output).value)

    reports: list[tuple[str, Path]] = []
    for spec in report or []:
        kind, sep, target = spec.partition(":")
        if not sep or kind not in FORMATTERS or not target:
            raise typer.BadParameter(f"{spec!r}: write FORMAT:FILE, FORMAT one of {', '.join(FORMATTERS)}",
                                     param_hint="--report")
        reports.append((kind, Path(target)))
    root, only = _repo_root(paths or [])
    progress = None
    if format is Format.text and sys.stderr.isatty():
        def progress(done: int, total: int) -> None:
            if total >= 1000:
                print(f"\rloading {done}/{total} files", end="" if done < total else "\n", file=sys.stderr)
    label = base or "origin/main"
    if not BASE_REF.fullmatch(label):
        raise typer.BadParameter(f"{label!r} is not a git ref (letters, digits and . _ / @ ^ ~ -)", param_hint="--base")
    cache = parse_cache(not no_cache)
    read = cache.read if cache else None
    with contextlib.ExitStack() as scope:
        judged = None
        if base_dir is not None:
            if not base_dir.is_dir():
                raise typer.BadParameter(f"{base_dir}: no such folder", param_hint="--base-dir")
            judged = load_base(root.resolve(), base_dir.resolve(), label, read=read)
        elif base is not None:
            # The base as a ref of this repository: its files from git, the changed paths from git.
            known = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}"], cwd=root,
                                   capture_output=True)
            if known.returncode != 0:
                raise typer.BadParameter(f"{base}: not a commit of the repository at {root}", param_hint="--base")
            tree = scope.enter_context(base_tree(root, base, keep=cache is not None and persistent()))
            judged = load_base(root.resolve(), tree, base, changed_files_git(root, base), read=read)
        result = run_check(root, parse_now(now), only, progress, judged, read=read, answers=answers_for(cache))
    if cache:
        cache.save()
    for kind, file in reports:
        try:
            file.write_text(FORMATTERS[kind](result) + "\n")
        except OSError as exc:
            raise typer.BadParameter(f"{file}: {exc.strerror or exc}", param_hint="--report") from None
    typer.echo(FORMATTERS[format.value](result))
    raise typer.Exit(result.exit_code)
