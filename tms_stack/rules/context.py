"""What every rule reads: the repository, fast lookups, and where an admin value comes from."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Any

from tms_stack.logic.resolve import EffectiveResources, effective_resources
from tms_stack.models import units
from tms_stack.models.diagnostics import Diagnostic, Severity, TmsError, UnreadableInput
from tms_stack.models.stack import CONFIG_PREFIX
from tms_stack.repo.loader import Loaded, Repository, _is_container
from tms_stack.repo.stack import settings_from_document, stack_names
from tms_stack.repo.yamlio import parse_file

SHARED_MEMORY_HEADROOM = 128 * 1024**2
CLOCK_SKEW = timedelta(minutes=5)
RESOURCE_FIELDS = (
    ("cpu", "cpu_m", units.format_cpu),
    ("gpu", "gpu", str),
    ("systemMemory", "system_memory", units.format_memory),
    ("sharedMemory", "shared_memory", units.format_memory),
    ("repositorySize", "repository_size", units.format_memory),
)

# A base's name reaches messages as part of a command to run (`tms pool lock --base <ref>`):
# a git ref or commit, never shell syntax.
BASE_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/@^~-]{0,199}")


@dataclass(frozen=True)
class Base:
    """The revision a pull request is judged against (`tms check --base-dir`, `tms plan`, the
    trusted review). Trusted: its placement lock is the previous placement, and what differs
    from it is what the pull request changed."""

    repo: Repository
    label: str                                   # how messages name it: `tms pool lock --base <label>`
    changed: tuple[tuple[str, str], ...] = ()    # (path, added|removed|changed), every path that differs
    _models: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    _dumps: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False, repr=False)

    def differs(self, model: Any) -> bool:
        """Whether a lease or pool is new in the pull request or differs from the base's (by
        content, wherever its file lives)."""
        if not self._models:
            self._models[""] = None  # built once, even for an empty base
            for loaded in (*self.repo.leases.values(), *self.repo.pools.values()):
                m: Any = loaded.model
                self._models[f"{m.kind}/{m.name}"] = m
        key = f"{model.kind}/{model.name}"
        theirs = self._models.get(key)
        if theirs is model:
            return False  # the same parsed file in both trees (repo/parsecache.py): nothing to compare
        if theirs is None:
            return True
        if key not in self._dumps:
            self._dumps[key] = theirs.model_dump(mode="json")
        return bool(self._dumps[key] != model.model_dump(mode="json"))

@dataclass(frozen=True)
class StackDefault:
    file: str
    line: int
    col: int
    node_class: str | None


def stack_defaults(repo: Repository) -> list[StackDefault]:
    """Each readable stack file's defaultNodeClass (unreadable ones are stack_rules' findings)."""
    out = []
    for name in stack_names(repo.root):
        path = repo.root / f"Pulumi.{name}.yaml"
        if path.is_symlink() or not path.is_file():
            continue
        try:
            doc = parse_file(path, path.name)
            settings = settings_from_document(doc)
        except (TmsError, UnreadableInput, OSError):
            continue
        pos = doc.pos(("config", f"{CONFIG_PREFIX}defaultNodeClass"))
        out.append(StackDefault(path.name, pos.line, pos.col, settings.defaultNodeClass))
    return out


class Ctx:
    def __init__(self, repo: Repository, base: Base | None = None):
        self.repo = repo
        self.base = base
        # Built once: pooled-lease rules look a pool up per lease (10,000 leases in the benchmark).
        self.pools_by_name = {p.name: p for p in repo.all_pools()}
        self.invalid_pool_names = {stem.lower() for stem in repo.invalid_pools}
        self._stack_defaults: list[StackDefault] | None = None

    @property
    def stack_defaults(self) -> list[StackDefault]:
        """Each stack file's defaultNodeClass (rules/nodeclasses.py StackDefault), read once."""
        if self._stack_defaults is None:
            self._stack_defaults = stack_defaults(self.repo)
        return self._stack_defaults

    @cached_property  # asked once per lease
    def default_class(self) -> str | None:
        """The one default class every stack agrees on (None when they differ or set none):
        what budgets count a Triton without a class of its own as."""
        classes = {d.node_class for d in self.stack_defaults}
        return classes.pop() if len(classes) == 1 else None

    def at(self, loaded: Loaded, path: tuple[Any, ...], rule: str, message: str,
           severity: Severity = Severity.ERROR) -> Diagnostic:
        # A finding about a whole mapping or list points at its key, where the reader looks.
        pos = loaded.doc.key_pos(path) if _is_container(loaded.doc, path) else loaded.doc.pos(path)
        return Diagnostic(loaded.file, pos.line, pos.col, rule, message, severity)

    def policy_ref(self, kind: str, path: tuple[Any, ...]) -> str:
        """Where an admin value comes from: `policies/limits.yaml:12`, or the TMS default."""
        loaded = self.repo.policy_files.get(kind)
        if loaded is None:
            return "TMS default"
        probe = loaded.doc
        p = tuple(path)
        if p in probe.values:
            return f"{loaded.file}:{probe.values[p].line}"
        return f"TMS default; not set in {loaded.file}"


def effective_resources_of(values: Any) -> EffectiveResources:
    return effective_resources(None, values)
