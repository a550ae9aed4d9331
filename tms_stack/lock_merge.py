"""The git merge driver for `pools/placement.lock.yaml`: two honest pull requests that each add a
pooled lease must not conflict in the lock (issue 14).

git hands the driver three versions of the lock (base, ours, theirs) but not the other files: while
the driver runs, the work tree still holds *our* side. So the driver rebuilds the merged pooled
leases itself, as a three-way merge of lease names (a lease is in the result when both sides have
it, or one side added it; it is out when either side removed it), reading each lease file from the
side it comes from (ours: HEAD; theirs: the commit git is merging, identified by its lock blob).
Then it runs the ordinary placement (`pool_lock.compute`) with a previous lock that is ours plus
the leases theirs added, at the instance their pull request showed: every lease that still fits
stays where its review put it; the rest are placed as `tms pool lock` would.

Whatever it cannot do honestly (the other commit not found, a lock that does not parse, a lease
that no longer fits) it hands back to git as a textual conflict with one line saying what to run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tms_stack.loader import Repository
from tms_stack.models.lock import PlacementLock


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


def previous_for_merge(base: PlacementLock | None, ours: PlacementLock | None,
                       theirs: PlacementLock | None) -> PlacementLock:
    """Ours, plus each lease theirs added at the instance their lock gave it (placement then keeps
    it there if it still fits next to ours), minus the leases either side removed."""
    names = merge_names(base, ours, theirs)
    # The models are frozen: edit plain data, validate once at the end.
    data: dict[str, Any] = (ours.model_dump(mode="json") if ours else
            {"apiVersion": "tms-stack/v1", "kind": "PlacementLock", "pools": {}, "backends": {}})
    for placement in data["pools"].values():
        for inst in placement["instances"]:
            inst["leases"] = [n for n in inst["leases"] if n not in names.removed]
            inst["quotas"] = {n: q for n, q in inst["quotas"].items() if n not in names.removed}
    a, b = spots(ours), spots(theirs)
    for lease in sorted(names.from_theirs):
        if lease in a:
            continue  # placement re-checks it where ours has it (its quota may have changed)
        spot = b[lease]
        instances = data["pools"].setdefault(spot.pool, {"instances": []})["instances"]
        inst = next((i for i in instances if i["index"] == spot.index), None)
        if inst is None:
            assert theirs is not None
            source = next(i for i in theirs.pools[spot.pool].instances if i.index == spot.index)
            inst = {"index": spot.index, "leases": [], "backends": list(source.backends), "quotas": {}}
            instances.append(inst)
            instances.sort(key=lambda i: i["index"])
        inst["leases"].append(lease)
        if spot.quota is not None:
            inst["quotas"][lease] = spot.quota
    data["backends"] = {**(theirs.backends if theirs else {}), **data.get("backends", {})}
    return PlacementLock.model_validate(data)


def pooled_files(repo: Repository) -> dict[str, str]:
    """Pooled lease name -> its file (relative to the repository root)."""
    return {entry.model.name: entry.file for entry in repo.leases.values()  # type: ignore[attr-defined]
            if entry.model.spec.pool is not None}  # type: ignore[attr-defined]


def pool_files(repo: Repository) -> dict[str, str]:
    return {entry.model.name: entry.file for entry in repo.pools.values()}  # type: ignore[attr-defined]
