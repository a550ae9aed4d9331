"""The rendering core: a validated repository, stack settings and the placement lock in,
plain Kubernetes object dicts out. Used by `tms render` and the Pulumi program alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tms_stack.diagnostics import TmsError
from tms_stack.expiry import live_leases
from tms_stack.loader import Repository
from tms_stack.models import Lease, Pool
from tms_stack.models.lock import PlacementLock, PoolPlacement
from tms_stack.render.labels import ALIAS
from tms_stack.render.leases import render_bespoke, render_pooled
from tms_stack.render.monitoring import render_monitoring
from tms_stack.render.pools import render_pool
from tms_stack.render.tritonopts import log_args
from tms_stack.resolve import effective_lease, effective_pool_resources, pool_image
from tms_stack.stack import StackSettings


@dataclass
class RenderGroup:
    """Objects that belong together: one lease, one pool, or the stack's monitoring.

    The Pulumi program makes each group a ComponentResource (`tms:index:<kind>`)."""

    kind: str       # "Lease" | "Pool" | "Names" | "Monitoring"
    name: str
    objects: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> str:
        """"Lease/fraud-detector": how the program, `tms plan --targets` and tms_stack/urns.py
        name a group."""
        return f"{self.kind}/{self.name}"


def object_key(obj: dict[str, Any]) -> str:
    """`Kind/namespace/name`: unique per stack, used for file names and stable resource names."""
    meta = obj["metadata"]
    return f"{obj['kind']}/{meta.get('namespace', '')}/{meta['name']}"


def instance_of(lock: PlacementLock | None, pool_name: str, lease_name: str) -> int | None:
    if lock is None or pool_name not in lock.pools:
        return None
    for inst in lock.pools[pool_name].instances:
        if lease_name in inst.leases:
            return inst.index
    return None


def render_repository(repo: Repository, settings: StackSettings, lock: PlacementLock | None,
                      now: datetime | None = None) -> list[RenderGroup]:
    """Every object for the repository. Expects a repository that passed `tms check`.

    Expired leases are still rendered while within the grace (`autoRenew.unknownGrace`): deleting
    them is the prune job's commit. Past the grace they are left out (tms_stack/expiry.py), so a
    lease ends even when prune stops; `now` pins the clock for reproducible output."""
    limits, allowlist, repos = repo.limits, repo.allowlist, repo.repositories.spec
    restricted = limits.spec.triton.enableRestrictedAccess
    triton_args = tuple(log_args(limits.spec.triton.logLevel, limits.spec.triton.traceLevel))
    pools: dict[str, Pool] = {p.name: p for p in repo.all_pools()}
    kept, _gone = live_leases(list(repo.all_leases()), limits, now)
    leases: dict[str, Lease] = {lease.name: lease for lease in kept}
    groups: list[RenderGroup] = []
    missing: list[str] = []
    for name in sorted(leases):
        lease = leases[name]
        group = RenderGroup("Lease", name)
        if lease.spec.pool is None:
            eff = effective_lease(lease, limits, allowlist, pools)
            group.objects = render_bespoke(lease, eff, settings, repos, restricted, triton_args)
        else:
            pool = pools[lease.spec.pool.name]
            index = instance_of(lock, pool.name, name)
            if index is None:
                missing.append(f"{name} (pool {pool.name})")
                continue
            group.objects = render_pooled(lease, pool.instance_name(index), settings)
        groups.append(group)
    if missing:
        raise TmsError(
            f"pools/placement.lock.yaml does not place: {', '.join(missing)}. "
            "Run `tms pool lock` and commit the lock file."
        )
    for pool_name in sorted(pools):
        pool = pools[pool_name]
        placement = lock.pools.get(pool_name, PoolPlacement()) if lock else PoolPlacement()
        group = RenderGroup("Pool", pool_name)
        group.objects = render_pool(pool, placement, leases, pool_image(pool, allowlist),
                                    effective_pool_resources(pool, limits), settings, repos, restricted,
                                    triton_args)
        groups.append(group)
    groups.append(_names_group(groups))
    groups.append(RenderGroup("Monitoring", "monitoring", render_monitoring(settings)))
    return groups


def _names_group(groups: list[RenderGroup]) -> RenderGroup:
    """Alias Services live in a group of their own, not under their lease: moving a name to
    another lease then only changes the Service's selector (same object, updated in place)."""
    names = RenderGroup("Names", "names")
    for group in groups:
        keep = []
        for obj in group.objects:
            if obj["kind"] == "Service" and ALIAS in obj["metadata"].get("labels", {}):
                names.objects.append(obj)
            else:
                keep.append(obj)
        group.objects = keep
    names.objects.sort(key=lambda o: o["metadata"]["name"])
    return names


def all_objects(groups: list[RenderGroup]) -> list[dict[str, Any]]:
    return [obj for group in groups for obj in group.objects]
