"""Every rendered name has exactly one owner.

The repository is rendered here, in check, with the same pure functions `tms render` and the
Pulumi program use, so a rule cannot drift from what is deployed: two objects with the same kind
and name (all of a stack's objects share its namespace) are an error naming both files and lines.
Names no lease may take are reserved whatever the kind: the API server's own (`kubernetes`,
`default`, `kube-*`), those other systems create in every namespace (Istio, OpenShift, the
Prometheus operator: `RESERVED_BY`), the admin's own (Limits `spec.reservedNames`), the stack-wide
objects (monitoring), and every pool instance name `<pool>-<n>` for any n (an instance that does
not exist today may tomorrow).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from tms_stack.logic.memo import by_identity
from tms_stack.logic.resolve import effective_lease, effective_pool_resources, pool_image
from tms_stack.models import Lease, Pool
from tms_stack.models.diagnostics import Diagnostic, TmsError
from tms_stack.models.lock import InstanceAssignment, PoolPlacement
from tms_stack.models.pool import k8s_pool_name
from tms_stack.models.stack import StackSettings
from tms_stack.render.leases import render_bespoke, render_pooled
from tms_stack.render.monitoring import render_monitoring
from tms_stack.render.pools import render_pool
from tms_stack.repo.loader import Loaded
from tms_stack.rules.context import Ctx
from tms_stack.rules.names import pool_instance_owner

# Objects Kubernetes itself keeps in every namespace (`default` ServiceAccount, the `kubernetes`
# Service in `default`) and the `kube-` prefix its components use (`kube-root-ca.crt`).
RESERVED_NAMES = ("kubernetes", "default")
RESERVED_PREFIX = "kube-"
# What other systems create in a namespace they manage: a lease that took one of these names would
# be overwritten by (or overwrite) that system's object. Exact names and prefixes.
_OPENSHIFT_ACCOUNTS = ("builder", "deployer", "default", "pipeline")
RESERVED_BY: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Istio": (("istio-ca-root-cert",), ("istio-",)),
    # Service accounts in every project, and the pull/token secrets made for each.
    "OpenShift": (_OPENSHIFT_ACCOUNTS + ("openshift-service-ca.crt",),
                  ("openshift-", *(f"{a}-{kind}-" for a in _OPENSHIFT_ACCOUNTS for kind in ("dockercfg", "token")))),
    # Services the operator creates beside every Prometheus, Alertmanager and ThanosRuler.
    "the Prometheus operator": (("prometheus-operated", "alertmanager-operated", "thanos-ruler-operated"), ()),
}

Where = tuple[str, int, str]  # (file, line, what): the owner of a rendered name


def stack_names(settings: StackSettings | None = None) -> dict[str, str]:
    """Names of the objects rendered once per stack -> a description."""
    settings = settings or StackSettings()
    out = {obj["metadata"]["name"]: f"the stack's {obj['kind']}" for obj in render_monitoring(settings)}
    return out


def admin_reserved(entries: list[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    """Limits `spec.reservedNames`: exact names, and prefixes (an entry ending in `*`)."""
    return (frozenset(e for e in entries if not e.endswith("*")),
            tuple(sorted(e[:-1] for e in entries if e.endswith("*"))))


# Every fixed name and prefix above at once: most names match none, and are done with in two
# look-ups (check asks about ~7 names per lease, 10,000 leases in the benchmark).
_FIXED_NAMES = frozenset((*RESERVED_NAMES, *(n for names, _ in RESERVED_BY.values() for n in names)))
_FIXED_PREFIXES = (RESERVED_PREFIX, *(p for _, prefixes in RESERVED_BY.values() for p in prefixes))


def reserved_reason(name: str, stack: dict[str, str], pool_owner: Callable[[str], str | None],
                    admin: tuple[frozenset[str], tuple[str, ...]] = (frozenset(), ()),
                    admin_ref: str = "") -> str | None:
    if name in _FIXED_NAMES or name.startswith(_FIXED_PREFIXES):  # which one, only when one matches
        if name in RESERVED_NAMES or name.startswith(RESERVED_PREFIX):
            return f"{name!r} is reserved for Kubernetes itself (kubernetes, default, kube-*)"
        for system, (names, prefixes) in RESERVED_BY.items():
            if name in names or name.startswith(prefixes):
                shown = ", ".join([*names, *(p + "*" for p in prefixes)][:6])
                return f"{name!r} is reserved for objects {system} creates in the namespace ({shown}, ...)"
    exact, prefixes = admin
    if name in exact or name.startswith(prefixes):
        return f"{name!r} is reserved by the admin (Limits spec.reservedNames, {admin_ref})"
    if name in stack:
        return f"{name!r} is the name of {stack[name]}"
    owner = pool_owner(name)
    if owner:
        return (f"{name!r} is the name of an instance of {owner} (reserved up to its instances.max and past "
                "it, for any index: the pool may grow)")
    return None


def _lease_objects(ctx: Ctx, lease: Lease, settings: StackSettings) -> list[dict[str, Any]]:
    """What `lease` renders, for its names. Models never name an object: leaving them out keeps
    this cheap (10,000 leases in check) and lets a lease whose model another rule refuses (e.g.
    an undeclared repository) still be rendered; which instance a pooled lease lands on does not
    change its names either."""
    repo = ctx.repo
    bare = lease.model_copy(update={"spec": lease.spec.model_copy(update={"models": []})})
    if lease.spec.pool is not None:
        return render_pooled(bare, "placeholder-0", settings)
    try:
        eff = effective_lease(bare, repo.limits, repo.allowlist, ctx.pools_by_name)
        return render_bespoke(bare, eff, settings, repo.repositories.spec,
                              repo.limits.spec.triton.enableRestrictedAccess)
    except (KeyError, ValueError, TmsError):
        # Refused by another rule already; its Services are the names it would surely take.
        return [{"kind": "Service", "metadata": {"name": name}} for name in (lease.name, *lease.spec.names)]


class _Shapes:
    """Rendered (kind, name) pairs of leases, computed once per lease *shape*.

    What a lease renders depends on its spec, not on its name: two leases that differ only in
    name, owner, aliases' text, models and expiry render the same kinds, named after themselves.
    So one lease per shape is rendered and its names are mapped onto the others: its own name (or
    a name containing it) and its aliases by position; any other name is taken literally. This
    keeps the rule at ~0.02 ms a lease (10,000 leases in `tms check`, bench/check_scale.py)."""

    def __init__(self, ctx: Ctx, settings: StackSettings):
        self.ctx, self.settings = ctx, settings
        self.cache: dict[str, tuple[Lease, list[tuple[str, str]]]] = {}

    def names(self, lease: Lease) -> list[tuple[str, str]]:
        spec = lease.spec
        # Keyed per parsed lease for the command (logic/memo.py): a review asks for both trees.
        key = by_identity("lease-shape", (spec,), (), lambda: spec.model_dump_json(
            exclude={"models", "expires", "names"}) + f"|{len(spec.names)}")
        if key not in self.cache:
            objects = _lease_objects(self.ctx, lease, self.settings)
            self.cache[key] = (lease, [(obj["kind"], obj["metadata"]["name"]) for obj in objects])
        rep, pairs = self.cache[key]
        if rep is lease:
            return pairs
        aliases = dict(zip(rep.spec.names, spec.names, strict=True))
        return [(kind, aliases[name] if name in aliases and name != rep.name
                 else lease.name + name[len(rep.name):] if name.startswith(rep.name) else name)
                for kind, name in pairs]


def _position(loaded: Loaded, lease: Lease, name: str) -> tuple[Any, ...]:
    if name != lease.name and name in lease.spec.names:
        return ("spec", "names", lease.spec.names.index(name))
    return ("metadata", "name")


def ownership_rules(ctx: Ctx) -> Iterator[Diagnostic]:
    settings = StackSettings()
    stack = stack_names(settings)
    pool_owner = pool_instance_owner(ctx.repo)
    admin = admin_reserved(ctx.repo.limits.spec.reservedNames)
    admin_ref = ctx.policy_ref("Limits", ("spec", "reservedNames"))
    # Aliases against lease names, other aliases and pool instances are the alias rules' findings
    # (names.clash / names.unique, at the alias): not reported again here, from either side.
    aliases = {alias for lease in ctx.repo.all_leases() for alias in lease.spec.names}
    no_pools: Callable[[str], str | None] = lambda _name: None  # noqa: E731
    owners: dict[tuple[str, str], Where] = {}
    for obj in render_monitoring(settings):
        owners[(obj["kind"], obj["metadata"]["name"])] = ("the stack", 0, "monitoring")
    # Pools first: their names are reserved by rule, and what they render is theirs.
    for loaded in ctx.repo.pools.values():
        pool: Pool = loaded.model  # type: ignore[assignment]
        one = PoolPlacement(instances=[InstanceAssignment(index=0)])
        objects = render_pool(pool, one, {}, pool_image(pool, ctx.repo.allowlist),
                              effective_pool_resources(pool, ctx.repo.limits), settings,
                              ctx.repo.repositories.spec, ctx.repo.limits.spec.triton.enableRestrictedAccess)
        line = loaded.doc.pos(("metadata", "name")).line
        if k8s_pool_name(pool.name).startswith(RESERVED_PREFIX):
            yield ctx.at(loaded, ("metadata", "name"), "names.reserved",
                         f"pool {pool.name!r} would name its instances {pool.instance_name(0)!r}, ...: the "
                         f"{RESERVED_PREFIX}* prefix is reserved for Kubernetes itself; pick another name")
        elif reason := reserved_reason(pool.instance_name(0), {}, no_pools, admin, admin_ref):
            yield ctx.at(loaded, ("metadata", "name"), "names.reserved",
                         f"pool {pool.name!r} would name its instances {pool.instance_name(0)!r}, ...: {reason}; "
                         "pick another name")
        for obj in objects:
            owners.setdefault((obj["kind"], obj["metadata"]["name"]), (loaded.file, line, "pool"))
    shapes = _Shapes(ctx, settings)
    for loaded in sorted(ctx.repo.leases.values(), key=lambda entry: entry.file):
        lease: Lease = loaded.model  # type: ignore[assignment]
        reported: set[str] = set()
        for kind, name in shapes.names(lease):
            path = _position(loaded, lease, name)
            line = loaded.doc.pos(path).line
            if name in reported:
                continue
            own_alias = name != lease.name and name in lease.spec.names
            reason = reserved_reason(name, stack, no_pools if own_alias else pool_owner, admin, admin_ref)
            if reason:
                reported.add(name)
                yield ctx.at(loaded, path, "names.reserved",
                             f"{reason}: a lease may not take it (it would render {kind} {name!r}); pick another name")
                continue
            first = owners.get((kind, name))
            if first is not None and first[0] != loaded.file and name not in aliases:
                reported.add(name)
                where = f"{first[0]}:{first[1]}" if first[1] else first[0]
                yield ctx.at(loaded, path, "names.owner",
                             f"{kind} {name!r} is rendered from this file and from {where} ({first[2]}): "
                             "every rendered name has one owner; pick another name")
                continue
            owners.setdefault((kind, name), (loaded.file, line, "lease"))
