"""Rules on pool files: names, instance limits, image and resources."""

from __future__ import annotations

from collections.abc import Iterator

from tms_stack.logic.resolve import effective_pool_resources
from tms_stack.models import Pool
from tms_stack.models.diagnostics import Diagnostic
from tms_stack.models.pool import k8s_pool_name
from tms_stack.repo.loader import Loaded
from tms_stack.rules.context import Ctx
from tms_stack.rules.resources import image_rule, resource_rules


def pool_rules(ctx: Ctx, loaded: Loaded) -> Iterator[Diagnostic]:
    pool: Pool = loaded.model  # type: ignore[assignment]
    limits = ctx.repo.limits.spec
    stem = loaded.file.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    if pool.name != stem:
        yield ctx.at(loaded, ("metadata", "name"), "pool.name-matches-file",
                     f"metadata.name {pool.name!r} must equal the file name {stem!r}")
    if not limits.pools.enabled:
        yield ctx.at(loaded, ("kind",), "pools.disabled",
                     f"pools are disabled by the admin (pools.enabled: false, {ctx.policy_ref('Limits', ('spec', 'pools', 'enabled'))})")
    q = limits.pools.instanceQuota
    if not q.minimum <= pool.spec.instanceQuota <= q.maximum:
        yield ctx.at(loaded, ("spec", "instanceQuota"), "pool.instance-quota",
                     f"instanceQuota {pool.spec.instanceQuota} is outside the admin range {q.minimum}..{q.maximum} "
                     f"({ctx.policy_ref('Limits', ('spec', 'pools', 'instanceQuota'))})")
    if pool.spec.instances.max > limits.pools.maxInstances:
        yield ctx.at(loaded, ("spec", "instances", "max"), "pool.instances",
                     f"instances.max {pool.spec.instances.max} exceeds the admin maximum {limits.pools.maxInstances} "
                     f"({ctx.policy_ref('Limits', ('spec', 'pools', 'maxInstances'))})")
    image_path = ("spec", "triton", "image")
    image = pool.spec.triton.image if pool.spec.triton and pool.spec.triton.image else None
    if image is not None:
        yield from image_rule(ctx, loaded, image_path, image)
    resources = effective_pool_resources(pool, ctx.repo.limits)
    requested = pool.spec.triton.resources if pool.spec.triton else None
    yield from resource_rules(ctx, loaded, ("spec", "triton", "resources"), resources, requested)


def pool_name_rules(ctx: Ctx) -> Iterator[Diagnostic]:
    by_lower: dict[str, str] = {}
    by_k8s: dict[str, str] = {}
    for loaded in ctx.repo.pools.values():
        name = loaded.model.name  # type: ignore[attr-defined]
        if name.lower() in by_lower:
            yield ctx.at(loaded, ("metadata", "name"), "pool.name-unique",
                         f"pool name {name!r} clashes with {by_lower[name.lower()]} (names are unique case-insensitively)")
            continue
        k8s = k8s_pool_name(name)
        if k8s in by_k8s:
            yield ctx.at(loaded, ("metadata", "name"), "pool.name-unique",
                         f"pool name {name!r} maps to the Kubernetes name {k8s!r}, as does {by_k8s[k8s]}: rename one")
            continue
        by_lower[name.lower()] = loaded.file
        by_k8s[k8s] = loaded.file
