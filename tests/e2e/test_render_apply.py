"""`tms render` output against a real API server, without Pulumi: what kubectl, Argo CD or Flux
would apply. Server-side apply with strict field validation, on a control plane whose fake nodes
(kwok) run the pods, so Deployments become Available and Services get endpoints."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.example import (
    ExampleRepo,
    Key,
    assert_server_holds,
    create_admin_prerequisites,
    fmt,
    require_render,
)
from tests.e2e.kubeapi import ApiError, Kube

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

# apply order: what others refer to first (as kubectl and Argo CD do)
ORDER = ["Namespace", "CustomResourceDefinition", "ServiceAccount", "Secret", "ConfigMap", "Service"]


def _apply_all(kube: Kube, objs: dict[Key, dict]) -> dict[Key, dict]:
    ordered = sorted(objs.items(), key=lambda kv: ORDER.index(kv[0][1]) if kv[0][1] in ORDER else len(ORDER))
    out, errors = {}, []
    for k, obj in ordered:
        try:
            out[k] = kube.apply(obj, manager="tms-render")
        except ApiError as e:
            errors.append(f"{fmt(k)}: {e.body_message}")
    assert not errors, "the API server rejected rendered objects:\n" + "\n".join(errors)
    return out


@pytest.fixture
def applied(tmp_path: Path, kube: Kube, namespace: str) -> tuple[ExampleRepo, dict[Key, dict], dict[Key, dict]]:
    require_render()
    repo = ExampleRepo(tmp_path / "repo", namespace)
    create_admin_prerequisites(kube, repo)
    rendered = repo.render(tmp_path / "out")
    return repo, rendered, _apply_all(kube, rendered)


def test_the_api_server_accepts_every_rendered_object_as_rendered(applied, kube: Kube) -> None:  # type: ignore[no-untyped-def]
    _repo, rendered, _live = applied
    assert_server_holds(kube, rendered)


def test_reapplying_the_same_render_changes_nothing(applied, kube: Kube) -> None:  # type: ignore[no-untyped-def]
    _repo, rendered, first = applied
    again = _apply_all(kube, rendered)
    moved = [fmt(k) for k in rendered
             if again[k]["metadata"]["resourceVersion"] != first[k]["metadata"]["resourceVersion"]
             and again[k]["metadata"].get("generation") != first[k]["metadata"].get("generation")]
    assert not moved, f"re-applying an unchanged render changed: {moved}"


def test_deployments_become_available_and_every_service_selects_ready_tritons(
    applied, kube: Kube, namespace: str  # type: ignore[no-untyped-def]
) -> None:
    _repo, rendered, _live = applied
    deployments = [k for k in rendered if k[1] == "Deployment"]
    services = [k for k in rendered if k[1] == "Service" and rendered[k]["spec"].get("selector")]
    assert deployments and services
    deadline = time.monotonic() + 180
    while True:
        waiting = []
        for k in deployments:
            d = kube.get(k[0], "Deployment", k[3], namespace) or {}
            st, want = d.get("status") or {}, (d.get("spec") or {}).get("replicas", 1)
            if st.get("availableReplicas", 0) < want or st.get("observedGeneration") != d["metadata"]["generation"]:
                waiting.append(f"{fmt(k)}: {st.get('conditions')}")
        for k in services:
            slices = kube.list("discovery.k8s.io/v1", "EndpointSlice", namespace, f"kubernetes.io/service-name={k[3]}")
            if not any((e.get("conditions") or {}).get("ready") for s in slices for e in (s.get("endpoints") or [])):
                waiting.append(f"{fmt(k)}: no ready endpoint (selector {rendered[k]['spec']['selector']})")
        if not waiting:
            break
        if time.monotonic() > deadline:
            pods = kube.list("v1", "Pod", namespace)
            pending = [(p["metadata"]["name"], (p.get("status") or {}).get("conditions")) for p in pods
                       if (p.get("status") or {}).get("phase") != "Running"]
            pytest.fail("not ready after 180s:\n" + "\n".join(waiting) + f"\npods not running: {pending}")
        time.sleep(1)
    # every Service selects pods of exactly one rendered Deployment
    for k in services:
        sel = rendered[k]["spec"]["selector"]
        owners = [d for d in deployments
                  if all(rendered[d]["spec"]["template"]["metadata"]["labels"].get(a) == b for a, b in sel.items())]
        assert owners, f"{fmt(k)} selects no rendered Deployment's pods ({sel})"
