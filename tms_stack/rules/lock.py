"""The placement lock: every pooled lease can be placed, and the committed lock is exactly what
`tms pool lock` would write (never touching the network: only declared and cached backends).

With a base (`tms check --base-dir`, `tms plan`, the trusted review) the lock is derived, never
trusted: the expected lock is computed from the *base's* lock and the pull request's leases and
pools, with only the backends the base's lock already knew (or its compaction, what `tms pool
rebalance --write` writes), and any other lock is `lock.derived`.
Without a base, the lock is compared with a placement computed from itself (`lock.stale`): useful
locally, but a hand-written lock that is "a stable placement" (a lease moved onto another team's
instance, invented backends) would pass it."""

from __future__ import annotations

from tms_stack.logic.pool_lock import LOCK_DISPLAY, STALE_FIX, STALE_WHY, compute
from tms_stack.models.diagnostics import UNREADABLE_RULE, Diagnostic, TmsError, UnreadableInput
from tms_stack.models.lock import PlacementLock, PoolPlacement
from tms_stack.models.pool import k8s_pool_name
from tms_stack.repo.loader import Repository
from tms_stack.repo.lockfile import lock_path, read_lock
from tms_stack.repo.yamlio import parse_file
from tms_stack.rules.context import Base

MAX_DIFFERENCES = 5


def derived_fix(label: str) -> str:
    """What to run when the lock differs from the one derived from the base."""
    return (f"git fetch origin && tms pool lock --base {label} && git add {LOCK_DISPLAY} && "
            f"git commit -m 'pools: placement derived from {label}' {LOCK_DISPLAY}")


def base_lock(base: Base) -> PlacementLock | None:
    """The base's lock; a base without one (or whose lock does not parse: the base is trusted, and
    `tms pool lock --base` does the same) places from scratch."""
    try:
        return read_lock(base.repo.root)
    except TmsError:
        return None


def lock_rules(repo: Repository, base: Base | None = None) -> list[Diagnostic]:
    """`tms check`: leases that cannot be placed, and a lock that differs from what `tms pool lock`
    (with a base: `tms pool lock --base`) writes."""
    if repo.invalid_policies or (not repo.pools and not any(l.spec.pool for l in repo.all_leases())):
        return []
    try:
        lock = read_lock(repo.root)
    except UnreadableInput as exc:
        # Conflict markers or broken YAML: unreadable input, exit 2 like any other (docs/cli.md).
        return exc.diagnostics or [Diagnostic(LOCK_DISPLAY, 1, 1, UNREADABLE_RULE, str(exc))]
    except TmsError as exc:
        return exc.diagnostics or [Diagnostic(LOCK_DISPLAY, 1, 1, "lock.invalid", str(exc))]
    pool_names = {p.name for p in repo.all_pools()}
    # Leases whose pool is missing are reported by rules.py; leave them out here.
    if any(l.spec.pool and l.spec.pool.name not in pool_names for l in repo.all_leases()):
        return []
    previous = base_lock(base) if base is not None else lock
    result = compute(repo, previous)
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
        fix = f"tms pool lock --base {base.label}" if base is not None else "tms pool lock"
        return [Diagnostic(LOCK_DISPLAY, 0, 0, "lock.missing",
                           f"pooled leases need a placement lock: run `{fix}` and commit {LOCK_DISPLAY}")]
    if _same(result.lock, lock):
        return []
    # `tms pool rebalance --write` in a pull request: the compacted placement is derived from the
    # base's lock just as deterministically, so it is accepted too (nothing hand-written is).
    if base is not None and _same(compute(repo, previous, compact=True).lock, lock):
        return []
    if base is not None:
        found = differences(result.lock, lock, {p.name: k8s_pool_name(p.name) for p in repo.all_pools()})
        shown = "; ".join(found[:MAX_DIFFERENCES]) + (f"; and {len(found) - MAX_DIFFERENCES} more"
                                                      if len(found) > MAX_DIFFERENCES else "")
        return [Diagnostic(LOCK_DISPLAY, *_line_of(repo, found_pool(result.lock, lock)), "lock.derived",
                           f"the lock is not the one derived from the base's lock ({base.label}) and this "
                           f"change's leases and pools: {shown or 'it differs'}; the lock is derived, never "
                           f"written by hand: run `{derived_fix(base.label)}`")]
    changed = sorted(
        name for name in set(result.lock.pools) | set(lock.pools)
        if result.lock.pools.get(name, PoolPlacement()) != lock.pools.get(name, PoolPlacement())
    )
    what = f"placement of {', '.join(changed)}" if changed else "learned backends"
    return [Diagnostic(LOCK_DISPLAY, 1, 1, "lock.stale",
                       f"the lock is stale ({what} changed): run `{STALE_FIX}`{STALE_WHY}")]


