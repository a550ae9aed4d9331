"""`tms prune` and `tms plan`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from tms_stack.cli.app import parse_now
from tms_stack.cli.common import (
    EXIT_USAGE,
    OutputFormat,
    OutputOpt,
    RootOpt,
    StackOpt,
    as_format,
    emit,
    fail,
    require_stack,
    resolve_root,
    stack_settings,
    write_out,
)
from tms_stack.commands.plan import build_plan, render_markdown
from tms_stack.commands.prune import DEFAULT_SCRAPE, decide, telemetry_source
from tms_stack.commands.prune_apply import apply
from tms_stack.commands.targets import compute_targets
from tms_stack.models import units
from tms_stack.models.diagnostics import TmsError
from tms_stack.repo.loader import load_repository
from tms_stack.repo.replock import repository_lock, wait_seconds


def register(app: typer.Typer) -> None:
    @app.command()
    def prune(
        root: RootOpt = None,
        stack: StackOpt = None,
        now: Annotated[str | None, typer.Option(metavar="TIME", help="treat this time as now (ISO 8601; no offset: UTC)")] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="print what would change, change nothing")] = False,
        telemetry_budget: Annotated[str, typer.Option(
            metavar="DURATION", envvar="TMS_PRUNE_TELEMETRY_BUDGET",
            help="time for all activity questions together; a lease not answered within it is unknown "
                 "(kept until unknownGrace, never deleted as idle)")] = "3m",
        telemetry_concurrency: Annotated[int, typer.Option(
            metavar="N", min=1, max=64, help="activity questions in flight at once")] = 8,
        prometheus_url: Annotated[str | None, typer.Option(envvar="TMS_PROMETHEUS_URL",
                                  help="Prometheus to ask for lease activity")] = None,
        triton_url: Annotated[str | None, typer.Option(envvar="TMS_TRITON_URL_TEMPLATE",
                              help="without Prometheus: Triton URL template, e.g. http://{service}.{namespace}.svc:8000")] = None,
        namespace: Annotated[str | None, typer.Option(envvar="TMS_NAMESPACE", metavar="NAME", show_default=False,
                                                      help="namespace of the leases (default: the stack's)")] = None,
        message_file: Annotated[Path | None, typer.Option(metavar="FILE",
                                                          help="also write the commit message here")] = None,
        output: OutputOpt = "text",
    ) -> None:
        """Delete expired leases; renew auto-renew leases that served requests in their window.

        Example: tms prune --dry-run -o json"""
        from datetime import UTC, datetime


        root = resolve_root(root)
        require_stack(root, stack)
        moment = parse_now(now) or datetime.now(UTC)
        try:
            budget = units.parse_duration(telemetry_budget)
        except ValueError as exc:
            raise typer.BadParameter(f"--telemetry-budget: {exc}") from None
        try:
            settings = stack_settings(root, stack)
        except TmsError:
            if namespace is None:
                raise
            settings = None  # --namespace given: the stack is needed only for its scrape interval
        if namespace is None:
            # The stack says where the leases run; "default" was a wrong guess (issue 14).
            namespace = settings.namespace
        scrape = units.parse_duration(settings.prometheus.scrapeInterval) if settings else DEFAULT_SCRAPE
        repo = load_repository(root)
        if repo.unreadable:
            first = repo.unreadable[0]
            more = f" (+{len(repo.unreadable) - 1} more: tms check lists them)" if len(repo.unreadable) > 1 else ""
            fail(f"unreadable file {first.location()}: {first.message}{more}", EXIT_USAGE)
        source = telemetry_source(root, prometheus_url, triton_url, namespace, stack)

        def progress(done: int, total: int) -> None:
            if total >= 20 and (done == total or done % max(total // 10, 1) == 0):
                typer.echo(f"tms prune: activity of {done}/{total} leases asked", err=True)

        result = decide(repo, moment, source, budget=budget.total_seconds(), workers=telemetry_concurrency,
                        scrape_interval=scrape, progress=progress)
        if result.changed:
            # --dry-run too: the report then says what the check gate would give up. Deletions that
            # would fail check raise PolicyFindings (exit 1) and nothing is written. Another command
            # may have edited a lease while telemetry was asked: apply re-reads under the repository
            # lock and refuses (exit 3) rather than undo that edit.
            with repository_lock(root, wait_seconds(None)):
                apply(root, repo, result, moment, write=not dry_run)
        message = result.commit_message()
        if as_format(output) is OutputFormat.json:
            emit(output, prune_json(result, message, dry_run))
        else:
            typer.echo(message, nl=False)
        if message_file:
            message_file.write_text(message)
        if result.unknown:
            typer.echo(f"warning: {len(result.unknown)} auto-renew lease(s) left alone: activity unknown "
                       "(telemetry unreachable or not configured); nothing was renewed or deleted for them",
                       err=True)
        for name, file, why in result.unrenewable:
            typer.echo(f"warning: {file}: lease {name} is active but was not renewed: {why}", err=True)
        for name, file, why in result.expired_unknown:
            # Loud, but exit 0: the deletion must still be committed and pushed (fail closed).
            typer.echo(f"warning: {file}: lease {name} expired with activity unknown past the grace: {why}",
                       err=True)
        if "GITHUB_OUTPUT" in os.environ:
            with open(os.environ["GITHUB_OUTPUT"], "a") as out:
                out.write(f"changed={'true' if result.changed else 'false'}\n")
                out.write(f"expired_unknown={len(result.expired_unknown)}\n")
                out.write(f"unrenewable={len(result.unrenewable)}\n")
        sys.stdout.flush()

    @app.command()
    def plan(
        base: Annotated[str, typer.Option(metavar="REF", help="git ref to compare with (the PR's base)")] = "origin/main",
        root: RootOpt = None,
        stack: StackOpt = None,
        now: Annotated[str | None, typer.Option(metavar="TIME", help="evaluate expiry at this UTC time")] = None,
        out: Annotated[Path | None, typer.Option("--out", metavar="FILE", show_default=False,
                                                 help="write the plan (or the --targets list) here (default: stdout)")] = None,
        targets: Annotated[bool, typer.Option(
            "--targets", help="instead of markdown, the Pulumi URNs whose objects differ from --base, one per "
                              "line, for `pulumi up --target`; a single `...::**` line means the whole stack "
                              "(docs/cli.md)")] = False,
        base_dir: Annotated[Path | None, typer.Option(
            "--base-dir", metavar="DIR", help="read the base's leases, pools, policies and stack files from this "
                                              "checkout instead of from git at --base (--base is then only "
                                              "the label); scripts/trusted-review.sh uses it")] = None,
        no_cache: Annotated[bool, typer.Option(
            "--no-cache", help="parse every file, run every rule and render every group: no parse cache, no "
                               "kept answers, no narrowing to the groups the change touches (docs/review.md; also "
                               "TMS_CACHE=off)")] = False,
        output: OutputOpt = "text",
    ) -> None:
        """Markdown for the pull-request comment: what merging would change (-o json: the same as data).

        Example: tms plan --base origin/main --out plan.md
        Example: tms plan --base "$DEPLOYED_SHA" --stack prod --targets --out targets.txt"""
        import dataclasses
        import json


        require_stack(resolve_root(root), stack)
        if targets:
            t = compute_targets(resolve_root(root), base, stack, parse_now(now), cache=not no_cache)
            summary = (f"whole stack: {t.reason}" if t.whole_stack else
                       f"{len(t.groups)} group(s) changed: {', '.join(t.groups[:10]) or 'none'}"
                       f"{' ...' if len(t.groups) > 10 else ''} ({len(t.urns)} URNs)")
            typer.echo(f"tms plan --targets: {summary}", err=True)
            lines = "".join(u + "\n" for u in t.urns)
            if as_format(output) is OutputFormat.json:
                lines = json.dumps({"whole_stack": t.whole_stack, "reason": t.reason, "groups": t.groups,
                                    "urns": t.urns}, indent=2, sort_keys=True) + "\n"
            write_out(out, lines)
            return

        # git's own message (e.g. an unknown --base) reaches the user through the central handler.
        if base_dir is not None and not base_dir.is_dir():
            raise typer.BadParameter(f"--base-dir {base_dir}: no such folder")
        result = build_plan(resolve_root(root), base, stack, parse_now(now), base_dir, cache=not no_cache)
        if as_format(output) is OutputFormat.json:
            text = json.dumps(dataclasses.asdict(result), indent=2, sort_keys=True, default=str) + "\n"
        else:
            text = render_markdown(result)
        write_out(out, text)


def prune_json(result, message: str, dry_run: bool) -> dict:  # type: ignore[no-untyped-def]
    """`tms prune -o json` (schema: docs/cli.md)."""
    ts = units.format_utc
    return {
        "dry_run": dry_run,
        "changed": result.changed,
        "deleted": [{"lease": n, "file": f, "expires": ts(e)} for n, f, e in result.expired],
        "renewed": [{"lease": r.lease, "file": r.file, "expires_before": ts(r.old), "expires": ts(r.new)}
                    for r in result.renewed],
        "unknown": [{"lease": n, "file": f, "why": w} for n, f, w in result.unknown],
        "expired_unknown": [{"lease": n, "file": f, "why": w} for n, f, w in result.expired_unknown],
        "unrenewable": [{"lease": n, "file": f, "why": w} for n, f, w in result.unrenewable],
        "waiting": [{"lease": n, "file": f, "expires": ts(e)} for n, f, e in result.waiting],
        "commit_message": message,
    }
