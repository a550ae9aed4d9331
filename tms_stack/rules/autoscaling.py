"""Rules on a lease's autoscaling: replicas and per-metric permission and thresholds."""

from __future__ import annotations

from collections.abc import Iterator

from tms_stack.logic.resolve import effective_lease
from tms_stack.models import Lease, units
from tms_stack.models.diagnostics import Diagnostic
from tms_stack.repo.loader import Loaded
from tms_stack.rules.context import Ctx


def autoscaling_rules(ctx: Ctx, loaded: Loaded, lease: Lease) -> Iterator[Diagnostic]:
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
    lease_eff = effective_lease(lease, ctx.repo.limits, ctx.repo.allowlist)
    eff = lease_eff.autoscaling
    assert eff is not None
    no_gpus = lease_eff.resources.gpu == 0
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
        if name == "gpuUtilization" and no_gpus and (
                mreq.enabled is True or (mreq.enabled is None and mreq.threshold is not None)):
            yield ctx.at(loaded, path, "autoscaling.gpu-metric",
                         "gpuUtilization needs GPUs: this lease has none (gpu: 0), so GPU utilization stays 0 and "
                         "the lease would never scale on it; remove the metric or ask for a GPU")
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
        dropped = (" (gpuUtilization, the admin's default, is left out: the lease has no GPU)"
                   if no_gpus and pol.metrics.gpuUtilization.enabled else "")
        yield ctx.at(loaded, base, "autoscaling.no-metric",
                     f"autoscaling needs at least one enabled metric{dropped}; allowed: "
                     + (", ".join(m for m in ('cpuUtilization', 'gpuUtilization', 'queueTime', 'queueTimePercentage')
                                  if getattr(pol.metrics, m).allowed) or "none"))
