"""Policy and cross-file rules, one module per thing they guard. Pure: Repository + time in,
diagnostics out. Each rule has a stable id (the `rule` of a Diagnostic) documented in docs/rules.md."""

from __future__ import annotations

from datetime import UTC, datetime

from tms_stack.diagnostics import Diagnostic
from tms_stack.loader import Repository
from tms_stack.rules.budgets import budget_rules, owner_rules
from tms_stack.rules.context import Ctx
from tms_stack.rules.leases import lease_rules
from tms_stack.rules.names import alias_rules, pool_instance_owner, service_names
from tms_stack.rules.ownership import ownership_rules
from tms_stack.rules.policies import policy_rules
from tms_stack.rules.pools import pool_name_rules, pool_rules
from tms_stack.rules.telemetry import telemetry_rules

__all__ = ["check_repository", "pool_instance_owner", "service_names"]


def check_repository(repo: Repository, now: datetime | None = None) -> list[Diagnostic]:
    """Every diagnostic for `repo`: load-time schema errors plus all rules."""
    now = now or datetime.now(UTC)
    ctx = Ctx(repo)
    found = list(repo.diagnostics)
    if repo.invalid_policies:
        # Judging leases against TMS defaults instead of the admin's broken policy would bury the
        # real error under a cascade of false ones: fix the policy first.
        return sorted(set(found))
    found.extend(policy_rules(ctx))
    for loaded in repo.pools.values():
        found.extend(pool_rules(ctx, loaded))
    found.extend(pool_name_rules(ctx))
    for stem, loaded in repo.leases.items():
        found.extend(lease_rules(ctx, stem, loaded, now))
    found.extend(telemetry_rules(ctx))
    found.extend(alias_rules(ctx))
    found.extend(ownership_rules(ctx))
    found.extend(owner_rules(ctx))
    found.extend(budget_rules(ctx))
    return sorted(set(found))
