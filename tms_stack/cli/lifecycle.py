"""`tms prune` and `tms plan`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def prune(
        root: Annotated[Path, typer.Option("--root", help="repository root")] = Path("."),
        now: Annotated[str | None, typer.Option(help="treat this UTC time as now")] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="print what would change, change nothing")] = False,
        prometheus_url: Annotated[str | None, typer.Option(envvar="TMS_PROMETHEUS_URL",
                                  help="Prometheus to ask for lease activity")] = None,
        triton_url: Annotated[str | None, typer.Option(envvar="TMS_TRITON_URL_TEMPLATE",
                              help="without Prometheus: Triton URL template, e.g. http://{service}.{namespace}.svc:8000")] = None,
        namespace: Annotated[str, typer.Option(envvar="TMS_NAMESPACE")] = "default",
        message_file: Annotated[Path | None, typer.Option(help="also write the commit message here")] = None,
    ) -> None:
        """Delete expired leases; renew auto-renew leases that served requests in their window."""
        from datetime import UTC, datetime

        from tms_stack.activity import ActivitySource, PrometheusActivity, TritonActivity
        from tms_stack.cli.app import parse_now
        from tms_stack.loader import load_repository
        from tms_stack.prune import apply, decide

        moment = parse_now(now) or datetime.now(UTC)
        repo = load_repository(root)
        if repo.unreadable:
            for d in repo.unreadable:
                typer.echo(f"{d.location()}: {d.message}", err=True)
            raise typer.Exit(2)
        source: ActivitySource | None = None
        if prometheus_url:
            source = PrometheusActivity(prometheus_url)
        elif triton_url:
            source = TritonActivity(triton_url, namespace)
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
        if "GITHUB_OUTPUT" in os.environ:
            with open(os.environ["GITHUB_OUTPUT"], "a") as out:
                out.write(f"changed={'true' if result.changed else 'false'}\n")
        sys.stdout.flush()

    @app.command()
    def plan(
        base: Annotated[str, typer.Option(help="git ref to compare with (the PR's base)")] = "origin/main",
        root: Annotated[Path, typer.Option("--root")] = Path("."),
        stack: Annotated[str | None, typer.Option(help="stack for the object diff")] = None,
        now: Annotated[str | None, typer.Option()] = None,
        output: Annotated[Path | None, typer.Option("--output", "-o", help="write the markdown here")] = None,
    ) -> None:
        """Markdown for the pull-request comment: what merging would change."""
        from tms_stack.cli.app import parse_now
        from tms_stack.plan import build_plan, render_markdown

        text = render_markdown(build_plan(root, base, stack, parse_now(now)))
        if output:
            output.write_text(text)
        else:
            typer.echo(text, nl=False)
