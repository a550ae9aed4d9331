"""Which groups a pull request can change, so that `tms plan` renders only those (docs/review.md).

A group's objects are a function of its lease or pool, the leases placed in it, the policies, the
stack settings and the lock's placement of it (render/__init__.py). So when the policies, the pools
and the stack settings are the same in both trees, every object of a group outside the answer is
the same in both, and leaving it out of both renderings changes no line of the object diff. When
any of those differ the answer is None: render everything, as a deploy would.
"""

from __future__ import annotations

from typing import Any

from tms_stack.models.lock import PlacementLock, PoolPlacement
from tms_stack.models.stack import StackSettings
from tms_stack.render import Only
from tms_stack.repo.loader import Loaded, Repository


def same_loaded(a: Loaded | None, b: Loaded | None) -> bool:
    """Whether two loaded files hold the same model. The parse cache hands both trees one object
    for a file whose bytes and path did not change, which answers without dumping either."""
    if a is None or b is None:
        return a is b
    return a is b or a.model.model_dump(mode="json") == b.model.model_dump(mode="json")


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json")


def narrow(old: Repository, new: Repository, old_settings: StackSettings, new_settings: StackSettings,
           old_lock: PlacementLock | None, new_lock: PlacementLock | None) -> Only | None:
    """The leases and pools whose groups may differ between `old` and `new` (both passed `tms
    check`), or None when anything every group depends on differs."""
    if old_settings != new_settings:
        return None
    for kind in ("limits", "allowlist", "repositories"):
        if _dump(getattr(old, kind)) != _dump(getattr(new, kind)):
            return None
    if set(old.pools) != set(new.pools) or any(not same_loaded(old.pools[p], new.pools[p]) for p in old.pools):
        return None
    old_leases = {loaded.model.name: loaded for loaded in old.leases.values()}  # type: ignore[attr-defined]
    new_leases = {loaded.model.name: loaded for loaded in new.leases.values()}  # type: ignore[attr-defined]
    leases = {name for name in old_leases.keys() | new_leases.keys()
              if not same_loaded(old_leases.get(name), new_leases.get(name))}
    pools: set[str] = set()
    for name in leases:
        for loaded in (old_leases.get(name), new_leases.get(name)):
            share = loaded.model.spec.pool if loaded is not None else None  # type: ignore[attr-defined]
            if share is not None:
                pools.add(share.name)
    for lock in (old_lock, new_lock):
        for pool, placement in (lock.pools.items() if lock else ()):
            if any(lease in leases for inst in placement.instances for lease in inst.leases):
                pools.add(pool)
    old_placed = old_lock.pools if old_lock else {}
    new_placed = new_lock.pools if new_lock else {}
    for pool in old_placed.keys() | new_placed.keys():
        if old_placed.get(pool, PoolPlacement()) != new_placed.get(pool, PoolPlacement()):
            pools.add(pool)
            # A lease that moved instance: its own group (the Service's selector) changes too.
            for moved in (old_placed.get(pool), new_placed.get(pool)):
                for inst in moved.instances if moved else ():
                    leases.update(inst.leases)
    return Only(frozenset(leases), frozenset(pools))
