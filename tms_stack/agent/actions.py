"""What the agent should do next. Pure: desired state + what Triton and the disk hold -> a plan."""

from __future__ import annotations

from dataclasses import dataclass, field

from tms_stack.models.desired import DesiredDocument, DesiredModel


@dataclass(frozen=True)
class LeasePlan:
    lease: str
    fetch: tuple[DesiredModel, ...]   # models missing on disk (or from another URI)
    load: tuple[str, ...]             # models to (re)load, in lease order
    conflict: str | None = None       # why this lease cannot be served here


@dataclass(frozen=True)
class Plan:
    unload: tuple[str, ...]           # models no lease wants any more: unload and delete
    leases: tuple[LeasePlan, ...]     # leases with work to do, in desired order

    @property
    def idle(self) -> bool:
        return not self.unload and not self.leases


@dataclass
class Observed:
    ready: set[str] = field(default_factory=set)          # models READY in Triton
    loaded: set[str] = field(default_factory=set)         # models Triton knows in any state
    on_disk: dict[str, str] = field(default_factory=dict)  # model dir -> URI it was fetched from
    counts: dict[str, int] = field(default_factory=dict)   # model -> `count` it was last loaded with


def owners(desired: DesiredDocument) -> dict[str, tuple[str, str]]:
    """model name -> (lease, uri) of the first lease that wants it (lease order decides)."""
    out: dict[str, tuple[str, str]] = {}
    for lease in desired.leases:
        for model in lease.models:
            out.setdefault(model.name, (lease.name, model.uri))
    return out


def wanted_by(desired: DesiredDocument, exclude: str) -> set[str]:
    """Models some lease other than `exclude` wants: a failing lease never unloads them (a model
    two leases share is unloaded only when no lease that wants it remains)."""
    return {model.name for lease in desired.leases if lease.name != exclude for model in lease.models}


def owner_counts(desired: DesiredDocument) -> dict[str, int]:
    """model name -> `count` of the first lease that wants it (a model two leases share from one
    URI is loaded once, with its owner's count, so the two never reload it in turn)."""
    out: dict[str, int] = {}
    for lease in desired.leases:
        for model in lease.models:
            out.setdefault(model.name, model.count)
    return out


def plan(desired: DesiredDocument, observed: Observed, backing_off: set[str] | frozenset[str] = frozenset()) -> Plan:
    wanted = owners(desired)
    counts = owner_counts(desired)
    unload = sorted((observed.loaded | set(observed.on_disk)) - set(wanted))
    leases = []
    for lease in desired.leases:
        conflict = None
        for model in lease.models:
            owner, uri = wanted[model.name]
            if owner != lease.name and uri != model.uri:
                conflict = (f"model name {model.name!r} is already served here by lease {owner} from {uri}; "
                            "Triton serves one model per name")
        if conflict:
            leases.append(LeasePlan(lease.name, (), (), conflict))
            continue
        fetch = tuple(m for m in lease.models if observed.on_disk.get(m.name) != m.uri)
        refetched = {m.name for m in fetch}
        # A changed `count` needs a reload with the new config override (agent/modelconfig.py).
        recount = {m.name for m in lease.models if observed.counts.get(m.name, counts[m.name]) != counts[m.name]}
        load = tuple(m.name for m in lease.models
                     if m.name not in observed.ready or m.name in refetched or m.name in recount)
        if (fetch or load) and lease.name not in backing_off:
            leases.append(LeasePlan(lease.name, fetch, load))
    return Plan(tuple(unload), tuple(leases))
