"""`tms shard list` and `tms shard moves`: a sharded fleet's stacks (docs/real-engine.md, "Sharded
stacks").

A group changes stack when the assignment changes (a stack added to `tms-stack:shards`, a pin, a
lease joining a pool, an owner change under `by: owner`). Its objects have fixed names, so it must
never be deleted by one stack and created by another (the create fails with "already exists", or
with upserts the old stack's delete removes what the new one adopted): its state moves instead,
with `pulumi state move`, which carries the group's component and every child. The deploy runs
`tms shard moves --run` before the stacks' `pulumi up`.

Where each group is now comes from the stacks' states (`pulumi stack export`, what `--run` and
the deploy use: a move that was done is never redone) or, without Pulumi, from a base commit's
assignment (`--base`, for a review or a dry run).
"""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tms_stack.commands.check import gc_paused, parse_cache
from tms_stack.commands.targets import project_name
from tms_stack.models.diagnostics import TmsError
from tms_stack.render.shards import Assignment, Move, assign_models, plan_moves
from tms_stack.render.urns import COMPONENT_TYPES, component_urn, group_key
from tms_stack.repo.basetree import base_tree
from tms_stack.repo.loader import load_repository
from tms_stack.repo.parsecache import ReadFn, persistent
from tms_stack.repo.stack import StackRef, resolve_stack

# URNs per `pulumi state move` call: each call rewrites both states once, so fewer is faster, but
# the command line stays well below the kernel's argument limit.
URNS_PER_CALL = 200

_KIND_OF_TYPE = {v: k for k, v in COMPONENT_TYPES.items()}


def fleet_assignment(root: Path, stack: str | None, read: ReadFn | None = None) -> tuple[StackRef, Assignment]:
    """The assignment of the work tree's files (loaded, not checked: `tms check` judges them).
    `read`: through the parse cache (a deploy loads the work tree and the deployed commit, which
    differ in a few files)."""
    ref = resolve_stack(root, stack)
    with gc_paused():
        repo = load_repository(root, read=read)
    return ref, assign_models(ref.home, ref.settings.shards, repo.all_leases(), repo.all_pools())


@dataclass
class MovePlan:
    home: str
    project: str
    moves: list[Move] = field(default_factory=list)
    source: str = ""          # "state" or "base <ref>"

    def commands(self) -> list[list[str]]:
        """The `pulumi state move` command lines, at most URNS_PER_CALL URNs each."""
        out: list[list[str]] = []
        for m in self.moves:
            urns = [component_urn(m.source, self.project, *k.split("/", 1)) for k in m.groups]
            for i in range(0, len(urns), URNS_PER_CALL):
                out.append(["pulumi", "state", "move", "--source", m.source, "--dest", m.dest, "--yes",
                            "--non-interactive", *urns[i:i + URNS_PER_CALL]])
        return out

    def describe(self) -> dict[str, Any]:
        return {"home": self.home, "from": self.source,
                "moves": [{"source": m.source, "dest": m.dest, "groups": list(m.groups)} for m in self.moves],
                "commands": [shlex.join(c) for c in self.commands()]}


def where_from_base(root: Path, base: str, home: str, read: ReadFn | None = None) -> dict[str, str]:
    """group key -> stack, as the base commit's files assigned them (every group of a base without
    sharding is in the home stack; a base without the stack file holds nothing)."""
    with base_tree(root, base, keep=persistent()) as base_root:
        if not (base_root / f"Pulumi.{home}.yaml").exists():
            return {}
        _, before = fleet_assignment(base_root, home, read)
    return dict(before.stack_of)


def changed_since(root: Path, stack: str | None, refs: Iterable[str]) -> str | None:
    """Why the states must be read (a ref whose assignment of the work tree's groups differs, or
    that cannot be read), or None when every ref assigns them as the work tree does. After a
    successful deploy of a commit its states match its assignment; a deploy that failed partway
    moved groups only toward its own commit's assignment. So when the deployed commit and every
    pending one agree with the work tree, nothing can be out of place, and the deploy skips reading
    every stack's state (seconds per stack at 1,000 leases)."""
    root = root.resolve()
    reader = parse_cache()
    read = reader.read if reader else None
    ref, head = fleet_assignment(root, stack, read)
    for commit in refs:
        try:
            before = where_from_base(root, commit, ref.home, read)
        except (subprocess.CalledProcessError, OSError, TmsError) as exc:
            return f"{commit} cannot be read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
        for key, where in head.stack_of.items():
            was = before.get(key)
            if was is not None and was != where:
                return f"{key} was in {was} at {commit}, is in {where} now"
    if reader:
        reader.save()
    return None


def groups_in_state(deployment: dict[str, Any], stack: str, project: str) -> set[str]:
    """The group keys of the components a `pulumi stack export` holds (children move with them)."""
    out: set[str] = set()
    resources = ((deployment.get("deployment") or {}).get("resources")) or []
    prefix = f"urn:pulumi:{stack}::{project}::"
    for res in resources:
        urn = res.get("urn", "") if isinstance(res, dict) else ""
        if not urn.startswith(prefix):
            continue
        type_, sep, name = urn[len(prefix):].rpartition("::")
        kind = _KIND_OF_TYPE.get(type_)
        if sep and kind is not None:
            out.add(group_key(kind, name))
    return out


