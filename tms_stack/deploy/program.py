"""The Pulumi program: rendered objects as Pulumi resources, one ComponentResource per lease,
pool, the alias names and the stack's monitoring, so `pulumi preview` reads as a tree.

Thin on purpose: every object comes from the same rendering core as `tms render`.
Resource names are `<group>:<Kind>:<name>`, stable across edits of other leases.

Under `pulumi up|preview --target URN...` (what deploy.yml runs with the URNs of `tms plan
--targets`) the program registers only the groups those URNs belong to: registering costs ~3 ms of
Python and engine work per resource whether targeted or not, and the engine keeps every resource
the program did not register unless it is targeted (tms_stack/render/urns.py says why that is safe and
when it falls back to registering everything)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pulumi

from tms_stack.commands.render import Fleet, render_fleet
from tms_stack.models.diagnostics import TmsError
from tms_stack.render import RenderGroup, object_key, service_waits_for
from tms_stack.render.urns import COMPONENT_TYPES, child_name, groups_to_register, type_token

__all__ = ["COMPONENT_TYPES", "Group", "KubeObject", "build", "run", "type_token"]

# Set to 1 to make a targeted `pulumi up` register every group anyway (the behaviour before the
# program learnt to narrow; for comparing, or if a narrowed run is ever in doubt).
REGISTER_ALL_ENV = "TMS_REGISTER_ALL"


def _provider_version() -> str | None:
    try:
        from pulumi_kubernetes import _utilities

        return _utilities.get_version()
    except Exception:  # pragma: no cover - the package is a hard dependency
        return None


class KubeObject(pulumi.CustomResource):
    """Any Kubernetes object, by its type token `kubernetes:<apiVersion>:<kind>` (the same token the
    typed classes use), with the rendered dict passed through unchanged (camelCase keys)."""

    def __init__(self, name: str, obj: dict[str, Any], opts: pulumi.ResourceOptions):
        props = dict(obj)
        super().__init__(type_token(obj), name, props,
                         pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(version=_provider_version())))


class Group(pulumi.ComponentResource):
    def __init__(self, group: RenderGroup, opts: pulumi.ResourceOptions | None = None,
                 waits_for: dict[str, str] | None = None,
                 deployments: dict[str, KubeObject] | None = None):
        """``waits_for``: object key -> the Deployment a Service selects (render.service_waits_for);
        ``deployments``: the Deployments registered so far, by name (this group's are added)."""
        super().__init__(COMPONENT_TYPES[group.kind], group.name, None, opts)
        waits_for = waits_for or {}
        deployments = deployments if deployments is not None else {}
        self.objects: dict[str, KubeObject] = {}
        self.waits: dict[str, str] = {}  # child name -> the Deployment it depends on
        # Deployments first, so that this group's Services can depend on them (the order in which
        # children register changes no URN and no step).
        for obj in sorted(group.objects, key=lambda o: o["kind"] != "Deployment"):
            # The child name carries the group name: URNs hold the parent's type, not its name.
            name = child_name(group.name, obj["kind"], obj["metadata"]["name"])
            child_opts = pulumi.ResourceOptions(parent=self)
            target = waits_for.get(object_key(obj))
            # A Service is created or re-pointed only once the pods it will select passed the
            # Deployment's readiness await. Under a targeted run the Deployment's group may not be
            # registered: it is then not targeted, so unchanged, and there is nothing to wait for.
            if target is not None and target in deployments:
                child_opts = pulumi.ResourceOptions.merge(
                    child_opts, pulumi.ResourceOptions(depends_on=[deployments[target]]))
                self.waits[name] = target
            self.objects[name] = KubeObject(name, obj, child_opts)
            if obj["kind"] == "Deployment":
                deployments[obj["metadata"]["name"]] = self.objects[name]
        self.register_outputs({"objects": len(group.objects)})


# Groups holding the Deployments that other groups' Services select register first: pools (a
# pooled lease's Services select its instance), then leases, then the names and monitoring.
_BUILD_ORDER = {"Pool": 0, "Lease": 1, "Names": 2, "Monitoring": 3}


def build(groups: list[RenderGroup]) -> dict[str, Group]:
    waits_for = service_waits_for(groups)
    deployments: dict[str, KubeObject] = {}
    built = {g.key: Group(g, waits_for=waits_for, deployments=deployments)
             for g in sorted(groups, key=lambda g: _BUILD_ORDER.get(g.kind, len(_BUILD_ORDER)))}
    return {g.key: built[g.key] for g in groups}


def engine_argv(max_depth: int = 8) -> list[str] | None:
    """The command line of the `pulumi` CLI that runs this program (it starts the language host,
    which starts us), read from /proc; None where it cannot be found (another OS, a remote
    language host, an unreadable /proc): then nothing is narrowed."""
    pid = os.getppid()
    for _ in range(max_depth):
        try:
            argv = [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]]
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        if argv and os.path.basename(argv[0]) in ("pulumi", "pulumi.exe"):
            return argv
        # the parent pid is the second field after the command name in parentheses
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        if pid <= 1:
            return None
    return None


