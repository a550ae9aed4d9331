"""Sharded fleets (`tms-stack:shards`): the stacks a fleet declares are consistent, a shard stack's
own file holds no settings of ours, and each stack's share stays within `maxLeases`."""

from __future__ import annotations

from tms_stack.models.diagnostics import Diagnostic, Severity, TmsError, UnreadableInput
from tms_stack.models.stack import CONFIG_PREFIX
from tms_stack.render.shards import assign_models
from tms_stack.repo.loader import Repository
from tms_stack.repo.stack import settings_from_document, shard_declarations, stack_file_names, stack_names
from tms_stack.repo.yamlio import Document, parse_file

KEY = f"{CONFIG_PREFIX}shards"


def shard_rules(repo: Repository) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    declared = shard_declarations(repo.root)
    homes = set(stack_names(repo.root))
    claimed: dict[str, str] = {}
    for home in homes:
        path = repo.root / f"Pulumi.{home}.yaml"
        try:
            doc = parse_file(path, path.name)
            settings = settings_from_document(doc)
        except (TmsError, UnreadableInput, OSError):
            continue  # stack_rules reports it
        shards = settings.shards
        if shards is None:
            continue
        members = [home, *shards.stacks]
        for i, name in enumerate(shards.stacks):
            pos = doc.pos(("config", KEY, "stacks", i))
            if name == home:
                found.append(Diagnostic(doc.file, pos.line, pos.col, "shards.stacks",
                                        f"shards.stacks lists {name}, this file's own stack: it is the home "
                                        "stack already; list only the other stacks"))
            elif name in claimed:
                found.append(Diagnostic(doc.file, pos.line, pos.col, "shards.stacks",
                                        f"stack {name} is also a shard of {claimed[name]}: a stack belongs to "
                                        "one fleet"))
            else:
                claimed[name] = home
        for key, target in shards.pins.items():
            if target not in members:
                pos = doc.pos(("config", KEY, "pins", key))
                found.append(Diagnostic(doc.file, pos.line, pos.col, "shards.pins",
                                        f"pin {key}: {target} is not a stack of this fleet: use one of "
                                        f"{', '.join(members)}"))
        assignment = assign_models(home, shards, repo.all_leases(), repo.all_pools())
        pos = doc.pos(("config", KEY))
        for stack in members:
            if assignment.leases[stack] > shards.maxLeases:
                found.append(Diagnostic(doc.file, pos.line, pos.col, "shards.size",
                                        f"stack {stack} holds {assignment.leases[stack]} leases, more than "
                                        f"maxLeases {shards.maxLeases}: add a stack to shards.stacks (then "
                                        "`tms shard moves`), or pin a big pool or owner elsewhere",
                                        Severity.WARNING))
    for name in stack_file_names(repo.root):
        if name in declared:
            found.extend(_shard_file(repo, name, declared[name]))
    return found


def _shard_file(repo: Repository, name: str, home: str) -> list[Diagnostic]:
    """A shard stack's own file (`pulumi stack init` writes one with its encryption salt) may hold
    Pulumi's keys only: the shard runs with its home's file, anything of ours here would be ignored."""
    path = repo.root / f"Pulumi.{name}.yaml"
    try:
        doc: Document = parse_file(path, path.name)
    except (TmsError, UnreadableInput, OSError):
        return []
    config = doc.data.get("config") if isinstance(doc.data, dict) else None
    out = []
    for key in config if isinstance(config, dict) else {}:
        if isinstance(key, str) and (key.startswith(CONFIG_PREFIX) or key.startswith("kubernetes:")):
            pos = doc.key_pos(("config", key))
            out.append(Diagnostic(doc.file, pos.line, pos.col, "shards.stacks",
                                  f"{key} in the file of shard stack {name} is never read: the shard runs "
                                  f"with Pulumi.{home}.yaml's settings; set it there"))
    return out
