"""deploy.yml's `pulumi up` step on a sharded fleet (`tms-stack:shards`), run as GitHub runs it on
a real git repository with the real `tms`; `pulumi` is a recording stand-in whose stacks' states
are files of component URNs (the real engine runs a sharded fleet in
tests/e2e/test_sharded_deploy.py). Sharding a deployed stack moves the groups' states and deploys
nothing; a change then reaches only the stack that holds it, with the home stack's settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.lifecycle.test_workflow_steps import Deploy, ups

FAKE_PULUMI = r"""#!/usr/bin/env python3
import json, os, sys
from pathlib import Path
args = sys.argv[1:]
with open(os.environ["PULUMI_LOG"], "a") as f:
    f.write("\n".join(args) + "\n\n")
states = Path(os.environ["PULUMI_LOG"]).parent / "states"
tags = Path(os.environ["PULUMI_TAGS"])
def state(s): return json.loads((states / f"{s}.json").read_text())
def save(s, urns): (states / f"{s}.json").write_text(json.dumps(sorted(urns)))
if args[:2] == ["stack", "select"]: sys.exit(0)
if args[:3] == ["stack", "tag", "get"]:
    lines = [l for l in (tags.read_text().splitlines() if tags.exists() else []) if l.startswith(args[3] + "=")]
    if not lines: sys.exit(255)
    print(lines[-1].split("=", 1)[1]); sys.exit(0)
if args[:3] == ["stack", "tag", "set"]:
    with tags.open("a") as f: f.write(f"{args[3]}={args[4]}\n")
    sys.exit(0)
if args[:3] == ["stack", "tag", "rm"]:
    tags.write_text("".join(l + "\n" for l in tags.read_text().splitlines() if not l.startswith(args[3] + "=")))
    sys.exit(0)
if args[:2] == ["stack", "ls"]:
    print(json.dumps([{"name": p.stem} for p in states.glob("*.json")])); sys.exit(0)
if args[:2] == ["stack", "init"]:
    save(args[2], []); sys.exit(0)
if args[:2] == ["stack", "export"]:
    s = args[args.index("--stack") + 1]
    print(json.dumps({"deployment": {"resources": [{"urn": u} for u in state(s)]}})); sys.exit(0)
if args[:2] == ["state", "move"]:
    src, dst = args[args.index("--source") + 1], args[args.index("--dest") + 1]
    urns = [a for a in args if a.startswith("urn:")]
    have = state(src)
    assert all(u in have for u in urns), urns
    save(src, [u for u in have if u not in urns])
    prefix = f"urn:pulumi:{src}::"
    save(dst, state(dst) + [f"urn:pulumi:{dst}::" + u[len(prefix):] for u in urns])
    sys.exit(0)
