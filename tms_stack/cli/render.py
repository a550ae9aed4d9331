"""`tms render -o DIR`: every Kubernetes object as YAML, one file per object."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from tms_stack.cli.common import EXIT_FINDINGS, EXIT_USAGE, RootOpt, StackOpt, resolve_root
from tms_stack.diagnostics import TmsError, UnreadableInput
from tms_stack.render.yamlout import dump_object


def register(app: typer.Typer) -> None:
    @app.command()
    def render(
        out: Annotated[Path, typer.Option("--output", "-o", metavar="DIR", help="directory to write (replaced)")],
        root: RootOpt = None,
        stack: StackOpt = None,
        now: Annotated[str | None, typer.Option(metavar="TIME", help="evaluate expiry at this UTC time")] = None,
    ) -> None:
        """Write every Kubernetes object as YAML: usable by kubectl, Argo CD or Flux. Needs no cluster.

        Example: tms render -o out/ --stack production"""
        from tms_stack.cli.app import parse_now
        from tms_stack.render.pipeline import render_root

        where = resolve_root(root)
        try:
            groups = render_root(where, stack, parse_now(now))
        except TmsError as exc:
            typer.echo(f"error: {exc}", err=True)
            unreadable = isinstance(exc, UnreadableInput) or "unreadable" in str(exc)
            raise typer.Exit(EXIT_USAGE if unreadable else EXIT_FINDINGS) from None
        write_objects(groups, out)


def write_objects(groups, out: Path) -> int:  # type: ignore[no-untyped-def]
    """One file per object: `<group-kind>/<group>/<Kind>-<name>.yaml` so diffs read naturally."""
    if out.exists():
        if not out.is_dir():
            raise typer.BadParameter(f"{out} exists and is not a directory")
        if any(out.iterdir()) and not (out / ".tms-render").exists():
            raise typer.BadParameter(f"{out} is not empty and was not written by `tms render`; choose another")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / ".tms-render").write_text("written by `tms render`; the directory is replaced on every run\n")
    count = 0
    total = sum(len(g.objects) for g in groups)
    show = sys.stderr.isatty() and total >= 1000
    for group in groups:
        folder = out / group.kind.lower() / group.name
        folder.mkdir(parents=True, exist_ok=True)
        for obj in group.objects:
            path = folder / f"{obj['kind']}-{obj['metadata']['name']}.yaml"
            path.write_text(dump_object(obj))
            count += 1
            if show and count % 1000 == 0:
                print(f"\rwrote {count}/{total} objects", end="", file=sys.stderr)
    if show:
        print(file=sys.stderr)
    typer.echo(f"wrote {count} objects ({len(groups)} groups) to {out}")
    return count
