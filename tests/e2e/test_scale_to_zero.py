"""Replicas minimum 0 against a real API server: why `minReplicas: 0` is rendered only when the
stack names a scale-to-zero metric. This control plane runs without the HPAScaleToZero feature
gate (Kubernetes' default), so the API server refuses an HPA with minReplicas 0, and accepts the
minReplicas 1 rendered by default (docs/rendering.md, "Replicas minimum 0")."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.example import ExampleRepo, require_render
from tests.e2e.kubeapi import ApiError, Kube

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _hpa(repo: ExampleRepo, out: Path) -> dict:
    return next(o for k, o in repo.render(out).items() if k[1] == "HorizontalPodAutoscaler"
                and o["metadata"]["name"] == "fraud-detector")


def test_min_replicas_zero_needs_the_feature_gate(tmp_path: Path, kube: Kube, namespace: str) -> None:
    require_render()
    repo = ExampleRepo(tmp_path / "repo", namespace)
    limits = repo.path / "policies" / "limits.yaml"
    limits.write_text(limits.read_text().replace("limits: {minimum: 1, maximumIdle: 2", "limits: {minimum: 0, maximumIdle: 2"))
    lease = repo.path / "leases" / "fraud-detector.yaml"
    lease.write_text(lease.read_text().replace("minReplicas: 1", "minReplicas: 0"))
    default = _hpa(repo, tmp_path / "a")
    assert default["spec"]["minReplicas"] == 1
    kube.apply(default, manager="tms-render")
    repo.set_stack_config("tms-stack:scaleToZero", {"externalMetric": "gateway_pending_requests"})
    zero = _hpa(repo, tmp_path / "b")
    assert zero["spec"]["minReplicas"] == 0
    with pytest.raises(ApiError) as refused:
        kube.apply(zero, manager="tms-render")
    assert "minReplicas" in str(refused.value.body_message)