if args[0] == "up": sys.exit(0)
print("fake pulumi: unexpected call: " + " ".join(args), file=sys.stderr); sys.exit(99)
"""

SHARDS = ("  tms-stack:shards:\n    stacks: [example-b, example-c]\n"
          "    pins: {shared-t4-pool: example-b}\n")
GROUPS = ["Lease::chat-embed", "Lease::chat-small", "Lease::fraud-detector", "Lease::image-classifier",
          "Lease::ranker", "Lease::speech", "Lease::text-ensemble", "Pool::cpu_inference_pool",
          "Pool::shared-t4-pool", "Names::names", "Monitoring::monitoring"]


class ShardedDeploy(Deploy):
    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        (Path(self.path.split(":")[0]) / "pulumi").write_text(FAKE_PULUMI)
        self.states = tmp_path / "states"  # the fake finds it beside its log
        self.states.mkdir()
        # the unsharded stack as a whole deploy left it: every group in `example`
        (self.states / "example.json").write_text(json.dumps(
            [f"urn:pulumi:example::tms-stack::tms:index:{g}" for g in GROUPS]))

    def held(self, stack: str) -> set[str]:
        prefix = f"urn:pulumi:{stack}::tms-stack::tms:index:"
        return {u[len(prefix):] for u in json.loads((self.states / f"{stack}.json").read_text())}


@pytest.fixture
def sharded(tmp_path: Path) -> ShardedDeploy:
    return ShardedDeploy(tmp_path)


def test_sharding_a_deployed_stack_moves_state_and_then_deploys_per_stack(sharded: ShardedDeploy) -> None:
    sharded.tags.write_text(f"tms:deployed={sharded.commit('deployed')}\n")
    stack_file = sharded.repo / "Pulumi.example.yaml"
    stack_file.write_text(stack_file.read_text() + SHARDS)
    head = sharded.commit("shard the fleet")
    proc, calls = sharded.run(targeted=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "reading the states: Lease/" in proc.stderr  # the deployed commit had every group at home
    moves = [c for c in calls if c[:2] == ["state", "move"]]
    assert [(c[c.index("--source") + 1], c[c.index("--dest") + 1]) for c in moves] == [
        ("example", "example-b"), ("example", "example-c")]
    assert ["stack", "init", "example-b", "--non-interactive"] in calls
    assert sharded.held("example-b") == {"Lease::chat-embed", "Lease::chat-small", "Pool::shared-t4-pool",
                                         "Lease::speech", "Lease::image-classifier"}
    assert sharded.held("example-c") == {"Lease::ranker", "Pool::cpu_inference_pool", "Lease::fraud-detector",
                                         "Lease::text-ensemble"}
    assert sharded.held("example") == {"Names::names", "Monitoring::monitoring"}
    # the moved groups' objects are unchanged: nothing to deploy, nothing deleted or created
    assert ups(calls) == [] and sharded.deployed() == head

    ranker = sharded.repo / "leases" / "ranker.yaml"
    ranker.write_text(ranker.read_text().replace("2027-04-01", "2027-05-01"))
    speech = sharded.repo / "leases" / "speech.yaml"
    speech.write_text(speech.read_text().replace("name: asr", "name: asr2"))
    fraud = sharded.repo / "leases" / "fraud-detector.yaml"
    fraud.write_text(fraud.read_text().replace("names: [fraud]", "names: [fraud-v2]"))
    sharded.commit("change ranker and speech, rename fraud-detector's alias")
    proc, calls = sharded.run(targeted=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the deployed commit assigns every group as this one does: nothing can be out of place, and the
    # deploy does not read every stack's state (seconds each at 1,000 leases)
    assert not [c for c in calls if c[:2] in (["state", "move"], ["stack", "export"])]
    assert "nothing to move" in proc.stderr
    stacks = [(u[u.index("--stack") + 1], u[u.index("--config-file") + 1]) for u in ups(calls)]
    # one up per stack that holds a change, the home stack last
    assert stacks == [(s, "Pulumi.example.yaml") for s in ("example-b", "example-c", "example")]
    b_up, c_up, home_up = ups(calls)
    assert "--target=urn:pulumi:example-b::tms-stack::tms:index:Lease::speech" in b_up
    assert "--target=urn:pulumi:example-c::tms-stack::tms:index:Lease::ranker" in c_up
    assert all(t.startswith("--target=urn:pulumi:example-c::") for t in c_up if t.startswith("--target"))
    # the alias Services are the home stack's
    assert "--target=urn:pulumi:example::tms-stack::tms:index:Names::names" in home_up
    assert not [t for t in home_up if "::speech" in t or "::ranker" in t]


def test_the_schedule_reconciles_every_stack_home_last(sharded: ShardedDeploy) -> None:
    stack_file = sharded.repo / "Pulumi.example.yaml"
    stack_file.write_text(stack_file.read_text() + SHARDS)
    sharded.commit("sharded")
    proc, calls = sharded.run(targeted=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # No cluster here: `tms drift` cannot list, so each stack is refreshed whole (with a warning);
    # the drift path against a real API server: tests/e2e/test_drift_and_readiness.py.
    assert ups(calls) == [["up", "--stack", s, "--config-file", "Pulumi.example.yaml", "--yes", "--skip-preview",
                           "--refresh"] for s in ("example-b", "example-c", "example")]
    assert proc.stdout.count("::warning title=drift not listed::") == 3
    # the reconcile always reads the states: a group out of place is moved whatever the commits say
    assert [c[3] for c in calls if c[:2] == ["stack", "export"] and "--file" not in c] == [
        "example", "example-b", "example-c"]
    # and each stack's state again for tms drift, in the order of the ups
    assert [c[3] for c in calls if c[:2] == ["stack", "export"] and "--file" in c] == [
        "example-b", "example-c", "example"]
    assert sharded.held("example") == {"Names::names", "Monitoring::monitoring"}
