"""Effective settings of leases and pools once admin defaults are applied (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from tms_stack.logic.memo import by_identity
from tms_stack.models import Allowlist, Lease, Limits, Pool, units
from tms_stack.models.lease import Resources
from tms_stack.models.nodeclass import WHOLE_GPU
from tms_stack.models.policies import METRIC_NAMES, ResourceValues

FALLBACK_IMAGE = "nvcr.io/nvidia/tritonserver:24.08-py3"


@dataclass(frozen=True)
class EffectiveResources:
    cpu_m: int
    gpu: int
    system_memory: int
    shared_memory: int
    repository_size: int
    # The extended resource `gpu` counts: whole GPUs, or the node class's MIG profile or shared GPU.
    gpu_resource: str = WHOLE_GPU

    @property
    def cpu(self) -> str:
        return units.format_cpu(self.cpu_m)

    def memory(self, which: str) -> str:
        return units.format_memory(getattr(self, which))


@dataclass(frozen=True)
class EffectiveMetric:
    name: str  # cpuUtilization | gpuUtilization | queueTime | queueTimePercentage
    threshold: int  # percent, or microseconds for queueTime


@dataclass(frozen=True)
class EffectiveAutoscaling:
    min_replicas: int
    max_replicas: int
    metrics: tuple[EffectiveMetric, ...]


@dataclass(frozen=True)
class EffectiveAutoRenew:
    activity_window: timedelta
    renewal_duration: timedelta


@dataclass(frozen=True)
class EffectiveLease:
    name: str
    owner: str
    expires: datetime
    image: str
    resources: EffectiveResources
    autoscaling: EffectiveAutoscaling | None
    auto_renew: EffectiveAutoRenew | None
    pool: str | None
    quota: int
    # The node class it runs on (a pooled lease: its pool's); None: no class, whole GPUs.
    node_class: str | None = None

    @property
    def gpus_reserved(self) -> int:
        """GPUs this lease can hold at its peak (bespoke: per replica times max replicas)."""
        if self.pool:
            return 0
        replicas = self.autoscaling.max_replicas if self.autoscaling else 1
        return self.resources.gpu * replicas


def default_image(allowlist: Allowlist) -> str:
    spec = allowlist.spec
    return spec.default or (spec.images[0] if spec.images else FALLBACK_IMAGE)


def effective_resources(requested: Resources | None, default: ResourceValues,
                        gpu_resource: str = WHOLE_GPU) -> EffectiveResources:
    req = requested or Resources()

    def pick(name: str) -> object:
        value = getattr(req, name)
        return getattr(default, name) if value is None else value

    return EffectiveResources(
        cpu_m=units.parse_cpu(pick("cpu")),
        gpu=int(pick("gpu")),  # type: ignore[call-overload]
        system_memory=units.parse_memory(pick("systemMemory")),
        shared_memory=units.parse_memory(pick("sharedMemory")),
        repository_size=units.parse_memory(pick("repositorySize")),
        gpu_resource=gpu_resource,
    )


def effective_autoscaling(lease: Lease, limits: Limits, gpus: int | None = None) -> EffectiveAutoscaling | None:
    """`gpus`: the lease's GPUs per replica. Without GPUs there is no GPU utilization to scale on:
    the admin's default-enabled gpuUtilization is left out (a lease that asks for it is refused,
    rule autoscaling.gpu-metric), so such a lease never waits for a metric that cannot fall."""
    triton = lease.spec.triton
    if gpus is None:
        gpus = effective_resources(triton.resources if triton else None, limits.spec.triton.resources.default).gpu
    if triton is None or triton.autoscaling is None:
        return None
    req = triton.autoscaling
    policy = limits.spec.autoscaling
    min_r = req.minReplicas if req.minReplicas is not None else policy.replicas.default.minimum
    max_r = req.maxReplicas if req.maxReplicas is not None else max(policy.replicas.default.maximum, min_r)
    metrics = []
    for name in METRIC_NAMES:
        mpol = getattr(policy.metrics, name)
        mreq = getattr(req.metrics, name) if req.metrics else None
        enabled = mreq.enabled if mreq is not None and mreq.enabled is not None else (
            mpol.enabled or (mreq is not None and mreq.threshold is not None))
        if not enabled or (name == "gpuUtilization" and gpus == 0):
            continue
        raw = mreq.threshold if mreq is not None and mreq.threshold is not None else mpol.threshold.default
        threshold = units.parse_queue_time_us(raw) if name == "queueTime" else int(raw)
        metrics.append(EffectiveMetric(name, threshold))
    return EffectiveAutoscaling(min_r, max_r, tuple(metrics))


def effective_auto_renew(lease: Lease, limits: Limits) -> EffectiveAutoRenew | None:
    req = lease.spec.autoRenew
    if req is None:
        return None
    pol = limits.spec.autoRenew
    window = req.activityWindow if req.activityWindow is not None else pol.window.default
    renewal = req.renewalDuration if req.renewalDuration is not None else pol.renewalDuration.default
    return EffectiveAutoRenew(units.parse_duration(window), units.parse_duration(renewal))


def node_class_name(chosen: str | None, default_class: str | None) -> str | None:
    """The class a pool or bespoke lease runs on: its own choice, else the stack's default."""
    return chosen or default_class


