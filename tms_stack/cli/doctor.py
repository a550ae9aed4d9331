"""`tms doctor`: check tools, repository, stack files, cluster and Prometheus before the first deploy."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from tms_stack.cli.app import parse_now
from tms_stack.cli.common import (
    EXIT_FINDINGS,
    OutputOpt,
    RootOpt,
    StackOpt,
    emit,
    require_stack,
    resolve_root,
)
from tms_stack.commands.doctor import Check, format_text, summary
from tms_stack.commands.doctor.cluster import cluster_checks
from tms_stack.commands.doctor.fleet import branch_check, pin_check
from tms_stack.commands.doctor.github import branch_protection_check
from tms_stack.commands.doctor.local import check_check, repository_checks, stack_checks, tool_checks
from tms_stack.commands.doctor.prometheus import prometheus_check
from tms_stack.render import render_repository
from tms_stack.repo.lockfile import read_lock


def register(app: typer.Typer) -> None:
    app.command()(doctor)


def doctor(
    root: RootOpt = None,
    stack: StackOpt = None,
    kubeconfig: Annotated[str | None, typer.Option(envvar="KUBECONFIG", metavar="FILE",
                                                   help="default: ~/.kube/config, or in-cluster")] = None,
    context: Annotated[str | None, typer.Option(metavar="NAME", help="kubeconfig context")] = None,
    namespace: Annotated[str | None, typer.Option(metavar="NAME", help="default: the stack's namespace")] = None,
    offline: Annotated[bool, typer.Option("--offline", help="skip the package index, cluster, Prometheus and "
                                          "GitHub checks")] = False,
    branch: Annotated[str, typer.Option(metavar="NAME", help="the branch whose protection is checked "
                                        "(GitHub: required code-owner review)")] = "main",
    now: Annotated[str | None, typer.Option(metavar="TIME", help="evaluate expiry at this UTC time")] = None,
    output: OutputOpt = "text",
) -> None:
    """Check that this machine, repository and cluster are ready for a deploy (docs/admin-setup.md).

    Tools (Python, git, pulumi), repository layout and branch, that requirements.txt's tms-stack pin
    resolves (pip's configured index), every stack file and the agent image it will run, `tms
    check`, then with a
    kubeconfig: the namespace, every kind the stack renders (CRDs) and this identity's RBAC for it,
    the Secrets and claims the pods mount, prometheus-adapter, the images; Prometheus when the
    stack's telemetry names it; GitHub branch protection (required code-owner review; GITHUB_TOKEN,
    GITHUB_REPOSITORY and GITHUB_API_URL are read from the environment, a warning when unreadable). Exit 0: nothing failed (warnings allowed); 1: a check failed.

    Example: tms doctor --stack production --kubeconfig ~/.kube/prod -o json"""

    at = parse_now(now)
    where = resolve_root(root)
    # An unknown stack is a usage error everywhere (docs/cli.md), not a failed check.
    require_stack(where, stack)

    checks: list[Check] = tool_checks() + repository_checks(where) + [branch_check(where)]
    checks += pin_check(where, offline)
    stack_results, settings = stack_checks(where, stack)
    checks += stack_results
    passed, result = check_check(where, at)
    checks.append(passed)
    objects: list[dict[str, Any]] = []
    if result is not None and settings is not None:
        groups = render_repository(result.repo, settings, read_lock(where), at)
        objects = [obj for group in groups for obj in group.objects]
    if offline:
        checks.append(Check("github", "code-owner review", "skip", "--offline"))
    else:
        checks.append(branch_protection_check(where, branch, os.environ))
    if offline:
        checks.append(Check("cluster", "cluster", "skip", "--offline"))
    elif settings is None:
        checks.append(Check("cluster", "cluster", "skip", "no usable stack settings", "tms doctor --stack NAME"))
    else:
        repo = result.repo if result is not None else None
        checks += cluster_checks(settings, objects, repo, kubeconfig, context, namespace)
        checks.append(prometheus_check(settings))
    counts = summary(checks)
    emit(output, {"ok": counts["fail"] == 0, "summary": counts, "checks": [c.to_json() for c in checks]},
         format_text(checks))
    if counts["fail"]:
        raise typer.Exit(EXIT_FINDINGS)
