"""`tms render --out DIR`: every Kubernetes object as YAML, one file per object."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from tms_stack.cli.common import (
    EXIT_FINDINGS,
    EXIT_USAGE,
    OutputFormat,
    OutputOpt,
    RootOpt,
    StackOpt,
    as_format,
    emit,
    fail,
    resolve_root,
)
from tms_stack.diagnostics import TmsError, UnreadableInput
from tms_stack.render.yamlout import dump_object


def register(app: typer.Typer) -> None:
    @app.command()
    def render(
        out: Annotated[Path, typer.Option("--out", metavar="DIR", show_default=False,
                                          help="directory to write (replaced on every run)")],
        root: RootOpt = None,
        stack: StackOpt = None,
        now: Annotated[str | None, typer.Option(metavar="TIME", help="evaluate expiry at this UTC time")] = None,
        output: OutputOpt = "text",
    ) -> None:
        """Write every Kubernetes object as YAML: usable by kubectl, Argo CD or Flux. Needs no cluster.

        Example: tms render --out out/ --stack production"""
        from tms_stack.cli.app import parse_now
        from tms_stack.render.pipeline import render_root

        where = resolve_root(root)
        try:
            groups = render_root(where, stack, parse_now(now))
        except TmsError as exc:
            unreadable = isinstance(exc, UnreadableInput) or "unreadable" in str(exc)
            fail(str(exc).strip(), EXIT_USAGE if unreadable else EXIT_FINDINGS)
        count = write_objects(groups, out, quiet=as_format(output) is OutputFormat.json)
        if as_format(output) is OutputFormat.json:
            emit(output, {"out": str(out), "stack": stack, "objects": count, "groups": len(groups),
                          "files": sorted(p.relative_to(out).as_posix() for p in out.rglob("*.yaml"))})


def write_objects(groups, out: Path, quiet: bool = False) -> int:  # type: ignore[no-untyped-def]
    """One file per object: `<group-kind>/<group>/<Kind>-<name>.yaml` so diffs read naturally."""
    if out.exists():
        if not out.is_dir():
            fail(f"--out {out}: exists and is not a directory")
        if any(out.iterdir()) and not (out / ".tms-render").exists():
            fail(f"--out {out}: not empty and not written by `tms render` (no .tms-render in it): choose another "
                 "directory")
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
    if not quiet:
        typer.echo(f"wrote {count} objects ({len(groups)} groups) to {out}")
    return count