def gpu_resource(limits: Limits, class_name: str | None) -> str:
    """The GPU resource of a class; whole GPUs without one (or for a class check refuses)."""
    node_class = limits.spec.nodeClasses.get(class_name) if class_name else None
    return node_class.gpuResource if node_class is not None else WHOLE_GPU


def pool_node_class(pool: Pool, default_class: str | None = None) -> str | None:
    triton = pool.spec.triton
    return node_class_name(triton.nodeClass if triton else None, default_class)


def effective_lease(lease: Lease, limits: Limits, allowlist: Allowlist, pools: dict[str, Pool] | None = None,
                    default_class: str | None = None) -> EffectiveLease:
    """`default_class`: the stack's defaultNodeClass, for a lease or pool that names none.
    Computed once per command for the same objects (logic/memo.py): a review asks for every lease
    of both trees, from several rules and the plan."""
    pool = (pools or {}).get(lease.spec.pool.name) if lease.spec.pool is not None else None
    return by_identity("effective_lease", (lease, limits, allowlist, pool), (default_class,),
                       lambda: _effective_lease(lease, limits, allowlist, pool, default_class))


def _effective_lease(lease: Lease, limits: Limits, allowlist: Allowlist, pool: Pool | None,
                     default_class: str | None) -> EffectiveLease:
    spec = lease.spec
    if spec.pool is not None:
        image = (pool.spec.triton.image if pool and pool.spec.triton and pool.spec.triton.image
                 else default_image(allowlist))
        resources = effective_pool_resources(pool, limits, default_class) if pool else effective_resources(
            None, limits.spec.triton.resources.default)
        return EffectiveLease(lease.name, lease.metadata.owner, spec.expires, image, resources, None,
                              effective_auto_renew(lease, limits), spec.pool.name, spec.pool.quota,
                              pool_node_class(pool, default_class) if pool else None)
    triton = spec.triton
    image = triton.image if triton and triton.image else default_image(allowlist)
    class_name = node_class_name(triton.nodeClass if triton else None, default_class)
    resources = effective_resources(triton.resources if triton else None, limits.spec.triton.resources.default,
                                    gpu_resource(limits, class_name))
    return EffectiveLease(lease.name, lease.metadata.owner, spec.expires, image, resources,
                          effective_autoscaling(lease, limits, resources.gpu), effective_auto_renew(lease, limits),
                          None, 0, class_name)


def effective_pool_resources(pool: Pool, limits: Limits, default_class: str | None = None) -> EffectiveResources:
    # Asked once per pooled lease by the budget rules and the plan: once per pool is enough.
    return by_identity("effective_pool_resources", (pool, limits), (default_class,),
                       lambda: _effective_pool_resources(pool, limits, default_class))


def _effective_pool_resources(pool: Pool, limits: Limits, default_class: str | None) -> EffectiveResources:
    triton = pool.spec.triton
    return effective_resources(triton.resources if triton else None, limits.spec.triton.resources.default,
                               gpu_resource(limits, pool_node_class(pool, default_class)))


def pool_image(pool: Pool, allowlist: Allowlist) -> str:
    triton = pool.spec.triton
    return triton.image if triton and triton.image else default_image(allowlist)
