"""`tms shard ...`: a sharded fleet's stacks (tms-stack:shards; docs/real-engine.md, "Sharded
stacks"): what each stack holds, and the `pulumi state move`s that follow an assignment change."""

from __future__ import annotations

import json
import shlex
from typing import Annotated

import typer

from tms_stack.cli.common import (
    OutputFormat,
    OutputOpt,
    RootOpt,
    StackOpt,
    as_format,
    require_stack,
    resolve_root,
)
from tms_stack.commands.shards import (
    changed_since,
    ensure_stacks,
    fleet_assignment,
    plan_shard_moves,
    pulumi_runner,
    run_moves,
    summary,
)
from tms_stack.repo.stack import resolve_stack

shard_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                        help="Sharded fleets: one fleet deployed as several Pulumi stacks.")


def register(app: typer.Typer) -> None:
    app.add_typer(shard_app, name="shard")


@shard_app.command("list")
def list_cmd(root: RootOpt = None, stack: StackOpt = None, output: OutputOpt = "text",
             names: Annotated[bool, typer.Option(
                 "--names", help="only the stack names, one per line (what deploy.yml loops over)")] = False) -> None:
    """The fleet's stacks (the home stack first) with the leases and groups each holds; an
    unsharded fleet is its one stack.

    Example: tms shard list --stack prod
    Example: tms shard list --stack prod --names"""
    path = resolve_root(root)
    require_stack(path, stack)
    if names:
        for name in resolve_stack(path, stack).members:
            typer.echo(name)
        return
    ref, assignment = fleet_assignment(path, stack)
    data = summary(ref, assignment)
    if as_format(output) is OutputFormat.json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    limit = data["maxLeases"]
    for row in data["stacks"]:
        over = f"  (more than maxLeases {limit})" if limit and row["leases"] > limit else ""
        home = "  home: names, monitoring" if row["stack"] == ref.home and ref.sharded else ""
        typer.echo(f"{row['stack']}  {row['leases']} leases  {row['groups']} groups{home}{over}")


@shard_app.command("moves")
def moves_cmd(
    root: RootOpt = None,
    stack: StackOpt = None,
    base: Annotated[str | None, typer.Option(
        metavar="REF", help="where groups are now: that commit's assignment (no Pulumi needed); default: "
                            "the stacks' states (`pulumi stack export`)")] = None,
    include_stack: Annotated[list[str] | None, typer.Option(
        "--include-stack", metavar="NAME",
        help="also read this stack's state (one that left tms-stack:shards and still holds groups)")] = None,
    run: Annotated[bool, typer.Option(
        "--run", help="run the moves (creating missing stacks first) instead of printing them")] = False,
    if_changed_since: Annotated[list[str] | None, typer.Option(
        "--if-changed-since", metavar="REF",
        help="with --run: read the states only if some REF (the deployed and pending commits) assigns "
             "a group to another stack than the work tree does; otherwise nothing can be out of place")] = None,
    output: OutputOpt = "text",
) -> None:
    """The `pulumi state move` commands that put every group in the stack the assignment gives it:
    a group's objects have fixed names, so it is never deleted by one stack and created by another.
    Prints them (one command per line) or, with --run, runs them in the project folder.

    Example: tms shard moves --stack prod --base "$DEPLOYED_SHA"
    Example: tms shard moves --stack prod --run"""
    path = resolve_root(root)
    require_stack(path, stack)
    if run and base is not None:
        raise typer.BadParameter("--run reads where groups are from the states: leave out --base")
    if if_changed_since and not run:
        raise typer.BadParameter("--if-changed-since goes with --run")
    ref = resolve_stack(path, stack)

    def nothing(why: str) -> None:
        typer.echo(f"tms shard moves: nothing to move: {why}", err=True)
        if as_format(output) is OutputFormat.json:
            typer.echo(json.dumps({"home": ref.home, "from": "", "moves": [], "commands": []}, indent=2,
                                  sort_keys=True))

    if not ref.sharded and not include_stack:
        return nothing(f"Pulumi.{ref.home}.yaml declares no tms-stack:shards (one stack holds the fleet)")
    if run and if_changed_since:
        why = changed_since(path, stack, if_changed_since)
        if why is None:
            return nothing(f"{', '.join(if_changed_since)} assign every group as the work tree does")
        typer.echo(f"tms shard moves: reading the states: {why}", err=True)
    if run:
        made = ensure_stacks(ref.members, pulumi_runner(path.resolve()))
        for name in made:
            typer.echo(f"created stack {name}", err=True)
    plan = plan_shard_moves(path, stack, base, include_stack or ())
    moved = sum(len(m.groups) for m in plan.moves)
    typer.echo(f"tms shard moves: {moved} group(s) to move ({plan.source})", err=True)
    if run:
        calls = run_moves(path, plan, progress=lambda line: typer.echo(line, err=True))
        typer.echo(f"tms shard moves: moved {moved} group(s) in {calls} call(s)", err=True)
    if as_format(output) is OutputFormat.json:
        typer.echo(json.dumps(plan.describe(), indent=2, sort_keys=True))
    elif not run:
        for argv in plan.commands():
            typer.echo(shlex.join(argv))

