"""`tms drift`: the rendered objects the cluster no longer holds as rendered (commands/drift.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tms_stack.cli.app import parse_now
from tms_stack.cli.common import RootOpt, StackOpt, require_stack, resolve_root, write_out
from tms_stack.commands.drift import find_drift, state_urns

# Reasons shown per drifted object on stderr, and objects listed before "... and N more".
SHOWN = 50


def register(app: typer.Typer) -> None:
    @app.command()
    def drift(
        root: RootOpt = None,
        stack: StackOpt = None,
        all_stacks: Annotated[bool, typer.Option(
            "--all-stacks", help="every stack of the stack's fleet (a sharded fleet: each URN names its stack)")] = False,
        out: Annotated[Path | None, typer.Option("--out", metavar="FILE", show_default=False,
                                                 help="write the URNs here (default: stdout)")] = None,
        now: Annotated[str | None, typer.Option(metavar="TIME", help="evaluate expiry at this UTC time")] = None,
        kubeconfig: Annotated[str | None, typer.Option(envvar="KUBECONFIG", help="default: ~/.kube/config "
                                                       "or the in-cluster service account")] = None,
        context: Annotated[str | None, typer.Option(help="kubeconfig context")] = None,
        state: Annotated[Path | None, typer.Option(
            "--state", metavar="FILE", help="`pulumi stack export` of the stack: list only URNs it holds "
            "(`pulumi refresh --target` refuses others; the next up creates those anyway)")] = None,
    ) -> None:
        """The Pulumi URNs of rendered objects the cluster no longer holds as rendered (changed or
        deleted by hand, or never created), one per line, for `pulumi refresh --target`. Lists
        each kind once instead of reading every object back. Exit 0 whether or not anything
        drifted (the list says); 2 when the cluster cannot be read. Why each object drifted: on
        stderr (docs/lifecycle.md, "Drift")."""
        where = resolve_root(root)
        require_stack(where, stack)
        held = state_urns(state) if state is not None else None
        report = find_drift(where, stack, parse_now(now), all_stacks, kubeconfig, context)
        for d in report.drifted[:SHOWN]:
            unknown = " (not in the stack's state: the next up creates it)" if held is not None and d.urn not in held else ""
            typer.echo(f"drift: {d.object}: {'; '.join(d.reasons)}{unknown}", err=True)
        if len(report.drifted) > SHOWN:
            typer.echo(f"drift: ... and {len(report.drifted) - SHOWN} more", err=True)
        typer.echo(f"tms drift: {len(report.drifted)} of {report.compared} objects of "
                   f"{', '.join(report.stacks)} drifted", err=True)
        write_out(out, "".join(u + "\n" for u in report.urns if held is None or u in held))
