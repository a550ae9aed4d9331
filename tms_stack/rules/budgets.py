"""Rules on who holds what: owners declared in policies, and leases and GPUs against per-owner
budgets. Pools count against their owner's GPU budget: `instances.max` x GPUs per instance (the
peak, as bespoke leases count at max replicas); `instances.min` x GPUs are always on. A pooled
lease counts against its own owner's budget by its share of an instance (`lease_gpus`): the pool's
owner pays for the capacity, each tenant for what it takes of it."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from tms_stack.logic.resolve import EffectiveLease, effective_lease, effective_pool_resources
from tms_stack.models import Lease, Pool
from tms_stack.models.diagnostics import Diagnostic
from tms_stack.models.nodeclass import WHOLE_GPU
from tms_stack.repo.loader import Loaded, Repository
from tms_stack.rules.context import Ctx


@dataclass(frozen=True)
class Holding:
    """One lease or pool in an owner's total."""

    what: str            # "lease fraud-detector" / "pool shared-t4-pool"
    loaded: Loaded
    gpus: Fraction       # at peak; a pooled lease's share may be a fraction of a GPU
    always_on: Fraction  # GPUs held even when idle (pools: instances.min x GPUs)
    note: str = ""       # how a pooled lease's share was counted
    resource: str = WHOLE_GPU  # the GPU resource of its node class


def owners_enforced(ctx: Ctx) -> bool:
    """Owners must be declared once the admin declares them or sets any budget (without a budget
    an owner is only a label, as in TMS, which had none)."""
    spec = ctx.repo.limits.spec
    b = spec.budgets
    return (spec.owners is not None or b.default.gpus is not None or b.default.leases is not None
            or bool(b.default.gpuResources) or bool(b.owners))


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


def lease_gpus(lease: Lease, ctx_pools: dict[str, Pool], limits: Any, allowlist: Any,
               default_class: str | None = None, eff: EffectiveLease | None = None) -> Fraction:
    """GPUs a lease counts against its owner's budget. Bespoke: GPUs per replica x max replicas.
    Pooled: its share of the instance, GPUs per instance x quota / instanceQuota (exact; a team's
    quota-1 shares of 8-quota T4s add up to whole GPUs only when they fill instances).
    `eff`: the lease's effective_lease with these pools and class, when the caller has it."""
    share = lease.spec.pool
    if share is None:
        eff = eff or effective_lease(lease, limits, allowlist, ctx_pools, default_class)
        return Fraction(eff.gpus_reserved)
    pool = ctx_pools.get(share.name)
    if pool is None:
        return Fraction(0)  # pool.exists says why
    return Fraction(effective_pool_resources(pool, limits).gpu * share.quota, pool.spec.instanceQuota)


def fmt_gpus(value: Fraction) -> str:
    """Whole GPUs as integers; a share to two decimals, rounded up (never shown as less than it is)."""
    if value.denominator == 1:
        return str(value.numerator)
    return f"{math.ceil(value * 100) / 100:.2f}".rstrip("0").rstrip(".")


def _holdings(ctx: Ctx) -> dict[str, list[Holding]]:
    by_owner: dict[str, list[Holding]] = defaultdict(list)
    pools = ctx.pools_by_name
    for loaded in ctx.repo.leases.values():
        lease: Lease = loaded.model  # type: ignore[assignment]
        eff = effective_lease(lease, ctx.repo.limits, ctx.repo.allowlist, pools, ctx.default_class)
        gpus = lease_gpus(lease, pools, ctx.repo.limits, ctx.repo.allowlist, ctx.default_class, eff)
        share = lease.spec.pool
        home = pools.get(share.name) if share else None
        note = (f" (share of pool {home.name}: quota {share.quota} of {home.spec.instanceQuota})"
                if share and home else "")
        resource = eff.resources.gpu_resource
        by_owner[lease.metadata.owner].append(Holding(f"lease {lease.name}", loaded, gpus, Fraction(0), note,
                                                      resource))
    for loaded in ctx.repo.pools.values():
        pool: Pool = loaded.model  # type: ignore[assignment]
        if pool.metadata.owner is None:
            continue  # reported by owner_rules when budgets apply
        res = effective_pool_resources(pool, ctx.repo.limits, ctx.default_class)
        per_instance = res.gpu
        inst = pool.spec.instances
        by_owner[pool.metadata.owner].append(Holding(f"pool {pool.name}", loaded, Fraction(inst.max * per_instance),
                                                     Fraction(inst.min * per_instance), "", res.gpu_resource))
    return by_owner


