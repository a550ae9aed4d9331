"""Placement properties: capacity, min/max, backend and model-name rules always hold; placement is
a pure function of its inputs; one lease's change moves no other lease unless an instance had to go."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from tms_stack.logic.placement import Demand, PoolShape, place, rebalance
from tms_stack.models.lock import PoolPlacement

BACKENDS = st.one_of(st.none(), st.frozensets(st.sampled_from(["python", "onnxruntime", "pytorch", "tensorrt"]),
                                              min_size=1, max_size=2))
# Few names, so that leases often share one: two such leases must never share an instance.
MODELS = st.frozensets(st.sampled_from(["resnet", "bert", "llama", "xgb", "ocr"]), min_size=1, max_size=2)


@st.composite
def workloads(draw: st.DrawFn) -> tuple[PoolShape, list[Demand]]:
    quota = draw(st.integers(1, 12))
    lo = draw(st.integers(0, 3))
    hi = draw(st.integers(max(lo, 1), 12))
    shape = PoolShape("test-pool-x", quota, lo, hi, draw(st.booleans()))
    n = draw(st.integers(0, 30))
    demands = [Demand(f"lease-{i:02d}", draw(st.integers(1, quota)), draw(BACKENDS), draw(MODELS)) for i in range(n)]
    return shape, demands


def assert_valid(shape: PoolShape, demands: list[Demand], placement: PoolPlacement, unplaced: set[str]) -> None:
    by_name = {d.lease: d for d in demands}
    seen: set[str] = set()
    assert shape.min_instances <= len(placement.instances) or len(placement.instances) == shape.max_instances
    assert len(placement.instances) <= shape.max_instances
    indexes = [i.index for i in placement.instances]
    assert len(set(indexes)) == len(indexes)
    for inst in placement.instances:
        assert sum(by_name[n].quota for n in inst.leases) <= shape.quota
        names = [m for n in inst.leases for m in by_name[n].models]
        assert len(names) == len(set(names)), f"a model name repeats on instance {inst.index}: {sorted(names)}"
        assert not (seen & set(inst.leases))
        seen |= set(inst.leases)
        if shape.backend_uniqueness and len(inst.leases) > 1:
            assert all(by_name[n].backends is not None for n in inst.leases), "unknown backends never share"
            assert all(by_name[n].backends <= set(inst.backends) for n in inst.leases)
    assert seen | unplaced == set(by_name)
    assert not (seen & unplaced)


@settings(max_examples=300, deadline=None)
@given(workloads())
def test_rules_always_hold(work: tuple[PoolShape, list[Demand]]) -> None:
    shape, demands = work
    result = place(shape, demands)
    assert_valid(shape, demands, result.placement, {u.lease for u in result.unplaced})
    # Something is unplaced only if the pool really is at its maximum.
    if result.unplaced:
        assert len(result.placement.instances) == shape.max_instances


@settings(max_examples=200, deadline=None)
@given(workloads(), st.randoms(use_true_random=False))
def test_pure_and_order_independent(work: tuple[PoolShape, list[Demand]], rnd: random.Random) -> None:
    shape, demands = work
    first = place(shape, demands)
    shuffled = demands[:]
    rnd.shuffle(shuffled)
    assert place(shape, shuffled) == first
    assert place(shape, demands, first.placement) == place(shape, shuffled, first.placement)


def _where(placement: PoolPlacement) -> dict[str, int]:
    return {lease: inst.index for inst in placement.instances for lease in inst.leases}


@settings(max_examples=300, deadline=None)
@given(workloads(), st.data())
def test_one_change_moves_no_other_lease(work: tuple[PoolShape, list[Demand]], data: st.DataObject) -> None:
    shape, demands = work
    before = place(shape, demands)
    kind = data.draw(st.sampled_from(["add", "remove", "resize"]))
    changed = list(demands)
    target = None
    if kind == "add":
        target = "lease-new"
        changed.append(Demand(target, data.draw(st.integers(1, shape.quota)), data.draw(BACKENDS), data.draw(MODELS)))
    elif demands:
        i = data.draw(st.integers(0, len(demands) - 1))
        target = demands[i].lease
        if kind == "remove":
            del changed[i]
        else:
            changed[i] = Demand(target, data.draw(st.integers(1, shape.quota)), demands[i].backends, demands[i].models)
    after = place(shape, changed, before.placement)
    assert_valid(shape, changed, after.placement, {u.lease for u in after.unplaced})
    old, new = _where(before.placement), _where(after.placement)
    moved = {n for n in old if n in new and old[n] != new[n] and n != target}
    assert not moved, f"{kind} {target} moved {moved}"
    assert set(after.moved) <= {target}


@settings(max_examples=100, deadline=None)
@given(workloads())
def test_rebalance_is_valid_and_never_uses_more_instances(work: tuple[PoolShape, list[Demand]]) -> None:
    shape, demands = work
    current = place(shape, demands)
    compact = rebalance(shape, demands, current.placement)
    assert_valid(shape, demands, compact.placement, {u.lease for u in compact.unplaced})
    assert len(compact.placement.instances) <= max(len(current.placement.instances), shape.min_instances)
    # Nothing to gain, nothing moves: a placement already at the lower bound is left alone.
    bound = max(-(-sum(d.quota for d in demands) // shape.quota), shape.min_instances, 1)
    if not shape.backend_uniqueness and not current.unplaced and len(current.placement.instances) <= bound:
        assert compact.moved == ()
        assert compact.placement == current.placement


def test_full_pool_message() -> None:
    shape = PoolShape("shared-t4-pool", 8, 1, 1)
    result = place(shape, [Demand("a", 6, frozenset({"python"})), Demand("b", 3, frozenset({"python"}))])
    assert [u.reason for u in result.unplaced] == [
        "pool shared-t4-pool is full: needs quota 3, largest free slot 2, instances at max 1"]


def test_unknown_backend_gets_its_own_instance() -> None:
    shape = PoolShape("shared-t4-pool", 8, 0, 4)
    result = place(shape, [Demand("known", 1, frozenset({"python"})), Demand("mystery", 1, None)])
    assert len(result.placement.instances) == 2


def test_freed_instances_above_min_are_removed() -> None:
    shape = PoolShape("shared-t4-pool", 4, 1, 4)
    before = place(shape, [Demand("a", 4, frozenset({"x"})), Demand("b", 4, frozenset({"x"})),
                           Demand("c", 4, frozenset({"x"}))])
    after = place(shape, [Demand("a", 4, frozenset({"x"}))], before.placement)
    assert [i.index for i in after.placement.instances] == [0]
    empty = place(shape, [], after.placement)
    assert len(empty.placement.instances) == 1 and empty.placement.instances[0].leases == []


@settings(max_examples=200, deadline=None)
@given(workloads(), st.integers(0, 6), st.randoms(use_true_random=False))
def test_lock_is_a_fixed_point(work: tuple[PoolShape, list[Demand]], shrink: int, rnd: random.Random) -> None:
    """What `tms pool lock` or `rebalance --write` wrote is what `tms check` recomputes, else every
    check would call a fresh lock stale - also after the admin lowered instances.max, and whatever
    instance numbers history left behind."""
    shape, demands = work
    wider = PoolShape(shape.name, shape.quota, shape.min_instances, shape.max_instances + shrink,
                      shape.backend_uniqueness)
    previous = place(wider, demands).placement
    numbers = rnd.sample(range(wider.max_instances), len(previous.instances))
    previous = PoolPlacement(instances=[i.model_copy(update={"index": n})
                                        for i, n in zip(previous.instances, numbers, strict=True)])
    for result in (place(shape, demands, previous), rebalance(shape, demands, previous)):
        assert_valid(shape, demands, result.placement, {u.lease for u in result.unplaced})
        assert all(i.index < shape.max_instances for i in result.placement.instances)
        again = place(shape, demands, result.placement)
        assert again.placement == result.placement
        assert again.moved == ()


@settings(max_examples=150, deadline=None)
@given(workloads(), st.lists(st.tuples(st.sampled_from(["add", "remove", "resize", "backends"]),
                                       st.integers(0, 10**6), st.integers(1, 12), BACKENDS), max_size=12))
def test_history_of_changes_moves_only_the_changed_lease(
        work: tuple[PoolShape, list[Demand]], steps: list[tuple[str, int, int, frozenset[str] | None]]) -> None:
    """Stability over a history, not just from a fresh placement: each step changes one lease."""
    shape, demands = work
    current = place(shape, demands)
    for n, (kind, pick, size, backends) in enumerate(steps):
        size = min(size, shape.quota)
        changed = list(demands)
        if kind == "add" or not demands:
            target = f"added-{n:02d}"
            changed.append(Demand(target, size, backends, frozenset({f"model-{n}"})))
        else:
            i = pick % len(demands)
            target = demands[i].lease
            if kind == "remove":
                del changed[i]
            elif kind == "resize":
                changed[i] = Demand(target, size, demands[i].backends, demands[i].models)
            else:
                changed[i] = Demand(target, demands[i].quota, backends, demands[i].models)
        after = place(shape, changed, current.placement)
        assert_valid(shape, changed, after.placement, {u.lease for u in after.unplaced})
        old, new = _where(current.placement), _where(after.placement)
        lost = {i.index for i in current.placement.instances} - {i.index for i in after.placement.instances}
        moved = {x for x in old if x in new and old[x] != new[x] and x != target}
        assert all(old[x] in lost for x in moved), f"step {n}: {kind} {target} moved {moved}"
        # Keep only placed leases, as `tms check` would refuse the rest.
        unplaced = {u.lease for u in after.unplaced}
        demands = [d for d in changed if d.lease not in unplaced]
        current = place(shape, demands, after.placement)


def test_rebalance_drains_the_emptiest_instance() -> None:
    shape = PoolShape("shared-t4-pool", 8, 0, 8, backend_uniqueness=False)
    sizes = {"a": 6, "b": 6, "c": 6, "p": 2, "q": 2, "r": 2, "s": 2}
    current = place(shape, [Demand(n, q, None) for n, q in sizes.items()]).placement
    assert _where(current) == {"a": 0, "p": 0, "b": 1, "q": 1, "c": 2, "r": 2, "s": 3}
    rest = [Demand(n, q, None) for n, q in sizes.items() if n != "p"]
    current = place(shape, rest, current).placement      # p leaves a hole of 2 on instance 0
    assert len(current.instances) == 4
    result = rebalance(shape, rest, current)
    assert result.moved == ("s",)
    assert _where(result.placement) == {"a": 0, "s": 0, "b": 1, "q": 1, "c": 2, "r": 2}


def test_rebalance_keeps_indexes_below_max() -> None:
    """An old index at or above a lowered `instances.max` is not reused for a compacted instance."""
    from tms_stack.models.lock import InstanceAssignment

    shape = PoolShape("shared-t4-pool", 8, 0, 2)
    previous = PoolPlacement(instances=[InstanceAssignment(index=3, leases=["a"], backends=["x"], quotas={"a": 2})])
    result = rebalance(shape, [Demand("a", 2, frozenset({"x"}))], previous)
    assert [i.index for i in result.placement.instances] == [0]
    assert result.moved == ("a",)
    assert place(shape, [Demand("a", 2, frozenset({"x"}))], result.placement).placement == result.placement


def test_rebalance_places_what_did_not_fit_once_room_is_freed() -> None:
    """Found by the fixed-point property: draining frees an instance, and a lease left unplaced
    before must get it (else `tms pool lock` would change the rebalanced lock at once)."""
    shape = PoolShape("shared-t4-pool", 5, 0, 2)
    demands = [Demand("both", 2, frozenset({"python", "onnxruntime"})), Demand("mystery", 1, None),
               Demand("py", 3, frozenset({"python"}))]
    current = place(shape, demands)
    assert [u.lease for u in current.unplaced] == ["mystery"]
    result = rebalance(shape, demands, current.placement)
    assert result.unplaced == ()
    assert sorted(i.leases for i in result.placement.instances) == [["both", "py"], ["mystery"]]
    assert place(shape, demands, result.placement).placement == result.placement


def test_leases_sharing_a_model_name_never_share_an_instance() -> None:
    shape = PoolShape("shared-t4-pool", 8, 0, 4, backend_uniqueness=False)
    result = place(shape, [Demand("a", 1, None, frozenset({"resnet"})), Demand("b", 1, None, frozenset({"resnet"})),
                           Demand("c", 1, None, frozenset({"bert"}))])
    assert _where(result.placement) == {"a": 0, "c": 0, "b": 1}


def test_a_model_name_clash_at_max_is_unplaced_with_the_reason() -> None:
    shape = PoolShape("shared-t4-pool", 8, 0, 1, backend_uniqueness=False)
    result = place(shape, [Demand("a", 1, None, frozenset({"resnet"})), Demand("b", 1, None, frozenset({"resnet"}))])
    assert [u.lease for u in result.unplaced] == ["b"]
    assert "no instance without a model named resnet" in result.unplaced[0].reason


def test_a_lease_that_takes_a_neighbours_model_name_moves_out() -> None:
    shape = PoolShape("shared-t4-pool", 8, 0, 4, backend_uniqueness=False)
    before = place(shape, [Demand("a", 1, None, frozenset({"resnet"})), Demand("b", 1, None, frozenset({"bert"}))])
    assert _where(before.placement) == {"a": 0, "b": 0}
    after = place(shape, [Demand("a", 1, None, frozenset({"resnet"})), Demand("b", 1, None, frozenset({"resnet"}))],
                  before.placement)
    assert _where(after.placement) == {"a": 0, "b": 1}
