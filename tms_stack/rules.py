"""Policy and cross-file rules. Pure: Repository + time in, diagnostics out.

Each rule has a stable id (the `rule` of a Diagnostic) documented in docs/rules.md.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

from tms_stack import units
from tms_stack.diagnostics import Diagnostic, Severity
from tms_stack.loader import Loaded, Repository, _is_container
from tms_stack.models import Lease, Pool
from tms_stack.models.pool import k8s_pool_name
from tms_stack.resolve import (
    EffectiveResources,
    default_image,
    effective_lease,
    effective_pool_resources,
)

SHARED_MEMORY_HEADROOM = 128 * 1024**2
CLOCK_SKEW = timedelta(minutes=5)
RESOURCE_FIELDS = (
    ("cpu", "cpu_m", units.format_cpu),
    ("gpu", "gpu", str),
    ("systemMemory", "system_memory", units.format_memory),
    ("sharedMemory", "shared_memory", units.format_memory),
    ("repositorySize", "repository_size", units.format_memory),
)


class _Ctx:
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


def check_repository(repo: Repository, now: datetime | None = None) -> list[Diagnostic]:
    """Every diagnostic for `repo`: load-time schema errors plus all rules."""
    now = now or datetime.now(UTC)
    ctx = _Ctx(repo)
    found = list(repo.diagnostics)
    if repo.invalid_policies:
        # Judging leases against TMS defaults instead of the admin's broken policy would bury the
        # real error under a cascade of false ones: fix the policy first.
        return sorted(set(found))
    found.extend(_policy_rules(ctx))
    for loaded in repo.pools.values():
        found.extend(_pool_rules(ctx, loaded))
    found.extend(_pool_name_rules(ctx))
    for stem, loaded in repo.leases.items():
        found.extend(_lease_rules(ctx, stem, loaded, now))
    found.extend(_alias_rules(ctx))
    found.extend(_budget_rules(ctx))
    return sorted(set(found))


# ---- policies -------------------------------------------------------------------------

def _policy_rules(ctx: _Ctx) -> Iterator[Diagnostic]:
    loaded = ctx.repo.policy_files.get("Limits")
    if loaded is not None:
        res = ctx.repo.limits.spec.triton.resources
        lo, de, hi = (effective_resources_of(v) for v in (res.minimum, res.default, res.maximum))
        for key, attr, fmt in RESOURCE_FIELDS:
            a, b, c = getattr(lo, attr), getattr(de, attr), getattr(hi, attr)
            if not a <= b <= c:
                yield ctx.at(loaded, ("spec", "triton", "resources", "default", key), "limits.resources-order",
                             f"{key}: need minimum <= default <= maximum, got {fmt(a)} <= {fmt(b)} <= {fmt(c)}")
        if de.system_memory < de.shared_memory + SHARED_MEMORY_HEADROOM:
            yield ctx.at(loaded, ("spec", "triton", "resources", "default", "systemMemory"), "resources.memory",
                         "default systemMemory must be at least 128Mi above default sharedMemory")
        dur = ctx.repo.limits.spec.leases.duration
        if units.parse_duration(dur.default) > units.parse_duration(dur.maximum):
            yield ctx.at(loaded, ("spec", "leases", "duration", "default"), "limits.duration-order",
                         f"default lease duration {dur.default} exceeds the maximum {dur.maximum}")
        win = ctx.repo.limits.spec.autoRenew.window
        if units.parse_duration(win.default) > units.parse_duration(win.maximum):
            yield ctx.at(loaded, ("spec", "autoRenew", "window", "default"), "limits.duration-order",
                         f"default auto-renew window {win.default} exceeds the maximum {win.maximum}")
        q = ctx.repo.limits.spec.pools.instanceQuota
        if q.minimum > q.maximum:
            yield ctx.at(loaded, ("spec", "pools", "instanceQuota"), "limits.quota-order",
                         f"instanceQuota minimum {q.minimum} exceeds maximum {q.maximum}")
    allow = ctx.repo.policy_files.get("Allowlist")
    if allow is not None:
        spec = ctx.repo.allowlist.spec
        seen: set[str] = set()
        for i, image in enumerate(spec.images):
            if image in seen:
                yield ctx.at(allow, ("spec", "images", i), "allowlist.duplicate", f"image {image} is listed twice")
            seen.add(image)
        if spec.default and spec.default not in seen:
            yield ctx.at(allow, ("spec", "default"), "allowlist.default",
                         f"default image {spec.default} is not in images: add it there too")
    repos = ctx.repo.policy_files.get("Repositories")
    if repos is not None:
        seen_names: dict[str, str] = {}
        spec_r = ctx.repo.repositories.spec
        groups: tuple[tuple[str, list[Any]], ...] = (("s3", list(spec_r.s3)), ("volumes", list(spec_r.volumes)))
        for kind, entries in groups:
            for i, entry in enumerate(entries):
                name = entry.repositoryName
                if name in seen_names:
                    yield ctx.at(repos, ("spec", kind, i, "repositoryName"), "repositories.duplicate",
                                 f"repository name {name!r} is already used by {seen_names[name]}: names must be unique")
                seen_names[name] = f"{kind}[{i}]"
        for i, entry in enumerate(spec_r.https):
            if "://" in entry.targetUri:
                yield ctx.at(repos, ("spec", "https", i, "targetUri"), "repositories.target-uri",
                             f"targetUri {entry.targetUri!r}: write <domain_or_ip>/<path> without a scheme (TMS format)")


def effective_resources_of(values: Any) -> EffectiveResources:
    from tms_stack.resolve import effective_resources

    return effective_resources(None, values)


# ---- pools ----------------------------------------------------------------------------

def _pool_rules(ctx: _Ctx, loaded: Loaded) -> Iterator[Diagnostic]:
    pool: Pool = loaded.model  # type: ignore[assignment]
    limits = ctx.repo.limits.spec
    stem = loaded.file.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    if pool.name != stem:
        yield ctx.at(loaded, ("metadata", "name"), "pool.name-matches-file",
                     f"metadata.name {pool.name!r} must equal the file name {stem!r}")
    if not limits.pools.enabled:
        yield ctx.at(loaded, ("kind",), "pools.disabled",
                     f"pools are disabled by the admin (pools.enabled: false, {ctx.policy_ref('Limits', ('spec', 'pools', 'enabled'))})")
    q = limits.pools.instanceQuota
    if not q.minimum <= pool.spec.instanceQuota <= q.maximum:
        yield ctx.at(loaded, ("spec", "instanceQuota"), "pool.instance-quota",
                     f"instanceQuota {pool.spec.instanceQuota} is outside the admin range {q.minimum}..{q.maximum} "
                     f"({ctx.policy_ref('Limits', ('spec', 'pools', 'instanceQuota'))})")
    if pool.spec.instances.max > limits.pools.maxInstances:
        yield ctx.at(loaded, ("spec", "instances", "max"), "pool.instances",
                     f"instances.max {pool.spec.instances.max} exceeds the admin maximum {limits.pools.maxInstances} "
                     f"({ctx.policy_ref('Limits', ('spec', 'pools', 'maxInstances'))})")
    image_path = ("spec", "triton", "image")
    image = pool.spec.triton.image if pool.spec.triton and pool.spec.triton.image else None
    if image is not None:
        yield from _image_rule(ctx, loaded, image_path, image)
    resources = effective_pool_resources(pool, ctx.repo.limits)
    requested = pool.spec.triton.resources if pool.spec.triton else None
    yield from _resource_rules(ctx, loaded, ("spec", "triton", "resources"), resources, requested)


def _pool_name_rules(ctx: _Ctx) -> Iterator[Diagnostic]:
    by_lower: dict[str, str] = {}
    by_k8s: dict[str, str] = {}
    for loaded in ctx.repo.pools.values():
        name = loaded.model.name  # type: ignore[attr-defined]
        if name.lower() in by_lower:
            yield ctx.at(loaded, ("metadata", "name"), "pool.name-unique",
                         f"pool name {name!r} clashes with {by_lower[name.lower()]} (names are unique case-insensitively)")
            continue
        k8s = k8s_pool_name(name)
        if k8s in by_k8s:
            yield ctx.at(loaded, ("metadata", "name"), "pool.name-unique",
                         f"pool name {name!r} maps to the Kubernetes name {k8s!r}, as does {by_k8s[k8s]}: rename one")
            continue
        by_lower[name.lower()] = loaded.file
        by_k8s[k8s] = loaded.file


# ---- leases ---------------------------------------------------------------------------

def _image_rule(ctx: _Ctx, loaded: Loaded, path: tuple[Any, ...], image: str) -> Iterator[Diagnostic]:
    spec = ctx.repo.allowlist.spec
    allowed = set(spec.images) | ({spec.default} if spec.default else set())
    if not allowed:
        allowed = {default_image(ctx.repo.allowlist)}
    if image not in allowed:
        yield ctx.at(loaded, path, "image.allowlist",
                     f"image {image} is not on the allowlist ({ctx.policy_ref('Allowlist', ('spec', 'images'))}); "
                     f"allowed: {', '.join(sorted(allowed))}")


def _resource_rules(ctx: _Ctx, loaded: Loaded, base: tuple[Any, ...], eff: EffectiveResources,
                    requested: Any) -> Iterator[Diagnostic]:
    res = ctx.repo.limits.spec.triton.resources
    lo, hi = effective_resources_of(res.minimum), effective_resources_of(res.maximum)
    for key, attr, fmt in RESOURCE_FIELDS:
        value = getattr(eff, attr)
        path = base + (key,)
        source = "" if requested is not None and getattr(requested, key) is not None else " (the admin default)"
        if value > getattr(hi, attr):
            ref = ctx.policy_ref("Limits", ("spec", "triton", "resources", "maximum", key))
            yield ctx.at(loaded, path, "resources.maximum",
                         f"{key}: {fmt(value)}{source} exceeds the admin maximum {fmt(getattr(hi, attr))} ({ref})")
        elif value < getattr(lo, attr):
            ref = ctx.policy_ref("Limits", ("spec", "triton", "resources", "minimum", key))
            yield ctx.at(loaded, path, "resources.minimum",
                         f"{key}: {fmt(value)}{source} is below the admin minimum {fmt(getattr(lo, attr))} ({ref})")
    if eff.system_memory < eff.shared_memory + SHARED_MEMORY_HEADROOM:
        yield ctx.at(loaded, base + ("systemMemory",), "resources.memory",
                     f"systemMemory {units.format_memory(eff.system_memory)} must be at least 128Mi above "
                     f"sharedMemory {units.format_memory(eff.shared_memory)}")


def _lease_rules(ctx: _Ctx, stem: str, loaded: Loaded, now: datetime) -> Iterator[Diagnostic]:
    lease: Lease = loaded.model  # type: ignore[assignment]
    spec = lease.spec
    limits = ctx.repo.limits.spec
    if lease.name != stem:
        yield ctx.at(loaded, ("metadata", "name"), "lease.name-matches-file",
                     f"metadata.name {lease.name!r} must equal the file name {stem!r} (leases/<name>.yaml)")
    yield from _model_rules(ctx, loaded, lease)

    # expiry
    if spec.expires <= now:
        yield ctx.at(loaded, ("spec", "expires"), "lease.expired",
                     f"lease expired at {units.format_utc(spec.expires)}; the prune job will remove it "
                     "(renew with `tms lease renew`)", Severity.WARNING)
    else:
        maximum = units.parse_duration(limits.leases.duration.maximum)
        if spec.expires - now > maximum + CLOCK_SKEW:
            yield ctx.at(loaded, ("spec", "expires"), "lease.duration",
                         f"expires {units.format_utc(spec.expires)} is more than the admin maximum duration "
                         f"{limits.leases.duration.maximum} from now "
                         f"({ctx.policy_ref('Limits', ('spec', 'leases', 'duration', 'maximum'))})")

    # auto-renew
    if spec.autoRenew is not None:
        pol = limits.autoRenew
        if not pol.enabled:
            yield ctx.at(loaded, ("spec", "autoRenew"), "autorenew.disabled",
                         f"automatic renewal is disabled by the admin "
                         f"({ctx.policy_ref('Limits', ('spec', 'autoRenew', 'enabled'))}): remove autoRenew")
        else:
            if spec.autoRenew.activityWindow is not None:
                win = units.parse_duration(spec.autoRenew.activityWindow)
                if win > units.parse_duration(pol.window.maximum):
                    yield ctx.at(loaded, ("spec", "autoRenew", "activityWindow"), "autorenew.window",
                                 f"activityWindow {spec.autoRenew.activityWindow} exceeds the admin maximum "
                                 f"{pol.window.maximum} ({ctx.policy_ref('Limits', ('spec', 'autoRenew', 'window', 'maximum'))})")
                elif win <= timedelta(0):
                    yield ctx.at(loaded, ("spec", "autoRenew", "activityWindow"), "autorenew.window",
                                 "activityWindow must be longer than 0s")
            if spec.autoRenew.renewalDuration is not None:
                ren = units.parse_duration(spec.autoRenew.renewalDuration)
                if ren > units.parse_duration(pol.renewalDuration.maximum):
                    yield ctx.at(loaded, ("spec", "autoRenew", "renewalDuration"), "autorenew.renewal",
                                 f"renewalDuration {spec.autoRenew.renewalDuration} exceeds the admin maximum "
                                 f"{pol.renewalDuration.maximum} "
                                 f"({ctx.policy_ref('Limits', ('spec', 'autoRenew', 'renewalDuration', 'maximum'))})")
                elif ren < timedelta(minutes=1):
                    yield ctx.at(loaded, ("spec", "autoRenew", "renewalDuration"), "autorenew.renewal",
                                 "renewalDuration must be at least 1m")

    if spec.pool is not None:
        yield from _pooled_rules(ctx, loaded, lease)
        return

    eff = effective_lease(lease, ctx.repo.limits, ctx.repo.allowlist)
    triton = spec.triton
    if triton is not None and triton.image is not None:
        yield from _image_rule(ctx, loaded, ("spec", "triton", "image"), triton.image)
    yield from _resource_rules(ctx, loaded, ("spec", "triton", "resources"), eff.resources,
                               triton.resources if triton else None)
    if triton is not None and triton.autoscaling is not None:
        yield from _autoscaling_rules(ctx, loaded, lease)


def _model_rules(ctx: _Ctx, loaded: Loaded, lease: Lease) -> Iterator[Diagnostic]:
    repos = ctx.repo.repositories.spec
    known = {r.repositoryName for r in repos.s3} | {r.repositoryName for r in repos.volumes}
    seen: dict[str, int] = {}
    for i, model in enumerate(lease.spec.models):
        if model.name in seen:
            yield ctx.at(loaded, ("spec", "models", i, "name"), "model.name-unique",
                         f"model {model.name!r} appears twice in this lease (first as models[{seen[model.name]}]); "
                         "Triton serves one model per name")
        seen.setdefault(model.name, i)
        uri = model.uri
        if uri.startswith("model://"):
            repo_name, _, rest = uri[len("model://"):].partition("/")
            if repo_name not in known:
                allowed = ", ".join(sorted(known)) or "none are declared"
                yield ctx.at(loaded, ("spec", "models", i, "uri"), "model.repository",
                             f"repository {repo_name!r} is not declared in policies (Repositories): "
                             f"known repositories: {allowed}")
            elif not rest.strip("/") or ".." in rest.split("/"):
                yield ctx.at(loaded, ("spec", "models", i, "uri"), "model.uri",
                             f"{uri!r}: name a model directory inside the repository, without '..'")
        else:
            parsed = urlparse(uri)
            if not parsed.hostname or not parsed.path.lower().endswith(".zip"):
                yield ctx.at(loaded, ("spec", "models", i, "uri"), "model.uri",
                             f"{uri!r}: an http(s) model must be a .zip archive URL (https://host/path/model.zip)")


def _pooled_rules(ctx: _Ctx, loaded: Loaded, lease: Lease) -> Iterator[Diagnostic]:
    share = lease.spec.pool
    assert share is not None
    limits = ctx.repo.limits.spec
    if not limits.pools.enabled:
        yield ctx.at(loaded, ("spec", "pool"), "pools.disabled",
                     f"pools are disabled by the admin ({ctx.policy_ref('Limits', ('spec', 'pools', 'enabled'))}): "
                     "use a bespoke triton instead")
    pools = ctx.pools_by_name
    pool = pools.get(share.name)
    if pool is None and share.name.lower() in ctx.invalid_pool_names:
        return  # the pool's file is broken and says so itself; "does not exist" would mislead
    if pool is None:
        close = [n for n in pools if n.lower() == share.name.lower()]
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        known = ", ".join(sorted(pools)) or "no pools are defined"
        yield ctx.at(loaded, ("spec", "pool", "name"), "pool.exists",
                     f"pool {share.name!r} does not exist{hint}: known pools: {known}")
        return
    if share.quota > pool.spec.instanceQuota:
        yield ctx.at(loaded, ("spec", "pool", "quota"), "pool.quota",
                     f"quota {share.quota} exceeds the instanceQuota {pool.spec.instanceQuota} of pool {pool.name}: "
                     "a lease must fit on one instance")


def _autoscaling_rules(ctx: _Ctx, loaded: Loaded, lease: Lease) -> Iterator[Diagnostic]:
    assert lease.spec.triton is not None and lease.spec.triton.autoscaling is not None
    req = lease.spec.triton.autoscaling
    pol = ctx.repo.limits.spec.autoscaling
    base = ("spec", "triton", "autoscaling")
    if not pol.enabled:
        yield ctx.at(loaded, base, "autoscaling.disabled",
                     f"autoscaling is disabled by the admin ({ctx.policy_ref('Limits', ('spec', 'autoscaling', 'enabled'))}): "
                     "remove autoscaling")
        return
    lim = pol.replicas.limits
    eff = effective_lease(lease, ctx.repo.limits, ctx.repo.allowlist).autoscaling
    assert eff is not None
    ref = ctx.policy_ref("Limits", ("spec", "autoscaling", "replicas", "limits"))
    if not lim.minimum <= eff.min_replicas <= lim.maximumIdle:
        yield ctx.at(loaded, base + ("minReplicas",), "autoscaling.replicas",
                     f"minReplicas {eff.min_replicas} must be within {lim.minimum}..{lim.maximumIdle} "
                     f"(admin minimum and maximumIdle, {ref})")
    if eff.max_replicas > lim.maximum:
        yield ctx.at(loaded, base + ("maxReplicas",), "autoscaling.replicas",
                     f"maxReplicas {eff.max_replicas} exceeds the admin maximum {lim.maximum} ({ref})")
    if eff.max_replicas < max(eff.min_replicas, 1):
        yield ctx.at(loaded, base + ("maxReplicas",), "autoscaling.replicas",
                     f"maxReplicas {eff.max_replicas} is less than minReplicas {eff.min_replicas}")
    metrics = req.metrics
    for name in ("cpuUtilization", "gpuUtilization", "queueTime", "queueTimePercentage"):
        mreq = getattr(metrics, name) if metrics else None
        mpol = getattr(pol.metrics, name)
        path = base + ("metrics", name)
        if mreq is None:
            continue
        wants = mreq.enabled is not False
        if wants and not mpol.allowed:
            yield ctx.at(loaded, path, "autoscaling.metric-not-allowed",
                         f"metric {name} is not allowed by the admin "
                         f"({ctx.policy_ref('Limits', ('spec', 'autoscaling', 'metrics', name, 'allowed'))}); allowed: "
                         + (", ".join(m for m in ('cpuUtilization', 'gpuUtilization', 'queueTime', 'queueTimePercentage')
                                      if getattr(pol.metrics, m).allowed) or "none"))
            continue
        if mreq.threshold is None:
            continue
        tref = ctx.policy_ref("Limits", ("spec", "autoscaling", "metrics", name, "threshold"))
        if name == "queueTime":
            value = units.parse_queue_time_us(mreq.threshold)
            lo = units.parse_queue_time_us(mpol.threshold.minimum)
            hi = units.parse_queue_time_us(mpol.threshold.maximum)
            if value < lo or (hi > 0 and value > hi):
                upper = f"{hi}us" if hi > 0 else "no limit"
                yield ctx.at(loaded, path + ("threshold",), "autoscaling.threshold",
                             f"queueTime threshold {mreq.threshold} ({value}us) is outside the admin range "
                             f"{lo}us..{upper} ({tref})")
        else:
            value = int(mreq.threshold)
            lo, hi = mpol.threshold.minimum, mpol.threshold.maximum
            if not lo <= value <= hi or not 0 < value <= 100:
                yield ctx.at(loaded, path + ("threshold",), "autoscaling.threshold",
                             f"{name} threshold {value} is outside the admin range {lo}..{hi} percent ({tref})")
    if not eff.metrics:
        yield ctx.at(loaded, base, "autoscaling.no-metric",
                     "autoscaling needs at least one enabled metric; allowed: "
                     + (", ".join(m for m in ('cpuUtilization', 'gpuUtilization', 'queueTime', 'queueTimePercentage')
                                  if getattr(pol.metrics, m).allowed) or "none"))


# ---- names and budgets ------------------------------------------------------------------

def service_names(repo: Repository) -> dict[str, str]:
    """Kubernetes Service names of the leases themselves -> what owns them (pool instances: see
    `pool_instance_owner`, which does not enumerate up to instances.max)."""
    return {loaded.model.name: f"lease {loaded.file}" for loaded in repo.leases.values()}  # type: ignore[attr-defined]


def pool_instance_owner(repo: Repository) -> Callable[[str], str | None]:
    """`name -> "pool <file>"` when `name` is the Service of a pool instance (`<pool>-<index>`,
    index < instances.max), else None."""
    by_prefix: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for loaded in repo.pools.values():
        pool: Pool = loaded.model  # type: ignore[assignment]
        by_prefix[k8s_pool_name(pool.name)].append((pool.spec.instances.max, loaded.file))

    def owner(name: str) -> str | None:
        prefix, _, index = name.rpartition("-")
        if not index.isdigit() or (len(index) > 1 and index.startswith("0")):
            return None
        return next((f"pool {file}" for top, file in by_prefix.get(prefix, ()) if int(index) < top), None)

    return owner


def _alias_rules(ctx: _Ctx) -> Iterator[Diagnostic]:
    reserved = service_names(ctx.repo)
    pool_owner = pool_instance_owner(ctx.repo)
    owners: dict[str, str] = {}
    for loaded in ctx.repo.leases.values():
        lease: Lease = loaded.model  # type: ignore[assignment]
        for i, alias in enumerate(lease.spec.names):
            path = ("spec", "names", i)
            taken_by = reserved.get(alias) or pool_owner(alias)
            if taken_by:
                yield ctx.at(loaded, path, "names.clash",
                             f"name {alias!r} is already the Service of {taken_by}: pick another name")
            elif owners.get(alias) == loaded.file:
                yield ctx.at(loaded, path, "names.unique", f"name {alias!r} appears twice in spec.names")
            elif alias in owners:
                yield ctx.at(loaded, path, "names.unique",
                             f"name {alias!r} is already taken by {owners[alias]}: names are unique across leases "
                             "(move it with `tms lease name move`)")
            else:
                owners[alias] = loaded.file


def _budget_rules(ctx: _Ctx) -> Iterator[Diagnostic]:
    budgets = ctx.repo.limits.spec.budgets
    by_owner: dict[str, list[tuple[str, Loaded, int]]] = defaultdict(list)
    pools = {p.name: p for p in ctx.repo.all_pools()}
    for loaded in ctx.repo.leases.values():
        lease: Lease = loaded.model  # type: ignore[assignment]
        eff = effective_lease(lease, ctx.repo.limits, ctx.repo.allowlist, pools)
        by_owner[lease.metadata.owner].append((lease.name, loaded, eff.gpus_reserved))
    for owner, entries in sorted(by_owner.items()):
        budget = budgets.for_owner(owner)
        path = ("spec", "budgets", "owners", owner) if owner in budgets.owners else ("spec", "budgets", "default")
        ref = ctx.policy_ref("Limits", path)
        entries.sort(key=lambda e: e[0])
        if budget.leases is not None and len(entries) > budget.leases:
            name, loaded, _ = entries[budget.leases]
            yield ctx.at(loaded, ("metadata", "owner"), "budget.leases",
                         f"owner {owner} has {len(entries)} leases, over the budget of {budget.leases} ({ref})")
        if budget.gpus is not None:
            total = 0
            for _name, loaded, gpus in entries:
                total += gpus
                if total > budget.gpus and gpus:
                    detail = ", ".join(f"{n} {g}" for n, _, g in entries if g)
                    grand = sum(g for _, _, g in entries)
                    yield ctx.at(loaded, ("metadata", "owner"), "budget.gpus",
                                 f"owner {owner} would hold {grand} GPUs (at max replicas), over the budget of "
                                 f"{budget.gpus} ({ref}); GPUs by lease: {detail}")
                    break
