"""Rules on what a Triton asks for: its image and its resources against the admin's limits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tms_stack.logic.resolve import EffectiveResources, default_image
from tms_stack.models import units
from tms_stack.models.diagnostics import Diagnostic
from tms_stack.repo.loader import Loaded
from tms_stack.rules.context import RESOURCE_FIELDS, SHARED_MEMORY_HEADROOM, Ctx, effective_resources_of


def image_rule(ctx: Ctx, loaded: Loaded, path: tuple[Any, ...], image: str) -> Iterator[Diagnostic]:
    spec = ctx.repo.allowlist.spec
    allowed = set(spec.images) | ({spec.default} if spec.default else set())
    if not allowed:
        allowed = {default_image(ctx.repo.allowlist)}
    if image not in allowed:
        yield ctx.at(loaded, path, "image.allowlist",
                     f"image {image} is not on the allowlist ({ctx.policy_ref('Allowlist', ('spec', 'images'))}); "
                     f"allowed: {', '.join(sorted(allowed))}")


def resource_rules(ctx: Ctx, loaded: Loaded, base: tuple[Any, ...], eff: EffectiveResources,
                    requested: Any) -> Iterator[Diagnostic]:
    res = ctx.repo.limits.spec.triton.resources
    lo, hi = effective_resources_of(res.minimum), effective_resources_of(res.maximum)
    for key, attr, fmt in RESOURCE_FIELDS:
        value = getattr(eff, attr)
        path = base + (key,)
        source = "" if requested is not None and getattr(requested, key) is not None else " (the admin default)"
        if value > getattr(hi, attr):
            ref = ctx.policy_ref("Limits", ("spec", "triton", "resources", "maximum", key))
            yield ctx.at(loaded, path, "resources.maximum",
                         f"{key}: {fmt(value)}{source} exceeds the admin maximum {fmt(getattr(hi, attr))} ({ref})")
        elif value < getattr(lo, attr):
            ref = ctx.policy_ref("Limits", ("spec", "triton", "resources", "minimum", key))
            yield ctx.at(loaded, path, "resources.minimum",
                         f"{key}: {fmt(value)}{source} is below the admin minimum {fmt(getattr(lo, attr))} ({ref})")
    if eff.system_memory < eff.shared_memory + SHARED_MEMORY_HEADROOM:
        yield ctx.at(loaded, base + ("systemMemory",), "resources.memory",
                     f"systemMemory {units.format_memory(eff.system_memory)} must be at least 128Mi above "
                     f"sharedMemory {units.format_memory(eff.shared_memory)}")
