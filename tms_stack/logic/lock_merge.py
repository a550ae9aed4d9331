"""The git merge driver for `pools/placement.lock.yaml`: two honest pull requests that each add a
pooled lease must not conflict in the lock (issue 14), and neither side's moves may be lost
(issue 22).

git hands the driver three versions of the lock (base, ours, theirs) but not the other files: while
the driver runs, the work tree still holds *our* side. So the driver rebuilds the merged pooled
leases itself, as a three-way merge of lease names (a lease is in the result when both sides have
it, or one side added it; it is out when either side removed it), reading each lease file from the
side it comes from (ours: HEAD; theirs: the commit git is merging, identified by its lock blob).

The placements are merged three-way too (`previous_for_merge`): a lease one side moved (`tms pool
rebalance --write`, a hand edit) stays where that side moved it, a new lease starts where its own
side placed it, and a lease both sides moved to different places is a conflict for a person. Then
the ordinary placement (`pool_lock.compute`) runs from that merged lock: every lease that still
fits stays put; the rest are placed as `tms pool lock` would.

Whatever it cannot do honestly (the other commit not found, a lock that does not parse, a lease
that no longer fits, a move made differently on both sides) it hands back to git as a conflict
with one line saying what to run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tms_stack import API_VERSION
from tms_stack.models.lock import PlacementLock
from tms_stack.repo.loader import Repository


@dataclass(frozen=True)
class Spot:
    pool: str
    index: int
    quota: int | None


def spots(lock: PlacementLock | None) -> dict[str, Spot]:
    """Every pooled lease in a lock: where it sits and the quota it was placed with."""
    out: dict[str, Spot] = {}
    for pool, placement in (lock.pools.items() if lock else ()):
        for inst in placement.instances:
            for lease in inst.leases:
                out[lease] = Spot(pool, inst.index, inst.quotas.get(lease))
    return out


@dataclass(frozen=True)
class LeaseMerge:
    """Which side's lease file each pooled lease of the result comes from."""

    from_theirs: frozenset[str]   # added by theirs, or changed by theirs only
    removed: frozenset[str]       # removed by either side: not in the result

    @property
    def touched(self) -> frozenset[str]:
        return self.from_theirs | self.removed


def merge_names(base: PlacementLock | None, ours: PlacementLock | None,
                theirs: PlacementLock | None) -> LeaseMerge:
    o, a, b = spots(base), spots(ours), spots(theirs)
    from_theirs = {n for n in b if n not in o and n not in a}
    # Both have it: theirs' file wins only if theirs re-placed or resized it and ours did not.
    from_theirs |= {n for n in b if n in a and n in o and b[n] != o[n] and a[n] == o[n]}
    removed = {n for n in o if n not in a or n not in b}
    return LeaseMerge(frozenset(from_theirs), frozenset(removed))


@dataclass(frozen=True)
class MoveConflict:
    """Both sides moved the same lease, to different places: only a person can choose."""

    lease: str
    base: Spot
    ours: Spot
    theirs: Spot

    def describe(self) -> str:
        def where(spot: Spot) -> str:
            return f"{spot.pool} instance {spot.index}"
        return (f"lease {self.lease} was moved on both sides (from {where(self.base)}: ours to "
                f"{where(self.ours)}, theirs to {where(self.theirs)})")


def _pick(base: Any, ours: Any, theirs: Any) -> Any:
    """Three-way choice of one value: a change made on one side only wins; ours when both changed."""
    if ours == theirs or theirs == base:
        return ours
    if ours == base:
        return theirs
    return ours


def previous_for_merge(base: PlacementLock | None, ours: PlacementLock | None,
                       theirs: PlacementLock | None) -> tuple[PlacementLock, list[MoveConflict]]:
    """The three-way merge of the placements, as the previous lock for `pool_lock.compute`: each
    lease of the result sits where the side that moved it put it (a rebalance or a hand edit on
    either side is kept), at ours' place when neither moved it, at its adding side's place when it
    is new; leases either side removed are gone. Both sides moving one lease to different places
    is a conflict (returned; the lease sits at ours' place meanwhile)."""
    names = merge_names(base, ours, theirs)
    o, a, b = spots(base), spots(ours), spots(theirs)
    conflicts: list[MoveConflict] = []
    where: dict[str, tuple[str, int]] = {}
    quota: dict[str, int | None] = {}
    for lease in sorted((set(a) | set(b)) - names.removed):
        if lease in a and lease in b:
            at = _pick(_at(o.get(lease)), _at(a[lease]), _at(b[lease]))
            if lease in o and len({_at(o[lease]), _at(a[lease]), _at(b[lease])}) == 3:
                conflicts.append(MoveConflict(lease, o[lease], a[lease], b[lease]))
            quota[lease] = _pick(o[lease].quota if lease in o else None, a[lease].quota, b[lease].quota)
        else:
            spot = a.get(lease) or b[lease]
            at, quota[lease] = _at(spot), spot.quota
        where[lease] = at  # type: ignore[assignment]

    def instances(lock: PlacementLock | None) -> dict[tuple[str, int], Any]:
        return {(pool, i.index): i for pool, p in (lock.pools.items() if lock else ()) for i in p.instances}

    io, ia, ib = instances(base), instances(ours), instances(theirs)
    pools: dict[str, dict[str, Any]] = {}
    for key in sorted(set(ia) | set(ib)):
        held = [n for n, at in where.items() if at == key]
        if not held and not (key in ia and key in ib):
            continue  # emptied, or dropped by one side's rebalance
        # Load order: ours' order, then theirs' for leases ours does not have there.
        order = {n: i for i, n in enumerate(list(ia[key].leases) if key in ia else [])}
        later = {n: i for i, n in enumerate(list(ib[key].leases) if key in ib else [])}
        held.sort(key=lambda n: (n not in order, order.get(n, later.get(n, 0)), n))
        backends = _pick(*(sorted(side[key].backends) if key in side else None for side in (io, ia, ib)))
        if backends is None:
            backends = sorted(set(ia[key].backends if key in ia else ()) | set(ib[key].backends if key in ib else ()))
        pools.setdefault(key[0], {"instances": []})["instances"].append(
            {"index": key[1], "leases": held, "backends": list(backends),
             "quotas": {n: quota[n] for n in held if quota[n] is not None}})
    data = {"apiVersion": API_VERSION, "kind": "PlacementLock", "pools": pools,
            "backends": {**(theirs.backends if theirs else {}), **(ours.backends if ours else {})}}
    return PlacementLock.model_validate(data), conflicts


def _at(spot: Spot | None) -> tuple[str, int] | None:
    return (spot.pool, spot.index) if spot is not None else None


def pooled_files(repo: Repository) -> dict[str, str]:
    """Pooled lease name -> its file (relative to the repository root)."""
    return {entry.model.name: entry.file for entry in repo.leases.values()  # type: ignore[attr-defined]
            if entry.model.spec.pool is not None}  # type: ignore[attr-defined]


def pool_files(repo: Repository) -> dict[str, str]:
    return {entry.model.name: entry.file for entry in repo.pools.values()}  # type: ignore[attr-defined]
