"""Checks that need no cluster: tools on this machine, the repository layout, the stack files and
`tms check` (docs/admin-setup.md, steps 1-3)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tms_stack import __version__
from tms_stack.commands.check import run_check
from tms_stack.commands.doctor import Check
from tms_stack.commands.doctor.fleet import agent_image_check
from tms_stack.models.diagnostics import TmsError
from tms_stack.models.stack import StackSettings
from tms_stack.repo.stack import configmaps_mutable, patch_force, settings_from_document, stack_names
from tms_stack.repo.yamlio import parse_file

if TYPE_CHECKING:
    from tms_stack.commands.check import CheckResult
    from tms_stack.models.stack import StackSettings

MIN_PYTHON = (3, 11)  # pyproject.toml requires-python
DRIVER_LINE = 'git config merge.tms-lock.driver "tms pool merge-driver %O %A %B %P"'


def _run(argv: list[str], cwd: Path | None = None) -> tuple[int, str]:
    try:
        out = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, str(exc)
    return out.returncode, (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else ""


def tool_checks() -> list[Check]:
    checks: list[Check] = []
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info[:2] >= MIN_PYTHON:
        checks.append(Check("tools", "python", "ok", f"Python {version} ({sys.executable})"))
    else:
        checks.append(Check("tools", "python", "fail", f"Python {version}; tms-stack needs 3.11 or newer",
                            "install Python 3.11+ and reinstall tms-stack"))
    try:
        from importlib.metadata import version as dist_version
        tms = dist_version("tms-stack")
    except Exception:  # noqa: BLE001 - a checkout run without installing is fine
        tms = f"{__version__} (not installed as a package)"
    checks.append(Check("tools", "tms-stack", "ok", f"tms-stack {tms}"))
    git = shutil.which("git")
    if git is None:
        checks.append(Check("tools", "git", "fail", "git is not on PATH (plan, review and the lock merge need it)",
                            "install git"))
    else:
        checks.append(Check("tools", "git", "ok", _run([git, "--version"])[1]))
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        checks.append(Check("tools", "pulumi", "warn", "pulumi is not on PATH: the deploy job needs it "
                            "(review and render do not)", "install the Pulumi CLI where `pulumi up` runs"))
    else:
        code, text = _run([pulumi, "version"])
        checks.append(Check("tools", "pulumi", "ok" if code == 0 else "warn", f"pulumi {text}"))
    return checks


def repository_checks(root: Path) -> list[Check]:
    checks: list[Check] = [Check("repository", "root", "ok", str(root))]
    for sub in ("leases", "pools", "policies"):
        if (root / sub).is_dir():
            count = sum(1 for p in (root / sub).glob("*.y*ml"))
            checks.append(Check("repository", f"{sub}/", "ok", f"{count} YAML files"))
        else:
            # git keeps no empty folder: an emptied template loses leases/ unless it keeps a file there.
            # The prune job commits with `git add -A leases pools`, which fails on a missing folder.
            checks.append(Check("repository", f"{sub}/", "warn", f"{sub}/ is missing (the prune job's "
                                "`git add -A leases pools` needs it)",
                                f"mkdir -p {sub} && touch {sub}/.gitkeep && git add {sub}/.gitkeep"))
    if (root / "Pulumi.yaml").is_file():
        checks.append(Check("repository", "Pulumi.yaml", "ok", "the Pulumi project file is there"))
    else:
        checks.append(Check("repository", "Pulumi.yaml", "fail", "no Pulumi.yaml: `pulumi up` cannot run here",
                            "tms init a fresh folder and copy its Pulumi.yaml"))
    code, text = _run(["git", "config", "--get", "merge.tms-lock.driver"], cwd=root)
    if code == 0 and "merge-driver" in text:
        checks.append(Check("repository", "lock merge driver", "ok", text))
    else:
        checks.append(Check("repository", "lock merge driver", "warn",
                            "two pooled-lease branches will conflict in pools/placement.lock.yaml",
                            DRIVER_LINE))
    return checks


def stack_checks(root: Path, stack: str | None) -> tuple[list[Check], StackSettings | None]:
    """Every stack file parses; returns the settings of the stack asked for (or the only one)."""

    names = stack_names(root)
    checks: list[Check] = []
    if not names:
        checks.append(Check("stack", "stack files", "warn", "no Pulumi.<stack>.yaml: stack defaults are used",
                            "pulumi stack init NAME, then set tms-stack:namespace in Pulumi.NAME.yaml"))
    chosen: StackSettings | None = None
    for name in names:
        try:
            doc = parse_file(root / f"Pulumi.{name}.yaml", f"Pulumi.{name}.yaml")
            settings = settings_from_document(doc)
        except TmsError as exc:
            detail = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            checks.append(Check("stack", f"Pulumi.{name}.yaml", "fail", detail,
                                f"fix Pulumi.{name}.yaml (docs/rendering.md lists the settings)"))
            continue
        checks.append(Check("stack", f"Pulumi.{name}.yaml", "ok", f"namespace {settings.namespace}"))
        checks.append(agent_image_check(name, settings.agentImage))
        if not configmaps_mutable(doc):
            checks.append(Check("stack", f"Pulumi.{name}.yaml ConfigMaps", "warn",
                                "ConfigMaps are replaced on every lease edit (deleted, then created): slower "
                                "deploys, and a moment without the lease's desired models",
                                f'add `kubernetes:enableConfigMapMutable: "true"` under config: in Pulumi.{name}.yaml'))
        if not patch_force(doc):
            checks.append(Check("stack", f"Pulumi.{name}.yaml drift", "warn",
                                "an object changed by hand in the cluster makes every later deploy fail with a "
                                "server-side apply conflict instead of being put back",
                                f'add `kubernetes:enablePatchForce: "true"` under config: in Pulumi.{name}.yaml'))
        if stack == name or (stack is None and len(names) == 1):
            chosen = settings
    if stack is not None and stack not in names:
        checks.append(Check("stack", f"Pulumi.{stack}.yaml", "fail", f"no such stack (stacks: "
                            f"{', '.join(names) or 'none'})", "pass one of them to --stack"))
    elif stack is None and len(names) > 1:
        checks.append(Check("stack", "stack", "skip", f"several stacks ({', '.join(names)}): cluster checks "
                            "need one", "tms doctor --stack NAME"))
    elif not names:
        chosen = StackSettings()
    return checks, chosen


def check_check(root: Path, now: datetime | None = None) -> tuple[Check, CheckResult | None]:
    """`tms check` of the repository; returns its result for rendering when it passed."""

    result = run_check(root, now)
    if result.exit_code == 0:
        n_leases, n_pools = len(result.repo.all_leases()), len(result.repo.all_pools())
        return Check("repository", "tms check", "ok", f"{n_leases} leases, {n_pools} pools, no findings"), result
    problems = len(result.unreadable) + len(result.errors)
    first = (result.unreadable or result.errors)[0].location() if problems else ""
    return Check("repository", "tms check", "fail", f"{problems} problem(s), first at {first}", "tms check"), None
