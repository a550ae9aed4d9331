"""`tms drift`: which rendered objects the cluster no longer holds as rendered (changed or deleted by
hand, by another controller, or never created), as the Pulumi URNs to refresh.

Why: the engine compares the program with its own state only, so a change made in the cluster is
invisible to `pulumi up` until a refresh reads every resource back (docs/lifecycle.md, "Drift").
`pulumi up --refresh` does that one GET per resource through the provider: more than 20 minutes
for a 1,139-lease stack on 2 cores (bench/RESULTS.md). `tms drift` lists each kind once and
compares in memory, so `pulumi refresh --target` can be given only the resources that drifted.

What it compares: every object the stack's program registers (the same rendering, `render_fleet`:
a shard stack's groups, or the home stack's own), or with `--all-stacks` every stack's of the
fleet, rendered field by field against the live object (tms_stack/logic/drift.py: the live object
may add defaults and status, never change or drop a rendered field). Objects the program no longer
renders are not its business: the next `up` deletes what its state still holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tms_stack.commands.render import render_fleet
from tms_stack.commands.targets import project_name
from tms_stack.logic.drift import Drift, compare
from tms_stack.models.diagnostics import TmsError
from tms_stack.outside.live import list_objects
from tms_stack.render import object_key
from tms_stack.render.urns import child_urn, type_token


@dataclass
class DriftReport:
    stacks: list[str]
    compared: int = 0
    drifted: list[Drift] = field(default_factory=list)

    @property
    def urns(self) -> list[str]:
        return [d.urn for d in self.drifted]


def desired_objects(root: Path, stack: str | None, now: datetime | None = None,
                    all_stacks: bool = False) -> tuple[list[str], list[tuple[str, str, dict[str, Any]]]]:
    """(the stacks compared, [(URN, object key, rendered object)]) of what `stack`'s program
    registers; `all_stacks`: of every stack of its fleet (each URN names its own stack)."""
    root = root.resolve()
    project = project_name(root)
    # A shard stack renders only its own groups (as its program does); the home stack's alias
    # Services need every lease.
    fleet = render_fleet(root, stack, now, only=None if all_stacks else stack)
    ref = fleet.stack
    stacks = ref.members if all_stacks else [ref.name]
    out = []
    for g in fleet.groups:
        where = fleet.assignment.where(g.key)
        if where not in stacks:
            continue
        for obj in g.objects:
            urn = child_urn(where, project, g.kind, g.name, type_token(obj), obj["kind"], obj["metadata"]["name"])
            out.append((urn, object_key(obj), obj))
    return stacks, out


def find_drift(root: Path, stack: str | None, now: datetime | None = None, all_stacks: bool = False,
               kubeconfig: str | None = None, context: str | None = None,
               lister: Any = list_objects) -> DriftReport:
    """Compare what the stack renders with the cluster. `lister`: (kinds, kubeconfig, context) ->
    listings (outside/live.py; a stand-in in unit tests)."""
    stacks, desired = desired_objects(root, stack, now, all_stacks)
    kinds = {(obj["apiVersion"], obj["kind"], obj["metadata"].get("namespace", "default")) for _, _, obj in desired}
    listings = lister(kinds, kubeconfig, context)
    live: dict[str, dict[str, Any] | None] = {}
    for (_api_version, kind, namespace), items in listings.items():
        for item in items or ():
            meta = item.get("metadata") or {}
            live[f"{kind}/{meta.get('namespace', namespace)}/{meta.get('name', '')}"] = item
    return DriftReport(stacks, len(desired), compare(desired, live))


def state_urns(path: Path) -> set[str]:
    """The URNs a `pulumi stack export` file holds. TmsError when it is not one."""
    try:
        data = json.loads(path.read_text())
        resources = data["deployment"].get("resources") or []
        return {r["urn"] for r in resources if isinstance(r, dict) and isinstance(r.get("urn"), str)}
    except OSError as exc:
        raise TmsError(f"--state {path}: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise TmsError(f"--state {path}: not a `pulumi stack export` document (no deployment.resources)") from None
