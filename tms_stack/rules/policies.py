"""Rules on the admin's own files: orders of minimum/default/maximum, allowlist, repositories."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tms_stack.models import units
from tms_stack.models.diagnostics import Diagnostic
from tms_stack.rules.context import RESOURCE_FIELDS, SHARED_MEMORY_HEADROOM, Ctx, effective_resources_of


def policy_rules(ctx: Ctx) -> Iterator[Diagnostic]:
    loaded = ctx.repo.policy_files.get("Limits")
    if loaded is not None:
        res = ctx.repo.limits.spec.triton.resources
        lo, de, hi = (effective_resources_of(v) for v in (res.minimum, res.default, res.maximum))
        for key, attr, fmt in RESOURCE_FIELDS:
            a, b, c = getattr(lo, attr), getattr(de, attr), getattr(hi, attr)
            if not a <= b <= c:
                yield ctx.at(loaded, ("spec", "triton", "resources", "default", key), "limits.resources-order",
                             f"{key}: need minimum <= default <= maximum, got {fmt(a)} <= {fmt(b)} <= {fmt(c)}")
        if de.system_memory < de.shared_memory + SHARED_MEMORY_HEADROOM:
            yield ctx.at(loaded, ("spec", "triton", "resources", "default", "systemMemory"), "resources.memory",
                         "default systemMemory must be at least 128Mi above default sharedMemory")
        dur = ctx.repo.limits.spec.leases.duration
        if units.parse_duration(dur.default) > units.parse_duration(dur.maximum):
            yield ctx.at(loaded, ("spec", "leases", "duration", "default"), "limits.duration-order",
                         f"default lease duration {dur.default} exceeds the maximum {dur.maximum}")
        win = ctx.repo.limits.spec.autoRenew.window
        if units.parse_duration(win.default) > units.parse_duration(win.maximum):
            yield ctx.at(loaded, ("spec", "autoRenew", "window", "default"), "limits.duration-order",
                         f"default auto-renew window {win.default} exceeds the maximum {win.maximum}")
        q = ctx.repo.limits.spec.pools.instanceQuota
        if q.minimum > q.maximum:
            yield ctx.at(loaded, ("spec", "pools", "instanceQuota"), "limits.quota-order",
                         f"instanceQuota minimum {q.minimum} exceeds maximum {q.maximum}")
    allow = ctx.repo.policy_files.get("Allowlist")
    if allow is not None:
        spec = ctx.repo.allowlist.spec
        seen: set[str] = set()
        for i, image in enumerate(spec.images):
            if image in seen:
                yield ctx.at(allow, ("spec", "images", i), "allowlist.duplicate", f"image {image} is listed twice")
            seen.add(image)
        if spec.default and spec.default not in seen:
            yield ctx.at(allow, ("spec", "default"), "allowlist.default",
                         f"default image {spec.default} is not in images: add it there too")
    repos = ctx.repo.policy_files.get("Repositories")
    if repos is not None:
        seen_names: dict[str, str] = {}
        spec_r = ctx.repo.repositories.spec
        groups: tuple[tuple[str, list[Any]], ...] = (("s3", list(spec_r.s3)), ("volumes", list(spec_r.volumes)))
        for kind, entries in groups:
            for i, entry in enumerate(entries):
                name = entry.repositoryName
                if name in seen_names:
                    yield ctx.at(repos, ("spec", kind, i, "repositoryName"), "repositories.duplicate",
                                 f"repository name {name!r} is already used by {seen_names[name]}: names must be unique")
                seen_names[name] = f"{kind}[{i}]"
        for i, entry in enumerate(spec_r.https):
            if "://" in entry.targetUri:
                yield ctx.at(repos, ("spec", "https", i, "targetUri"), "repositories.target-uri",
                             f"targetUri {entry.targetUri!r}: write <domain_or_ip>/<path> without a scheme (TMS format)")
