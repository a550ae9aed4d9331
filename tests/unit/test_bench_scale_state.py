"""bench/engine_scale.py's `scale_state`: the state it imports for the curve beyond 1,000 leases
(bench/RESULTS.md, "The curve") must be one the engine accepts as a bigger fleet: unique URNs,
every parent before its children and renamed with them, the edited lease left single."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
P = "urn:pulumi:bench::tms-stack::"


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("engine_scale", ROOT / "bench" / "engine_scale.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("engine_scale", module)
    spec.loader.exec_module(module)
    return module


def _group(kind: str, name: str, children: list[tuple[str, str]]) -> list[dict[str, Any]]:
    comp = f"{P}tms:index:{kind}::{name}"
    out = [{"urn": comp, "type": f"tms:index:{kind}", "parent": f"{P}pulumi:pulumi:Stack::s"}]
    for token, obj in children:
        child = f"{P}tms:index:{kind}${token}::{name}:{obj}"
        out.append({"urn": child, "type": token, "parent": comp, "dependencies": [comp],
                    "propertyDependencies": {"metadata": [comp]}, "inputs": {"metadata": {"name": name}}})
    return out


def _state() -> dict[str, Any]:
    resources = [{"urn": f"{P}pulumi:pulumi:Stack::s", "type": "pulumi:pulumi:Stack"},
                 {"urn": f"{P}pulumi:providers:kubernetes::default", "type": "pulumi:providers:kubernetes"}]
    resources += _group("Lease", "lease-00001", [("kubernetes:core/v1:ConfigMap", "ConfigMap:lease-00001"),
                                                 ("kubernetes:apps/v1:Deployment", "Deployment:lease-00001")])
    resources += _group("Lease", "lease-00002", [("kubernetes:core/v1:ConfigMap", "ConfigMap:lease-00002")])
    resources += _group("Pool", "bench-pool-000", [("kubernetes:apps/v1:Deployment", "Deployment:bench-pool-000-0")])
    resources += _group("Names", "names", [("kubernetes:core/v1:Service", "Service:alias")])
    return {"version": 3, "deployment": {"resources": resources}}


def test_copies_are_a_bigger_fleet_the_engine_can_load() -> None:
    bench = _bench()
    doc = bench.scale_state(_state(), 3, {"Lease/lease-00002"})
    resources = doc["deployment"]["resources"]
    urns = [r["urn"] for r in resources]
    assert len(urns) == len(set(urns)), "duplicate URNs"
    # lease-00001 (3 resources) and the pool (2) twice more; lease-00002, Names, Stack, provider once
    assert len(resources) == 11 + 2 * (3 + 2)
    seen: set[str] = set()
    for r in resources:
        parent = r.get("parent")
        assert parent is None or parent in seen, f"{r['urn']} before its parent {parent}"
        for dep in r.get("dependencies", []) + [u for us in r.get("propertyDependencies", {}).values() for u in us]:
            assert dep in seen, f"{r['urn']} depends on {dep}, not yet in the state"
        seen.add(r["urn"])
    assert f"{P}tms:index:Lease::lease-00001-c3" in seen
    assert f"{P}tms:index:Lease$kubernetes:apps/v1:Deployment::lease-00001-c2:Deployment:lease-00001" in seen
    assert not [u for u in seen if "lease-00002-c" in u or "names-c" in u]


def test_scaling_again_replaces_the_earlier_copies() -> None:
    bench = _bench()
    once = bench.scale_state(_state(), 3, {"Lease/lease-00002"})
    again = bench.scale_state(json.loads(json.dumps(once)), 2, {"Lease/lease-00002"})
    urns = [r["urn"] for r in again["deployment"]["resources"]]
    assert len(urns) == len(set(urns)) == 11 + 5
    assert not [u for u in urns if "-c3" in u]
