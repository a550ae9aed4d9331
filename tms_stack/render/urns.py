"""The Pulumi URNs of the program's resources, both ways: built for `tms plan --targets`, and read
back from the `--target` flags of the `pulumi` command that runs the program, so that a targeted
deploy registers only the groups it targets (bench/RESULTS.md, "The engine at fleet scale").

URNs follow tms_stack/deploy/program.py: a group is a ComponentResource `tms:index:<Kind>` named after the
group (a child of the root Stack, whose type the engine leaves out of the chain:
sdk/go/common/resource/urn/urn.go, `New`), its objects are typed
`tms:index:<Kind>$kubernetes:<group>/<version>:<Kind>` and named `<group>:<Kind>:<name>`. Group
names are lease and pool names (DNS-1123 labels) or the fixed names of the stack's own groups,
so they never hold a colon.

Why registering a subset is safe only under `--target`: the engine deletes a resource that the
program did not register *and* that is targeted; everything else it did not see it carries over
from the previous state unchanged (the snapshot manager keeps base resources that no step touched).
So the program may leave out exactly the groups of which no URN is targeted, and nothing else:
:func:`groups_to_register` says which groups, or ``None`` (register everything) whenever the
command is not a plain targeted `up`/`preview` it fully understands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

COMPONENT_TYPES = {"Lease": "tms:index:Lease", "Pool": "tms:index:Pool", "Names": "tms:index:Names",
                   "Monitoring": "tms:index:Monitoring"}
_KIND_OF_TYPE = {v: k for k, v in COMPONENT_TYPES.items()}

# The only commands that run the program and accept --target; refresh/destroy/import do not run
# it here (and `refresh --run-program` has its own rules), so they are never narrowed.
_NARROWED_COMMANDS = {"up", "update", "preview"}
# Flags whose presence widens what the engine touches beyond the listed URNs.
_WIDENING_FLAGS = {"--target-dependents", "--exclude", "--exclude-dependents", "--run-program"}
_TARGET_FLAGS = {"--target", "-t", "--target-replace"}
# URNs that are not targets but name resources the engine acts on: their groups are registered too.
_ALSO_REGISTERED_FLAGS = {"--replace"}
_URN_MARK = "urn:pulumi:"
# pulumi's flags that take a value as the next argument (so that value is not read as a command).
_VALUE_FLAGS = {"--stack", "-s", "--cwd", "-C", "--config", "-c", "--config-file", "--parallel", "-p",
                "--message", "-m", "--policy-pack", "--policy-pack-config", "--secrets-provider",
                "--exec-kind", "--exec-agent", "--client", "--plan", "--save-plan", "--suppress-progress",
                "--color", "--tracing", "--verbose", "-v", "--profiling", "--memprofilerate", "--otel-traces",
                "--attach-debugger", "--import-file"}


def stack_prefix(stack: str, project: str) -> str:
    return f"urn:pulumi:{stack}::{project}::"


def component_urn(stack: str, project: str, kind: str, group: str) -> str:
    return f"{stack_prefix(stack, project)}{COMPONENT_TYPES[kind]}::{group}"


def child_name(group: str, obj_kind: str, obj_name: str) -> str:
    return f"{group}:{obj_kind}:{obj_name}"


def child_urn(stack: str, project: str, kind: str, group: str, token: str, obj_kind: str, obj_name: str) -> str:
    return f"{stack_prefix(stack, project)}{COMPONENT_TYPES[kind]}${token}::{child_name(group, obj_kind, obj_name)}"


def group_key(kind: str, name: str) -> str:
    """"Lease/fraud-detector": how the program, `tms plan --targets` and this module name a group.
    Spelled here only: the key picks which groups a targeted run registers."""
    return f"{kind}/{name}"


def type_token(obj: dict[str, Any]) -> str:
    """`kubernetes:<group>/<version>:<Kind>`; the core group is spelled `core` (`kubernetes:core/v1:Service`).
    Part of every child URN: changing it deletes and recreates every object of every stack."""
    api_version = obj["apiVersion"]
    group_version = api_version if "/" in api_version else f"core/{api_version}"
    return f"kubernetes:{group_version}:{obj['kind']}"


@dataclass(frozen=True)
class GroupRef:
    kind: str   # Lease, Pool, Names, Monitoring
    name: str

    @property
    def key(self) -> str:
        return group_key(self.kind, self.name)


def group_of(urn: str, stack: str, project: str) -> GroupRef | None:
    """The group a URN of this stack belongs to, or None for anything else (another stack or
    project, the Stack itself, a provider, a glob, a resource the program does not make)."""
    prefix = stack_prefix(stack, project)
    if not urn.startswith(prefix) or "*" in urn:
        return None
    rest = urn[len(prefix):]
    type_chain, sep, name = rest.rpartition("::")
    if not sep or not name:
        return None
    component_type = type_chain.split("$", 1)[0]
    kind = _KIND_OF_TYPE.get(component_type)
    if kind is None:
        return None
    if "$" in type_chain:
        # a child: `<group>:<Kind>:<name>`, and its type chain holds exactly one Kubernetes type
        child_type = type_chain.split("$", 1)[1]
        group, colon, _ = name.partition(":")
        if not colon or not group or not child_type.startswith("kubernetes:") or "$" in child_type:
            return None
        return GroupRef(kind, group)
    return GroupRef(kind, name)


def cli_targets(argv: Sequence[str]) -> list[str] | None:
    """The URNs a `pulumi up|preview --target ...` command line targets; None when the command
    is anything else or carries a flag that widens the targets (or one this reader does not know
    to be harmless would be misread: an argument that is neither a flag nor a command)."""
    parsed = _parse(argv)
    return None if parsed is None else parsed[0]


def _parse(argv: Sequence[str]) -> tuple[list[str], list[str]] | None:
    """(targets, other URNs the engine acts on: `--replace`) of a narrowable command line."""
    args = list(argv[1:])
    command: str | None = None
    targets: list[str] = []
    also: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        flag, eq, value = arg.partition("=")
        if arg == "--":
            return None
        if flag in _WIDENING_FLAGS:
            return None
        if flag in _TARGET_FLAGS or flag in _ALSO_REGISTERED_FLAGS:
            if not eq:
                i += 1
                if i >= len(args):
                    return None
                value = args[i]
            (targets if flag in _TARGET_FLAGS else also).append(value)
        elif flag.startswith("-t") and not flag.startswith("--") and len(flag) > 2:
            targets.append(arg[2:])     # -tURN
        elif _URN_MARK in arg:
            return None                 # a URN where we do not know what pulumi does with it
        elif flag in _VALUE_FLAGS and not eq:
            i += 1                      # its value follows
            # A URN, or what looks like a flag (`--stack --exclude`: pulumi takes `--exclude` as the
            # stack's name, but a reader that guessed wrong would narrow under a widening flag).
            if i < len(args) and (_URN_MARK in args[i] or args[i].startswith("-")):
                return None
        elif not arg.startswith("-"):
            if command is not None:
                return None             # a second positional: not a form we know
            command = arg
        i += 1
    if command not in _NARROWED_COMMANDS or not targets:
        return None
    return targets, also


def groups_to_register(argv: Sequence[str], stack: str, project: str) -> set[str] | None:
    """Group keys ("Lease/fraud-detector") the program must register for this `pulumi` command
    line, or None for all of them. Any target that is not one of this stack's group URNs (a glob,
    another stack's URN, the provider, the Stack) means all: never narrow on a guess."""
    parsed = _parse(argv)
    if parsed is None:
        return None
    keys: set[str] = set()
    for urn in parsed[0] + parsed[1]:
        ref = group_of(urn, stack, project)
        if ref is None:
            return None
        keys.add(ref.key)
    return keys
