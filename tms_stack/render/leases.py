"""Objects of one lease: its Triton (bespoke) or its Service onto a pool instance, aliases,
autoscaling and disruption budget."""

from __future__ import annotations

from typing import Any

from tms_stack.logic.resolve import EffectiveAutoscaling, EffectiveLease
from tms_stack.models import Lease
from tms_stack.models.desired import DesiredDocument, desired_lease
from tms_stack.models.policies import RepositoriesSpec
from tms_stack.models.stack import StackSettings
from tms_stack.render.labels import (
    ALIAS,
    DOMAIN,
    EXPIRES_AT,
    INSTANCE,
    LEASE,
    common_labels,
    lease_labels,
    metadata,
    rfc3339,
)
from tms_stack.render.workload import Workload, render_workload, service

# Pods metrics served by prometheus-adapter from the recording rules in monitoring.py.
POD_METRICS = {
    "gpuUtilization": "tms_gpu_utilization_percent",
    "queueTime": "tms_queue_time_us",
    "queueTimePercentage": "tms_queue_time_percent",
}


def lease_meta(lease: Lease, settings: StackSettings, component: str) -> tuple[dict[str, str], dict[str, str]]:
    labels = common_labels(settings, lease.name, component)
    labels.update(lease_labels(lease.name, lease.metadata.owner, lease.spec.expires))
    return labels, {EXPIRES_AT: rfc3339(lease.spec.expires)}


def render_bespoke(lease: Lease, eff: EffectiveLease, settings: StackSettings, repos: RepositoriesSpec,
                   restricted: bool, triton_args: tuple[str, ...] = (),
                   scheduling: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    labels, annotations = lease_meta(lease, settings, "inference-server")
    auto = eff.autoscaling
    desired = DesiredDocument(instance=lease.name, repositorySize=eff.resources.repository_size,
                              leases=[desired_lease(lease, repos)])
    workload = Workload(
        name=lease.name, image=eff.image, resources=eff.resources, desired=desired,
        labels=labels, annotations=annotations, replicas=None if auto else 1, restricted=restricted,
        triton_args=triton_args, scheduling=scheduling, service_names=tuple(sorted(lease.spec.names)),
    )
    objects = render_workload(workload, settings, repos)
    selector = {INSTANCE: lease.name}
    objects.append(service(lease.name, settings, labels, selector, annotations))
    objects.extend(alias_services(lease, settings, selector))
    if auto is not None:
        objects.append(hpa(lease, auto, settings, labels, annotations))
        if auto.max_replicas > 1:
            objects.append(pdb(lease, settings, labels, annotations, selector))
    return objects


def render_pooled(lease: Lease, instance: str, settings: StackSettings) -> list[dict[str, Any]]:
    """A pooled lease keeps its own Service (and aliases), pointing at whichever instance holds it."""
    labels, annotations = lease_meta(lease, settings, "lease-endpoint")
    selector = {INSTANCE: instance}
    return [service(lease.name, settings, labels, selector, annotations),
            *alias_services(lease, settings, selector)]


def alias_services(lease: Lease, settings: StackSettings, selector: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for alias in lease.spec.names:
        labels, annotations = lease_meta(lease, settings, "alias")
        labels[ALIAS] = alias
        out.append(service(alias, settings, labels, selector, annotations))
    return out


def hpa(lease: Lease, auto: EffectiveAutoscaling, settings: StackSettings, labels: dict[str, str],
        annotations: dict[str, str]) -> dict[str, Any]:
    metrics: list[dict[str, Any]] = []
    for metric in auto.metrics:
        if metric.name == "cpuUtilization":
            metrics.append({"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": metric.threshold}}})
        else:
            metrics.append({"type": "Pods", "pods": {
                "metric": {"name": POD_METRICS[metric.name]},
                "target": {"type": "AverageValue", "averageValue": str(metric.threshold)}}})
    min_replicas = auto.min_replicas
    if min_replicas == 0:
        if settings.scaleToZero is None:
            # Kubernetes refuses minReplicas 0 without an External/Object metric (docs/rendering.md).
            min_replicas = 1
            annotations = {**annotations, f"{DOMAIN}/min-replicas": "0 requested; 1 until the stack sets scaleToZero"}
        else:
            metrics.append({"type": "External", "external": {
                "metric": {"name": settings.scaleToZero.externalMetric,
                           "selector": {"matchLabels": {LEASE: lease.name}}},
                "target": {"type": "AverageValue", "averageValue": settings.scaleToZero.averageValue}}})
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(lease.name, settings, labels, annotations),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": lease.name},
            "minReplicas": min_replicas,
            "maxReplicas": auto.max_replicas,
            "metrics": metrics,
            # Scaling down unloads a whole Triton: wait before giving replicas back.
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
        },
    }


def pdb(lease: Lease, settings: StackSettings, labels: dict[str, str], annotations: dict[str, str],
        selector: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": metadata(lease.name, settings, labels, annotations),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
    }
