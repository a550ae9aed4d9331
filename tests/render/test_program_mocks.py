"""The Pulumi program under Pulumi's own mocks: the resource tree, the same objects as `tms render`,
and that editing one lease leaves every other resource's inputs untouched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest

from tests.conftest import NOW


class Recorder(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: dict[str, dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources[args.name] = {"type": args.typ, "inputs": args.inputs, "parent": args.custom}
        return f"{args.name}-id", args.inputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


def run_program(root: Path) -> tuple[dict[str, dict[str, Any]], list[Any]]:
    from tms_stack.commands.render import render_root
    from tms_stack.deploy import program

    mocks = Recorder()
    pulumi.runtime.set_mocks(mocks, project="tms-stack", stack="example", preview=False)
    groups = render_root(root, "example", NOW)

    @pulumi.runtime.test
    def check() -> Any:
        built = program.build(groups)
        return pulumi.Output.all(*[c.urn for g in built.values() for c in g.objects.values()])

    check()
    return {name: res for name, res in mocks.resources.items()}, groups


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def test_tree_and_same_objects_as_render(example_repo: Path) -> None:
    resources, groups = run_program(example_repo)
    components = {n: r for n, r in resources.items() if r["type"].startswith("tms:index:")}
    assert {r["type"] for r in components.values()} == {
        "tms:index:Lease", "tms:index:Pool", "tms:index:Names", "tms:index:Monitoring"}
    assert {n for n, r in components.items() if r["type"] == "tms:index:Lease"} == {
        "chat-embed", "chat-small", "fraud-detector", "image-classifier", "ranker", "text-ensemble"}
    objects = {n: r for n, r in resources.items() if r["type"].startswith("kubernetes:")}
    rendered = {f"{g.name}:{o['kind']}:{o['metadata']['name']}": o for g in groups for o in g.objects}
    assert set(objects) == set(rendered)
    for name, obj in rendered.items():
        group_version = obj["apiVersion"] if "/" in obj["apiVersion"] else f"core/{obj['apiVersion']}"
        assert objects[name]["type"] == f"kubernetes:{group_version}:{obj['kind']}"
        assert _plain(objects[name]["inputs"]) == _plain(obj), name
    assert "fraud-detector:HorizontalPodAutoscaler:fraud-detector" in objects
    deployment = objects["fraud-detector:Deployment:fraud-detector"]["inputs"]
    assert "replicas" not in deployment["spec"], "an HPA owns replicas"


def test_editing_one_lease_touches_only_its_objects(example_repo: Path, tmp_path: Path) -> None:
    before, _ = run_program(example_repo)
    lease = example_repo / "leases" / "image-classifier.yaml"
    lease.write_text(lease.read_text().replace("name: resnet50", "name: resnet101"))
    after, _ = run_program(example_repo)
    assert set(before) == set(after)
    changed = {n for n in before if _plain(before[n]["inputs"]) != _plain(after[n]["inputs"])}
    assert changed == {"image-classifier:ConfigMap:image-classifier"}


@pytest.mark.parametrize("alias_move", [True])
def test_moving_an_alias_keeps_its_resource_name(example_repo: Path, alias_move: bool) -> None:
    before, _ = run_program(example_repo)
    fd = example_repo / "leases" / "fraud-detector.yaml"
    fd.write_text(fd.read_text().replace("  names: [fraud]\n", ""))
    ic = example_repo / "leases" / "image-classifier.yaml"
    ic.write_text(ic.read_text().replace("  expires:", "  names: [fraud]\n  expires:"))
    after, _ = run_program(example_repo)
    assert "names:Service:fraud" in before and "names:Service:fraud" in after
    assert set(before) == set(after)
    changed = {n for n in before if _plain(before[n]["inputs"]) != _plain(after[n]["inputs"])}
    assert changed == {"names:Service:fraud"}
    assert after["names:Service:fraud"]["inputs"]["spec"]["selector"] == {"tms-stack.dev/instance": "image-classifier"}


def test_every_service_waits_for_the_deployment_whose_pods_it_selects(example_repo: Path) -> None:
    """A name (alias Service), a pooled lease's Service and a bespoke lease's own Service depend on
    the Deployment they select, so the engine points them at pods only after that Deployment's
    readiness await (tests/e2e/test_drift_and_readiness.py shows the order on an API server)."""
    from tms_stack.commands.render import render_root
    from tms_stack.deploy import program

    pulumi.runtime.set_mocks(Recorder(), project="tms-stack", stack="example", preview=False)
    groups = render_root(example_repo, "example", NOW)
    waits: dict[str, str] = {}

    @pulumi.runtime.test
    def check() -> Any:
        built = program.build(groups)
        for g in built.values():
            waits.update(g.waits)
        return pulumi.Output.all(*[c.urn for g in built.values() for c in g.objects.values()])

    check()
    deployments = {o["metadata"]["name"] for g in groups for o in g.objects if o["kind"] == "Deployment"}
    services = {f"{g.name}:Service:{o['metadata']['name']}": o["spec"]["selector"]["tms-stack.dev/instance"]
                for g in groups for o in g.objects if o["kind"] == "Service"}
    expected = {name: target for name, target in services.items() if target in deployments}
    assert waits == expected
    assert waits["names:Service:fraud"] == "fraud-detector"                   # an alias
    pooled = [n for n, t in waits.items() if n.split(":")[0] != t and not n.startswith("names:")]
    assert pooled, "no pooled lease's Service waits for its pool instance"
    assert waits["fraud-detector:Service:fraud-detector"] == "fraud-detector"  # a bespoke lease's own
