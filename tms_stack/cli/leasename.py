"""`tms lease name create/move/delete/list`: tmsctl's lease names (stable DNS aliases that can
move between leases), as edits of the leases' `names` lists.

Positional forms as in tmsctl: `create <name> <lease>`, `delete <name> [<lease>]`,
`move <name> <source-lease> <target-lease>` (`move <name> <target-lease> --force`); each also
as `--name`, `--lease`, `--source-lease`, `--target-lease`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tms_stack.cli.common import (
    EXIT_CONFLICT,
    OutputOpt,
    WaitOpt,
    resolve_root,
)
from tms_stack.cli.common import (
    OutputFormat as Output,
)
from tms_stack.cli.common import (
    PorcelainOpt as Porcelain,
)
from tms_stack.cli.common import (
    RootOpt as Root,
)
from tms_stack.cli.tmsctl import (
    EXIT_REFUSED,
    Target,
    commit_hint,
    edit,
    edit_root,
    emit,
    fail,
    lease_path,
    load,
    no_target,
    porcelain_word,
    table,
    valid_lease,
)
from tms_stack.repo.yamlio import dump_rt, load_rt

name_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Lease names: stable DNS aliases that can move.")
Args = Annotated[list[str] | None, typer.Argument(help="positional form, as tmsctl")]


def register(lease_app: typer.Typer) -> None:
    lease_app.add_typer(name_app, name="name")


def _names_edit(root: Path, lease: str, add: str | None = None, remove: str | None = None) -> str:
    from ruamel.yaml.comments import CommentedSeq


    path = _lease_file(root, lease)
    valid_lease(load(root), lease)  # the file's shape is known below (spec, expires)
    data, rt = load_rt(path)
    names = data["spec"].get("names")
    if names is None:
        names = CommentedSeq()
        names.fa.set_flow_style()
        data["spec"].insert(list(data["spec"]).index("expires") + 1, "names", names)
    if add is not None:
        if add in names:
            fail(f"lease {lease} already has the name {add!r}", EXIT_CONFLICT)
        names.append(add)
    if remove is not None:
        names.remove(remove)
        if not names:
            del data["spec"]["names"]
    return dump_rt(data, rt)


def _lease_file(root: Path, name: str) -> Path:
    path = lease_path(root, name)
    if not path.exists():
        fail(f"no lease {name!r} (leases/{name}.yaml does not exist)", EXIT_REFUSED)
    return path


def _holder(root: Path, alias: str) -> str | None:
    return next((lease.name for lease in load(root).all_leases() if alias in lease.spec.names), None)


def _positional(args: list[str] | None, *slots: tuple[str, str | None]) -> list[str | None]:
    """Fill named slots in order: a flag's value wins, positional arguments fill the rest."""
    rest = list(args or [])
    values: list[str | None] = []
    for _flag, value in slots:
        values.append(value if value is not None else (rest.pop(0) if rest else None))
    if rest:
        fail(f"unexpected argument(s): {' '.join(rest)}")
    return values


def _done(root: Path, written: list[Path], porcelain: bool, output: Output | str, text: list[str], word: str,
          data: dict[str, object]) -> None:
    emit(output, porcelain, lambda: [*text, commit_hint(root, written)], lambda: [word],
         lambda: {**data, "written": [str(p) for p in written]})


@name_app.command("create")
def name_create(args: Args = None,
                name: Annotated[str | None, typer.Option("--name")] = None,
                lease: Annotated[str | None, typer.Option("--lease", "-l")] = None,
                root: Root = None, porcelain: Porcelain = False, output: OutputOpt = "text",
                target: Target = None, wait: WaitOpt = None) -> None:
    """`create <name> <lease>`: give a lease a name (a Service named like it)."""
    no_target(target)
    alias, lease_id = _positional(args, ("--name", name), ("--lease", lease))
    if alias is None or lease_id is None:
        fail("usage: tms lease name create <name> <lease> (or --name/--lease)")
    root = edit_root(root, wait)
    holder = _holder(root, alias)
    if holder is not None:
        fail(f"the name {alias!r} already refers to lease {holder}: move it with "
             f"`tms lease name move {alias} {holder} {lease_id}`", EXIT_CONFLICT)
    written = edit(root, {_lease_file(root, lease_id): _names_edit(root, lease_id, add=alias)})
    _done(root, written, porcelain, output, [f'Lease name "{alias}".', f"Target lease: {lease_id}"],
          f"{porcelain_word('name', alias)} {porcelain_word('lease', lease_id)}", {"name": alias, "lease": lease_id})


