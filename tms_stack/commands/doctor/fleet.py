"""Checks of what a fleet repository runs: the tms-stack its workflows install (requirements.txt,
resolved with pip's own configuration), the agent image its stack will run, and the branch its
workflows run on (issue 26: a pin no index had, an image nobody published, a `master` branch the
workflows never saw)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from tms_stack import __version__
from tms_stack.commands.doctor import Check
from tms_stack.models.release import TAGGED_IMAGE, is_pinned, released_agent_image

PIP_TIMEOUT_S = 120
_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def redact(url: str) -> str:
    """An index URL without its user:password (never print a credential)."""
    return _CREDENTIALS.sub("***@", url)


# --- the agent image -------------------------------------------------------------------------------

def agent_image_check(stack: str, image: str) -> Check:
    """Which agent image the stack will run, and how firmly (a digest never moves; a tag can)."""
    name = f"Pulumi.{stack}.yaml agentImage"
    released = released_agent_image()
    if is_pinned(image):
        origin = f", published by tms-stack's release workflow for {__version__}" if image == released else ""
        return Check("stack", name, "ok", f"will run {image} (pinned by digest{origin})")
    if image == TAGGED_IMAGE:
        fix = (f"set tms-stack:agentImage: {released}" if released else
               f"pin its digest (docker buildx imagetools inspect {image}), or build your own from tms-stack's "
               "docker/agent.Dockerfile, push it, and set tms-stack:agentImage")
        return Check("stack", name, "warn",
                     f"will run {image}, by tag: the image tms-stack's release workflow publishes for "
                     f"{__version__} (a tag can move; a version that was never released has none)", fix)
    return Check("stack", name, "ok", f"will run {image} (by tag; the nodes pull it, not checked from here)")


# --- the tms-stack pin -----------------------------------------------------------------------------

def _pip() -> list[str] | None:
    """A pip to ask: this interpreter's (pip install), else the one on PATH (a `uv tool` venv has none)."""
    if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode == 0:
        return [sys.executable, "-m", "pip"]
    found = shutil.which("pip3") or shutil.which("pip")
    return [found] if found else None


def configured_index(pip: list[str], requirements: Path) -> str:
    """Where pip will look, in pip's order: the requirements file's own --index-url, then pip's
    configuration (PIP_INDEX_URL, pip.conf: `pip config list`), else pip's default index."""
    for line in requirements.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\s*(?:--index-url|-i)[\s=]+(\S+)", line)
        if m:
            return redact(m.group(1)) + " (requirements.txt)"
    out = subprocess.run([*pip, "config", "list"], capture_output=True, text=True, timeout=30)
    found = None
    for line in out.stdout.splitlines():
        key, _, value = line.partition("=")
        if key.rsplit(".", 1)[-1] == "index-url":
            found = value.strip().strip("'\"")
            if key.startswith(":env:"):
                break  # the environment wins over every file
    return redact(found) + " (pip configuration)" if found else "pip's default index (PyPI)"


def requirement_lines(requirements: Path) -> list[str]:
    return [line.strip() for line in requirements.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.strip().startswith(("#", "-"))]


def pin_check(root: Path, offline: bool = False) -> list[Check]:
    """The fleet's requirements.txt (what every workflow pip-installs) resolves: `pip download
    --no-deps` with pip's own configuration, as the workflows' `pip install -r` will."""
    requirements = root / "requirements.txt"
    if not requirements.is_file():
        return []  # a fork runs tms-stack from its own checkout (scripts/bootstrap.sh)
    lines = requirement_lines(requirements)
    pins = ", ".join(lines) or "nothing"
    if offline:
        return [Check("repository", "tms-stack pin", "skip", f"{pins}: --offline")]
    pip = _pip()
    if pip is None:
        return [Check("repository", "tms-stack pin", "warn", f"{pins}: no pip here to check it with",
                      "python3 -m pip download --no-deps -r requirements.txt")]
    index = configured_index(pip, requirements)
    with tempfile.TemporaryDirectory(prefix="tms-pin-") as tmp:
        try:
            out = subprocess.run([*pip, "download", "--no-deps", "--quiet", "--disable-pip-version-check",
                                  "-d", tmp, "-r", str(requirements)], capture_output=True, text=True,
                                 timeout=PIP_TIMEOUT_S, cwd=root)
        except subprocess.TimeoutExpired:
            return [Check("repository", "tms-stack pin", "fail", f"{pins}: {index} did not answer in "
                          f"{PIP_TIMEOUT_S} s", "check the index, or pin another: tms init --help (--tool-spec)")]
    if out.returncode == 0:
        return [Check("repository", "tms-stack pin", "ok", f"{pins} resolves from {index}")]
    why = _pip_reason(out.stderr)
    return [Check("repository", "tms-stack pin", "fail",
                  f"{pins} does not resolve from {index}: {why} (every workflow installs it)",
                  "publish that version there, or change requirements.txt to one that is (e.g. "
                  "`tms-stack==X.Y.Z`, or `tms-stack @ git+https://…/tms-stack@vX.Y.Z`), "
                  "or set the index: PIP_INDEX_URL / pip config set global.index-url URL")]


def _pip_reason(stderr: str) -> str:
    """pip's one useful line ("No matching distribution found for ..."), without its warnings."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    useful = [line for line in lines if line.startswith("ERROR:")] or lines[-1:] or ["pip failed"]
    return redact(useful[-1].removeprefix("ERROR: "))


# --- the branch the workflows run on -------------------------------------------------------------

def workflow_branch(root: Path) -> str:
    """The branch deploy.yml deploys on push (the fleet's `main`)."""
    path = root / ".github" / "workflows" / "deploy.yml"
    try:
        flow: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        on = flow.get("on", flow.get(True))
        branches = on["push"]["branches"]
        return str(branches[0])
    except (OSError, yaml.YAMLError, AttributeError, KeyError, TypeError, IndexError):
        return "main"


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def branch_check(root: Path) -> Check:
    wanted = workflow_branch(root)
    if _git(root, "rev-parse", "--git-dir") is None:
        return Check("repository", "branch", "warn", f"not a git repository: the workflows run on `{wanted}`",
                     f"git init -b {wanted}")
    remote_head = _git(root, "symbolic-ref", "--short", "refs/remotes/origin/HEAD")
    if remote_head:
        default = remote_head.split("/", 1)[-1]
        if default == wanted:
            return Check("repository", "branch", "ok", f"origin's default branch is {wanted}, as the workflows say")
        return Check("repository", "branch", "warn",
                     f"origin's default branch is {default}, but the workflows run on pushes to {wanted}: "
                     "they would never deploy", f"make {wanted} the default branch on the forge (git push origin "
                     f"{default}:{wanted}), or change `branches:` in .github/workflows/*.yml")
    current = _git(root, "symbolic-ref", "--short", "HEAD") or "(detached)"
    local = (_git(root, "for-each-ref", "--format=%(refname:short)", "refs/heads") or "").split()
    if wanted in local or current == wanted:
        return Check("repository", "branch", "ok", f"branch {wanted} is here; the workflows run on it")
    return Check("repository", "branch", "warn",
                 f"the branch is {current} and there is no {wanted}, but the workflows run on pushes to "
                 f"{wanted}: pushed as is, CI would never run", f"git branch -m {current} {wanted}")
