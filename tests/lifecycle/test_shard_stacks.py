"""A sharded fleet (`tms-stack:shards`) through the CLI: `tms shard list`, the check rules of the
setting, `tms plan --targets` per stack, `tms shard moves --base`, and the groups the program
registers per stack. The real engine runs the same fleet in tests/e2e/test_sharded_deploy.py."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import NOW
from tests.lifecycle.test_plan import TMS, git
from tms_stack.commands.render import render_fleet
from tms_stack.deploy import program
from tms_stack.models.diagnostics import TmsError

SHARDS = ("  tms-stack:shards:\n    stacks: [example-b, example-c]\n"
          "    pins: {shared-t4-pool: example-b}\n")
AT = "2026-11-22T00:00:00Z"


def shard(repo: Path, text: str = SHARDS) -> Path:
    path = repo / "Pulumi.example.yaml"
    path.write_text(path.read_text() + text)
    return repo


def tms(repo: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess:
    p = subprocess.run([TMS, *args], cwd=repo, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "NO_COLOR": "1"})
    assert p.returncode == code, p.stdout + p.stderr
    return p


def _commit(repo: Path, message: str = "base") -> None:
    if not (repo / ".git").exists():
        git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)


def test_shard_list_shows_each_stack_with_its_leases(example_repo: Path) -> None:
    data = json.loads(tms(shard(example_repo), "shard", "list", "-o", "json").stdout)
    assert [(s["stack"], s["leases"]) for s in data["stacks"]] == [("example", 0), ("example-b", 3), ("example-c", 3)]
    text = tms(example_repo, "shard", "list", "--stack", "example").stdout
    assert "example  0 leases  2 groups  home: names, monitoring" in text
    assert tms(example_repo, "shard", "list", "--names").stdout.split() == ["example", "example-b", "example-c"]


def test_the_program_registers_only_its_stacks_groups(example_repo: Path) -> None:
    fleet = render_fleet(shard(example_repo), "example-b", NOW)
    assert fleet.stack.home == "example" and fleet.stack.name == "example-b"
    keys = {stack: {g.key for g in program.shard_groups(fleet, stack, check_config=False)}
            for stack in fleet.stack.members}
    assert keys["example-b"] == {"Pool/shared-t4-pool", "Lease/chat-embed", "Lease/chat-small", "Lease/image-classifier"}
    assert keys["example-c"] == {"Pool/cpu_inference_pool", "Lease/ranker", "Lease/fraud-detector",
                                 "Lease/text-ensemble"}
    assert keys["example"] == {"Names/names", "Monitoring/monitoring"}  # the home stack: the singletons
    assert set().union(*keys.values()) == {g.key for g in fleet.groups}  # every group exactly once
    assert sum(len(k) for k in keys.values()) == len(fleet.groups)
    with pytest.raises(TmsError, match="stack other is not one of the fleet's stacks"):
        program.shard_groups(fleet, "other", check_config=False)


def test_check_refuses_a_pin_to_an_unknown_stack_and_settings_in_a_shards_own_file(example_repo: Path) -> None:
    shard(example_repo, SHARDS.replace("pins: {shared-t4-pool: example-b}", "pins: {shared-t4-pool: nowhere}"))
    (example_repo / "Pulumi.example-c.yaml").write_text(
        "encryptionsalt: v1:abc\nconfig:\n  tms-stack:namespace: other\n")
    out = tms(example_repo, "check", "--now", AT, code=1).stdout
    assert "Pulumi.example.yaml:25:28:" in out and "pin shared-t4-pool: nowhere is not a stack of this fleet" in out
    assert "Pulumi.example-c.yaml:3:3: error: tms-stack:namespace in the file of shard stack example-c is never read" in out
    # the shard's own file is not a stack of its own: --stack is still needed nowhere
    assert tms(example_repo, "shard", "list").returncode == 0


def test_check_warns_when_a_stack_holds_more_than_max_leases(example_repo: Path) -> None:
    shard(example_repo, SHARDS + "    maxLeases: 2\n")
    out = tms(example_repo, "check", "--now", AT).stdout
    assert "stack example-b holds 3 leases, more than maxLeases 2" in out and "[shards.size]" in out


def test_targets_name_the_stack_that_holds_the_changed_group(example_repo: Path) -> None:
    _commit(shard(example_repo))
    lease = example_repo / "leases" / "image-classifier.yaml"
    lease.write_text(lease.read_text().replace("name: resnet50", "name: resnet101"))
    ranker = example_repo / "leases" / "ranker.yaml"
    ranker.write_text(ranker.read_text().replace("2027-04-01", "2027-05-01"))
    urns = tms(example_repo, "plan", "--base", "main", "--targets", "--now", AT, "--stack", "example").stdout.split()
    # the home stack's --stack answers for the fleet: each URN names the stack that holds its group
    assert {u.split("::")[0] for u in urns} == {"urn:pulumi:example-b", "urn:pulumi:example-c"}
    assert "urn:pulumi:example-b::tms-stack::tms:index:Lease::image-classifier" in urns
    assert "urn:pulumi:example-c::tms-stack::tms:index:Lease::ranker" in urns  # a pooled lease: its pool's stack
    only_c = tms(example_repo, "plan", "--base", "main", "--targets", "--now", AT, "--stack", "example-c").stdout.split()
    assert only_c and set(only_c) == {u for u in urns if u.startswith("urn:pulumi:example-c::")}
    # an alias moved between leases: the Service in the home stack, not the leases' stacks
    fraud = example_repo / "leases" / "fraud-detector.yaml"
    fraud.write_text(fraud.read_text().replace("names: [fraud]", "names: [fraud-v2]"))
    urns = tms(example_repo, "plan", "--base", "main", "--targets", "--now", AT).stdout.split()
    assert "urn:pulumi:example::tms-stack::tms:index:Names::names" in urns


def test_a_group_moved_between_stacks_is_a_state_move_and_no_target(example_repo: Path) -> None:
    _commit(shard(example_repo))
    path = example_repo / "Pulumi.example.yaml"
    path.write_text(path.read_text().replace("pins: {shared-t4-pool: example-b}", "pins: {shared-t4-pool: example-c}"))
    out = tms(example_repo, "shard", "moves", "--stack", "example", "--base", "main").stdout.splitlines()
    assert out == ["pulumi state move --source example-b --dest example-c --yes --non-interactive "
                   "urn:pulumi:example-b::tms-stack::tms:index:Lease::chat-embed "
                   "urn:pulumi:example-b::tms-stack::tms:index:Lease::chat-small "
                   "urn:pulumi:example-b::tms-stack::tms:index:Pool::shared-t4-pool"]
    # after the move nothing differs: the deploy has nothing to create in example-c or delete in example-b
    assert tms(example_repo, "plan", "--base", "main", "--targets", "--now", AT).stdout == ""


def test_sharding_a_single_stack_moves_every_group_that_leaves_home(example_repo: Path) -> None:
    _commit(example_repo)
    shard(example_repo)
    data = json.loads(tms(example_repo, "shard", "moves", "--base", "main", "-o", "json").stdout)
    assert [(m["source"], m["dest"], m["groups"]) for m in data["moves"]] == [
        ("example", "example-b", ["Lease/chat-embed", "Lease/chat-small", "Lease/image-classifier",
                                  "Pool/shared-t4-pool"]),
        ("example", "example-c", ["Lease/fraud-detector", "Lease/ranker", "Lease/text-ensemble",
                                  "Pool/cpu_inference_pool"])]


def test_a_shard_stacks_program_renders_only_its_groups_and_the_same_objects(example_repo: Path) -> None:
    shard(example_repo)
    whole = render_fleet(example_repo, "example", NOW)
    for stack in ("example-b", "example-c"):
        narrow = render_fleet(example_repo, stack, NOW, only=stack)
        assert [(g.key, g.objects) for g in narrow.groups] == [(g.key, g.objects) for g in whole.of(stack)]
    # the home stack renders everything: its alias Services come from every lease
    assert render_fleet(example_repo, "example", NOW, only="example").groups == whole.groups
