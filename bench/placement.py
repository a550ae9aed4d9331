"""Placement quality, stability and speed on random workloads, against a from-scratch first-fit.

For 1,000 and 10,000 leases with quotas 1..instanceQuota (seeded RNG):
- instances used / lower bound ceil(sum of quotas / instanceQuota)  (target <= 1.10 fresh);
- leases moved per single-lease change (add, remove, resize; target 0);
- time of one placement (target < 2 s for 10,000 leases).
Usage: .venv/bin/python bench/placement.py [--sizes 1000 10000]
"""

from __future__ import annotations

import math
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tms_stack.logic.placement import Demand, PoolShape, place, rebalance  # noqa: E402
from tms_stack.models.lock import PoolPlacement  # noqa: E402

QUOTA = 8
CHANGES = 60
SETS = [frozenset({"python"}), frozenset({"onnxruntime"}), frozenset({"pytorch"}), frozenset({"tensorrt"}),
        frozenset({"tensorflow"})]  # disjoint, so the per-set lower bound is a true bound


def first_fit(shape: PoolShape, demands: list[Demand]) -> dict[str, int]:
    """Baseline: first-fit in lease order, recomputed from scratch on every change."""
    used: list[int] = []
    where = {}
    for d in demands:
        for i, u in enumerate(used):
            if u + d.quota <= shape.quota:
                used[i] += d.quota
                where[d.lease] = i
                break
        else:
            used.append(d.quota)
            where[d.lease] = len(used) - 1
    return where


def where(p: PoolPlacement) -> dict[str, int]:
    return {n: i.index for i in p.instances for n in i.leases}


def moved(a: dict[str, int], b: dict[str, int], target: str) -> int:
    return sum(1 for n in a if n in b and a[n] != b[n] and n != target)


def change(rng: random.Random, demands: list[Demand], step: int) -> tuple[list[Demand], str]:
    kind = ("add", "remove", "resize")[step % 3]
    out = list(demands)
    if kind == "add":
        out.insert(rng.randrange(len(out) + 1), Demand(f"new-{step}", rng.randint(1, QUOTA), None))
        return out, f"new-{step}"
    i = rng.randrange(len(out))
    target = out[i].lease
    if kind == "remove":
        del out[i]
    else:
        out[i] = Demand(target, rng.randint(1, QUOTA), None)
    return out, target


def run(n: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    shape = PoolShape("bench-pool", QUOTA, 0, 10**6, backend_uniqueness=False)
    demands = [Demand(f"lease-{i:05d}", rng.randint(1, QUOTA), None) for i in range(n)]
    bound = math.ceil(sum(d.quota for d in demands) / QUOTA)
    start = time.perf_counter()
    fresh = place(shape, demands)
    seconds = time.perf_counter() - start
    ff = first_fit(shape, demands)
    ours_moves, ff_moves, change_times = [], [], []
    for step in range(CHANGES):
        changed, target = change(rng, demands, step)
        t0 = time.perf_counter()
        after = place(shape, changed, fresh.placement)
        change_times.append(time.perf_counter() - t0)
        ours_moves.append(moved(where(fresh.placement), where(after.placement), target))
        ff_moves.append(moved(ff, first_fit(shape, changed), target))
    print(f"{n} leases, instanceQuota {QUOTA}: lower bound {bound} instances")
    print(f"  ours (best-fit decreasing, stable): {len(fresh.placement.instances)} instances, "
          f"ratio {len(fresh.placement.instances) / bound:.3f}, placement {seconds:.2f} s, "
          f"incremental change {statistics.median(change_times):.2f} s; "
          f"moves per single-lease change: mean {statistics.mean(ours_moves):.2f}, max {max(ours_moves)}")
    print(f"  first-fit from scratch:             {max(ff.values()) + 1} instances, "
          f"ratio {(max(ff.values()) + 1) / bound:.3f}; moves per single-lease change: "
          f"mean {statistics.mean(ff_moves):.1f}, max {max(ff_moves)}")


def run_churn(n: int, seed: int = 3) -> None:
    """A third of the leases released (in 100 pull requests; removals move nobody), then
    `tms pool rebalance`: how far the stable placement drifted and what compaction costs."""
    rng = random.Random(seed)
    shape = PoolShape("bench-pool", QUOTA, 0, 10**6, backend_uniqueness=False)
    demands = [Demand(f"lease-{i:05d}", rng.randint(1, QUOTA), None) for i in range(n)]
    current = place(shape, demands).placement
    victims = [f"lease-{v:05d}" for v in rng.sample(range(n), n // 3)]
    for start in range(0, len(victims), max(1, len(victims) // 100)):
        gone = set(victims[start:start + max(1, len(victims) // 100)])
        demands = [d for d in demands if d.lease not in gone]
        current = place(shape, demands, current).placement
    bound = math.ceil(sum(d.quota for d in demands) / QUOTA)
    t0 = time.perf_counter()
    compact = rebalance(shape, demands, current)
    seconds = time.perf_counter() - t0
    print(f"{n} leases, a third released: {len(current.instances)} instances (ratio {len(current.instances) / bound:.3f})"
          f" -> rebalance {len(compact.placement.instances)} (ratio {len(compact.placement.instances) / bound:.3f}), "
          f"{len(compact.moved)} leases move, {seconds:.2f} s")


def run_backends(n: int, seed: int = 2) -> None:
    """backendUniqueness on: five backend sets and 1% unknown backends (an instance each). The lower
    bound is per backend set, since different sets cannot share."""
    rng = random.Random(seed)
    shape = PoolShape("bench-pool", QUOTA, 0, 10**6, backend_uniqueness=True)

    def backends() -> frozenset[str] | None:
        return None if rng.random() < 0.01 else rng.choice(SETS)

    demands = [Demand(f"lease-{i:05d}", rng.randint(1, QUOTA), backends()) for i in range(n)]
    groups: dict[frozenset[str], int] = {}
    for d in demands:
        if d.backends is not None:
            groups[d.backends] = groups.get(d.backends, 0) + d.quota
    bound = sum(math.ceil(q / QUOTA) for q in groups.values()) + sum(d.backends is None for d in demands)
    start = time.perf_counter()
    fresh = place(shape, demands)
    seconds = time.perf_counter() - start
    moves, times = [], []
    for step in range(CHANGES):
        changed, target = change(rng, demands, step)
        old = {d.lease: d.backends for d in demands}
        # change() leaves backends unknown: a resized lease keeps its own, an added one draws a set.
        changed = [Demand(d.lease, d.quota, old[d.lease] if d.lease in old else backends()) for d in changed]
        t0 = time.perf_counter()
        after = place(shape, changed, fresh.placement)
        times.append(time.perf_counter() - t0)
        moves.append(moved(where(fresh.placement), where(after.placement), target))
    used = len(fresh.placement.instances)
    print(f"{n} leases, backendUniqueness, {len(SETS)} backend sets + 1% unknown: lower bound {bound} instances")
    print(f"  ours: {used} instances, ratio {used / bound:.3f}, placement {seconds:.2f} s, incremental change "
          f"{statistics.median(times):.2f} s; moves per single-lease change: mean {statistics.mean(moves):.2f}, "
          f"max {max(moves)}")


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000], help="lease counts to place")
    sizes = ap.parse_args(argv).sizes
    for size in sizes:
        run(size)
    for size in sizes:
        run_backends(size)
    for size in sizes:
        run_churn(size)


if __name__ == "__main__":
    main()