def narrowed(groups: list[RenderGroup], stack: str, project: str,
             argv: list[str] | None) -> tuple[list[RenderGroup], str | None]:
    """The groups to register and, when that is fewer than all, a line saying so for the log."""
    if argv is None or os.environ.get(REGISTER_ALL_ENV) == "1":
        return groups, None
    keys = groups_to_register(argv, stack, project)
    if keys is None:
        return groups, None
    chosen = [g for g in groups if g.key in keys]
    return chosen, (f"targeted run: registering {len(chosen)} of "
                    f"{len(groups)} groups (the engine keeps the others as they are)")


def run(root: Path | None = None, stack: str | None = None) -> dict[str, Group]:
    # The engine runs the program from its `main:` directory (tms_stack/), not the project root.
    root = root or Path(pulumi.get_root_directory() or Path.cwd())
    engine_stack = pulumi.get_stack()
    try:
        fleet = render_fleet(root, stack or engine_stack, only=engine_stack)
        groups = shard_groups(fleet, engine_stack, stack is None)
    except TmsError as exc:
        for d in exc.diagnostics:
            pulumi.log.error(f"{d.location()}: {d.message} [{d.rule}]")
        raise pulumi.RunError(str(exc).splitlines()[0] + " (see the errors above; run `tms check`)") from None
    # URNs carry the engine's stack name (the settings may be another stack's in tests)
    chosen, note = narrowed(groups, engine_stack, pulumi.get_project(), engine_argv())
    if note:
        pulumi.log.info(note)
    built = build(chosen)
    # the exports always name the stack's whole share of the fleet: a targeted run must not shrink them
    pulumi.export("leases", sorted(g.name for g in groups if g.kind == "Lease"))
    pulumi.export("pools", sorted(g.name for g in groups if g.kind == "Pool"))
    return built


def shard_groups(fleet: Fleet, engine_stack: str, check_config: bool = True) -> list[RenderGroup]:
    """The groups this stack registers: all of them, or in a sharded fleet its own share
    (render/shards.py). A shard stack must run with its home's stack file (`--config-file`):
    otherwise the provider would run without the fleet's `kubernetes:` settings, and its inputs
    would differ from the other stacks' (`pulumi state move` refuses to merge such providers)."""
    ref = fleet.stack
    if not ref.sharded:
        return fleet.groups
    if engine_stack not in ref.members:
        raise TmsError(f"stack {engine_stack} is not one of the fleet's stacks "
                       f"({', '.join(ref.members)}: tms-stack:shards in Pulumi.{ref.home}.yaml)")
    if check_config and engine_stack != ref.home and pulumi.Config("tms-stack").get("shards") is None:
        raise TmsError(f"stack {engine_stack} is a shard of {ref.home}: run pulumi with "
                       f"--config-file Pulumi.{ref.home}.yaml (the fleet's settings)")
    return fleet.of(engine_stack)
