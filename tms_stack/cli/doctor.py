"""`tms doctor`: check tools, repository, stack files, cluster and Prometheus before the first deploy."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tms_stack.cli.common import EXIT_FINDINGS, OutputOpt, RootOpt, StackOpt, emit, fail, resolve_root


def register(app: typer.Typer) -> None:
    app.command()(doctor)


def doctor(
    root: RootOpt = None,
    stack: StackOpt = None,
    kubeconfig: Annotated[str | None, typer.Option(envvar="KUBECONFIG", metavar="FILE",
                                                   help="default: ~/.kube/config, or in-cluster")] = None,
    context: Annotated[str | None, typer.Option(metavar="NAME", help="kubeconfig context")] = None,
    namespace: Annotated[str | None, typer.Option(metavar="NAME", help="default: the stack's namespace")] = None,
    offline: Annotated[bool, typer.Option("--offline", help="skip the cluster and Prometheus checks")] = False,
    now: Annotated[str | None, typer.Option(metavar="TIME", help="evaluate expiry at this UTC time")] = None,
    output: OutputOpt = "text",
) -> None:
    """Check that this machine, repository and cluster are ready for a deploy (docs/admin-setup.md).

    Tools (Python, git, pulumi), repository layout, every stack file, `tms check`, then with a
    kubeconfig: the namespace, every kind the stack renders (CRDs) and this identity's RBAC for it,
    the Secrets and claims the pods mount, prometheus-adapter, the images; Prometheus when the
    stack's telemetry names it. Exit 0: nothing failed (warnings allowed); 1: a check failed.

    Example: tms doctor --stack production --kubeconfig ~/.kube/prod -o json"""
    from tms_stack.cli.app import parse_now
    from tms_stack.doctor import Check, format_text, summary
    from tms_stack.doctor.cluster import cluster_checks
    from tms_stack.doctor.local import check_check, repository_checks, stack_checks, tool_checks
    from tms_stack.doctor.prometheus import prometheus_check

    at = parse_now(now)
    where = resolve_root(root)
    from tms_stack.stack import _stacks

    if stack is not None and stack not in _stacks(where):
        # An unknown stack is a usage error everywhere (docs/cli.md), not a failed check.
        fail(f"--stack {stack}: no Pulumi.{stack}.yaml (stacks here: {', '.join(_stacks(where)) or 'none'})")
    checks: list[Check] = tool_checks() + repository_checks(where)
    stack_results, settings = stack_checks(where, stack)
    checks += stack_results
    passed, result = check_check(where, at)
    checks.append(passed)
    objects: list[dict[str, Any]] = []
    if result is not None and settings is not None:
        from tms_stack.lockfile import read_lock
        from tms_stack.render import render_repository

        groups = render_repository(result.repo, settings, read_lock(where), at)
        objects = [obj for group in groups for obj in group.objects]
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
