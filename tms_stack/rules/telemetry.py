"""Auto-renew needs a telemetry source: without one every renewal decision is "unknown", and the
lease would only ever end by the grace (docs/lifecycle.md). Refuse it at check time instead."""

from __future__ import annotations

from collections.abc import Iterator

from tms_stack.models import Lease
from tms_stack.models.diagnostics import Diagnostic, TmsError
from tms_stack.repo.stack import settings_from_document, stack_names
from tms_stack.repo.yamlio import parse_file
from tms_stack.rules.context import Ctx


def _stacks_without_telemetry(ctx: Ctx) -> list[str]:
    root = ctx.repo.root
    missing = []
    # a shard stack's own file is not read: the shard runs with its home's settings
    for path in (root / f"Pulumi.{name}.yaml" for name in stack_names(root)):
        try:
            settings = settings_from_document(parse_file(path, path.name))
        except TmsError:
            continue  # reported where stack settings are read (render, plan); not this rule's finding
        if settings.telemetry is None:
            missing.append(path.name)
    return missing


def telemetry_rules(ctx: Ctx) -> Iterator[Diagnostic]:
    if not ctx.repo.limits.spec.autoRenew.enabled:
        return  # autorenew.disabled already says what to do
    renewing = [(stem, loaded) for stem, loaded in sorted(ctx.repo.leases.items())
                if getattr(loaded.model, "spec", None) is not None
                and loaded.model.spec.autoRenew is not None]  # type: ignore[attr-defined]
    if not renewing:
        return
    missing = _stacks_without_telemetry(ctx)
    if not missing:
        return
    for _stem, loaded in renewing:
        lease: Lease = loaded.model  # type: ignore[assignment]
        yield ctx.at(loaded, ("spec", "autoRenew"), "autorenew.telemetry",
                     f"lease {lease.name} auto-renews but {', '.join(missing)} sets no `tms-stack:telemetry` "
                     "(source: prometheus or triton): prune could never see it active; "
                     "configure telemetry or remove autoRenew")
