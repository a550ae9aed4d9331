"""`tms init DIR`: a new fleet repository for teams that install tms-stack as a package.

Two kinds of package data: `files/` are written for the fleet (commented policies, Pulumi.yaml, one
stack file, the program entry point, README); `derived/` are this repository's own workflows and
.gitattributes, rewritten for a repository that has no tool code (`derive_*` below;
tools/derive_scaffold.py regenerates them and tests/cli/test_init.py fails when they drift).
.github/CODEOWNERS is generated at init time from the fleet's policies (logic/codeowners.py).
Placeholders `@NAME@` are filled at init time. Dotfiles are stored as `dot-NAME` so that package
data globs keep them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from importlib import resources
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from tms_stack import __version__
from tms_stack.logic.codeowners import generate
from tms_stack.models import Limits
from tms_stack.models.diagnostics import TmsError
from tms_stack.models.release import default_agent_image
from tms_stack.repo.yamlio import parse

HERE = Path(__file__).parent
# agent-image.yml is not derived: a fleet runs the published agent image.
WORKFLOWS = ("review.yml", "review-comment.yml", "deploy.yml", "prune.yml")


class DeriveError(TmsError):
    """A workflow uses something of the tool repository that a fleet repository does not have."""


# --- derivation (build time: tools/derive_scaffold.py) ---------------------------------------------

def _drop_jobs(text: str, pattern: str) -> str:
    """Remove every job (2-space key under `jobs:`) whose body matches `pattern`."""
    lines = text.splitlines(keepends=True)
    try:
        start = next(i for i, line in enumerate(lines) if line.rstrip() == "jobs:") + 1
    except StopIteration:
        return text
    head, body = lines[:start], lines[start:]
    jobs: list[list[str]] = [[]]
    for line in body:
        if re.match(r"^  [A-Za-z0-9_-]+:\s*$", line):
            jobs.append([])
        jobs[-1].append(line)
    kept = [job for job in jobs if not (job and re.match(r"^  \S", job[0]) and re.search(pattern, "".join(job)))]
    out = "".join(head) + "".join("".join(job) for job in kept)
    return out.rstrip("\n") + "\n"


def derive_workflow(name: str, text: str) -> str:
    """The tool repository's workflow `name`, for a fleet repository that installs a pinned tms."""
    text = _drop_jobs(text, r"\bmake test\b")  # the tool's own test suite
    # The fleet's one pin is requirements.txt (Pulumi's pip toolchain reads it too); DIR/ is a
    # checkout beside the workspace's (the review's base/).
    text = re.sub(r"(?m)^(\s*(?:- )?)run: \./(?:([\w.-]+)/)?scripts/bootstrap\.sh(?: runtime| dev)?[ \t]*$",
                  lambda m: (f"{m.group(1)}run: python -m venv {_dir(m.group(2))}.venv && "
                             f"{_dir(m.group(2))}.venv/bin/pip install -r {_dir(m.group(2))}requirements.txt"), text)
    # The trusted review: the tms-stack that the BASE pins, installed fresh, judges the PR's files.
    text = re.sub(r"(?m)^(\s*(?:- )?)run: \./([\w.-]+)/scripts/trusted-review\.sh (\S+) (\S+) (\S+)[ \t]*$",
                  lambda m: (f'{m.group(1)}run: python -m venv "$RUNNER_TEMP/base-tms" && '
                             f'"$RUNNER_TEMP/base-tms/bin/pip" install -q -r {m.group(2)}/requirements.txt && '
                             f'"$RUNNER_TEMP/base-tms/bin/python" -I -m tms_stack.commands.review '
                             f"{m.group(3)} {m.group(4)} {m.group(5)}"), text)
    text = text.replace("vars.PULUMI_STACK || 'example'", "vars.PULUMI_STACK || '@STACK@'")
    leftover = re.search(r"(?m)^.*(\./(?:[\w.-]+/)?scripts/|\bmake\b|tools/|pyproject\.toml).*$", text)
    if leftover:
        raise DeriveError(f".github/workflows/{name}: `{leftover.group(0).strip()}` refers to the tool "
                          "repository; teach tms_stack/commands/scaffold.derive_workflow how a fleet does it")
    header = (f"# Derived by `tms init` from tms-stack @VERSION@'s .github/workflows/{name}: tms-stack is\n"
              "# installed from requirements.txt (@TOOL_SPEC@) instead of from a checkout; upgrade there.\n")
    return header + text


