"""What the tmsctl-compatible verbs share: output modes (text as tmsctl prints it, `-z` porcelain
lines a script can grep, `-o json`), the repository in place of tmsctl's `--target`, the owner
default, and refusals with a message and an exit code instead of a traceback.

Exit codes: 0 done (or nothing to do), 1 refused (the edit would not pass `tms check`, or the
state forbids it), 2 usage (unknown or contradictory options, bad values), 3 environment (no
repository here)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from tms_stack.diagnostics import TmsError

EXIT_REFUSED, EXIT_USAGE, EXIT_ENV = 1, 2, 3


class Output(str, Enum):
    text = "text"
    json = "json"


Root = Annotated[Path | None, typer.Option("--root", help="repository root (default: found upward from here)")]
Porcelain = Annotated[bool, typer.Option("--porcelain", "-z", help="one line per item, key:value words (tmsctl's -z)")]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="text | json")]
# tmsctl's connection options: a repository replaces the TMS server. Accepted only to refuse
# with a message, so a pasted tmsctl line fails clearly instead of as "no such option".
Target = Annotated[str | None, typer.Option("--target", "-t", hidden=True)]


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    typer.echo(f"tms: {message}", err=True)
    raise typer.Exit(code)


def no_target(target: str | None) -> None:
    if target is not None:
        fail(f"--target {target}: tms has no server to connect to; the git repository is the target. "
             "Run inside it (or pass --root) and drop -t/--target")


def find_root(root: Path | None) -> Path:
    """--root, else the nearest folder up from here with leases/, pools/ or policies/."""
    if root is not None:
        if not root.is_dir():
            fail(f"--root {root}: no such folder", EXIT_ENV)
        return root
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if any((folder / sub).is_dir() for sub in ("leases", "pools", "policies")):
            return folder
    fail(f"no leases/, pools/ or policies/ folder in {here} or above: run tms inside a tms-stack repository",
         EXIT_ENV)


def load(root: Path):  # type: ignore[no-untyped-def]
    from tms_stack.loader import load_repository

    repo = load_repository(root)
    if repo.unreadable:
        fail("unreadable files: " + "; ".join(f"{d.location()}: {d.message}" for d in repo.unreadable), EXIT_ENV)
    return repo


def edit(root: Path, changes: dict[Path, Any]) -> list[Path]:
    """Write the changes if they pass `tms check` (edits.checked_write); refuse otherwise."""
    from tms_stack.edits import checked_write

    try:
        return checked_write(root, changes)
    except TmsError as exc:
        fail(f"refused: {exc}", EXIT_REFUSED)


def commit_hint(root: Path, written: Iterable[Path]) -> str:
    rels = []
    for p in written:
        try:
            rels.append(Path(p).resolve().relative_to(root.resolve()).as_posix())
        except ValueError:
            rels.append(str(p))
    return f"Commit to deploy: git add {' '.join(sorted(set(rels)))} && git commit"


def porcelain_word(key: str, value: object) -> str:
    """`key:value` with the value made one word (tmsctl's -z output is split on whitespace)."""
    text = re.sub(r"\s+", "_", "" if value is None else str(value))
    return f"{key}:{text}"


def emit(output: Output, porcelain: bool, text: Callable[[], list[str]], lines: Callable[[], list[str]],
         data: Callable[[], Any]) -> None:
    if output is Output.json:
        typer.echo(json.dumps(data(), indent=2, default=str))
    elif porcelain:
        for line in lines():
            typer.echo(line)
    else:
        for line in text():
            typer.echo(line)


def repo_config(root: Path) -> dict[str, Any]:
    """`.tms.yaml` at the repository root: per-repository defaults for the CLI (e.g. `owner`)."""
    path = root / ".tms.yaml"
    if not path.is_file():
        return {}
    from tms_stack.yamlio import parse_file

    try:
        data = parse_file(path, ".tms.yaml").data
    except TmsError as exc:
        fail(f".tms.yaml: {exc}", EXIT_ENV)
    if not isinstance(data, dict):
        fail(".tms.yaml: expected a mapping such as `owner: team-risk`", EXIT_ENV)
    return data


def default_owner(root: Path, given: str | None) -> str:
    owner = given or os.environ.get("TMS_OWNER") or repo_config(root).get("owner")
    if not owner:
        fail("no owner for the lease: pass --owner TEAM, set TMS_OWNER=TEAM, or put `owner: TEAM` in "
             f"{root / '.tms.yaml'} (budgets are per owner; TMS had no owners)")
    if not isinstance(owner, str) or not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", owner):
        fail(f"owner {owner!r} is not a DNS-1123 label (lowercase letters, digits, '-')")
    return owner
