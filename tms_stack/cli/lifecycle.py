"""`tms prune` and `tms plan`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from tms_stack.cli.common import EXIT_USAGE, RootOpt, StackOpt, resolve_root, stack_settings


def register(app: typer.Typer) -> None:
    @app.command()
    def prune(
        root: RootOpt = None,
        stack: StackOpt = None,
        now: Annotated[str | None, typer.Option(metavar="TIME", help="treat this UTC time as now")] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="print what would change, change nothing")] = False,
        prometheus_url: Annotated[str | None, typer.Option(envvar="TMS_PROMETHEUS_URL",
                                  help="Prometheus to ask for lease activity")] = None,
        triton_url: Annotated[str | None, typer.Option(envvar="TMS_TRITON_URL_TEMPLATE",
                              help="without Prometheus: Triton URL template, e.g. http://{service}.{namespace}.svc:8000")] = None,
        namespace: Annotated[str | None, typer.Option(envvar="TMS_NAMESPACE", metavar="NAME", show_default=False,
                                                      help="namespace of the leases (default: the stack's)")] = None,
        message_file: Annotated[Path | None, typer.Option(metavar="FILE",
                                                          help="also write the commit message here")] = None,
    ) -> None:
        """Delete expired leases; renew auto-renew leases that served requests in their window.

        Example: tms prune --dry-run"""
        from datetime import UTC, datetime

        from tms_stack.cli.app import parse_now
        from tms_stack.loader import load_repository
        from tms_stack.prune import apply, decide, telemetry_source

        root = resolve_root(root)
        moment = parse_now(now) or datetime.now(UTC)
        if namespace is None:
            # The stack says where the leases run; "default" was a wrong guess (issue 14).
            namespace = stack_settings(root, stack).namespace
        repo = load_repository(root)
        if repo.unreadable:
            for d in repo.unreadable:
                typer.echo(f"{d.location()}: {d.message}", err=True)
            raise typer.Exit(EXIT_USAGE)
        source = telemetry_source(root, prometheus_url, triton_url, namespace, stack)
        result = decide(repo, moment, source)
        if not dry_run and result.changed:
            apply(root, repo, result)
        message = result.commit_message()
        typer.echo(message, nl=False)
        if message_file:
            message_file.write_text(message)
        if result.unknown:
            typer.echo(f"warning: {len(result.unknown)} auto-renew lease(s) left alone: activity unknown "
                       "(telemetry unreachable or not configured); nothing was renewed or deleted for them",
                       err=True)
        for name, file, why in result.expired_unknown:
            # Loud, but exit 0: the deletion must still be committed and pushed (fail closed).
            typer.echo(f"warning: {file}: lease {name} expired with activity unknown past the grace: {why}",
                       err=True)
        if "GITHUB_OUTPUT" in os.environ:
            with open(os.environ["GITHUB_OUTPUT"], "a") as out:
                out.write(f"changed={'true' if result.changed else 'false'}\n")
                out.write(f"expired_unknown={len(result.expired_unknown)}\n")
        sys.stdout.flush()

    @app.command()
    def plan(
        base: Annotated[str, typer.Option(metavar="REF", help="git ref to compare with (the PR's base)")] = "origin/main",
        root: RootOpt = None,
        stack: StackOpt = None,
        now: Annotated[str | None, typer.Option(metavar="TIME", help="evaluate expiry at this UTC time")] = None,
        output: Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE",
                                                    help="write the markdown here")] = None,
        targets: Annotated[bool, typer.Option(
            "--targets", help="instead of markdown, the Pulumi URNs whose objects differ from --base, one per "
                              "line, for `pulumi up --target`; a single `...::**` line means the whole stack "
                              "(docs/cli.md)")] = False,
    ) -> None:
        """Markdown for the pull-request comment: what merging would change.

        Example: tms plan --base origin/main --output plan.md
        Example: tms plan --base "$DEPLOYED_SHA" --stack prod --targets -o targets.txt"""
        from tms_stack.cli.app import parse_now
        from tms_stack.plan import build_plan, render_markdown

        if targets:
            from tms_stack.targets import compute_targets

            t = compute_targets(resolve_root(root), base, stack, parse_now(now))
            summary = (f"whole stack: {t.reason}" if t.whole_stack else
                       f"{len(t.groups)} group(s) changed: {', '.join(t.groups[:10]) or 'none'}"
                       f"{' ...' if len(t.groups) > 10 else ''} ({len(t.urns)} URNs)")
            typer.echo(f"tms plan --targets: {summary}", err=True)
            lines = "".join(u + "\n" for u in t.urns)
            if output:
                output.write_text(lines)
            else:
                typer.echo(lines, nl=False)
            return

        # git's own message (e.g. an unknown --base) reaches the user through the central handler.
        text = render_markdown(build_plan(resolve_root(root), base, stack, parse_now(now)))
        if output:
            output.write_text(text)
        else:
            typer.echo(text, nl=False)
