"""Once per stack: the PodMonitor, the PrometheusRule (recording rules the HPAs use, alerts) and
the prometheus-adapter rules that serve the recorded series as Pods metrics."""

from __future__ import annotations

from typing import Any

import yaml

from tms_stack.models.stack import StackSettings
from tms_stack.render.labels import INSTANCE, LEASE, MANAGED_BY, OWNER, POOL, common_labels, metadata

MONITOR_NAME = "tms-triton"
ADAPTER_CONFIGMAP = "tms-prometheus-adapter-rules"

# Per-pod series; the names are also the Pods metric names the HPAs ask for (see leases.py).
RECORDING_RULES = [
    {
        # Average time a request waited in Triton's queue, in microseconds (TMS: tms_avg_request_queue_duration).
        "record": "tms_queue_time_us",
        "expr": "sum by (namespace, pod) (rate(nv_inference_queue_duration_us[1m]))\n"
                "/ clamp_min(sum by (namespace, pod) (rate(nv_inference_request_success[1m])), 1e-9)",
    },
    {
        # Share of request time spent queued, in percent (Triton has no native metric for it).
        "record": "tms_queue_time_percent",
        "expr": "100 * sum by (namespace, pod) (rate(nv_inference_queue_duration_us[1m]))\n"
                "/ clamp_min(sum by (namespace, pod) (rate(nv_inference_request_duration_us[1m])), 1e-9)",
    },
    {
        # Mean utilization of the pod's GPUs, in percent (nv_gpu_utilization is 0.0-1.0 per gpu_uuid).
        "record": "tms_gpu_utilization_percent",
        "expr": "100 * avg by (namespace, pod) (nv_gpu_utilization)",
    },
]

# Every alert keeps `owner` and `lease` (the agent exports both on its series; the PodMonitor adds
# them from a bespoke lease's pod labels too), so Alertmanager can route each alert to the team
# that owns the lease (docs/admin-setup.md, "Alerts to the owning team").
ALERT_RULES = [
    {
        "alert": "TmsModelNotReady",
        "expr": "max by (namespace, pod, owner, lease, model) (tms_agent_model_ready) == 0",
        "for": "10m",
        "labels": {"severity": "warning"},
        "annotations": {
            "summary": "Model {{ $labels.model }} of lease {{ $labels.lease }} is not ready",
            "description": "The model agent in {{ $labels.namespace }}/{{ $labels.pod }} has not had "
                           "{{ $labels.model }} READY in Triton for 10 minutes; see the agent's log.",
        },
    },
    {
        # Per lease, whatever the pod's readiness says: a pool instance stays Ready while one of its
        # leases fails (issue 11 #4), so this alert is how that lease's owner learns it.
        "alert": "TmsLeaseNotReady",
        "expr": "max by (namespace, owner, lease) (tms_agent_lease_ready) == 0",
        "for": "10m",
        "labels": {"severity": "warning"},
        "annotations": {
            "summary": "Lease {{ $labels.lease }} is not ready",
            "description": "No model agent in {{ $labels.namespace }} has had every model of lease "
                           "{{ $labels.lease }} READY for 10 minutes; `tms lease status {{ $labels.lease }}` "
                           "shows which model and why.",
        },
    },
    {
        "alert": "TmsLeaseExpiringSoon",
        "expr": "(max by (namespace, owner, lease) (tms_agent_lease_expiry_timestamp_seconds) - time()) < 3600\n"
                "and (max by (namespace, owner, lease) (tms_agent_lease_expiry_timestamp_seconds) - time()) > 0",
        "labels": {"severity": "info"},
        "annotations": {
            "summary": "Lease {{ $labels.lease }} expires within an hour",
            "description": "Renew it with `tms lease renew {{ $labels.lease }}` and merge, or let the prune job "
                           "remove it.",
        },
    },
]


def render_monitoring(settings: StackSettings) -> list[dict[str, Any]]:
    base = common_labels(settings, "tms-stack", "monitoring")
    pod_monitor = {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
        "metadata": metadata(MONITOR_NAME, settings, {**base, **settings.prometheus.podMonitorLabels}),
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/managed-by": MANAGED_BY,
                                         "app.kubernetes.io/name": "triton"}},
            "namespaceSelector": {"matchNames": [settings.namespace]},
            "podMetricsEndpoints": [
                {"port": port, "path": "/metrics", "interval": settings.prometheus.scrapeInterval,
                 "relabelings": _relabelings()}
                for port in ("metrics", "agent")
            ],
        },
    }
    rule = {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
        "metadata": metadata(MONITOR_NAME, settings, {**base, **settings.prometheus.ruleLabels}),
        "spec": {"groups": rule_groups()},
    }
    adapter = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": metadata(ADAPTER_CONFIGMAP, settings, base),
        "data": {"values.yaml": adapter_values(settings)},
    }
    return [pod_monitor, rule, adapter]


def _relabelings() -> list[dict[str, Any]]:
    def keep(label: str, target: str) -> dict[str, Any]:
        source = "__meta_kubernetes_pod_label_" + "".join(c if c.isalnum() else "_" for c in label)
        return {"sourceLabels": [source], "targetLabel": target, "action": "replace"}

    # A bespoke lease's pod carries its lease and owner; a pool instance's carries neither (an empty
    # source sets no label), so the agent's own per-lease `lease` and `owner` are kept there.
    return [keep(LEASE, "lease"), keep(OWNER, "owner"), keep(INSTANCE, "instance_name"), keep(POOL, "pool")]


def rule_groups() -> list[dict[str, Any]]:
    return [
        {"name": "tms-stack.autoscaling", "interval": "15s", "rules": RECORDING_RULES},
        {"name": "tms-stack.alerts", "rules": ALERT_RULES},
    ]


def rules_file() -> str:
    """The rules as a plain Prometheus rules file (for promtool and non-operator installs)."""
    return yaml.safe_dump({"groups": rule_groups()}, sort_keys=False)


def adapter_values(settings: StackSettings) -> str:
    """prometheus-adapter Helm values (`rules.custom`) serving the recorded series as Pods metrics."""
    rules = []
    for rec in RECORDING_RULES:
        name = rec["record"]
        rules.append({
            "seriesQuery": f'{name}{{namespace!="",pod!=""}}',
            "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
            "name": {"matches": f"^{name}$", "as": name},
            "metricsQuery": "max(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
        })
    return yaml.safe_dump({"rules": {"default": False, "custom": rules}}, sort_keys=False)
