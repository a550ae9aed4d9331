"""`tms plan --targets`: the Pulumi URNs a deploy must touch, so that `pulumi up --target ...`
deploys one changed lease in seconds instead of diffing every object of the fleet.

A deploy of the whole stack costs the engine a Check and a Diff per object (about 5 objects per
lease, bench/RESULTS.md "The engine at fleet scale"); a targeted one asks the provider only about
the targeted ones, and the program registers only their groups. The targets are computed from
the same rendering core as `tms render`: every object whose rendered form differs between the
base and the work tree (created, changed or deleted), plus the ComponentResource of its group (a
new group's children need their parent created; an emptied group's component must go too).

URNs follow tms_stack/render/urns.py (the program's naming). When the base cannot be rendered (it fails
`tms check`, lacks the stack file) or more than ``MAX_GROUPS`` groups changed, the answer is the
whole stack (a `**` glob), never a guess.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tms_stack.commands.check import gc_paused, parse_cache
from tms_stack.commands.narrow import narrow
from tms_stack.commands.render import Fleet, checked, fleet_of
from tms_stack.logic.memo import shared_answers
from tms_stack.models.diagnostics import TmsError
from tms_stack.render import object_key
from tms_stack.render.urns import child_urn, component_urn, stack_prefix, type_token
from tms_stack.repo.answers import answers_for
from tms_stack.repo.basetree import base_tree
from tms_stack.repo.lockfile import read_lock, shared_reads
from tms_stack.repo.parsecache import persistent
from tms_stack.repo.stack import resolve_stack, stack_names
from tms_stack.repo.yamlio import parse_file
from tms_stack.rules import LeaseRuleMemo

# Above this many changed groups a targeted deploy saves little and the command line grows long.
MAX_GROUPS = 200


@dataclass
class Targets:
    urns: list[str] = field(default_factory=list)
    whole_stack: bool = False
    reason: str = ""                # why the whole stack (empty for a targeted answer)
    groups: list[str] = field(default_factory=list)   # "Lease/fraud-detector", ... (for the log)


def project_name(root: Path) -> str:
    path = root / "Pulumi.yaml"
    if not path.exists():
        raise TmsError(f"{path.name}: not found in {root}: --targets needs the Pulumi project's name")
    doc = parse_file(path, path.name)
    name = doc.data.get("name") if isinstance(doc.data, dict) else None
    if not isinstance(name, str) or not name:
        raise TmsError(f"{path.name}:1: no `name:` (the Pulumi project name, part of every URN)")
    return name


def _stack_name(root: Path, stack: str | None) -> str:
    if stack:
        return stack
    stacks = stack_names(root)
    if len(stacks) != 1:
        raise TmsError(f"--targets needs --stack NAME (stack files here: {', '.join(stacks) or 'none'})")
    return stacks[0]


# object key -> (component URN, object URN, hash of the rendered object, "Kind/group", stack)
_Entry = tuple[str, str, str, str, str]


def _urns(fleet: Fleet, project: str, locate: Callable[[str], str]) -> dict[str, _Entry]:
    out: dict[str, _Entry] = {}
    for g in fleet.groups:
        stack = locate(g.key)
        component = component_urn(stack, project, g.kind, g.name)
        for obj in g.objects:
            child = child_urn(stack, project, g.kind, g.name, type_token(obj), obj["kind"], obj["metadata"]["name"])
            digest = hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()
            out[object_key(obj)] = (component, child, digest, g.key, stack)
    return out


def _whole(stacks: list[str], project: str, reason: str) -> Targets:
    return Targets(urns=[f"{stack_prefix(s, project)}**" for s in stacks], whole_stack=True, reason=reason)


def compute_targets(root: Path, base: str, stack: str | None = None, now: datetime | None = None,
                    cache: bool = True) -> Targets:
    """The URNs to target. In a sharded fleet (`tms-stack:shards`) every URN names the stack that
    holds its group: `--stack <home>` answers for every stack of the fleet (deploy.yml splits
    the lines by stack), `--stack <shard>` for that one. A group sits where the work tree's
    assignment puts it (`tms shard moves` moved it there before the deploy); a group deleted
    from the files, where the base's put it.

    `cache` (as `tms plan`'s, docs/review.md): both trees are read through the parse cache and
    only the groups the change can touch are rendered (commands/narrow.py); without it every
    group of both trees is rendered. The answer is the same (tests/unit/test_targets_narrow.py)."""
    root = root.resolve()
    stack = _stack_name(root, stack)
    project = project_name(root)
    reader = parse_cache(cache)
    read = reader.read if reader else None
    memo = LeaseRuleMemo() if reader else None
    answers = answers_for(reader)
    with shared_reads() if reader else contextlib.nullcontext(), gc_paused(), shared_answers():
        repo = checked(root, now, read, memo, answers)  # a work tree that does not pass is the user's error
        ref = resolve_stack(root, stack)
        scope = ref.members if stack == ref.home else [stack]
        with base_tree(root, base, keep=reader is not None and persistent()) as base_root:
            if not (base_root / f"Pulumi.{ref.home}.yaml").exists():
                return _whole(scope, project, f"the base {base} has no Pulumi.{ref.home}.yaml")
            try:
                base_repo = checked(base_root, now, read, memo, answers)
                base_ref = resolve_stack(base_root, ref.home)
            except TmsError as exc:
                fleet_of(repo, root, ref, now)  # the work tree's own rendering error comes first
                return _whole(scope, project, f"the base {base} does not render: {str(exc).splitlines()[0]}")
            if reader:
                reader.save()
            only = None
            if reader:
                try:
                    only = narrow(base_repo, repo, base_ref.settings, ref.settings, read_lock(base_root),
                                  read_lock(root))
                except Exception:  # noqa: BLE001 - the whole renderings below say what is wrong
                    only = None
            # The work tree first: its failure is the user's error, the base's means "everything".
            fleet = fleet_of(repo, root, ref, now, only=only)
            try:
                base_fleet = fleet_of(base_repo, base_root, base_ref, now, only=only)
            except TmsError as exc:
                return _whole(scope, project, f"the base {base} does not render: {str(exc).splitlines()[0]}")

    def locate(key: str) -> str:
        where = fleet.assignment.stack_of.get(key)
        return where if where is not None else base_fleet.assignment.where(key)

    head = _urns(fleet, project, locate)
    before = _urns(base_fleet, project, locate)
    changed: dict[str, dict[str, str]] = {}  # stack -> object URN -> component URN
    groups: dict[str, set[str]] = {}
    for key in set(head) | set(before):
        a, b = before.get(key), head.get(key)
        if a is not None and b is not None and a == b:
            continue
        for entry in (a, b):  # an object that moved groups: both URNs (delete one, create the other)
            if entry is not None and entry[4] in scope:
                changed.setdefault(entry[4], {})[entry[1]] = entry[0]
                groups.setdefault(entry[4], set()).add(entry[3])
    out = Targets()
    whole: list[str] = []
    for s in scope:
        urns = changed.get(s, {})
        components = sorted(set(urns.values()))
        if len(components) > MAX_GROUPS:
            whole.append(f"{s}: {len(components)} groups changed (more than {MAX_GROUPS})")
            out.urns.append(f"{stack_prefix(s, project)}**")
            continue
        out.urns.extend(components + sorted(urns))
        out.groups.extend(sorted(groups.get(s, ())))
    if whole:
        out.whole_stack = True
        out.reason = "; ".join(whole) if len(scope) > 1 else whole[0].split(": ", 1)[1]
    return out


def describe(t: Targets) -> dict[str, Any]:
    return {"wholeStack": t.whole_stack, "reason": t.reason, "groups": t.groups, "urns": t.urns}
