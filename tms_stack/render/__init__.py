"""The rendering core: a validated repository, stack settings and the placement lock in,
plain Kubernetes object dicts out. Used by `tms render` and the Pulumi program alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tms_stack.logic.expiry import live_leases
from tms_stack.logic.resolve import effective_lease, effective_pool_resources, pool_image, pool_node_class
from tms_stack.models import Lease, Pool
from tms_stack.models.diagnostics import TmsError
from tms_stack.models.lock import PlacementLock, PoolPlacement
from tms_stack.models.stack import StackSettings
from tms_stack.render.labels import ALIAS, INSTANCE
from tms_stack.render.leases import render_bespoke, render_pooled
from tms_stack.render.monitoring import render_monitoring
from tms_stack.render.pools import render_pool
from tms_stack.render.tritonopts import log_args
from tms_stack.render.urns import group_key
from tms_stack.repo.loader import Repository


@dataclass
class RenderGroup:
    """Objects that belong together: one lease, one pool, or the stack's monitoring.

    The Pulumi program makes each group a ComponentResource (`tms:index:<kind>`)."""

    kind: str       # "Lease" | "Pool" | "Names" | "Monitoring"
    name: str
    objects: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return group_key(self.kind, self.name)


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


def placed_instances(lock: PlacementLock | None) -> dict[tuple[str, str], int]:
    """(pool, lease) -> instance index for every placement in `lock`: instance_of for all leases at
    once (asking per lease scanned every instance of its pool, issue 27)."""
    out: dict[tuple[str, str], int] = {}
    for pool_name, placement in (lock.pools.items() if lock is not None else ()):
        for inst in placement.instances:
            for lease_name in inst.leases:
                out.setdefault((pool_name, lease_name), inst.index)
    return out


@dataclass(frozen=True)
class Only:
    """The groups a partial rendering makes (`tms plan` of a small change, docs/review.md): these
    leases' and pools' groups, the alias Services of those leases (the Names group holds only
    them) and Monitoring. Everything else, including the check that every pooled lease is placed,
    is computed for the whole repository, so a partial rendering fails exactly when a whole one
    does."""

    leases: frozenset[str] = frozenset()
    pools: frozenset[str] = frozenset()


def render_repository(repo: Repository, settings: StackSettings, lock: PlacementLock | None,
                      now: datetime | None = None, only: Only | None = None,
                      keep: Callable[[str], bool] | None = None) -> list[RenderGroup]:
    """Every object for the repository (`only`: a part of them). Expects a repository that passed
    `tms check`.

    Expired leases are still rendered while within the grace (`autoRenew.unknownGrace`): deleting
    them is the prune job's commit. Past the grace they are left out (tms_stack/logic/expiry.py), so a
    lease ends even when prune stops; `now` pins the clock for reproducible output.

    `keep(group key)`: render just the Lease and Pool groups it accepts, and neither the alias
    Services nor the monitoring (a shard stack's program: render/shards.py; the fleet-wide groups
    need every lease, so the home stack renders everything)."""
    limits, allowlist, repos = repo.limits, repo.allowlist, repo.repositories.spec
    restricted = limits.spec.triton.enableRestrictedAccess
    triton_args = tuple(log_args(limits.spec.triton.logLevel, limits.spec.triton.traceLevel))
    pools: dict[str, Pool] = {p.name: p for p in repo.all_pools()}
    kept, _gone = live_leases(list(repo.all_leases()), limits, now)
    leases: dict[str, Lease] = {lease.name: lease for lease in kept}
    default_class = settings.defaultNodeClass
    groups: list[RenderGroup] = []
    missing: list[str] = []
    placed = placed_instances(lock)
    for name in sorted(leases):
        lease = leases[name]
        if only is not None and name not in only.leases:
            if lease.spec.pool is not None and (pools[lease.spec.pool.name].name, name) not in placed:
                missing.append(f"{name} (pool {lease.spec.pool.name})")
            continue
        group = RenderGroup("Lease", name)
        if keep is not None and not keep(group.key):
            continue
        if lease.spec.pool is None:
            eff = effective_lease(lease, limits, allowlist, pools, default_class)
            group.objects = render_bespoke(lease, eff, settings, repos, restricted, triton_args,
                                           scheduling(repo, eff.node_class))
        else:
            pool = pools[lease.spec.pool.name]
            index = placed.get((pool.name, name))
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
        if only is not None and pool_name not in only.pools:
            continue
        pool = pools[pool_name]
        placement = lock.pools.get(pool_name, PoolPlacement()) if lock else PoolPlacement()
        group = RenderGroup("Pool", pool_name)
        if keep is not None and not keep(group.key):
            continue
        group.objects = render_pool(pool, placement, leases, pool_image(pool, allowlist),
                                    effective_pool_resources(pool, limits, default_class), settings, repos,
                                    restricted, triton_args,
                                    scheduling(repo, pool_node_class(pool, default_class)))
        groups.append(group)
    names = _names_group(groups)  # also takes the alias Services out of their leases' groups
    if keep is None:
        groups.append(names)
        groups.append(RenderGroup("Monitoring", "monitoring", render_monitoring(settings)))
    return groups


def scheduling(repo: Repository, class_name: str | None) -> dict[str, Any]:
    """The pod spec fields of a node class. An unknown class is refused by `tms check`; rendering
    one anyway would schedule the pod anywhere, so it stops here too."""
    if class_name is None:
        return {}
    node_class = repo.limits.spec.nodeClasses.get(class_name)
    if node_class is None:
        offered = ", ".join(sorted(repo.limits.spec.nodeClasses)) or "none"
        raise TmsError(f"node class {class_name!r} is not offered by the policies (Limits spec.nodeClasses: "
                       f"{offered})")
    return node_class.pod_spec()


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


def service_waits_for(groups: list[RenderGroup]) -> dict[str, str]:
    """`Kind/namespace/name` of each Service -> the name of the rendered Deployment whose pods it
    selects (a bespoke lease's, or the pool instance hosting a pooled lease).

    The Pulumi program makes each such Service depend on that Deployment, so the engine creates or
    re-points a Service (a name moved onto a new lease, a pooled lease placed on another instance)
    only after the Deployment's create or update has passed Pulumi's readiness await: a name never
    points at pods that are still loading (docs/lifecycle.md, "Name moves wait for readiness")."""
    deployments = {obj["metadata"]["name"] for group in groups for obj in group.objects
                   if obj["kind"] == "Deployment"}
    waits: dict[str, str] = {}
    for group in groups:
        for obj in group.objects:
            if obj["kind"] != "Service":
                continue
            target = (obj["spec"].get("selector") or {}).get(INSTANCE)
            if isinstance(target, str) and target in deployments:
                waits[object_key(obj)] = target
    return waits
