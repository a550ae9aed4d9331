"""Autoscaling of a lease without GPUs (issue 25 #5): the admin's default-enabled GPU-utilization
metric is left out of its HPA (GPU utilization of a pod without GPUs never falls, so the lease
could never scale down), and asking for it explicitly is refused."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import NOW
from tms_stack.commands.check import run_check
from tms_stack.commands.render import render_root
from tms_stack.render import all_objects

LEASE = ("apiVersion: tms-stack/v1\nkind: Lease\nmetadata: {name: cpu-only, owner: team-nlp}\nspec:\n"
         "  models: [{name: m, uri: 'model://shared-nfs/m'}]\n  expires: 2027-01-01T00:00:00Z\n"
         "  triton:\n    resources: {gpu: 0}\n    autoscaling: {maxReplicas: 3%s}\n")


def test_a_cpu_only_lease_scales_on_cpu_only(example_repo: Path) -> None:
    (example_repo / "leases" / "cpu-only.yaml").write_text(
        LEASE % ", metrics: {cpuUtilization: {enabled: true}}")
    objs = all_objects(render_root(example_repo, "example", NOW))
    hpa = next(o for o in objs if o["kind"] == "HorizontalPodAutoscaler" and o["metadata"]["name"] == "cpu-only")
    assert [m["type"] for m in hpa["spec"]["metrics"]] == ["Resource"]
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    # A lease with GPUs still gets the admin's default GPU metric.
    fd = next(o for o in objs if o["kind"] == "HorizontalPodAutoscaler" and o["metadata"]["name"] == "fraud-detector")
    assert any(m.get("pods", {}).get("metric", {}).get("name") == "tms_gpu_utilization_percent"
               for m in fd["spec"]["metrics"])


def test_a_cpu_only_lease_with_only_the_default_gpu_metric_is_told_why(example_repo: Path) -> None:
    (example_repo / "leases" / "cpu-only.yaml").write_text(LEASE % "")
    found = [d for d in run_check(example_repo, NOW).errors if d.file == "leases/cpu-only.yaml"]
    assert [d.rule for d in found] == ["autoscaling.no-metric"]
    assert "gpuUtilization, the admin's default, is left out: the lease has no GPU" in found[0].message


def test_asking_for_the_gpu_metric_without_gpus_is_refused(example_repo: Path) -> None:
    (example_repo / "leases" / "cpu-only.yaml").write_text(
        LEASE % ", metrics: {gpuUtilization: {threshold: 70}, cpuUtilization: {enabled: true}}")
    found = [d for d in run_check(example_repo, NOW).errors if d.file == "leases/cpu-only.yaml"]
    assert [(d.rule, d.line) for d in found] == [("autoscaling.gpu-metric", 9)]