def found_pool(expected: PlacementLock, actual: PlacementLock) -> str | None:
    """The first pool whose placement differs (None: only the backends cache does)."""
    return next((name for name in sorted(set(expected.pools) | set(actual.pools))
                 if expected.pools.get(name, PoolPlacement()) != actual.pools.get(name, PoolPlacement())), None)


def _line_of(repo: Repository, pool: str | None) -> tuple[int, int]:
    """Where the lock says what differs: the pool's key, else the backends cache, else line 1."""
    try:
        doc = parse_file(lock_path(repo.root), LOCK_DISPLAY)
    except (TmsError, OSError):
        return 1, 1
    pos = doc.key_pos(("pools", pool) if pool is not None else ("backends",))
    return max(pos.line, 1), max(pos.col, 1)


def differences(expected: PlacementLock, actual: PlacementLock, k8s: dict[str, str]) -> list[str]:
    """What a reviewer needs to see: leases on another instance (or missing, or invented),
    instance backends and cached backends that the base does not support."""
    out: list[str] = []

    def where(lock: PlacementLock) -> dict[str, str]:
        return {lease: f"{k8s.get(pool, pool)}-{inst.index}" for pool, placement in sorted(lock.pools.items())
                for inst in placement.instances for lease in inst.leases}

    want, have = where(expected), where(actual)
    for lease in sorted(want.keys() | have.keys()):
        if lease not in have:
            out.append(f"lease {lease} is missing (derived: {want[lease]})")
        elif lease not in want:
            out.append(f"lease {lease} on {have[lease]} is not a pooled lease of this change")
        elif want[lease] != have[lease]:
            out.append(f"lease {lease} is on {have[lease]}, derived {want[lease]}")
    for pool in sorted(set(expected.pools) | set(actual.pools)):
        a = {i.index: i for i in expected.pools.get(pool, PoolPlacement()).instances}
        b = {i.index: i for i in actual.pools.get(pool, PoolPlacement()).instances}
        for index in sorted(a.keys() | b.keys()):
            x, y = a.get(index), b.get(index)
            name = f"{k8s.get(pool, pool)}-{index}"
            if x is None or y is None:
                if not (x or y).leases:  # type: ignore[union-attr]
                    out.append(f"instance {name} is {'extra' if x is None else 'missing'}")
                continue
            if x.backends != y.backends:
                out.append(f"instance {name} lists backends [{', '.join(y.backends)}], derived "
                           f"[{', '.join(x.backends)}]")
            if x.leases != y.leases and set(x.leases) == set(y.leases):
                out.append(f"instance {name} lists its leases in another order")
            if x.quotas != y.quotas and set(x.quotas) == set(y.quotas):
                out.append(f"instance {name} records other quotas")
    for uri in sorted(actual.backends.keys() | expected.backends.keys()):
        if actual.backends.get(uri) != expected.backends.get(uri):
            if uri not in expected.backends:
                out.append(f"backends [{', '.join(actual.backends[uri])}] for {uri} are not in the base's lock (the review "
                           "never reads the network: declare `backends:` in the lease)")
            else:
                out.append(f"backends for {uri} differ from the base's lock")
    return out


def _same(a: PlacementLock, b: PlacementLock) -> bool:
    return _placements(a) == _placements(b) and a.backends == b.backends


def _placements(lock: PlacementLock) -> dict[str, PoolPlacement]:
    return dict(sorted(lock.pools.items()))
