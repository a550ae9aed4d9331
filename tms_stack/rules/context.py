"""What every rule reads: the repository, fast lookups, and where an admin value comes from."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tms_stack import units
from tms_stack.diagnostics import Diagnostic, Severity
from tms_stack.loader import Loaded, Repository, _is_container
from tms_stack.resolve import EffectiveResources

SHARED_MEMORY_HEADROOM = 128 * 1024**2
CLOCK_SKEW = timedelta(minutes=5)
RESOURCE_FIELDS = (
    ("cpu", "cpu_m", units.format_cpu),
    ("gpu", "gpu", str),
    ("systemMemory", "system_memory", units.format_memory),
    ("sharedMemory", "shared_memory", units.format_memory),
    ("repositorySize", "repository_size", units.format_memory),
)



class Ctx:
    def __init__(self, repo: Repository):
        self.repo = repo
        # Built once: pooled-lease rules look a pool up per lease (10,000 leases in the benchmark).
        self.pools_by_name = {p.name: p for p in repo.all_pools()}
        self.invalid_pool_names = {stem.lower() for stem in repo.invalid_pools}

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
    from tms_stack.resolve import effective_resources

    return effective_resources(None, values)