def owner_totals(repo: Repository) -> dict[str, tuple[Fraction, int]]:
    """Per owner: GPUs counted against the budget (leases and pools, as `budget.gpus` counts
    them) and the number of leases. The plan's owner table shows these."""
    out: dict[str, tuple[Fraction, int]] = {}
    for owner, entries in _holdings(Ctx(repo)).items():
        out[owner] = (sum((e.gpus for e in entries), Fraction(0)),
                      sum(1 for e in entries if e.what.startswith("lease ")))
    return out


MAX_LISTED = 100


def _listed(items: Iterable[str], most: int = MAX_LISTED) -> str:
    """A one-line list that stays bounded (an owner without a lease budget may hold thousands)."""
    shown = list(items)
    more = f", and {len(shown) - most} more" if len(shown) > most else ""
    return ", ".join(shown[:most]) + more


def _blamed(ctx: Ctx, entries: list[Holding], counts: Callable[[Holding], bool]) -> list[Holding]:
    """Where a budget finding goes: every holding the pull request added or changed (when the base
    is known), else the largest holding (most GPUs, then name): never an unchanged file that merely
    sorts first."""
    candidates = [e for e in entries if counts(e)]
    if ctx.base is not None:
        changed = [e for e in candidates if ctx.base.differs(e.loaded.model)]
        if changed:
            return sorted(changed, key=lambda e: e.what)
    if not candidates:
        return []
    return [min(candidates, key=lambda e: (-e.gpus, e.what))]


def _leases_listed(leases: list[Holding], changed: set[str]) -> str:
    return _listed(f"{e.what.removeprefix('lease ')}{' [this change]' if e.what in changed else ''} "
                   f"{fmt_gpus(e.gpus)}{e.note}" for e in leases)


def _pools_listed(pooled: list[Holding]) -> str:
    return _listed(f"{e.what.removeprefix('pool ')} {fmt_gpus(e.gpus)} ({fmt_gpus(e.always_on)} always on)"
                   for e in pooled)


def budget_rules(ctx: Ctx) -> Iterator[Diagnostic]:
    budgets = ctx.repo.limits.spec.budgets
    for owner, entries in sorted(_holdings(ctx).items()):
        budget = budgets.for_owner(owner)
        path: tuple[Any, ...] = ("spec", "budgets", "owners", owner) if owner in budgets.owners \
            else ("spec", "budgets", "default")
        ref = ctx.policy_ref("Limits", path)
        entries.sort(key=lambda e: (-e.gpus, e.what))
        leases = [e for e in entries if e.what.startswith("lease ")]
        changed = {e.what for e in entries if ctx.base is not None and ctx.base.differs(e.loaded.model)}

        if budget.leases is not None and len(leases) > budget.leases:
            by_name = sorted(leases, key=lambda e: e.what)
            # Without a base (or when nothing of this owner changed), the first lease over the count.
            blamed = [e for e in by_name if e.what in changed] or [by_name[budget.leases]]
            for entry in blamed:
                yield ctx.at(entry.loaded, ("metadata", "owner"), "budget.leases",
                             f"owner {owner} has {len(leases)} leases, over the budget of {budget.leases} ({ref}); "
                             f"leases: {_listed(e.what.removeprefix('lease ') for e in by_name)}")
        # One total per GPU resource that has a budget of its own, one for whole GPUs and the rest.
        buckets: dict[str, list[Holding]] = defaultdict(list)
        for entry in entries:
            buckets[budget.bucket(entry.resource)].append(entry)
        for bucket, held in sorted(buckets.items()):
            limit = budget.limit(bucket)
            if limit is None:
                continue
            grand = sum((e.gpus for e in held), Fraction(0))
            if grand <= limit:
                continue
            per_resource = bucket in budget.gpuResources
            where = ctx.policy_ref("Limits", path + ("gpuResources", bucket)) if per_resource else ref
            what = bucket if per_resource else "GPUs"
            in_bucket = [e for e in leases if e in held]
            pooled = [e for e in held if e.what.startswith("pool ") and e.gpus]
            detail = f"{what} by lease: {_leases_listed(in_bucket, changed) or 'none'}" + (
                f"; by pool (at instances.max): {_pools_listed(pooled)}" if pooled else "")
            for entry in _blamed(ctx, held, lambda e: e.gpus > 0):
                yield ctx.at(entry.loaded, ("metadata", "owner"), "budget.gpus",
                             f"owner {owner} would hold {fmt_gpus(grand)} {what} (at max replicas), over the budget "
                             f"of {limit} ({where}); {detail}")
