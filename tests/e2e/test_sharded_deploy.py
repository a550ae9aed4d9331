"""A sharded fleet (three Pulumi stacks: `tms-stack:shards`) deployed by the real engine against the
test control plane: each stack holds exactly its groups, together they hold what `tms render`
writes, and a pool moved to another stack by `tms shard moves --run` (`pulumi state move`) keeps
every object (same uid): neither stack's next up deletes or creates anything."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.e2e.conftest import Pulumi
from tests.e2e.example import (
    STACK,
    ExampleRepo,
    assert_server_holds,
    create_admin_prerequisites,
    key,
    live_objects,
)
from tests.e2e.kubeapi import Kube
from tms_stack.commands.render import render_fleet

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

SHARDS = ["example-b", "example-c"]
CONFIG = ["--config-file", f"Pulumi.{STACK}.yaml"]


def components(pulumi: Pulumi, stack: str) -> set[str]:
    """`Kind::name` of each group component the stack's state holds."""
    deployment = json.loads(pulumi.run("stack", "export", "--stack", stack).stdout)["deployment"]
    prefix = f"urn:pulumi:{stack}::tms-stack::tms:index:"
    return {r["urn"][len(prefix):] for r in deployment.get("resources") or []
            if r["urn"].startswith(prefix) and "$" not in r["urn"][len(prefix):]}


def up(pulumi: Pulumi, stack: str, *extra: str) -> subprocess.CompletedProcess:
    return pulumi.run("up", "--yes", "--skip-preview", "--stack", stack, *CONFIG, *extra)


def steps(pulumi: Pulumi, stack: str) -> dict[str, int]:
    """Non-`same` steps of a preview of one stack, by operation."""
    preview = json.loads(pulumi.run("preview", "--json", "--stack", stack, *CONFIG).stdout)
    out: dict[str, int] = {}
    for step in preview.get("steps", []):
        if step.get("op") not in ("same", "read"):
            out[step["op"]] = out.get(step["op"], 0) + 1
    return out


def tms(repo: ExampleRepo, pulumi: Pulumi, *args: str) -> subprocess.CompletedProcess:
    p = subprocess.run([str(ROOT / ".venv" / "bin" / "tms"), *args], cwd=repo.path, env={**pulumi.env, "NO_COLOR": "1"},
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    return p


def test_three_stacks_deploy_the_fleet_and_a_state_move_keeps_every_object(
        tmp_path: Path, namespace: str, kube: Kube, pulumi_factory: Any) -> None:
    repo = ExampleRepo(tmp_path / "repo", namespace)
    repo.set_stack_config("tms-stack:shards", {"stacks": SHARDS, "pins": {"shared-t4-pool": "example-b"}})
    create_admin_prerequisites(kube, repo)
    pulumi = pulumi_factory(repo.path, STACK)
    for s in SHARDS:  # writes each shard's own file (its encryption salt): tms ignores it
        pulumi.run("stack", "init", s)
    rendered = repo.render(tmp_path / "render")

    for s in [*SHARDS, STACK]:  # as deploy.yml runs them: the home stack (alias Services) last
        up(pulumi, s)
    assert_server_holds(kube, rendered)
    held = {s: components(pulumi, s) for s in [STACK, *SHARDS]}
    assert held["example-b"] == {"Pool::shared-t4-pool", "Lease::chat-embed", "Lease::chat-small",
                                 "Lease::image-classifier"}
    assert held["example-c"] == {"Pool::cpu_inference_pool", "Lease::ranker", "Lease::fraud-detector",
                                 "Lease::text-ensemble"}
    assert held[STACK] == {"Names::names", "Monitoring::monitoring"}  # the home stack: the fleet-wide objects
    # a shard run without the home's file is refused before it could touch anything
    bare = pulumi.run("preview", "--stack", "example-c", check=False)
    assert bare.returncode != 0 and "--config-file Pulumi.example.yaml" in bare.stdout + bare.stderr

    fleet = render_fleet(repo.path, STACK)
    moving = {"Pool/shared-t4-pool", "Lease/chat-embed", "Lease/chat-small"}
    moved = {key(o): o for g in fleet.groups if g.key in moving for o in g.objects}
    assert len(moved) >= 6
    uids = {k: obj["metadata"]["uid"] for k, obj in live_objects(kube, moved).items() if obj}
    assert set(uids) == set(moved) and set(moved) <= set(rendered)

    repo.set_stack_config("tms-stack:shards", {"stacks": SHARDS, "pins": {"shared-t4-pool": "example-c"}})
    log = tms(repo, pulumi, "shard", "moves", "--stack", STACK, "--run").stderr
    assert "3 group(s) to move (state)" in log and "moved 3 group(s) in 1 call(s)" in log
    assert components(pulumi, "example-b") == {"Lease::image-classifier"}
    assert components(pulumi, "example-c") == {"Pool::cpu_inference_pool", "Lease::ranker", "Lease::fraud-detector",
                                               "Lease::text-ensemble", "Pool::shared-t4-pool", "Lease::chat-embed",
                                               "Lease::chat-small"}
    # nothing to do for either stack: no delete in the old one, no create in the new one
    assert steps(pulumi, "example-b") == {} and steps(pulumi, "example-c") == {}
    up(pulumi, "example-b", "--expect-no-changes")
    up(pulumi, "example-c", "--expect-no-changes")
    up(pulumi, STACK, "--expect-no-changes")
    live = live_objects(kube, moved)
    assert {k: obj["metadata"]["uid"] for k, obj in live.items() if obj} == uids
    assert_server_holds(kube, rendered)
    # read from the states: a second run has nothing left to move
    assert "0 group(s) to move (state)" in tms(repo, pulumi, "shard", "moves", "--stack", STACK, "--run").stderr
