"""`tms init DIR`: scaffold a fleet repository (the way in for teams that install tms as a package)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Annotated

import typer

from tms_stack import __version__
from tms_stack.cli.common import EXIT_CONFLICT, OutputOpt, emit, fail
from tms_stack.commands.scaffold import default_tool_spec, git_init_main, plan_files
from tms_stack.models.release import default_agent_image
from tms_stack.repo.atomic import WriteFailed, replace_files

_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
# One pip requirement: `tms-stack==0.1.0`, `tms-stack>=0.1,<0.2`, or a PEP 508 direct reference
# `tms-stack @ git+https://host/org/tms-stack@v0.1.0`. No quotes, no shell: it goes into
# requirements.txt, which the workflows hand to pip.
_SPEC = re.compile(r"[A-Za-z0-9._\-\[\],=<>!~+:/@#%]{1,300}|tms-stack @ [A-Za-z0-9._\-+:/@#%=&?~]{1,300}")
_INDEX = re.compile(r"https?://[A-Za-z0-9._\-:/%~+]{1,300}")


def register(app: typer.Typer) -> None:
    app.command("init")(init)


def init(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="a new or empty folder")],
    stack: Annotated[str, typer.Option(metavar="NAME", help="the first stack (one per cluster)")] = "production",
    namespace: Annotated[str, typer.Option(metavar="NAME", help="the stack's Kubernetes namespace")] = "triton",
    tool_spec: Annotated[str | None, typer.Option(
        "--tool-spec", metavar="SPEC",
        help="what the workflows pip-install (default: tms-stack==this version, or the git commit this "
             "tms was installed from)")] = None,
    index_url: Annotated[str | None, typer.Option(
        "--index-url", metavar="URL",
        help="package index the workflows install from, written into requirements.txt (default: pip's, "
             "PyPI on GitHub's runners)")] = None,
    output: OutputOpt = "text",
) -> None:
    """Scaffold a fleet repository in a new git repository on branch main.

    Writes commented policies, Pulumi.yaml and one stack file (running the agent image released
    with this version), the program entry point, requirements.txt (the one tms-stack pin),
    review/deploy/prune workflows that install it, CODEOWNERS, .gitattributes (the lock merge
    driver) and a README. Refuses a non-empty DIR (exit 3).

    Example: tms init my-fleet --stack production --namespace triton"""

    for label, value in (("--stack", stack), ("--namespace", namespace)):
        if not _NAME.fullmatch(value):
            fail(f"{label} {value!r}: use lowercase letters, digits and '-' (a DNS label, at most 63)")
    spec = tool_spec if tool_spec is not None else default_tool_spec()
    if not _SPEC.fullmatch(spec):
        fail(f"--tool-spec {spec!r}: one pip requirement, e.g. tms-stack=={__version__} or "
             f"'tms-stack @ git+https://github.com/ORG/tms-stack@v{__version__}'")
    if index_url is not None and not _INDEX.fullmatch(index_url):
        fail(f"--index-url {index_url!r}: an http(s) URL of a package index without credentials (a runner "
             "gets those from PIP_INDEX_URL, never from the repository)")
    if directory.exists() and not directory.is_dir():
        fail(f"{directory} exists and is not a folder: choose a new folder", EXIT_CONFLICT)
    if directory.is_dir() and any(directory.iterdir()):
        fail(f"{directory} is not empty: tms init writes into a new or empty folder only", EXIT_CONFLICT)
    project = _NAME.fullmatch(directory.resolve().name.lower()) and directory.resolve().name.lower() or "fleet"
    image = default_agent_image()
    files = plan_files(stack, namespace, spec, __version__, project, agent_image=image, index_url=index_url)
    existed = directory.exists()
    try:  # every file whole, and all of them or none (a full disk leaves no half repository)
        replace_files({directory / rel: text for rel, text in sorted(files.items())})
    except WriteFailed as exc:
        if not existed:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            for child in directory.iterdir():
                shutil.rmtree(child, ignore_errors=True)
        fail(f"{exc}; {directory} was left {'absent' if not existed else 'empty'}")
    # The workflows run on `main`: a git whose default is `master` would leave CI silent (issue 26).
    branch = git_init_main(directory)
    steps = [f"cd {directory}", *([] if branch else ["git init -b main"]),
             "git add -A && git commit -m 'fleet repository'",
             'git config merge.tms-lock.driver "tms pool merge-driver %O %A %B %P"',
             f"tms check && tms doctor --stack {stack}"]
    text = "\n".join([f"wrote {len(files)} files to {directory}:", *(f"  {rel}" for rel in sorted(files)),
                      (f"git repository on branch {branch} (the workflows run on main)" if branch else
                       "git is not on PATH: create the repository on branch main yourself"),
                      f"pinned: {spec}; agent image: {image}",
                      "next:", *(f"  {s}" for s in steps)])
    emit(output, {"directory": str(directory), "files": sorted(files), "stack": stack, "namespace": namespace,
                  "toolSpec": spec, "indexUrl": index_url, "agentImage": image, "branch": branch, "next": steps},
         text)
