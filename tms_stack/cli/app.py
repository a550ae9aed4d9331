"""The `tms` application object, its root options and `tms check`.

Command groups live in sibling modules and are registered explicitly in `tms_stack.cli`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="GitOps for NVIDIA Triton fleets: leases, pools and policies as YAML in git.")


@app.callback()
def _root() -> None:
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
    def find_root(start: Path) -> Path | None:
        return next((d for d in (start, *start.parents)
                     if any((d / sub).is_dir() for sub in ("leases", "pools", "policies"))), None)

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
    now: Annotated[str | None, typer.Option(help="evaluate expiry at this UTC time (default: now)")] = None,
) -> None:
    """Validate every lease, pool and policy. Exit 0 clean, 1 violations, 2 unreadable input."""
    from tms_stack.check import FORMATTERS, run_check

    root, only = _repo_root(paths or [])
    progress = None
    if format is Format.text and sys.stderr.isatty():
        def progress(done: int, total: int) -> None:
            if total >= 1000:
                print(f"\rloading {done}/{total} files", end="" if done < total else "\n", file=sys.stderr)
    result = run_check(root, parse_now(now), only, progress)
    typer.echo(FORMATTERS[format.value](result))
    raise typer.Exit(result.exit_code)
