"""What the tmsctl-compatible verbs share on top of tms_stack/cli/common.py (which owns the root
rule, `-o`, `-z`, the exit codes and the one error path): tmsctl's hidden `--target`, loading the
repository for a verb, checked edits, the commit hint and the owner default."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any

import typer
from typer._click.globals import get_current_context

from tms_stack.cli.common import (
    EXIT_CONFLICT,
    EXIT_FINDINGS,
    EXIT_USAGE,
    OutputFormat,
    as_format,
    fail,
    porcelain_word,
    resolve_root,
)
from tms_stack.cli.common import emit as emit_one
from tms_stack.commands.edits import checked_write
from tms_stack.commands.lease import lease_file, stack_namespace
from tms_stack.models.diagnostics import TmsError
from tms_stack.repo.atomic import WriteFailed
from tms_stack.repo.loader import load_repository
from tms_stack.repo.replock import LockBusy, repository_lock, wait_seconds
from tms_stack.repo.yamlio import parse_file

# A refusal: the repository's content does not allow the edit (check would flag it, the thing does
# not exist, the state forbids it). The same code as check's findings: docs/cli.md.
EXIT_REFUSED = EXIT_FINDINGS

# tmsctl's connection options: a repository replaces the TMS server. Accepted only to refuse
# with a message, so a pasted tmsctl line fails clearly instead of as "no such option".
Target = Annotated[str | None, typer.Option("--target", "-t", hidden=True)]

__all__ = ["EXIT_REFUSED", "Target", "commit_hint", "default_owner", "edit", "edit_root", "emit", "fail", "load",
           "lease_path", "namespace_of", "no_target", "porcelain_word", "repo_config", "table", "unreadable_message",
           "valid_lease"]


def no_target(target: str | None) -> None:
    if target is not None:
        fail(f"--target {target}: tms has no server to connect to; the git repository is the target. "
             "Run inside it (or pass --root) and drop -t/--target")


def edit_root(root: Path | None, wait: float | None) -> Path:
    """The root (common.resolve_root) of a verb that edits it, with the repository lock held until
    the command ends (repo.replock): it reads the files only after this, so it never works from a
    state another command is about to change. Held: exit 3 with who holds it."""
    found = resolve_root(root)
    try:
        get_current_context().with_resource(repository_lock(found, wait_seconds(wait)))
    except LockBusy as exc:
        fail(str(exc), EXIT_CONFLICT)
    return found


def load(root: Path, tolerate: bool = False):  # type: ignore[no-untyped-def]
    """The repository; an unreadable file stops the verb with one line naming it (exit 2).
    `tolerate`: return it anyway (listings show what is readable, then report: unreadable_error)."""

    repo = load_repository(root)
    if repo.unreadable and not tolerate:
        fail(unreadable_message(repo), EXIT_USAGE)
    return repo


def valid_lease(repo, name: str):  # type: ignore[no-untyped-def]
    """The lease `name` of a loaded repository; a file that parses but fails the schema is refused
    with what to run (the verbs need its fields), never a KeyError."""
    if name not in repo.leases:
        fail(f"leases/{name}.yaml does not pass the schema: fix it first (tms check leases/{name}.yaml)",
             EXIT_REFUSED)
    return repo.lease(name)


def unreadable_message(repo) -> str:  # type: ignore[no-untyped-def]
    first = repo.unreadable[0]
    more = f" (+{len(repo.unreadable) - 1} more: tms check lists them)" if len(repo.unreadable) > 1 else ""
    return f"unreadable file {first.location()}: {first.message}{more}"


def table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    """Columns padded to line up; one space between them, so that an empty table is tmsctl's
    header line exactly and `awk '{print $1}'` still works."""
    body = [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    return [" ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *body]]


def edit(root: Path, changes: dict[Path, Any]) -> list[Path]:
    """Write the changes if they pass `tms check` (edits.checked_write); refuse otherwise."""

    try:
        return checked_write(root, changes)
    except WriteFailed as exc:
        fail(str(exc), EXIT_USAGE)
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


def emit(output: OutputFormat | str, porcelain: bool, text: Callable[[], list[str]],
         lines: Callable[[], list[str]], data: Callable[[], Any]) -> None:
    """JSON (`-o json`), porcelain lines (`-z`) or text, each computed only when asked."""

    if as_format(output) is OutputFormat.json:
        emit_one(OutputFormat.json, data())
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

    try:
        data = parse_file(path, ".tms.yaml").data
    except TmsError as exc:
        fail(f".tms.yaml: {exc}", EXIT_USAGE)
    if not isinstance(data, dict):
        fail(".tms.yaml: expected a mapping such as `owner: team-risk`", EXIT_USAGE)
    return data


def default_owner(root: Path, given: str | None) -> str:
    owner = given or os.environ.get("TMS_OWNER") or repo_config(root).get("owner")
    if not owner:
        fail("no owner for the lease: pass --owner TEAM, set TMS_OWNER=TEAM, or put `owner: TEAM` in "
             f"{root / '.tms.yaml'} (budgets are per owner; TMS had no owners)")
    if not isinstance(owner, str) or not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", owner):
        fail(f"owner {owner!r} is not a DNS-1123 label (lowercase letters, digits, '-')")
    return owner


def lease_path(root: Path, name: str) -> Path:
    """leases/<name>.yaml, or a refusal (exit 1) for a name that is not a lease name."""
    try:
        return lease_file(root, name)
    except TmsError as exc:
        fail(f"refused: {exc}", EXIT_REFUSED)


def namespace_of(root: Path, strict: bool = False) -> str | None:
    """The only stack's namespace (commands.lease.stack_namespace). An unreadable stack file is an
    error where the namespace matters (`strict`: a listing that reads the cluster), else the host
    goes without it (a verb that only wrote a file)."""
    try:
        return stack_namespace(root)
    except TmsError as exc:
        if strict:
            fail(str(exc), EXIT_USAGE)
        return None
