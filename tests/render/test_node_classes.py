"""Node classes (issue 25): the class a pool or bespoke lease chooses, or the stack's default,
reaches its pods as nodeSelector, tolerations, affinity and the class's GPU resource; every
rendered object still validates against the Kubernetes schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.conftest import NOW
from tests.render.test_render import K8S_VERSION
from tms_stack.commands.render import render_root
from tms_stack.models.diagnostics import TmsError
from tms_stack.render import all_objects

TAINT = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def _pod(objs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    dep = next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == name)
    return dep["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def _render(repo: Path) -> list[dict[str, Any]]:
    objs = all_objects(render_root(repo, "example", NOW))
    for obj in objs:
        if not obj["apiVersion"].startswith("monitoring.coreos.com/"):
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    return objs


def test_a_lease_and_a_pool_run_on_their_classes(example_repo: Path) -> None:
    _edit(example_repo / "leases" / "fraud-detector.yaml", "    image: nvcr.io/nvidia/tritonserver:24.08-py3\n",
          "    image: nvcr.io/nvidia/tritonserver:24.08-py3\n    nodeClass: a100\n")
    _edit(example_repo / "pools" / "shared-t4-pool.yaml", "    image: nvcr.io/nvidia/tritonserver:24.08-py3\n",
          "    image: nvcr.io/nvidia/tritonserver:24.08-py3\n    nodeClass: a100-mig-1g\n")
    objs = _render(example_repo)
    fd = _pod(objs, "fraud-detector")
    assert fd["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert fd["tolerations"] == [TAINT]
    assert fd["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    pool = _pod(objs, "shared-t4-pool-0")
    assert pool["nodeSelector"] == {"nvidia.com/mig.config": "all-1g.10gb"}
    limits = pool["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/mig-1g.10gb"] == "1" and "nvidia.com/gpu" not in limits  # a MIG slice, not a GPU
    # A lease without a class, and no stack default: scheduled as before, whole GPUs.
    plain = _pod(objs, "image-classifier")
    assert "nodeSelector" not in plain and "tolerations" not in plain and "affinity" not in plain


def test_the_stack_default_class_applies_to_what_names_none(example_repo: Path) -> None:
    _edit(example_repo / "Pulumi.example.yaml", "  tms-stack:partOf: tms-stack\n",
          "  tms-stack:partOf: tms-stack\n  tms-stack:defaultNodeClass: a100\n")
    _edit(example_repo / "policies" / "limits.yaml", "      maxGpus: 8\n",
          "      maxGpus: 8\n      affinity:\n        nodeAffinity:\n"
          "          preferredDuringSchedulingIgnoredDuringExecution:\n"
          "            - weight: 50\n              preference:\n                matchExpressions:\n"
          "                  - {key: topology.kubernetes.io/zone, operator: In, values: [us-east-1a]}\n")
    objs = _render(example_repo)
    for name in ("fraud-detector", "image-classifier", "shared-t4-pool-0"):
        pod = _pod(objs, name)
        assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}, name
        assert pod["tolerations"] == [TAINT], name
        pref = pod["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        assert pref[0]["preference"]["matchExpressions"][0]["values"] == ["us-east-1a"], name


def test_a_time_sliced_class_requests_the_shared_resource(example_repo: Path) -> None:
    _edit(example_repo / "pools" / "shared-t4-pool.yaml", "    image: nvcr.io/nvidia/tritonserver:24.08-py3\n",
          "    image: nvcr.io/nvidia/tritonserver:24.08-py3\n    nodeClass: t4-shared\n")
    limits = _pod(_render(example_repo), "shared-t4-pool-0")["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu.shared"] == "1" and "nvidia.com/gpu" not in limits


def test_render_refuses_a_class_the_policies_do_not_offer(example_repo: Path) -> None:
    _edit(example_repo / "Pulumi.example.yaml", "  tms-stack:partOf: tms-stack\n",
          "  tms-stack:partOf: tms-stack\n  tms-stack:defaultNodeClass: h100\n")
    with pytest.raises(TmsError, match="defaultNodeClass 'h100' is not offered"):
        render_root(example_repo, "example", NOW)


def test_budgets_count_per_gpu_resource(example_repo: Path) -> None:
    """MIG slices count against their own budget, not team-platform's 32 GPUs; without an entry of
    their own they would count as GPUs (fail closed)."""
    from tms_stack.commands.check import run_check

    _edit(example_repo / "pools" / "shared-t4-pool.yaml", "    image: nvcr.io/nvidia/tritonserver:24.08-py3\n",
          "    image: nvcr.io/nvidia/tritonserver:24.08-py3\n    nodeClass: a100-mig-1g\n")
    _edit(example_repo / "pools" / "shared-t4-pool.yaml", "cpu: 8, gpu: 1,", "cpu: 8, gpu: 4,")
    limits = example_repo / "policies" / "limits.yaml"
    # 4 instances x 4 slices = 16 <= 32 GPUs: passes while slices count as GPUs.
    assert run_check(example_repo, NOW).exit_code == 0
    _edit(limits, "team-platform: {gpus: 32, leases: 0}",
          "team-platform: {gpus: 32, leases: 0, gpuResources: {nvidia.com/mig-1g.10gb: 14}}")
    found = [d for d in run_check(example_repo, NOW).errors if d.rule == "budget.gpus"]
    assert [d.file for d in found] == ["pools/shared-t4-pool.yaml"]
    assert "would hold 16 nvidia.com/mig-1g.10gb (at max replicas), over the budget of 14" in found[0].message
    _edit(limits, "nvidia.com/mig-1g.10gb: 14", "nvidia.com/mig-1g.10gb: 16")
    assert run_check(example_repo, NOW).exit_code == 0


def test_the_plan_row_names_the_class_and_its_gpu_resource(example_repo: Path) -> None:
    from tms_stack.commands.plan import _row
    from tms_stack.repo.loader import load_repository

    _edit(example_repo / "leases" / "fraud-detector.yaml", "    image: nvcr.io/nvidia/tritonserver:24.08-py3\n",
          "    image: nvcr.io/nvidia/tritonserver:24.08-py3\n    nodeClass: a100-mig-1g\n")
    row = _row(load_repository(example_repo), "fraud-detector")
    assert row.triton == "tritonserver:24.08-py3, 4 CPU, 2 nvidia.com/mig-1g.10gb, 1-4 replicas on a100-mig-1g"