def _dir(group: str | None) -> str:
    return f"{group}/" if group else ""


def derive_all(repo_root: Path) -> dict[str, str]:
    """Relative path under derived/ -> text, from the tool repository at `repo_root`."""
    out = {f"workflows/{w}": derive_workflow(w, (repo_root / ".github" / "workflows" / w).read_text())
           for w in WORKFLOWS}
    out["dot-gitattributes"] = (repo_root / ".gitattributes").read_text()
    return out


# --- init (run time) -----------------------------------------------------------------------------

def default_tool_spec() -> str:
    """What a new fleet pins: exactly the tms-stack that is running. Installed from a git URL (pip
    records it in direct_url.json): that URL at that commit; otherwise `tms-stack==VERSION`, which
    the release workflow publishes to the package index (docs/admin-setup.md says why the index is
    the default). A local checkout or wheel pins a version the index may lack: `tms doctor` says so."""
    try:
        direct = distribution("tms-stack").read_text("direct_url.json")
    except PackageNotFoundError:
        direct = None
    try:
        info = json.loads(direct) if direct else {}
    except ValueError:
        info = {}
    vcs = info.get("vcs_info") if isinstance(info, dict) else None
    url = info.get("url", "") if isinstance(info, dict) else ""
    if isinstance(vcs, dict) and vcs.get("vcs") == "git" and re.fullmatch(r"[0-9a-f]{40}", str(vcs.get("commit_id"))) \
            and re.fullmatch(r"https://[A-Za-z0-9._\-/:]+", url):
        return f"tms-stack @ git+{url}@{vcs['commit_id']}"
    return f"tms-stack=={__version__}"


def git_init_main(directory: Path) -> str | None:
    """`git init` on branch main, whatever init.defaultBranch says (symbolic-ref: older gits lack
    `init -b`). None when git is not there (init then prints the line to run)."""
    git = shutil.which("git")
    if git is None:
        return None
    subprocess.run([git, "init", "-q", str(directory)], check=True, capture_output=True)
    subprocess.run([git, "symbolic-ref", "HEAD", "refs/heads/main"], cwd=directory, check=True, capture_output=True)
    return "main"


def plan_files(stack: str, namespace: str, tool_spec: str, version: str, project: str,
               agent_image: str | None = None, index_url: str | None = None) -> dict[str, str]:
    """Path in the new repository -> text."""
    values = {"STACK": stack, "NAMESPACE": namespace, "TOOL_SPEC": tool_spec, "VERSION": version,
              "PROJECT": project, "AGENT_IMAGE": agent_image or default_agent_image(),
              "INDEX": f"--index-url {index_url}\n" if index_url else ""}

    def fill(text: str) -> str:
        return re.sub(r"@([A-Z_]+)@", lambda m: values.get(m.group(1), m.group(0)), text)

    root = resources.files("tms_stack.commands.scaffold")
    out: dict[str, str] = {}
    files = root / "files"
    for rel in _walk(files):
        target = rel.replace("dot-", ".").replace("program-main.py.txt", "program/__main__.py")
        target = target.replace("Pulumi.stack.yaml", f"Pulumi.{stack}.yaml")
        out[target] = fill(_read(files, rel))
    derived = root / "derived"
    for rel in _walk(derived):
        target = rel.replace("dot-", ".")
        target = f".github/{target}" if not target.startswith(".") else target
        out[target] = fill(_read(derived, rel))
    out[".github/CODEOWNERS"] = codeowners_for(out["policies/limits.yaml"])
    return out


def codeowners_for(limits_text: str) -> str:
    """The fleet's CODEOWNERS, generated from its own policies (as `tms codeowners` would), so that
    it names only paths a fleet has and `tms check` finds it in step."""
    return generate(Limits.model_validate(parse(limits_text, "policies/limits.yaml").data).spec)


def _walk(node, prefix: str = "") -> list[str]:  # type: ignore[no-untyped-def]
    found: list[str] = []
    for child in node.iterdir():
        if child.name == "__pycache__":
            continue
        if child.is_dir():
            found += _walk(child, f"{prefix}{child.name}/")
        else:
            found.append(prefix + child.name)
    return sorted(found)


def _read(node, rel: str) -> str:  # type: ignore[no-untyped-def]
    for part in rel.split("/"):
        node = node / part
    return str(node.read_text(encoding="utf-8"))
