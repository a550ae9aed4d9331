"""`tms plan --targets`: the Pulumi URNs a deploy must touch, so that `pulumi up --target ...`
deploys one changed lease in seconds instead of diffing every object of the fleet.

A deploy of the whole stack costs the engine a Check and a Diff per object (about 5 objects per
lease, bench/RESULTS.md "The engine at fleet scale"); a targeted one asks the provider only about
the targeted ones, and the program registers only their groups. The targets are computed from
the same rendering core as `tms render`: every object whose rendered form differs between the
base and the work tree (created, changed or deleted), plus the ComponentResource of its group (a
new group's children need their parent created; an emptied group's component must go too).

URNs follow tms_stack/urns.py (the program's naming). When the base cannot be rendered (it fails
`tms check`, lacks the stack file) or more than ``MAX_GROUPS`` groups changed, the answer is the
whole stack (a `**` glob), never a guess.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tms_stack.diagnostics import TmsError
from tms_stack.urns import child_urn, component_urn, stack_prefix
from tms_stack.yamlio import parse_file

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
    from tms_stack.stack import _stacks

    if stack:
        return stack
    stacks = _stacks(root)
    if len(stacks) != 1:
        raise TmsError(f"--targets needs --stack NAME (stack files here: {', '.join(stacks) or 'none'})")
    return stacks[0]


def _urns(root: Path, stack: str, project: str, now: datetime | None) -> dict[str, tuple[str, str, str, str]]:
    """object key -> (component URN, object URN, hash of the rendered object, "Kind/group")."""
    from tms_stack.program import type_token
    from tms_stack.render import object_key
    from tms_stack.render.pipeline import render_root

    out: dict[str, tuple[str, str, str, str]] = {}
    for g in render_root(root, stack, now):
        component = component_urn(stack, project, g.kind, g.name)
        for obj in g.objects:
            child = child_urn(stack, project, g.kind, g.name, type_token(obj), obj["kind"], obj["metadata"]["name"])
            digest = hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()
            out[object_key(obj)] = (component, child, digest, g.key)
    return out


def _whole(stack: str, project: str, reason: str) -> Targets:
    return Targets(urns=[f"{stack_prefix(stack, project)}**"], whole_stack=True, reason=reason)


def compute_targets(root: Path, base: str, stack: str | None = None, now: datetime | None = None) -> Targets:
    from tms_stack.plan import checkout_base

    root = root.resolve()
    stack = _stack_name(root, stack)
    project = project_name(root)
    head = _urns(root, stack, project, now)  # a work tree that does not render is the user's error
    with tempfile.TemporaryDirectory(prefix="tms-targets-") as tmp:
        base_root = Path(tmp)
        checkout_base(root, base, base_root)
        if not (base_root / f"Pulumi.{stack}.yaml").exists():
            return _whole(stack, project, f"the base {base} has no Pulumi.{stack}.yaml")
        try:
            before = _urns(base_root, stack, project, now)
        except TmsError as exc:
            return _whole(stack, project, f"the base {base} does not render: {str(exc).splitlines()[0]}")
    changed: dict[str, str] = {}  # object URN -> component URN
    groups: set[str] = set()
    for key in set(head) | set(before):
        a, b = before.get(key), head.get(key)
        if a is not None and b is not None and a == b:
            continue
        for entry in (a, b):  # an object that moved groups: both URNs (delete one, create the other)
            if entry is not None:
                changed[entry[1]] = entry[0]
                groups.add(entry[3])
    components = sorted(set(changed.values()))
    if len(components) > MAX_GROUPS:
        return _whole(stack, project, f"{len(components)} groups changed (more than {MAX_GROUPS})")
    return Targets(urns=components + sorted(changed), groups=sorted(groups))


def describe(t: Targets) -> dict[str, Any]:
    return {"wholeStack": t.whole_stack, "reason": t.reason, "groups": t.groups, "urns": t.urns}
