"""Rules on node classes: a pool, bespoke lease or stack may only name a class the policies offer
(nodeclass.unknown); a Triton may not ask for more of a class's GPU resource than one node of it
gives (nodeclass.gpus); a pooled lease that states the class it needs must share a pool on that
class (pool.node-class)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tms_stack.logic.resolve import (
    EffectiveResources,
    effective_pool_resources,
    effective_resources,
    pool_node_class,
)
from tms_stack.models import Lease, Pool
from tms_stack.models.diagnostics import Diagnostic
from tms_stack.repo.loader import Loaded
from tms_stack.rules.context import Ctx, StackDefault, stack_defaults

__all__ = ["StackDefault", "node_class_rules", "stack_defaults"]


def _offered(ctx: Ctx) -> str:
    names = sorted(ctx.repo.limits.spec.nodeClasses)
    return f"offered: {', '.join(names)}" if names else "the policies offer none (Limits spec.nodeClasses)"


def _unknown(ctx: Ctx, loaded: Loaded, path: tuple[Any, ...], name: str) -> Diagnostic:
    ref = ctx.policy_ref("Limits", ("spec", "nodeClasses"))
    return ctx.at(loaded, path, "nodeclass.unknown",
                  f"node class {name!r} is not offered by the policies ({ref}); {_offered(ctx)}")


def _classes(ctx: Ctx, chosen: str | None) -> list[tuple[str, str]]:
    """(class, where it comes from) a Triton may run on: its own choice, else every stack's default."""
    if chosen:
        return [(chosen, "")]
    return [(d.node_class, f" (the default of {d.file})") for d in ctx.stack_defaults if d.node_class]


def _gpu_rule(ctx: Ctx, loaded: Loaded, base: tuple[Any, ...], chosen: str | None,
              eff: EffectiveResources, requested: Any) -> Iterator[Diagnostic]:
    classes = ctx.repo.limits.spec.nodeClasses
    for name, source in _classes(ctx, chosen):
        node_class = classes.get(name)
        if node_class is None or node_class.maxGpus is None or eff.gpu <= node_class.maxGpus:
            continue
        given = "" if requested is not None and requested.gpu is not None else " (the admin default)"
        ref = ctx.policy_ref("Limits", ("spec", "nodeClasses", name, "maxGpus"))
        yield ctx.at(loaded, base + ("gpu",), "nodeclass.gpus",
                     f"gpu: {eff.gpu}{given} is more than node class {name}{source} can give: at most "
                     f"{node_class.maxGpus} {node_class.gpuResource} per Triton ({ref})")


def node_class_rules(ctx: Ctx) -> Iterator[Diagnostic]:
    offered = ctx.repo.limits.spec.nodeClasses
    default = ctx.repo.limits.spec.triton.resources.default
    for d in ctx.stack_defaults:
        if d.node_class and d.node_class not in offered:
            yield Diagnostic(d.file, d.line, d.col, "nodeclass.unknown",
                             f"defaultNodeClass {d.node_class!r} is not offered by the policies "
                             f"({ctx.policy_ref('Limits', ('spec', 'nodeClasses'))}); {_offered(ctx)}")
    for loaded in ctx.repo.pools.values():
        pool: Pool = loaded.model  # type: ignore[assignment]
        chosen = pool.spec.triton.nodeClass if pool.spec.triton else None
        if chosen and chosen not in offered:
            yield _unknown(ctx, loaded, ("spec", "triton", "nodeClass"), chosen)
            continue
        requested = pool.spec.triton.resources if pool.spec.triton else None
        yield from _gpu_rule(ctx, loaded, ("spec", "triton", "resources"), chosen,
                             effective_pool_resources(pool, ctx.repo.limits), requested)
    for loaded in ctx.repo.leases.values():
        lease: Lease = loaded.model  # type: ignore[assignment]
        if lease.spec.pool is not None:
            yield from _pooled(ctx, loaded, lease)
            continue
        triton = lease.spec.triton
        chosen = triton.nodeClass if triton else None
        if chosen and chosen not in offered:
            yield _unknown(ctx, loaded, ("spec", "triton", "nodeClass"), chosen)
            continue
        requested = triton.resources if triton else None
        yield from _gpu_rule(ctx, loaded, ("spec", "triton", "resources"), chosen,
                             effective_resources(requested, default), requested)


def _pooled(ctx: Ctx, loaded: Loaded, lease: Lease) -> Iterator[Diagnostic]:
    share = lease.spec.pool
    assert share is not None
    if share.nodeClass is None:
        return
    if share.nodeClass not in ctx.repo.limits.spec.nodeClasses:
        yield _unknown(ctx, loaded, ("spec", "pool", "nodeClass"), share.nodeClass)
        return
    pool = ctx.pools_by_name.get(share.name)
    if pool is None:
        return  # pool.exists says so
    own = pool_node_class(pool)
    runs_on = [own] if own else [d.node_class for d in ctx.stack_defaults]
    wrong = sorted({c or "no class" for c in runs_on if c != share.nodeClass}) or (
        [] if runs_on else ["no class"])
    if wrong:
        yield ctx.at(loaded, ("spec", "pool", "nodeClass"), "pool.node-class",
                     f"pool {pool.name} runs on node class {', '.join(wrong)}, not {share.nodeClass}: share a "
                     f"pool on {share.nodeClass}, or ask for a Triton of your own (triton.nodeClass)")
