"""Quota-based placement of pooled leases onto pool instances. Pure and deterministic.

Stability first: a lease stays on the instance the previous lock gave it unless that instance
must go (beyond `instances.max`) or the lease no longer fits there (it grew, or its backends
changed). Leases that need a place go best-fit, largest first; an instance is added only when
none fits and the pool is below `instances.max`; empty instances above `instances.min` are removed.

Backend uniqueness (TMS): an instance's backends are the union of its leases' backends; a lease
may join a non-empty instance only if its backends are a subset of that set. A lease with an
unknown backend never shares an instance.

Model names (always, whatever the pool says): two leases that serve a model under the same name
never share an instance. Triton serves one model per name, so the agent would serve one lease and
never the other, and one tenant's traffic would keep the other's lease renewed.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tms_stack.models.lock import InstanceAssignment, PoolPlacement

Backends = frozenset[str] | None  # None: unknown


@dataclass(frozen=True)
class PoolShape:
    name: str
    quota: int          # instanceQuota
    min_instances: int
    max_instances: int
    backend_uniqueness: bool = True


@dataclass(frozen=True)
class Demand:
    lease: str
    quota: int
    backends: Backends
    models: frozenset[str] = frozenset()  # the names Triton serves this lease's models under


@dataclass(frozen=True)
class Unplaced:
    lease: str
    quota: int
    reason: str


@dataclass
class _Instance:
    index: int
    leases: list[str] = field(default_factory=list)
    used: int = 0
    backends: set[str] = field(default_factory=set)
    exclusive: bool = False  # hosts a lease with unknown backends
    models: set[str] = field(default_factory=set)

    def accepts(self, demand: Demand, shape: PoolShape) -> bool:
        if self.used + demand.quota > shape.quota:
            return False
        if not self.models.isdisjoint(demand.models):
            return False
        if not self.leases:
            return True
        if not shape.backend_uniqueness:
            return True
        if self.exclusive or demand.backends is None:
            return False
        return demand.backends <= self.backends

    def add(self, demand: Demand) -> None:
        self.leases.append(demand.lease)
        self.used += demand.quota
        self.models |= demand.models
        if demand.backends is None:
            self.exclusive = True
        else:
            self.backends |= demand.backends


@dataclass(frozen=True)
class PlacementResult:
    placement: PoolPlacement
    unplaced: tuple[Unplaced, ...]
    moved: tuple[str, ...]  # leases that were placed before and now sit elsewhere


def place(shape: PoolShape, demands: Iterable[Demand], previous: PoolPlacement | None = None) -> PlacementResult:
    by_name = {d.lease: d for d in demands}
    instances: dict[int, _Instance] = {}
    before: dict[str, int] = {}
    pending: list[Demand] = []
    kept: set[str] = set()
    for prev in sorted((previous.instances if previous else []), key=lambda i: i.index):
        for lease in prev.leases:
            before.setdefault(lease, prev.index)
        if prev.index >= shape.max_instances:
            pending.extend(by_name[n] for n in prev.leases if n in by_name)
            continue
        inst = instances.setdefault(prev.index, _Instance(prev.index))
        # The instance keeps the backend set it was given while it hosts anything (TMS records it), so
        # a neighbour leaving never evicts the rest.
        inst.backends = set(prev.backends)
        present = [by_name[n] for n in prev.leases if n in by_name and n not in kept]
        unchanged = [d for d in present if prev.quotas.get(d.lease) == d.quota
                     and (not shape.backend_uniqueness or len(present) == 1
                          or (d.backends is not None and d.backends <= inst.backends))]
        changed = [d for d in present if d not in unchanged]
        # Unchanged leases first: a lease that grew is the one to move, not its neighbours.
        for demand in unchanged + changed:
            if (inst.used + demand.quota <= shape.quota and inst.models.isdisjoint(demand.models)
                    and (demand in unchanged or inst.accepts(demand, shape))):
                inst.add(demand)
                kept.add(demand.lease)
            else:
                pending.append(demand)
        if not inst.leases:
            inst.backends = set()
    waiting = {d.lease for d in pending}
    pending.extend(d for n, d in by_name.items() if n not in kept and n not in waiting)
    # Largest first, unknown-backend leases (which need a whole instance) before others of equal size.
    pending.sort(key=lambda d: (-d.quota, d.backends is not None, d.lease))
    unplaced: list[Unplaced] = []
    free = _FreeIndex(instances, shape.quota)
    for demand in pending:
        target = free.best_fit(demand, shape)
        if target is None and len(instances) < shape.max_instances:
            index = free.next_index()
            target = instances.setdefault(index, _Instance(index))
        if target is None:
            unplaced.append(Unplaced(demand.lease, demand.quota, _why(instances.values(), demand, shape)))
            continue
        free.remove(target)
        target.add(demand)
        free.insert(target)
    # Drop empty instances above the minimum (highest index first), then top up to the minimum.
    for index in sorted(instances, reverse=True):
        if len(instances) <= shape.min_instances:
            break
        if not instances[index].leases:
            del instances[index]
    while len(instances) < min(shape.min_instances, shape.max_instances):
        index = _free_index(instances)
        instances[index] = _Instance(index)
    placement = PoolPlacement(instances=[
        InstanceAssignment(index=i.index, leases=list(i.leases), backends=sorted(i.backends),
                           quotas={n: by_name[n].quota for n in i.leases})
        for i in sorted(instances.values(), key=lambda i: i.index)
    ])
    where = {lease: i.index for i in instances.values() for lease in i.leases}
    moved = tuple(sorted(n for n, idx in where.items() if n in before and before[n] != idx))
    return PlacementResult(placement, tuple(sorted(unplaced, key=lambda u: u.lease)), moved)


def _free_index(instances: Mapping[int, _Instance]) -> int:
    index = 0
    while index in instances:
        index += 1
    return index


class _FreeIndex:
    """Instances bucketed by free quota, each bucket sorted by index: best fit is the first
    accepting instance in the smallest bucket that can hold the demand. Keeps placement of
    10,000 leases well under a second (a linear scan per lease took 8 s)."""

    def __init__(self, instances: dict[int, _Instance], quota: int):
        self.instances = instances
        self.quota = quota
        self.buckets: dict[int, list[int]] = {}
        for inst in instances.values():
            self.insert(inst)
        self._next = 0

    def insert(self, inst: _Instance) -> None:
        bisect.insort(self.buckets.setdefault(self.quota - inst.used, []), inst.index)

    def remove(self, inst: _Instance) -> None:
        bucket = self.buckets.get(self.quota - inst.used)
        if bucket:
            i = bisect.bisect_left(bucket, inst.index)
            if i < len(bucket) and bucket[i] == inst.index:
                bucket.pop(i)

    def best_fit(self, demand: Demand, shape: PoolShape, skip_empty: bool = False) -> _Instance | None:
        """The fullest instance that still takes `demand`; an empty one only if no used one does."""
        for free in range(demand.quota, self.quota + (0 if skip_empty else 1)):
            for index in self.buckets.get(free, ()):
                inst = self.instances[index]
                if inst.accepts(demand, shape):
                    return inst
        return None

    def next_index(self) -> int:
        while self._next in self.instances:
            self._next += 1
        return self._next


def _why(instances: Iterable[_Instance], demand: Demand, shape: PoolShape) -> str:
    insts = list(instances)
    largest = max((shape.quota - i.used for i in insts), default=0)
    clash = sorted({m for i in insts if shape.quota - i.used >= demand.quota for m in i.models & demand.models})
    if clash and len(insts) >= shape.max_instances:
        return (f"pool {shape.name} has no instance without a model named {', '.join(clash)} (two leases never "
                f"share an instance when a model name repeats); instances at max {shape.max_instances}")
    if largest >= demand.quota and shape.backend_uniqueness:
        return (f"pool {shape.name} has no instance with matching backends: needs "
                f"{_fmt(demand.backends)}, quota {demand.quota}; instances at max {shape.max_instances}")
    return (f"pool {shape.name} is full: needs quota {demand.quota}, largest free slot {largest}, "
            f"instances at max {shape.max_instances}")


def _fmt(backends: Backends) -> str:
    return "an instance of its own (unknown backend)" if backends is None else "{" + ", ".join(sorted(backends)) + "}"


def rebalance(shape: PoolShape, demands: Iterable[Demand], previous: PoolPlacement | None) -> PlacementResult:
    """A compacted placement on request. Two candidates: draining the emptiest instances into the
    holes of the others (moves only the drained leases), and a from-scratch best-fit numbered to
    keep as many leases in place as possible. The one with fewer unplaced leases, then fewer
    instances, then fewer moves wins; `moved` says what a user would pay for it."""
    demands = list(demands)
    current = place(shape, demands, previous)
    candidates = [_drain(shape, demands, current, previous), _from_scratch(shape, demands, previous)]
    return min(candidates, key=lambda r: (len(r.unplaced), len(r.placement.instances), len(r.moved)))


def _moved(placement: PoolPlacement, previous: PoolPlacement | None) -> tuple[str, ...]:
    before = {lease: i.index for i in (previous.instances if previous else []) for lease in i.leases}
    where = {lease: i.index for i in placement.instances for lease in i.leases}
    return tuple(sorted(n for n, idx in where.items() if n in before and before[n] != idx))


def _drain(shape: PoolShape, demands: list[Demand], current: PlacementResult,
           previous: PoolPlacement | None) -> PlacementResult:
    by_name = {d.lease: d for d in demands}
    instances: dict[int, _Instance] = {}
    for prev in current.placement.instances:
        inst = instances[prev.index] = _Instance(prev.index, backends=set(prev.backends))
        for lease in prev.leases:
            inst.add(by_name[lease])
    free = _FreeIndex(instances, shape.quota)
    receivers: set[int] = set()  # an instance that took leases keeps them: nothing moves twice
    for victim in sorted(instances.values(), key=lambda i: (i.used, -i.index)):
        if len(instances) <= max(shape.min_instances, 1) or victim.index in receivers:
            continue
        free.remove(victim)
        trial: list[tuple[_Instance, Demand, set[str], bool, set[str]]] = []
        for demand in sorted((by_name[n] for n in victim.leases), key=lambda d: (-d.quota, d.lease)):
            target = free.best_fit(demand, shape, skip_empty=True)
            if target is None:
                break
            trial.append((target, demand, set(target.backends), target.exclusive, set(target.models)))
            free.remove(target)
            target.add(demand)
            free.insert(target)
        if len(trial) < len(victim.leases):
            for target, demand, backends, exclusive, models in reversed(trial):  # undo: the victim stays as it was
                free.remove(target)
                target.leases.pop()
                target.used -= demand.quota
                target.backends, target.exclusive, target.models = backends, exclusive, models
                free.insert(target)
            free.insert(victim)
            continue
        receivers.update(t.index for t, *_ in trial)
        del instances[victim.index]
    placement = PoolPlacement(instances=[
        InstanceAssignment(index=i.index, leases=list(i.leases), backends=sorted(i.backends),
                           quotas={n: by_name[n].quota for n in i.leases})
        for i in sorted(instances.values(), key=lambda i: i.index)
    ])
    # Freed room may now take leases that did not fit before; settle through `place` so the result
    # is exactly what `tms pool lock` and `tms check` recompute from it.
    return _settled(shape, demands, placement, previous)


def _settled(shape: PoolShape, demands: list[Demand], placement: PoolPlacement,
             previous: PoolPlacement | None) -> PlacementResult:
    result = place(shape, demands, placement)
    return PlacementResult(result.placement, result.unplaced, _moved(result.placement, previous))


def _from_scratch(shape: PoolShape, demands: list[Demand], previous: PoolPlacement | None) -> PlacementResult:
    fresh = place(shape, demands, None)
    before: dict[str, int] = {}
    for inst in (previous.instances if previous else []):
        for lease in inst.leases:
            before[lease] = inst.index
    # Give each fresh instance the old index it shares most leases with (greedy, deterministic).
    pairs = []
    for inst in fresh.placement.instances:
        overlap: dict[int, int] = {}
        for lease in inst.leases:
            if lease in before:
                overlap[before[lease]] = overlap.get(before[lease], 0) + 1
        for old, count in overlap.items():
            if old < shape.max_instances:  # an index at or above a lowered max is gone for good
                pairs.append((-count, inst.index, old))
    pairs.sort()
    mapping: dict[int, int] = {}
    used: set[int] = set()
    for _, new, old in pairs:
        if new not in mapping and old not in used:
            mapping[new] = old
            used.add(old)
    for inst in fresh.placement.instances:
        if inst.index not in mapping:
            index = 0
            while index in used:
                index += 1
            mapping[inst.index] = index
            used.add(index)
    instances = sorted(
        (InstanceAssignment(index=mapping[i.index], leases=i.leases, backends=i.backends, quotas=i.quotas)
         for i in fresh.placement.instances), key=lambda i: i.index)
    return _settled(shape, demands, PoolPlacement(instances=instances), previous)
