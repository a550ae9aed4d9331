"""Rules on one lease: its name, models, expiry, auto-renewal, pool share or bespoke Triton."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlparse

from tms_stack.logic.resolve import effective_lease
from tms_stack.models import Lease, units
from tms_stack.models.diagnostics import Diagnostic, Severity
from tms_stack.models.urimatch import best_match, internal_host_reason
from tms_stack.repo.loader import Loaded, Repository
from tms_stack.rules.autoscaling import autoscaling_rules
from tms_stack.rules.context import CLOCK_SKEW, Ctx
from tms_stack.rules.resources import image_rule, resource_rules


def lease_rules(ctx: Ctx, stem: str, loaded: Loaded, now: datetime, arriving: bool = False) -> Iterator[Diagnostic]:
    """`arriving`: the pull request adds or changes this lease (a base is known)."""
    lease: Lease = loaded.model  # type: ignore[assignment]
    spec = lease.spec
    limits = ctx.repo.limits.spec
    if lease.name != stem:
        yield ctx.at(loaded, ("metadata", "name"), "lease.name-matches-file",
                     f"metadata.name {lease.name!r} must equal the file name {stem!r} (leases/<name>.yaml)")
    yield from model_rules(ctx, loaded, lease)

    # expiry
    form = loaded.doc.forms.get(("spec", "expires"))
    if form is not None:
        # At the key: an alias's node (and so its value position) is the anchored one, elsewhere.
        pos = loaded.doc.key_pos(("spec", "expires"))
        yield Diagnostic(loaded.file, pos.line, pos.col, "lease.expires-form", expires_form_message(form))
    if spec.expires <= now and arriving:
        # Its expiry was fixed when the file was written; a review that took longer than the lease's
        # duration must not merge it expired (issue 25 #6). Leases the PR does not touch stay a
        # warning: prune removes them, and they must not fail other people's pull requests.
        yield ctx.at(loaded, ("spec", "expires"), "lease.expired-on-arrival",
                     f"lease expired at {units.format_utc(spec.expires)}, before this change could merge: renew it "
                     f"with `tms lease renew {lease.name}` and push")
    elif spec.expires <= now:
        yield ctx.at(loaded, ("spec", "expires"), "lease.expired",
                     f"lease expired at {units.format_utc(spec.expires)}; the prune job will remove it "
                     "(renew with `tms lease renew`)", Severity.WARNING)
    else:
        minimum, said, maximum = lifetimes(limits)
        if arriving and spec.expires - now < minimum:
            yield ctx.at(loaded, ("spec", "expires"), "lease.short-lived",
                         f"lease expires at {units.format_utc(spec.expires)}, less than the admin minimum lifetime "
                         f"{said} from now "
                         f"({ctx.policy_ref('Limits', ('spec', 'leases', 'duration', 'minimum'))}): it may expire "
                         f"before it is merged and deployed; renew it with `tms lease renew {lease.name}`",
                         Severity.WARNING)
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
                elif ren > units.parse_duration(limits.leases.duration.maximum):
                    # Prune's renewal is capped at the maximum duration: a longer one could never happen.
                    yield ctx.at(loaded, ("spec", "autoRenew", "renewalDuration"), "autorenew.renewal",
                                 f"renewalDuration {spec.autoRenew.renewalDuration} exceeds the admin maximum lease "
                                 f"duration {limits.leases.duration.maximum} "
                                 f"({ctx.policy_ref('Limits', ('spec', 'leases', 'duration', 'maximum'))})")
                elif ren < timedelta(minutes=1):
                    yield ctx.at(loaded, ("spec", "autoRenew", "renewalDuration"), "autorenew.renewal",
                                 "renewalDuration must be at least 1m")

    if spec.pool is not None:
        yield from pooled_rules(ctx, loaded, lease)
        return

    eff = effective_lease(lease, ctx.repo.limits, ctx.repo.allowlist)
    triton = spec.triton
    if triton is not None and triton.image is not None:
        yield from image_rule(ctx, loaded, ("spec", "triton", "image"), triton.image)
    yield from resource_rules(ctx, loaded, ("spec", "triton", "resources"), eff.resources,
                               triton.resources if triton else None)
    if triton is not None and triton.autoscaling is not None:
        yield from autoscaling_rules(ctx, loaded, lease)


EXPIRES_FORMS = {
    "anchor": "carries an anchor (`&name`)",
    "alias": "is an alias (`*name`)",
    "tag": "carries a tag (`!!timestamp`, `!!str`, ...)",
    "block": "is a block scalar (`|`, `|-`, `>`, `>-`)",
}


def lifetimes(limits: Any) -> tuple[timedelta, str, timedelta]:
    """The shortest lifetime an arriving lease is not warned about (and how the policy says it),
    and the longest any lease may have. Never above the default duration: a policy of short leases
    must not warn on every one."""
    dur = limits.leases.duration
    minimum, said = min((units.parse_duration(dur.minimum), dur.minimum),
                        (units.parse_duration(dur.default), dur.default), key=lambda pair: pair[0])
    return minimum, said, units.parse_duration(dur.maximum)


def expiry_instants(repo: Repository) -> list[datetime]:
    """Every instant at which `lease_rules`' answer for a lease of `repo` can change: `now` enters a
    check only through the three comparisons above (expired, short-lived, over the maximum), so an
    answer computed at one time holds at any other with none of these between them, boundaries
    included (repo/answers.py keeps answers for as long as that)."""
    minimum, _, maximum = lifetimes(repo.limits.spec)
    out: list[datetime] = []
    for loaded in repo.leases.values():
        expires = loaded.model.spec.expires  # type: ignore[attr-defined]
        out += (expires, expires - minimum, expires - maximum - CLOCK_SKEW)
    return sorted(out)


def expires_form_message(form: str) -> str:
    """Prune rewrites `expires` in place; these forms would not survive it (issue 21)."""
    return (f"spec.expires {EXPIRES_FORMS[form]}: write it as a plain or quoted timestamp, e.g. "
            "`expires: 2026-12-01T18:00:00Z` (the prune job rewrites this one value in place)")


def _literal_internal(host: str) -> str | None:
    """Why `host` is internal as written (an IP literal, `localhost`, `*.svc`, `*.cluster.local`);
    a name without a dot is left to the agent (whether it is a cluster Service depends on the pod's
    search domains, and examples use such names)."""
    name = host.strip("[]")
    if "." not in name and ":" not in name and name.lower() != "localhost":
        return None
    return internal_host_reason(host)


def model_rules(ctx: Ctx, loaded: Loaded, lease: Lease) -> Iterator[Diagnostic]:
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
            # A zip is recognised by its content when fetched (TMS's quickstart serves
            # http://host:8000/densenet_onnx), so only the URL's shape is checked here.
            if not parsed.hostname:
                yield ctx.at(loaded, ("spec", "models", i, "uri"), "model.uri",
                             f"{uri!r}: an http(s) model URL needs a host (http(s)://host/path to a zip archive)")
            elif (why := _literal_internal(parsed.hostname)) is not None and best_match(
                    [(h.targetUri, h.targetUri) for h in repos.https], uri) is None:
                # The agent refuses it too (outside/sources/hosts.py): say so at review time.
                yield ctx.at(loaded, ("spec", "models", i, "uri"), "model.uri-internal",
                             f"{uri!r}: the host is {why}; model URLs may reach internal addresses only "
                             "where a repository in the policies (Repositories https targetUri) names them")
            elif parsed.scheme == "http" and (secret := best_match(
                    [(h.targetUri, h.secretName) for h in repos.https], uri)) is not None:
                # The agent would have to send the secret in clear; it refuses, so refuse it here.
                yield ctx.at(loaded, ("spec", "models", i, "uri"), "model.plain-http",
                             f"{uri!r} matches the credentialed target of secret {secret!r} (policies Repositories "
                             "https): credentials are only sent over TLS, use https://")


def pooled_rules(ctx: Ctx, loaded: Loaded, lease: Lease) -> Iterator[Diagnostic]:
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
    # A share's `count` is bounded by its quota: each model instance Triton loads on a shared
    # instance takes at least one unit of that instance (a quota-1 share once asked for 64).
    for i, model in enumerate(lease.spec.models):
        if model.count > share.quota:
            yield ctx.at(loaded, ("spec", "models", i, "count"), "pool.count",
                         f"count {model.count} of model {model.name!r} exceeds this lease's quota {share.quota} "
                         f"(pool {pool.name}, instanceQuota {pool.spec.instanceQuota}): a pooled model runs at "
                         "most one instance per unit of quota; lower count or raise quota")