def where_from_states(states: dict[str, dict[str, Any]], project: str) -> dict[str, str]:
    """group key -> the stack whose state holds it; a group in two states is refused (it would be
    deployed twice: fix by hand with `pulumi state delete` in the one that should not have it)."""
    where: dict[str, str] = {}
    for stack, deployment in sorted(states.items()):
        for key in sorted(groups_in_state(deployment, stack, project)):
            if key in where:
                raise TmsError(f"{key} is in the state of both {where[key]} and {stack}: "
                               "remove it from one with `pulumi state delete --target-dependents`")
            where[key] = stack
    return where


Runner = Callable[[list[str]], subprocess.CompletedProcess]


def pulumi_runner(root: Path) -> Runner:
    def run(argv: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(argv, cwd=root, capture_output=True, text=True)
    return run


def export_states(stacks: Iterable[str], run: Runner) -> dict[str, dict[str, Any]]:
    """`pulumi stack export` of each stack; a stack that does not exist yet holds nothing."""
    listed = run(["pulumi", "stack", "ls", "--json", "--non-interactive"])
    if listed.returncode != 0:
        raise TmsError(f"pulumi stack ls failed: {(listed.stderr or listed.stdout).strip()[:500]}")
    existing = {str(s.get("name", "")).rsplit("/", 1)[-1] for s in json.loads(listed.stdout or "[]")}
    states: dict[str, dict[str, Any]] = {}
    for stack in stacks:
        if stack not in existing:
            states[stack] = {}
            continue
        out = run(["pulumi", "stack", "export", "--stack", stack, "--non-interactive"])
        if out.returncode != 0:
            raise TmsError(f"pulumi stack export --stack {stack} failed: {(out.stderr or out.stdout).strip()[:500]}")
        states[stack] = json.loads(out.stdout or "{}")
    return states


def plan_shard_moves(root: Path, stack: str | None, base: str | None = None,
                     also: Iterable[str] = (), run: Runner | None = None) -> MovePlan:
    """The moves that put every group of the work tree in its stack. `base`: read where groups
    are from that commit's assignment; otherwise from the states of the fleet's stacks and `also`
    (stacks that left `tms-stack:shards` and may still hold groups)."""
    root = root.resolve()
    reader = parse_cache()
    read = reader.read if reader else None
    ref, assignment = fleet_assignment(root, stack, read)
    project = project_name(root)
    plan = MovePlan(ref.home, project)
    if base is not None:
        plan.source = f"base {base}"
        where = where_from_base(root, base, ref.home, read)
    else:
        plan.source = "state"
        stacks = list(dict.fromkeys([*ref.members, *also]))
        where = where_from_states(export_states(stacks, run or pulumi_runner(root)), project)
    plan.moves = plan_moves(where, assignment)
    if reader:
        reader.save()
    return plan


def run_moves(root: Path, plan: MovePlan, run: Runner | None = None,
              progress: Callable[[str], None] | None = None) -> int:
    """Run the plan's `pulumi state move` commands in order; stops at the first failure (the
    states stay consistent: each call moves whole groups or nothing). Returns the calls made."""
    run = run or pulumi_runner(root.resolve())
    commands = plan.commands()
    for i, argv in enumerate(commands, 1):
        if progress:
            progress(f"state move {i}/{len(commands)}: {argv[4]} -> {argv[6]} ({len(argv) - 9} groups)")
        out = run(argv)
        if out.returncode != 0:
            raise TmsError(f"`{shlex.join(argv[:9])} ...` failed (exit {out.returncode}): "
                           f"{(out.stderr or out.stdout).strip()[-800:]}")
    return len(commands)


def ensure_stacks(stacks: Iterable[str], run: Runner) -> list[str]:
    """`pulumi stack init` of each stack that does not exist yet (a move needs its destination)."""
    listed = run(["pulumi", "stack", "ls", "--json", "--non-interactive"])
    existing = {str(s.get("name", "")).rsplit("/", 1)[-1] for s in json.loads(listed.stdout or "[]")}
    made = []
    for stack in stacks:
        if stack in existing:
            continue
        out = run(["pulumi", "stack", "init", stack, "--non-interactive"])
        if out.returncode != 0:
            raise TmsError(f"pulumi stack init {stack} failed: {(out.stderr or out.stdout).strip()[:500]}")
        made.append(stack)
    return made


def summary(ref: StackRef, assignment: Assignment) -> dict[str, Any]:
    shards = ref.settings.shards
    return {"home": ref.home, "by": shards.by if shards else None,
            "maxLeases": shards.maxLeases if shards else None,
            "stacks": [{"stack": s, "leases": assignment.leases.get(s, 0), "groups": assignment.groups.get(s, 0)}
                       for s in ref.members]}
