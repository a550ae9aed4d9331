"""Rules on who holds what: owners declared in policies, and leases and GPUs against per-owner
budgets. Pools count against their owner's GPU budget: `instances.max` x GPUs per instance (the
peak, as bespoke leases count at max replicas); `instances.min` x GPUs are always on."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from tms_stack.diagnostics import Diagnostic
from tms_stack.loader import Loaded
from tms_stack.models import Lease, Pool
from tms_stack.resolve import effective_lease, effective_pool_resources
from tms_stack.rules.context import Ctx


@dataclass(frozen=True)
class Holding:
    """One lease or pool in an owner's total."""

    what: str       # "lease fraud-detector" / "pool shared-t4-pool"
    loaded: Loaded
    gpus: int       # at peak
    always_on: int  # GPUs held even when idle (pools: instances.min x GPUs)


def owners_enforced(ctx: Ctx) -> bool:
    """Owners must be declared once the admin declares them or sets any budget (without a budget
    an owner is only a label, as in TMS, which had none)."""
    spec = ctx.repo.limits.spec
    b = spec.budgets
    return (spec.owners is not None or b.default.gpus is not None or b.default.leases is not None
            or bool(b.owners))


def _known(ctx: Ctx) -> list[str]:
    spec = ctx.repo.limits.spec
    return sorted(set(spec.owners or ()))


def owner_rules(ctx: Ctx) -> Iterator[Diagnostic]:
    if not owners_enforced(ctx):
        return
    known = _known(ctx)
    ref = ctx.policy_ref("Limits", ("spec", "owners"))
    listed = f"known owners: {', '.join(known)}" if known else "no owners are declared (spec.owners)"
    where = f"policies Limits spec.owners ({ref})"
    for loaded in ctx.repo.leases.values():
        lease: Lease = loaded.model  # type: ignore[assignment]
        if lease.metadata.owner not in known:
            yield ctx.at(loaded, ("metadata", "owner"), "owner.unknown",
                         f"owner {lease.metadata.owner!r} is not declared in {where}: {listed}")
    for loaded in ctx.repo.pools.values():
        pool: Pool = loaded.model  # type: ignore[assignment]
        if pool.metadata.owner is None:
            yield ctx.at(loaded, ("metadata",), "owner.unknown",
                         f"pool {pool.name} needs metadata.owner: its GPUs count against that owner's budget; "
                         f"{listed}")
        elif pool.metadata.owner not in known:
            yield ctx.at(loaded, ("metadata", "owner"), "owner.unknown",
                         f"owner {pool.metadata.owner!r} is not declared in {where}: {listed}")
    limits = ctx.repo.policy_files.get("Limits")
    if limits is not None and ctx.repo.limits.spec.owners is not None:
        for owner in ctx.repo.limits.spec.budgets.owners:
            if owner not in known:
                yield ctx.at(limits, ("spec", "budgets", "owners", owner), "owner.unknown",
                             f"budget for owner {owner!r}, who is not declared in spec.owners: {listed}")


def _holdings(ctx: Ctx) -> dict[str, list[Holding]]:
    by_owner: dict[str, list[Holding]] = defaultdict(list)
    pools = ctx.pools_by_name
    for loaded in ctx.repo.leases.values():
        lease: Lease = loaded.model  # type: ignore[assignment]
        eff = effective_lease(lease, ctx.repo.limits, ctx.repo.allowlist, pools)
        by_owner[lease.metadata.owner].append(Holding(f"lease {lease.name}", loaded, eff.gpus_reserved, 0))
    for loaded in ctx.repo.pools.values():
        pool: Pool = loaded.model  # type: ignore[assignment]
        if pool.metadata.owner is None:
            continue  # reported by owner_rules when budgets apply
        per_instance = effective_pool_resources(pool, ctx.repo.limits).gpu
        inst = pool.spec.instances
        by_owner[pool.metadata.owner].append(
            Holding(f"pool {pool.name}", loaded, inst.max * per_instance, inst.min * per_instance))
    return by_owner


def _listed(items: Iterable[str], most: int = 10) -> str:
    """A one-line list that stays one line (an owner may hold thousands of leases)."""
    shown = list(items)
    more = f", and {len(shown) - most} more" if len(shown) > most else ""
    return ", ".join(shown[:most]) + more


def budget_rules(ctx: Ctx) -> Iterator[Diagnostic]:
    budgets = ctx.repo.limits.spec.budgets
    for owner, entries in sorted(_holdings(ctx).items()):
        budget = budgets.for_owner(owner)
        path: tuple[Any, ...] = ("spec", "budgets", "owners", owner) if owner in budgets.owners \
            else ("spec", "budgets", "default")
        ref = ctx.policy_ref("Limits", path)
        # Pools first (always on), then leases by name: the entry that crosses the budget is blamed.
        entries.sort(key=lambda e: (not e.what.startswith("pool "), e.what))
        leases = [e for e in entries if e.what.startswith("lease ")]
        if budget.leases is not None and len(leases) > budget.leases:
            yield ctx.at(leases[budget.leases].loaded, ("metadata", "owner"), "budget.leases",
                         f"owner {owner} has {len(leases)} leases, over the budget of {budget.leases} ({ref})")
        if budget.gpus is None:
            continue
        total = 0
        for entry in entries:
            total += entry.gpus
            if total > budget.gpus and entry.gpus:
                grand = sum(e.gpus for e in entries)
                leased = _listed(f"{e.what.removeprefix('lease ')} {e.gpus}" for e in leases if e.gpus)
                pooled = _listed(f"{e.what.removeprefix('pool ')} {e.gpus} ({e.always_on} always on)"
                                 for e in entries if e.what.startswith("pool ") and e.gpus)
                detail = f"GPUs by lease: {leased or 'none'}" + (f"; by pool (at instances.max): {pooled}"
                                                                 if pooled else "")
                yield ctx.at(entry.loaded, ("metadata", "owner"), "budget.gpus",
                             f"owner {owner} would hold {grand} GPUs (at max replicas), over the budget of "
                             f"{budget.gpus} ({ref}); {detail}")
                break
