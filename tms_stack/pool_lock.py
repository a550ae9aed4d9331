"""Placement for a whole repository: demands from pooled leases, the lock file, staleness rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tms_stack.diagnostics import Diagnostic
from tms_stack.loader import LOCK_FILE, Repository
from tms_stack.models import Lease, Pool
from tms_stack.models.lock import PlacementLock, PoolPlacement
from tms_stack.placement import Demand, PlacementResult, PoolShape, place, rebalance

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


def demands(repo: Repository, pool: Pool, learned: dict[str, list[str]]) -> list[Demand]:
    return [
        Demand(lease.name, lease.spec.pool.quota, lease_backends(lease, learned),
               frozenset(model.name for model in lease.spec.models))
        for lease in sorted(repo.all_leases(), key=lambda l: l.name)
        if lease.spec.pool is not None and lease.spec.pool.name == pool.name
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
    out = RepoPlacement(PlacementLock(apiVersion="tms-stack/v1", kind="PlacementLock", backends=cache))
    for pool in sorted(repo.all_pools(), key=lambda p: p.name):
        prev = previous.pools.get(pool.name) if previous else None
        fn = rebalance if compact else place
        result = fn(shape_of(pool), demands(repo, pool, cache), prev)
        out.results[pool.name] = result
        out.lock.pools[pool.name] = result.placement
    return out


def lock_rules(repo: Repository, now: datetime | None = None) -> list[Diagnostic]:
    """`tms check`: leases that cannot be placed, and a lock that differs from what `tms pool lock` writes.

    Never touches the network: only declared and cached backends are used."""
    from tms_stack.diagnostics import TmsError, UnreadableInput
    from tms_stack.lockfile import read_lock

    if repo.invalid_policies or (not repo.pools and not any(l.spec.pool for l in repo.all_leases())):
        return []
    try:
        lock = read_lock(repo.root)
    except UnreadableInput as exc:
        # Conflict markers or broken YAML: unreadable input, exit 2 like any other (docs/cli.md).
        repo.unreadable.extend(exc.diagnostics or [Diagnostic(LOCK_DISPLAY, 1, 1, "yaml", str(exc))])
        return []
    except TmsError as exc:
        return exc.diagnostics or [Diagnostic(LOCK_DISPLAY, 1, 1, "lock.invalid", str(exc))]
    pool_names = {p.name for p in repo.all_pools()}
    # Leases whose pool is missing are reported by rules.py; leave them out here.
    if any(l.spec.pool and l.spec.pool.name not in pool_names for l in repo.all_leases()):
        return []
    result = compute(repo, lock)
    diags: list[Diagnostic] = []
    for _pool, lease, reason in result.unplaced:
        loaded = repo.leases.get(lease)
        if loaded is None:
            continue
        pos = loaded.doc.pos(("spec", "pool", "quota"))
        diags.append(Diagnostic(loaded.file, pos.line, pos.col, "pool.full", reason))
    if diags:
        return diags
    if lock is None:
        return [Diagnostic(LOCK_DISPLAY, 0, 0, "lock.missing",
                           "pooled leases need a placement lock: run `tms pool lock` and commit "
                           f"{LOCK_DISPLAY}")]
    if _placements(result.lock) != _placements(lock) or result.lock.backends != lock.backends:
        changed = sorted(
            name for name in set(result.lock.pools) | set(lock.pools)
            if result.lock.pools.get(name, PoolPlacement()) != lock.pools.get(name, PoolPlacement())
        )
        what = f"placement of {', '.join(changed)}" if changed else "learned backends"
        return [Diagnostic(LOCK_DISPLAY, 1, 1, "lock.stale",
                           f"the lock is stale ({what} changed): run `{STALE_FIX}`{STALE_WHY}")]
    return []


def _placements(lock: PlacementLock) -> dict[str, PoolPlacement]:
    return dict(sorted(lock.pools.items()))
