"""Rules on what each owner holds in total: leases and GPUs against per-owner budgets."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from tms_stack.diagnostics import Diagnostic
from tms_stack.loader import Loaded
from tms_stack.models import Lease
from tms_stack.resolve import effective_lease
from tms_stack.rules.context import Ctx


def budget_rules(ctx: Ctx) -> Iterator[Diagnostic]:
    budgets = ctx.repo.limits.spec.budgets
    by_owner: dict[str, list[tuple[str, Loaded, int]]] = defaultdict(list)
    pools = {p.name: p for p in ctx.repo.all_pools()}
    for loaded in ctx.repo.leases.values():
        lease: Lease = loaded.model  # type: ignore[assignment]
        eff = effective_lease(lease, ctx.repo.limits, ctx.repo.allowlist, pools)
        by_owner[lease.metadata.owner].append((lease.name, loaded, eff.gpus_reserved))
    for owner, entries in sorted(by_owner.items()):
        budget = budgets.for_owner(owner)
        path = ("spec", "budgets", "owners", owner) if owner in budgets.owners else ("spec", "budgets", "default")
        ref = ctx.policy_ref("Limits", path)
        entries.sort(key=lambda e: e[0])
        if budget.leases is not None and len(entries) > budget.leases:
            name, loaded, _ = entries[budget.leases]
            yield ctx.at(loaded, ("metadata", "owner"), "budget.leases",
                         f"owner {owner} has {len(entries)} leases, over the budget of {budget.leases} ({ref})")
        if budget.gpus is not None:
            total = 0
            for _name, loaded, gpus in entries:
                total += gpus
                if total > budget.gpus and gpus:
                    detail = ", ".join(f"{n} {g}" for n, _, g in entries if g)
                    grand = sum(g for _, _, g in entries)
                    yield ctx.at(loaded, ("metadata", "owner"), "budget.gpus",
                                 f"owner {owner} would hold {grand} GPUs (at max replicas), over the budget of "
                                 f"{budget.gpus} ({ref}); GPUs by lease: {detail}")
                    break
