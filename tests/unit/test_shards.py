"""The assignment of lease groups to a sharded fleet's stacks (tms_stack/render/shards.py) and the
planning of `pulumi state move`s (tms_stack/commands/shards.py): stable, near-even, singletons at
home, pools with their leases, pins; moves only for what the assignment moved."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from tms_stack.commands.shards import MovePlan, groups_in_state, where_from_states
from tms_stack.models import Lease, Pool
from tms_stack.models.diagnostics import TmsError
from tms_stack.models.stack import ShardSettings, StackSettings
from tms_stack.render.shards import SINGLETONS, Assignment, Move, assign_models, plan_moves

HOME = "prod"


def lease(name: str, owner: str = "team-a", pool: str | None = None) -> Lease:
    spec: dict[str, Any] = {"models": [{"name": "m", "uri": "https://models.example.com/m.zip"}],
                            "expires": "2027-01-01T00:00:00Z"}
    if pool:
        spec["pool"] = {"name": pool, "quota": 1}
    return Lease.model_validate({"apiVersion": "tms-stack/v1", "kind": "Lease",
                                 "metadata": {"name": name, "owner": owner}, "spec": spec})


def pool(name: str, owner: str | None = None) -> Pool:
    meta: dict[str, Any] = {"name": name}
    if owner:
        meta["owner"] = owner
    return Pool.model_validate({"apiVersion": "tms-stack/v1", "kind": "Pool", "metadata": meta,
                                "spec": {"instanceQuota": 4, "instances": {"min": 1, "max": 4}}})


def shards(n: int, **kw: Any) -> ShardSettings:
    """n shard stacks prod-1..prod-n beside the home stack prod."""
    return ShardSettings.model_validate({"stacks": [f"prod-{i}" for i in range(1, n + 1)], **kw})


def fleet(n: int) -> list[Lease]:
    return [lease(f"lease-{i:05d}", owner=f"team-{i % 37}") for i in range(n)]


def test_every_group_of_10000_leases_lands_on_a_member_and_the_sizes_are_near_even() -> None:
    leases = fleet(10_000)
    a = assign_models(HOME, shards(10), leases, [])
    assert len(a.members) == 11 and a.leases[HOME] == 0  # the home stack holds the singletons only
    assert set(a.stack_of.values()) == set(a.members)
    assert sum(a.leases.values()) == 10_000
    # rendezvous hashing: binomial(10000, 0.1) per stack, sd 30: every shard within ±10 %
    assert all(900 <= n <= 1100 for s, n in a.leases.items() if s != HOME), a.leases
    assert Counter(a.stack_of[f"Lease/{x.name}"] for x in leases) == Counter(a.leases)


def test_the_assignment_is_stable_when_other_leases_come_and_go() -> None:
    leases = fleet(2_000)
    before = assign_models(HOME, shards(4), leases, [])
    after = assign_models(HOME, shards(4), [*leases[500:], *fleet(2_500)[2_000:]], [])
    for x in leases[500:]:
        assert after.stack_of[f"Lease/{x.name}"] == before.stack_of[f"Lease/{x.name}"]


def test_adding_a_stack_moves_only_groups_onto_it_about_one_in_n() -> None:
    leases = fleet(5_000)
    before = assign_models(HOME, shards(4), leases, [])
    after = assign_models(HOME, shards(5), leases, [])
    moved = {k: (before.stack_of[k], v) for k, v in after.stack_of.items() if before.stack_of[k] != v}
    assert moved and all(dest == "prod-5" for _, dest in moved.values())
    assert 800 <= len(moved) <= 1200  # ~1/5 of 5,000
    # and removing it again puts exactly those back
    assert assign_models(HOME, shards(4), leases, []).stack_of == before.stack_of


def test_singletons_stay_home_and_a_pool_keeps_its_leases() -> None:
    pools = [pool(f"pool-number-{i}") for i in range(20)]
    leases = [lease(f"p{i}-{j}", pool=f"pool-number-{i}") for i in range(20) for j in range(5)] + fleet(100)
    a = assign_models(HOME, shards(3), leases, pools)
    for key in SINGLETONS:
        assert a.stack_of[key] == HOME
    for i in range(20):
        stacks = {a.stack_of[f"Pool/pool-number-{i}"], *(a.stack_of[f"Lease/p{i}-{j}"] for j in range(5))}
        assert len(stacks) == 1
    assert sum(a.leases.values()) == 200
    assert len({a.stack_of[f"Pool/pool-number-{i}"] for i in range(20)}) == 3  # pools spread too
    assert HOME not in {a.stack_of[f"Pool/pool-number-{i}"] for i in range(20)}


def test_by_owner_keeps_a_team_together_and_pins_win_most_specific_first() -> None:
    leases = fleet(370)  # 37 owners, 10 leases each
    a = assign_models(HOME, shards(4, by="owner"), leases, [])
    by_owner: dict[str, set[str]] = {}
    for x in leases:
        by_owner.setdefault(x.metadata.owner, set()).add(a.stack_of[f"Lease/{x.name}"])
    assert all(len(s) == 1 for s in by_owner.values())
    pinned = assign_models(HOME, shards(4, by="owner", pins={"team-3": "prod-2", "lease-00003": HOME}),
                           leases, [])
    team3 = [x.name for x in leases if x.metadata.owner == "team-3"]
    assert pinned.stack_of["Lease/lease-00003"] == HOME  # the lease's own pin beats its owner's
    assert {pinned.stack_of[f"Lease/{n}"] for n in team3 if n != "lease-00003"} == {"prod-2"}


def test_without_shards_everything_is_home() -> None:
    a = assign_models(HOME, None, fleet(10), [pool("pool-number-1")])
    assert set(a.stack_of.values()) == {HOME} and a.members == [HOME]


def test_shard_settings_refuse_a_bad_stack_name_and_a_duplicate() -> None:
    with pytest.raises(ValueError, match="not a Pulumi stack name"):
        StackSettings.model_validate({"shards": {"stacks": ["bad name"]}})
    with pytest.raises(ValueError, match="listed twice"):
        StackSettings.model_validate({"shards": {"stacks": ["a", "a"]}})


def _assignment(stack_of: dict[str, str]) -> Assignment:
    return Assignment(HOME, [HOME, "prod-1", "prod-2"], dict(stack_of))


def test_moves_only_for_groups_whose_stack_changed_and_deleted_groups_stay() -> None:
    where = {"Lease/a": HOME, "Lease/b": HOME, "Pool/p": "prod-1", "Lease/gone": "prod-2", "Names/names": HOME}
    want = _assignment({"Lease/a": HOME, "Lease/b": "prod-2", "Pool/p": "prod-2", "Lease/new": "prod-1",
                        "Names/names": HOME})
    assert plan_moves(where, want) == [Move(HOME, "prod-2", ("Lease/b",)), Move("prod-1", "prod-2", ("Pool/p",))]
    assert plan_moves(dict(want.stack_of), want) == []  # moved once: nothing left to move


def test_move_commands_name_component_urns_in_chunks() -> None:
    plan = MovePlan(HOME, "fleet", [Move(HOME, "prod-1", tuple(f"Lease/l{i:03d}" for i in range(450)))])
    cmds = plan.commands()
    assert [len(c) - 9 for c in cmds] == [200, 200, 50]
    assert cmds[0][:9] == ["pulumi", "state", "move", "--source", HOME, "--dest", "prod-1", "--yes",
                           "--non-interactive"]
    assert cmds[0][9] == "urn:pulumi:prod::fleet::tms:index:Lease::l000"


def _export(stack: str, *components: str) -> dict[str, Any]:
    res = [{"urn": f"urn:pulumi:{stack}::fleet::pulumi:pulumi:Stack::fleet-{stack}"}]
    for c in components:
        kind, name = c.split("/")
        res.append({"urn": f"urn:pulumi:{stack}::fleet::tms:index:{kind}::{name}"})
        res.append({"urn": f"urn:pulumi:{stack}::fleet::tms:index:{kind}$kubernetes:core/v1:Service::{name}:Service:{name}"})
    res.append({"urn": f"urn:pulumi:{stack}::fleet::pulumi:providers:kubernetes::default_4_34_2"})
    return json.loads(json.dumps({"version": 3, "deployment": {"resources": res}}))


def test_where_groups_are_is_read_from_the_stacks_states() -> None:
    assert groups_in_state(_export(HOME, "Lease/a", "Names/names"), HOME, "fleet") == {"Lease/a", "Names/names"}
    assert groups_in_state(_export(HOME, "Lease/a"), "prod-1", "fleet") == set()  # another stack's URNs
    where = where_from_states({HOME: _export(HOME, "Lease/a"), "prod-1": _export("prod-1", "Pool/p"),
                               "prod-2": {}}, "fleet")
    assert where == {"Lease/a": HOME, "Pool/p": "prod-1"}
    with pytest.raises(TmsError, match="Lease/a is in the state of both prod and prod-1"):
        where_from_states({HOME: _export(HOME, "Lease/a"), "prod-1": _export("prod-1", "Lease/a")}, "fleet")
