"""The Pulumi program: rendered objects as Pulumi resources, one ComponentResource per lease,
pool, the alias names and the stack's monitoring, so `pulumi preview` reads as a tree.

Thin on purpose: every object comes from the same rendering core as `tms render`.
Resource names are `<group>:<Kind>:<name>`, stable across edits of other leases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi

from tms_stack.diagnostics import TmsError
from tms_stack.render import RenderGroup

COMPONENT_TYPES = {"Lease": "tms:index:Lease", "Pool": "tms:index:Pool", "Names": "tms:index:Names",
                   "Monitoring": "tms:index:Monitoring"}


def _provider_version() -> str | None:
    try:
        from pulumi_kubernetes import _utilities

        return _utilities.get_version()
    except Exception:  # pragma: no cover - the package is a hard dependency
        return None


def type_token(obj: dict[str, Any]) -> str:
    """`kubernetes:<group>/<version>:<Kind>`; the core group is spelled `core` (`kubernetes:core/v1:Service`)."""
    api_version = obj["apiVersion"]
    group_version = api_version if "/" in api_version else f"core/{api_version}"
    return f"kubernetes:{group_version}:{obj['kind']}"


class KubeObject(pulumi.CustomResource):
    """Any Kubernetes object, by its type token `kubernetes:<apiVersion>:<kind>` (the same token the
    typed classes use), with the rendered dict passed through unchanged (camelCase keys)."""

    def __init__(self, name: str, obj: dict[str, Any], opts: pulumi.ResourceOptions):
        props = dict(obj)
        super().__init__(type_token(obj), name, props,
                         pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(version=_provider_version())))


class Group(pulumi.ComponentResource):
    def __init__(self, group: RenderGroup, opts: pulumi.ResourceOptions | None = None):
        super().__init__(COMPONENT_TYPES[group.kind], group.name, None, opts)
        self.objects = {}
        for obj in group.objects:
            # The child name carries the group name: URNs hold the parent's type, not its name.
            name = f"{group.name}:{obj['kind']}:{obj['metadata']['name']}"
            self.objects[name] = KubeObject(name, obj, pulumi.ResourceOptions(parent=self))
        self.register_outputs({"objects": len(group.objects)})


def build(groups: list[RenderGroup]) -> dict[str, Group]:
    return {f"{g.kind}/{g.name}": Group(g) for g in groups}


def run(root: Path | None = None, stack: str | None = None) -> dict[str, Group]:
    from tms_stack.render.pipeline import render_root

    # The engine runs the program from its `main:` directory (tms_stack/), not the project root.
    root = root or Path(pulumi.get_root_directory() or Path.cwd())
    stack = stack or pulumi.get_stack()
    try:
        groups = render_root(root, stack)
    except TmsError as exc:
        for d in exc.diagnostics:
            pulumi.log.error(f"{d.location()}: {d.message} [{d.rule}]")
        raise pulumi.RunError(str(exc).splitlines()[0] + " (see the errors above; run `tms check`)") from None
    built = build(groups)
    pulumi.export("leases", sorted(g.name for g in groups if g.kind == "Lease"))
    pulumi.export("pools", sorted(g.name for g in groups if g.kind == "Pool"))
    return built
