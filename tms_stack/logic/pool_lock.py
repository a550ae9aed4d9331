"""Placement for a whole repository: demands from pooled leases, the lock file, staleness rules."""

from __future__ import annotations

from dataclasses import dataclass, field

from tms_stack import API_VERSION
from tms_stack.logic.placement import Demand, PlacementResult, PoolShape, place, rebalance
from tms_stack.models import Lease, Pool
from tms_stack.models.lock import PlacementLock
from tms_stack.repo.loader import LOCK_FILE, Repository

LOCK_DISPLAY = f"pools/{LOCK_FILE}"
# Exactly what to run when check finds the lock stale (issue 14: the fix was undocumented).
STALE_FIX = (f"tms pool lock && git add {LOCK_DISPLAY} && "
             f"git commit -m 'pools: recompute placement' {LOCK_DISPLAY}")
STALE_WHY = (" (a pooled lease or pool was added, changed or removed without it, or main was merged "
             "in; the merge driver of docs/pools.md recomputes it during merges)")


def shape_of(pool: Pool) -> PoolShape:
    s = pool.spec
    return PoolShape(pool.name, s.instanceQuota, s.instances.min, s.instances.max, s.backendUniqueness)


def lease_backends(lease: Lease, learned: dict[str, list[str]]) -> frozenset[str] | None:
    """Declared backends, else learned ones; None (unknown) if any model's backend is unknown."""
    found: set[str] = set()
    for model in lease.spec.models:
        known = model.backends if model.backends is not None else learned.get(model.uri)
        if known is None:
            return None
        found |= set(known)
    return frozenset(found)


def pooled_by_pool(repo: Repository) -> dict[str, list[Lease]]:
    """Pooled leases by pool name, each list sorted by lease name: grouped once, not once per pool
    (sorting all 10,000 leases for each of 50 pools was a fifth of `tms check`, issue 27)."""
    grouped: dict[str, list[Lease]] = {}
    for lease in repo.all_leases():
        if lease.spec.pool is not None:
            grouped.setdefault(lease.spec.pool.name, []).append(lease)
    for leases in grouped.values():
        leases.sort(key=lambda l: l.metadata.name)
    return grouped


def demands(repo: Repository, pool: Pool, learned: dict[str, list[str]],
            grouped: dict[str, list[Lease]] | None = None) -> list[Demand]:
    """`grouped`: pooled_by_pool(repo) when the caller asks for every pool's demands."""
    leases = (grouped if grouped is not None else pooled_by_pool(repo)).get(pool.name, [])
    return [
        Demand(lease.metadata.name, lease.spec.pool.quota, lease_backends(lease, learned),  # type: ignore[union-attr]
               frozenset(model.name for model in lease.spec.models))
        for lease in leases
    ]


@dataclass
class RepoPlacement:
    lock: PlacementLock
    results: dict[str, PlacementResult] = field(default_factory=dict)

    @property
    def unplaced(self) -> list[tuple[str, str, str]]:
        return [(pool, u.lease, u.reason) for pool, r in self.results.items() for u in r.unplaced]


def compute(repo: Repository, previous: PlacementLock | None, learned: dict[str, list[str]] | None = None,
            compact: bool = False) -> RepoPlacement:
    """The lock the repository should have. `learned` adds to the backends cached in `previous`."""
    cache = dict(previous.backends) if previous else {}
    cache.update(learned or {})
    pooled_uris = {m.uri for lease in repo.all_leases() if lease.spec.pool is not None for m in lease.spec.models}
    cache = {uri: sorted(set(b)) for uri, b in sorted(cache.items()) if uri in pooled_uris}
    out = RepoPlacement(PlacementLock(apiVersion=API_VERSION, kind="PlacementLock", backends=cache))
    grouped = pooled_by_pool(repo)
    for pool in sorted(repo.all_pools(), key=lambda p: p.name):
        prev = previous.pools.get(pool.name) if previous else None
        fn = rebalance if compact else place
        result = fn(shape_of(pool), demands(repo, pool, cache, grouped), prev)
        out.results[pool.name] = result
        out.lock.pools[pool.name] = result.placement
    return out
