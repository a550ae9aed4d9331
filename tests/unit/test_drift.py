"""`tms drift` without a cluster: the comparison (logic/drift.py) and which URNs come out for which
listing (commands/drift.py with a stand-in lister). Against the real API server and engine:
tests/e2e/test_drift_and_readiness.py."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import copy_example
from tms_stack.commands.drift import desired_objects, find_drift, state_urns
from tms_stack.logic.drift import compare, differences, quantity_equal
from tms_stack.models.diagnostics import TmsError

NOW = datetime(2026, 11, 22, tzinfo=UTC)


def test_a_live_object_may_add_but_never_change_or_drop_what_was_rendered() -> None:
    rendered = {"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"replicas": 1, "paused": None,
                "containers": [{"name": "c", "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}}}]}}
    live = copy.deepcopy(rendered)
    live["spec"].pop("paused")
    live["metadata"]["uid"] = "u"                                       # server fields: fine
    live["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"   # defaults: fine
    live["spec"]["containers"][0]["resources"]["limits"] = {"cpu": "0.5", "memory": str(2**30)}
    assert differences(rendered, live) == []

    changed = copy.deepcopy(live)
    changed["spec"]["replicas"] = 3
    assert differences(rendered, changed) == [".spec.replicas: rendered 1, live 3"]
    dropped = copy.deepcopy(live)
    del dropped["metadata"]["labels"]["x"]
    assert differences(rendered, dropped) == [".metadata.labels.x: missing on the server"]
    added = copy.deepcopy(live)
    added["spec"]["containers"].append({"name": "sidecar"})
    assert differences(rendered, added) == [".spec.containers: rendered 1 items, live has 2 items"]


@pytest.mark.parametrize(("a", "b", "equal"), [
    (4, "4", True), ("0.5", "500m", True), ("1Gi", 1073741824, True), ("1G", "1Gi", False),
    ("2", "3", False), (True, 1, False), ("abc", "abc", False), ("1e3", "1k", True),
])
def test_quantities_compare_by_value(a: Any, b: Any, equal: bool) -> None:
    assert quantity_equal(a, b) is equal


def _served(desired: list[tuple[str, str, dict[str, Any]]]) -> dict[tuple[str, str, str], list[dict[str, Any]] | None]:
    """What an API server would list for objects created exactly as rendered (plus a status)."""
    out: dict[tuple[str, str, str], list[dict[str, Any]] | None] = {}
    for _, _, obj in desired:
        item = copy.deepcopy(obj)
        item.setdefault("status", {})
        item["metadata"]["resourceVersion"] = "1"
        out.setdefault((obj["apiVersion"], obj["kind"], obj["metadata"]["namespace"]), []).append(item)  # type: ignore[union-attr]
    return out


def test_nothing_drifts_until_an_object_is_changed_or_deleted(tmp_path: Path) -> None:
    root = copy_example(tmp_path / "repo")
    _, desired = desired_objects(root, "example", NOW)
    listings = _served(desired)
    asked: list[set[tuple[str, str, str]]] = []

    def lister(kinds: Any, kubeconfig: Any, context: Any) -> Any:
        asked.append(set(kinds))
        return listings

    report = find_drift(root, "example", NOW, lister=lister)
    assert report.compared == len(desired) > 20 and report.drifted == []
    assert asked == [set(listings)], "one listing per kind and namespace"

    by_key = {k: (urn, obj) for urn, k, obj in desired}
    dep = next(k for k in by_key if k.startswith("Deployment/"))
    cm = next(k for k in by_key if k.startswith("ConfigMap/"))
    for items in listings.values():
        for item in items or []:
            key = f"{item['kind']}/{item['metadata']['namespace']}/{item['metadata']['name']}"
            if key == dep:
                item["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.example.com/hand-edited:1"
        if items and items[0]["kind"] == "ConfigMap":
            items[:] = [i for i in items if f"ConfigMap/{i['metadata']['namespace']}/{i['metadata']['name']}" != cm]
    report = find_drift(root, "example", NOW, lister=lister)
    assert [d.object for d in report.drifted] == sorted([dep, cm], key=[k for _, k, _ in desired].index)
    assert report.urns == [by_key[d.object][0] for d in report.drifted]
    assert all(u.startswith("urn:pulumi:example::tms-stack::tms:index:") for u in report.urns)
    reasons = {d.object: d.reasons for d in report.drifted}
    assert reasons[cm] == ("missing from the cluster",)
    assert "hand-edited" in reasons[dep][0] and ".spec.template.spec.containers[0].image" in reasons[dep][0]


def test_a_kind_the_server_does_not_serve_is_missing_everywhere(tmp_path: Path) -> None:
    root = copy_example(tmp_path / "repo")
    _, desired = desired_objects(root, "example", NOW)
    listings = _served(desired)
    for key in listings:
        if key[1] == "PodMonitor":
            listings[key] = None      # the Prometheus operator's CRDs are not installed
    report = find_drift(root, "example", NOW, lister=lambda *_: listings)
    assert {d.object.split("/")[0] for d in report.drifted} == {"PodMonitor"}
    assert len(report.drifted) == sum(1 for _, k, _ in desired if k.startswith("PodMonitor/"))


def test_a_sharded_fleet_compares_each_stacks_own_objects(tmp_path: Path) -> None:
    root = copy_example(tmp_path / "repo")
    stack_file = root / "Pulumi.example.yaml"
    stack_file.write_text(stack_file.read_text() + "  tms-stack:shards:\n    stacks: [example-b, example-c]\n")
    home, home_objects = desired_objects(root, "example", NOW)
    shard, shard_objects = desired_objects(root, "example-b", NOW)
    every, all_objects = desired_objects(root, "example", NOW, all_stacks=True)
    assert home == ["example"] and shard == ["example-b"] and every == ["example", "example-b", "example-c"]
    assert all(u.startswith("urn:pulumi:example::") for u, _, _ in home_objects)
    assert shard_objects and all(u.startswith("urn:pulumi:example-b::") for u, _, _ in shard_objects)
    assert {k for _, k, _ in all_objects} >= {k for _, k, _ in home_objects} | {k for _, k, _ in shard_objects}
    assert len(all_objects) == len({u for u, _, _ in all_objects}), "one URN per object"
    # a shard renders only its own groups, and they are what the whole fleet's rendering gives it
    assert shard_objects == [e for e in all_objects if e[0].startswith("urn:pulumi:example-b::")]


def test_compare_keeps_the_rendered_order_and_ignores_objects_it_did_not_render() -> None:
    a = ("urn:a", "ConfigMap/ns/a", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"},
                                      "data": {"k": "v"}})
    b = ("urn:b", "ConfigMap/ns/b", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"},
                                      "data": {"k": "v"}})
    live = {"ConfigMap/ns/a": {"metadata": {"name": "a"}, "data": {"k": "w"}},
            "ConfigMap/ns/zzz": {"metadata": {"name": "zzz"}}}
    drifted = compare([b, a], live)
    assert [d.urn for d in drifted] == ["urn:b", "urn:a"]
    assert drifted[1].reasons == (".data.k: rendered 'v', live 'w'",)


def test_the_state_file_limits_the_urns_to_those_the_stack_holds(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text('{"version": 3, "deployment": {"resources": [{"urn": "urn:a"}, {"urn": "urn:b"}, {"type": "x"}]}}')
    assert state_urns(state) == {"urn:a", "urn:b"}
    state.write_text('{"version": 3, "deployment": {}}')           # a stack never deployed
    assert state_urns(state) == set()
    for text in ("not json", '{"checkpoint": {}}', "[]"):
        state.write_text(text)
        with pytest.raises(TmsError, match="not a `pulumi stack export` document"):
            state_urns(state)
    with pytest.raises(TmsError, match="--state .*missing.json"):
        state_urns(tmp_path / "missing.json")
