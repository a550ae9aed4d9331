"""Which Pulumi stack of a sharded fleet holds each group (docs/real-engine.md, "Sharded stacks").

The unit that moves is a *lease group*: a bespoke lease alone, or a pool with every lease placed
in it (a pooled lease's Services wait for its instance's Deployment, and one stack cannot depend on
another's resources). The fleet's singletons, the alias Services (`Names`, which span owners and
shards) and the monitoring objects, are the home stack's (the stack whose file declares the
shards); lease groups go to the shard stacks, so a lease edit never waits for the engine to read
the home stack's state of every alias (only a pin may put a group in the home stack).

Rendezvous hashing: a unit goes to the shard stack with the highest sha256 of (stack, key). The
answer depends only on the unit's key and the member list, so editing, adding or deleting other
leases never moves a group, adding a stack moves only the groups that now prefer it (~1/N) and
removing one moves only its own. A pin names the stack outright. Sizes are even in expectation,
not bounded by construction (a bound would make one group's place depend on the others'):
`tms check` warns when a stack holds more than `maxLeases` (rules/shards.py).

Pure: models in, an `Assignment` out; `plan_moves` turns "where each group is" and "where it
belongs" into `pulumi state move` batches (commands/shards.py runs them. In the render layer beside urns.py: both decide which stack registers what).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tms_stack.models import Lease, Pool
from tms_stack.models.stack import ShardSettings
from tms_stack.render.urns import group_key

# The groups every fleet has once, always in the home stack.
SINGLETONS = (group_key("Names", "names"), group_key("Monitoring", "monitoring"))


@dataclass(frozen=True)
class Unit:
    """Groups that always share a stack, and what places them."""

    groups: tuple[str, ...]      # group keys ("Pool/gpu-pool", "Lease/a", ...), the first names the unit
    name: str                    # the lease's or pool's name
    owner: str | None
    leases: int


@dataclass
class Assignment:
    home: str
    members: list[str]
    stack_of: dict[str, str] = field(default_factory=dict)    # group key -> stack
    leases: dict[str, int] = field(default_factory=dict)      # stack -> leases it holds
    groups: dict[str, int] = field(default_factory=dict)      # stack -> groups it holds

    def where(self, key: str) -> str:
        """The stack of a group; one the assignment does not know (e.g. deleted) is the home's."""
        return self.stack_of.get(key, self.home)


def units(leases: Iterable[Lease], pools: Iterable[Pool]) -> list[Unit]:
    """A unit per bespoke lease and per pool (with its pooled leases), sorted by first group."""
    pooled: dict[str, list[str]] = {}
    out: list[Unit] = []
    for lease in leases:
        if lease.spec.pool is not None:
            pooled.setdefault(lease.spec.pool.name, []).append(lease.name)
        else:
            out.append(Unit((group_key("Lease", lease.name),), lease.name, lease.metadata.owner, 1))
    for pool in pools:
        members = sorted(pooled.pop(pool.name, []))
        out.append(Unit((group_key("Pool", pool.name), *(group_key("Lease", n) for n in members)),
                        pool.name, pool.metadata.owner, len(members)))
    # a pooled lease whose pool does not exist fails `tms check`; placed alone it still has a stack
    for _pool, names in sorted(pooled.items()):
        out.extend(Unit((group_key("Lease", n),), n, None, 1) for n in sorted(names))
    return sorted(out, key=lambda u: u.groups[0])


def score(stack: str, key: str) -> bytes:
    # NUL cannot occur in a stack name or a key, so no two (stack, key) pairs hash the same input
    return hashlib.sha256(f"{stack}\0{key}".encode()).digest()


def preferred(key: str, members: list[str]) -> str:
    """The member with the highest score for `key` (rendezvous hashing)."""
    return max(members, key=lambda m: score(m, key))


def hash_key(unit: Unit, by: str) -> str:
    if by == "owner" and unit.owner:
        return f"owner:{unit.owner}"
    return f"group:{unit.name}"


def assign(home: str, shards: ShardSettings | None, all_units: Iterable[Unit]) -> Assignment:
    members = [home, *(shards.stacks if shards else [])]
    result = Assignment(home, members)
    for m in members:
        result.leases[m] = 0
        result.groups[m] = 0
    for unit in all_units:
        if shards is None:
            stack = home
        else:
            # the most specific pin wins: the pool's or lease's own name, then its owner
            pin = shards.pins.get(unit.name) or (shards.pins.get(unit.owner) if unit.owner else None)
            stack = pin if pin in members else preferred(hash_key(unit, shards.by), shards.stacks)
        for g in unit.groups:
            result.stack_of[g] = stack
        result.leases[stack] += unit.leases
        result.groups[stack] += len(unit.groups)
    for g in SINGLETONS:
        result.stack_of[g] = home
        result.groups[home] += 1
    return result


def assign_models(home: str, shards: ShardSettings | None, leases: Iterable[Lease],
                  pools: Iterable[Pool]) -> Assignment:
    return assign(home, shards, units(leases, pools))


@dataclass(frozen=True)
class Move:
    source: str
    dest: str
    groups: tuple[str, ...]      # group keys, sorted


def plan_moves(where: Mapping[str, str], assignment: Assignment) -> list[Move]:
    """The state moves that put every group where the assignment wants it. `where`: group key ->
    the stack whose state holds it now. A group the assignment does not know (deleted from the
    files) stays where it is: that stack's next deploy deletes its objects."""
    batches: dict[tuple[str, str], list[str]] = {}
    for key, source in where.items():
        dest = assignment.stack_of.get(key)
        if dest is None or dest == source:
            continue
        batches.setdefault((source, dest), []).append(key)
    return [Move(s, d, tuple(sorted(keys))) for (s, d), keys in sorted(batches.items())]
