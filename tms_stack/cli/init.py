"""`tms init DIR`: scaffold a fleet repository (the way in for teams that install tms as a package)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from tms_stack.cli.common import EXIT_CONFLICT, OutputOpt, emit, fail

_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_SPEC = re.compile(r"[A-Za-z0-9._\-\[\],=<>!~+:/@#%]{1,300}")


def register(app: typer.Typer) -> None:
    app.command("init")(init)


def init(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="a new or empty folder")],
    stack: Annotated[str, typer.Option(metavar="NAME", help="the first stack (one per cluster)")] = "production",
    namespace: Annotated[str, typer.Option(metavar="NAME", help="the stack's Kubernetes namespace")] = "triton",
    tool_spec: Annotated[str | None, typer.Option(
        "--tool-spec", metavar="SPEC",
        help="what the workflows pip-install (default: tms-stack==this version)")] = None,
    output: OutputOpt = "text",
) -> None:
    """Scaffold a fleet repository: commented policies, Pulumi.yaml and one stack file, the program
    entry point, requirements.txt (the one tms-stack pin), review/deploy/prune workflows that
    install it, CODEOWNERS, .gitattributes (the lock merge driver) and a README. Refuses a
    non-empty DIR (exit 3).

    Example: tms init my-fleet --stack production --namespace triton"""
    from tms_stack import __version__
    from tms_stack.scaffold import plan_files

    for label, value in (("--stack", stack), ("--namespace", namespace)):
        if not _NAME.fullmatch(value):
            fail(f"{label} {value!r}: use lowercase letters, digits and '-' (a DNS label, at most 63)")
    spec = tool_spec if tool_spec is not None else f"tms-stack=={__version__}"
    if not _SPEC.fullmatch(spec):
        fail(f"--tool-spec {spec!r}: one pip requirement without spaces or quotes, e.g. tms-stack=={__version__}")
    if directory.exists() and not directory.is_dir():
        fail(f"{directory} exists and is not a folder: choose a new folder", EXIT_CONFLICT)
    if directory.is_dir() and any(directory.iterdir()):
        fail(f"{directory} is not empty: tms init writes into a new or empty folder only", EXIT_CONFLICT)
    project = _NAME.fullmatch(directory.resolve().name.lower()) and directory.resolve().name.lower() or "fleet"
    files = plan_files(stack, namespace, spec, __version__, project)
    for rel, text in sorted(files.items()):
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    steps = [f"cd {directory}", "git init && git add -A && git commit -m 'fleet repository'",
             'git config merge.tms-lock.driver "tms pool merge-driver %O %A %B %P"',
             f"tms check && tms doctor --stack {stack}"]
    text = "\n".join([f"wrote {len(files)} files to {directory}:", *(f"  {rel}" for rel in sorted(files)),
                      "next:", *(f"  {s}" for s in steps)])
    emit(output, {"directory": str(directory), "files": sorted(files), "stack": stack, "namespace": namespace,
                  "toolSpec": spec, "next": steps}, text)
