"""`tms render` of the example: every object valid against the real Kubernetes OpenAPI schemas
(and the prometheus-operator CRD schemas), golden files, and the rendering rules users rely on."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.conftest import NOW, ROOT
from tms_stack.commands.render import render_root
from tms_stack.render import all_objects
from tms_stack.render.yamlout import dump_object

K8S_VERSION = "1.33.0"
GOLDEN = ROOT / "tests" / "golden" / "example"


@pytest.fixture(scope="module")
def example_objects(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    from tests.conftest import copy_example

    repo = copy_example(tmp_path_factory.mktemp("repo") / "repo")
    return all_objects(render_root(repo, "example", NOW))


@pytest.fixture(scope="module")
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    sys.path.insert(0, str(ROOT))
    from tools import build_tools

    result = build_tools.build(["crds"])
    assert "error" not in result["crds"], result["crds"]
    schemas = {}
    for f in result["crds"]["files"]:
        for crd in yaml.safe_load_all(Path(f).read_text()):
            if not crd:
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


def test_every_builtin_object_validates_against_kubernetes_openapi(example_objects: list[dict[str, Any]]) -> None:
    checked = 0
    for obj in example_objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        checked += 1
    assert checked >= 25


def test_monitoring_objects_validate_against_prometheus_operator_crds(
    example_objects: list[dict[str, Any]], crd_schemas: dict[tuple[str, str], dict[str, Any]]
) -> None:
    crs = [o for o in example_objects if o["apiVersion"].startswith("monitoring.coreos.com/")]
    assert {o["kind"] for o in crs} == {"PodMonitor", "PrometheusRule"}
    for obj in crs:
        schema = crd_schemas[(obj["apiVersion"], obj["kind"])]
        # CRD schemas are OpenAPI v3 with Go regexes: validate instances without meta-checking the schema.
        jsonschema.Draft7Validator(schema).validate({k: v for k, v in obj.items() if k != "metadata"} | {"metadata": {}})
    broken = yaml.safe_load(yaml.safe_dump(next(o for o in crs if o["kind"] == "PodMonitor")))
    broken["spec"]["podMetricsEndpoints"][0]["interval"] = "every minute"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(crd_schemas[(broken["apiVersion"], "PodMonitor")]).validate(broken)


def test_a_broken_object_is_rejected_by_the_schema_check(example_objects: list[dict[str, Any]]) -> None:
    """The validator really validates: a typo in a Deployment is caught."""
    dep = next(o for o in example_objects if o["kind"] == "Deployment")
    broken = yaml.safe_load(yaml.safe_dump(dep))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def _golden_name(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}-{obj['metadata']['name']}.yaml"


def test_golden_files(example_objects: list[dict[str, Any]]) -> None:
    rendered = {_golden_name(o): dump_object(o) for o in example_objects}
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        for old in GOLDEN.glob("*.yaml"):
            old.unlink()
        for name, text in rendered.items():
            (GOLDEN / name).write_text(text)
    existing = {p.name: p.read_text() for p in GOLDEN.glob("*.yaml")}
    assert set(existing) == set(rendered), "objects added or removed; review and rerun with UPDATE_GOLDEN=1"
    for name, text in rendered.items():
        assert existing[name] == text, f"{name} differs from tests/golden/example (UPDATE_GOLDEN=1 after review)"


def _by(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


def test_hpa_owns_replicas_and_metrics_follow_the_lease(example_objects: list[dict[str, Any]]) -> None:
    dep = _by(example_objects, "Deployment", "fraud-detector")
    assert "replicas" not in dep["spec"]
    hpa = _by(example_objects, "HorizontalPodAutoscaler", "fraud-detector")
    assert hpa["spec"]["minReplicas"] == 1 and hpa["spec"]["maxReplicas"] == 4
    metrics = {m["pods"]["metric"]["name"]: m["pods"]["target"]["averageValue"]
               for m in hpa["spec"]["metrics"] if m["type"] == "Pods"}
    assert metrics == {"tms_queue_time_us": "200000", "tms_gpu_utilization_percent": "80"}
    text_hpa = _by(example_objects, "HorizontalPodAutoscaler", "text-ensemble")
    kinds = {m["type"] for m in text_hpa["spec"]["metrics"]}
    assert kinds == {"Resource", "Pods"}
    # Non-autoscaled leases get a fixed single replica and no HPA/PDB.
    assert _by(example_objects, "Deployment", "image-classifier")["spec"]["replicas"] == 1
    assert not [o for o in example_objects if o["kind"] in ("HorizontalPodAutoscaler", "PodDisruptionBudget")
                and o["metadata"]["name"] == "image-classifier"]


def test_triton_container_contract(example_objects: list[dict[str, Any]]) -> None:
    dep = _by(example_objects, "Deployment", "fraud-detector")
    triton, agent = dep["spec"]["template"]["spec"]["containers"]
    assert "--model-control-mode=explicit" in triton["args"]
    # The restricted API's key is added by the wrapper from this pod's own file (render/access.py).
    assert "--http-restricted-api=model-repository:tms-repo-key=$key" in triton["command"][2]
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert triton["resources"]["limits"]["memory"] == "32Gi"
    # Startup may take an hour of model loading before liveness applies (TMS 1.1 fix).
    probe = triton["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 3600
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "512Mi"}
    # repositorySize 4Gi is the agent's budget (archive + unpacked copy); the emptyDir adds 10 %
    # for what the budget cannot see, so a model that fits never gets the pod evicted (issue 23 #3).
    assert volumes["models"]["emptyDir"]["sizeLimit"] == "4506Mi"
    assert agent["readinessProbe"]["httpGet"]["path"] == "/ready"
    # Issue 23 #7: Triton runs as the image's non-root user, locked down; the agent as another user.
    locked = {"runAsNonRoot": True, "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
              "seccompProfile": {"type": "RuntimeDefault"}}
    assert triton["securityContext"] == {**locked, "runAsUser": 1000, "runAsGroup": 1000}
    assert agent["securityContext"] == {**locked, "runAsUser": 1001, "runAsGroup": 1000,
                                        "readOnlyRootFilesystem": True}
    assert dep["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == 1000
    assert "env" not in triton  # it has GPUs: the device plugin decides which it sees
    # A Triton without GPUs sees none (the NVIDIA runtime would otherwise expose the node's GPUs).
    cpu_only = _by(example_objects, "Deployment", "cpu-inference-pool-0")["spec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in cpu_only["resources"]["limits"]
    assert cpu_only["env"] == [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"}]
    # Both secrets the models need are mounted for the agent, never for Triton.
    mounts = {m["mountPath"] for m in agent["volumeMounts"]}
    assert {"/var/run/tms/secrets/s3-access-key", "/var/run/tms/secrets/model-pull-token"} <= mounts


def test_role_based_s3_gets_an_annotated_service_account(example_objects: list[dict[str, Any]]) -> None:
    sa = _by(example_objects, "ServiceAccount", "image-classifier")
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith("role/triton-model-reader")
    agent = _by(example_objects, "Deployment", "image-classifier")["spec"]["template"]["spec"]["containers"][1]
    assert {"name": "AWS_DEFAULT_REGION", "value": "us-west-2"} in agent["env"]


def test_pooled_leases_follow_their_instance(example_objects: list[dict[str, Any]]) -> None:
    svc = _by(example_objects, "Service", "chat-small")
    assert svc["spec"]["selector"] == {"tms-stack.dev/instance": "shared-t4-pool-0"}
    alias = _by(example_objects, "Service", "chat")
    assert alias["spec"]["selector"] == svc["spec"]["selector"]
    cm = _by(example_objects, "ConfigMap", "shared-t4-pool-0")
    import json

    desired = json.loads(cm["data"]["desired.json"])
    assert [lease["name"] for lease in desired["leases"]] == ["chat-embed", "chat-small"]
    # The pod template carries nothing derived from the lease set: adding a lease never restarts it.
    dep = _by(example_objects, "Deployment", "shared-t4-pool-0")
    assert "chat" not in yaml.safe_dump(dep["spec"]["template"])


def test_every_object_is_labelled(example_objects: list[dict[str, Any]]) -> None:
    for obj in example_objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "tms-stack"
        assert labels["app.kubernetes.io/part-of"] == "tms-stack"
        assert labels["cost-center"] == "ml-platform"
        assert obj["metadata"]["namespace"] == "triton"
        assert len(obj["metadata"]["name"]) <= 63
        if obj["metadata"]["labels"].get("tms-stack.dev/lease"):
            assert labels["tms-stack.dev/expires"].isdigit()
            assert obj["metadata"]["annotations"]["tms-stack.dev/expires-at"].endswith("Z")


def test_render_refuses_a_repository_with_errors(example_repo: Path) -> None:
    from tms_stack.models.diagnostics import TmsError

    (example_repo / "leases" / "ranker.yaml").write_text(
        (example_repo / "leases" / "ranker.yaml").read_text().replace("quota: 1", "quota: 99"))
    with pytest.raises(TmsError) as exc:
        render_root(example_repo, "example", NOW)
    assert "leases/ranker.yaml:" in str(exc.value)


def test_a_renewal_changes_no_pod_template(tmp_path: Path) -> None:
    """Issue 11 #2: two renders differing only in a lease's expires give byte-identical pod templates
    (the expiry stays on object metadata), so `tms lease renew` never rolls a Deployment."""
    from tests.conftest import copy_example

    def templates(repo: Path) -> dict[str, str]:
        objs = all_objects(render_root(repo, "example", NOW))
        return {o["metadata"]["name"]: dump_object(o["spec"]["template"]) for o in objs if o["kind"] == "Deployment"}

    a = copy_example(tmp_path / "a")
    b = copy_example(tmp_path / "b")
    path = b / "leases" / "image-classifier.yaml"
    path.write_text(path.read_text().replace("expires: 2027-01-15T12:00:00Z", "expires: 2027-01-20T12:00:00Z"))
    before, after = templates(a), templates(b)
    assert "image-classifier" in before
    assert before == after
    dep = _by(all_objects(render_root(b, "example", NOW)), "Deployment", "image-classifier")
    assert dep["metadata"]["labels"]["tms-stack.dev/expires"] != _by(
        all_objects(render_root(a, "example", NOW)), "Deployment", "image-classifier")["metadata"]["labels"]["tms-stack.dev/expires"]