@name_app.command("move")
def name_move(args: Args = None,
              name: Annotated[str | None, typer.Option("--name")] = None,
              source_lease: Annotated[str | None, typer.Option("--source-lease")] = None,
              target_lease: Annotated[str | None, typer.Option("--target-lease")] = None,
              force: Annotated[bool, typer.Option("--force", help="whatever lease it refers to now")] = False,
              root: Root = None, porcelain: Porcelain = False, output: OutputOpt = "text",
              target: Target = None, wait: WaitOpt = None) -> None:
    """`move <name> <source-lease> <target-lease>` (or `<name> <target-lease> --force`)."""
    no_target(target)
    if force and source_lease is None:
        alias, dest = _positional(args, ("--name", name), ("--target-lease", target_lease))
        source = None
    else:
        alias, source, dest = _positional(args, ("--name", name), ("--source-lease", source_lease),
                                          ("--target-lease", target_lease))
    if alias is None or dest is None or (source is None and not force):
        fail("usage: tms lease name move <name> <source-lease> <target-lease> "
             "(or <name> <target-lease> --force; tmsctl: the source lease or --force is required)")
    root = edit_root(root, wait)
    current = _holder(root, alias)
    if current is None:
        fail(f"no lease has the name {alias!r}: create it with `tms lease name create {alias} {dest}`", EXIT_REFUSED)
    if source is not None and source != current:
        fail(f"the name {alias!r} refers to lease {current}, not {source} (use --force to move it anyway)",
             EXIT_REFUSED)
    if current == dest:
        fail(f"the name {alias!r} already refers to lease {dest}: nothing to do", EXIT_CONFLICT)
    changes = {_lease_file(root, current): _names_edit(root, current, remove=alias),
               _lease_file(root, dest): _names_edit(root, dest, add=alias)}
    written = edit(root, changes)
    _done(root, written, porcelain, output, [f'Lease name "{alias}".', f"Source lease: {current}",
                                             f"Target lease: {dest}"],
          f"{porcelain_word('name', alias)} {porcelain_word('lease', dest)} {porcelain_word('previous', current)}",
          {"name": alias, "lease": dest, "previous": current})


@name_app.command("delete")
def name_delete(args: Args = None,
                name: Annotated[str | None, typer.Option("--name")] = None,
                lease: Annotated[str | None, typer.Option("--lease", "-l")] = None,
                force: Annotated[bool, typer.Option("--force", help="whatever lease it refers to")] = False,
                root: Root = None, porcelain: Porcelain = False, output: OutputOpt = "text",
                target: Target = None, wait: WaitOpt = None) -> None:
    """`delete <name> <lease>` (or `<name> --force`)."""
    no_target(target)
    alias, lease_id = _positional(args, ("--name", name), ("--lease", lease))
    if alias is None or (lease_id is None and not force):
        fail("usage: tms lease name delete <name> <lease> (or <name> --force; tmsctl: the lease or --force "
             "is required)")
    root = edit_root(root, wait)
    current = _holder(root, alias)
    if current is None:
        fail(f"no lease has the name {alias!r}", EXIT_REFUSED)
    if lease_id is not None and lease_id != current and not force:
        fail(f"the name {alias!r} refers to lease {current}, not {lease_id} (use --force to delete it anyway)",
             EXIT_REFUSED)
    written = edit(root, {_lease_file(root, current): _names_edit(root, current, remove=alias)})
    _done(root, written, porcelain, output, [f'Deleted lease name "{alias}".', f"Was on lease: {current}"],
          f"{porcelain_word('name', alias)} {porcelain_word('lease', current)} state:Deleted",
          {"name": alias, "lease": current, "deleted": True})


@name_app.command("list")
def name_list(root: Root = None, porcelain: Porcelain = False, output: OutputOpt = "text",
              target: Target = None) -> None:
    """Every lease name (DNS alias) and the lease it refers to."""
    no_target(target)
    root = resolve_root(root)
    rows = sorted((alias, lease.name) for lease in load(root).all_leases() for alias in lease.spec.names)
    emit(output, porcelain, lambda: [*table(["Name", "Lease"], [[a, lease] for a, lease in rows]), f"Count: {len(rows)}"],
         lambda: [f"{porcelain_word('name', a)} {porcelain_word('lease', lease)}" for a, lease in rows],
         lambda: [{"name": a, "lease": lease} for a, lease in rows])
