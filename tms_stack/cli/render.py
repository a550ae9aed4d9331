"""`tms render --out DIR`: every Kubernetes object as YAML, one file per object."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from tms_stack.cli.app import parse_now
from tms_stack.cli.common import (
    OutputFormat,
    OutputOpt,
    RootOpt,
    StackOpt,
    as_format,
    emit,
    fail,
    require_stack,
    resolve_root,
)
from tms_stack.commands.check import gc_paused
from tms_stack.commands.render import render_root
from tms_stack.models.diagnostics import TmsError
from tms_stack.render.yamlout import dump_object


def register(app: typer.Typer) -> None:
    @app.command()
    def render(
        out: Annotated[Path, typer.Option("--out", metavar="DIR", show_default=False,
                                          help="directory to write (brought up to date on every run)")],
        root: RootOpt = None,
        stack: StackOpt = None,
        now: Annotated[str | None, typer.Option(metavar="TIME", help="evaluate expiry at this UTC time")] = None,
        output: OutputOpt = "text",
    ) -> None:
        """Write every Kubernetes object as YAML: usable by kubectl, Argo CD or Flux. Needs no cluster.

        Example: tms render --out out/ --stack production"""

        where = resolve_root(root)
        require_stack(where, stack)
        try:
            groups = render_root(where, stack, parse_now(now))
        except TmsError as exc:
            fail(str(exc).strip(), exc.exit_code)
        with gc_paused():  # the objects and their text live until the end anyway (issue 27)
            count = write_objects(groups, out, quiet=as_format(output) is OutputFormat.json)
        if as_format(output) is OutputFormat.json:
            emit(output, {"out": str(out), "stack": stack, "objects": count, "groups": len(groups),
                          "files": sorted(p.relative_to(out).as_posix() for p in out.rglob("*.yaml"))})


def write_objects(groups, out: Path, quiet: bool = False) -> int:  # type: ignore[no-untyped-def]
    """One file per object: `<group-kind>/<group>/<Kind>-<name>.yaml` so diffs read naturally.

    A folder written before by `tms render` is brought up to date, not recreated: only files whose
    content changed are written, and files of objects no longer rendered are removed (deleting and
    recreating 78,000 files took 56 s of a 10,000-lease render; issue 27). The folder is walked
    once, with plain strings: pathlib's per-path work was a third of writing a fresh folder."""
    if out.exists():
        if not out.is_dir():
            fail(f"--out {out}: exists and is not a directory")
        if any(out.iterdir()) and not (out / ".tms-render").exists():
            fail(f"--out {out}: not empty and not written by `tms render` (no .tms-render in it): choose another "
                 "directory")
    out.mkdir(parents=True, exist_ok=True)
    base = str(out)
    # Nothing in the folder is followed: a link (to a file or a folder elsewhere) is removed.
    stale, folders = _walk(base)
    stale.discard(MARKER)
    (out / MARKER).write_text("written by `tms render`; the directory is brought up to date on every run\n")
    count = 0
    total = sum(len(g.objects) for g in groups)
    show = sys.stderr.isatty() and total >= 1000
    for group in groups:
        rel_folder = f"{group.kind.lower()}/{group.name}"
        if rel_folder not in folders:
            os.makedirs(os.path.join(base, rel_folder), exist_ok=True)
            folders.add(rel_folder)
        for obj in group.objects:
            rel = f"{rel_folder}/{obj['kind']}-{obj['metadata']['name']}.yaml"
            data = dump_object(obj).encode()
            path = os.path.join(base, rel)
            if rel in stale:
                stale.discard(rel)
                with open(path, "rb") as before:
                    same = before.read() == data
            else:
                same = False
            if not same:
                with open(path, "wb") as after:
                    after.write(data)
            count += 1
            if show and count % 1000 == 0:
                print(f"\rwrote {count}/{total} objects", end="", file=sys.stderr)
    for rel in stale:
        os.unlink(os.path.join(base, rel))
    # Deepest first, so a folder whose subfolders all went is removed too.
    for rel in sorted(folders, key=lambda f: f.count("/"), reverse=True):
        path = os.path.join(base, rel)
        if os.path.isdir(path) and not os.listdir(path):
            os.rmdir(path)
    if show:
        print(file=sys.stderr)
    if not quiet:
        typer.echo(f"wrote {count} objects ({len(groups)} groups) to {out}")
    return count


MARKER = ".tms-render"


def _walk(base: str) -> tuple[set[str], set[str]]:
    """(files, folders) under `base` as `/`-joined relative paths; symbolic links are removed, never
    followed, and anything else that is neither (a FIFO, a socket) is left alone."""
    files: set[str] = set()
    folders: set[str] = set()
    todo = [""]
    while todo:
        rel = todo.pop()
        with os.scandir(os.path.join(base, rel) if rel else base) as entries:
            for entry in entries:
                sub = f"{rel}/{entry.name}" if rel else entry.name
                if entry.is_symlink():
                    os.unlink(entry.path)
                elif entry.is_dir(follow_symlinks=False):
                    folders.add(sub)
                    todo.append(sub)
                elif entry.is_file(follow_symlinks=False):
                    files.add(sub)
    return files, folders
