"""`pulumi preview` / `pulumi up` of the example repository with the real engine, the real
Kubernetes provider and a real API server (see conftest.py and docs/real-engine.md).

The oracle is `tms render`: what it writes is what the API server must hold after `pulumi up`,
and what changes between two renders is exactly what `pulumi up` must change.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.e2e.conftest import Pulumi
from tests.e2e.example import (
    STACK,
    ExampleRepo,
    Key,
    assert_server_holds,
    create_admin_prerequisites,
    fmt,
    live_objects,
    require_program,
    require_render,
    tms_objects_in,
)
from tests.e2e.kubeapi import Kube

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


@pytest.fixture
def example(tmp_path: Path, namespace: str, kube: Kube, pulumi_factory) -> tuple[ExampleRepo, Pulumi]:  # type: ignore[no-untyped-def]
    require_program()
    require_render()
    repo = ExampleRepo(tmp_path / "repo", namespace)
    create_admin_prerequisites(kube, repo)
    pulumi = pulumi_factory(repo.path, STACK)
    return repo, pulumi


def _kinds(rendered: dict[Key, Any]) -> set[tuple[str, str]]:
    return {(k[0], k[1]) for k in rendered}


def _changes(preview: dict) -> dict[str, list[str]]:
    """Non-`same` steps of `pulumi preview --json`, by operation, as type::name."""
    out: dict[str, list[str]] = {}
    for step in preview.get("steps", []):
        op = step.get("op", "")
        if op in ("same", "read"):
            continue
        urn = step.get("urn", "")
        out.setdefault(op, []).append("::".join(urn.split("::")[-2:]))
    return out


def _state_urns(pulumi: Pulumi) -> dict[str, Any]:
    """URN -> the resource's state (inputs and outputs) from `pulumi stack export`."""
    deployment = json.loads(pulumi.run("stack", "export").stdout)["deployment"]
    return {r["urn"]: {k: r.get(k) for k in ("inputs", "outputs", "parent")} for r in deployment.get("resources", [])}


def _edit_yaml(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    y = YAML()
    y.preserve_quotes = True
    y.indent(mapping=2, sequence=4, offset=2)
    doc = y.load(path.read_text())
    edit(doc)
    with path.open("w") as fh:
        y.dump(doc, fh)


def test_preview_then_up_deploys_what_tms_render_writes_and_a_second_up_changes_nothing(
    example: tuple[ExampleRepo, Pulumi], kube: Kube, namespace: str, tmp_path: Path
) -> None:
    repo, pulumi = example
    rendered = repo.render(tmp_path / "render")

    preview = pulumi.preview_json()
    creates = _changes(preview).get("create", [])
    assert len(creates) >= len(rendered), f"preview creates {len(creates)} resources for {len(rendered)} objects"
    assert not tms_objects_in(kube, namespace, _kinds(rendered)), "preview must not touch the cluster"

    pulumi.up()
    assert_server_holds(kube, rendered)
    # and nothing else of those kinds: the stack owns exactly the rendered objects
    extra = tms_objects_in(kube, namespace, _kinds(rendered)) - set(rendered)
    assert not extra, f"on the server but not rendered: {sorted(map(fmt, extra))}"

    pulumi.up("--expect-no-changes")
    noop = _changes(pulumi.preview_json())
    assert not noop, f"a third preview still wants changes: {noop}"


def test_deleting_a_lease_file_removes_exactly_that_leases_objects(
    example: tuple[ExampleRepo, Pulumi], kube: Kube, namespace: str, tmp_path: Path
) -> None:
    repo, pulumi = example
    before = repo.render(tmp_path / "before")
    pulumi.up()
    uids = {k: v["metadata"]["uid"] for k, v in live_objects(kube, before).items() if v}

    lease = "fraud-detector"  # bespoke, autoscaled, with an alias
    repo.lease_file(lease).unlink()  # what `tms prune` does to an expired lease
    after = repo.render(tmp_path / "after")
    gone = set(before) - set(after)
    assert gone, "removing a lease must remove objects"
    assert not set(after) - set(before), f"removing a lease rendered new objects: {set(after) - set(before)}"

    changes = _changes(pulumi.preview_json())
    assert set(changes) <= {"update", "delete"}, f"removing a lease may only delete and update: {changes}"
    assert changes.get("delete"), changes

    pulumi.up()
    live = live_objects(kube, before)
    still_there = [fmt(k) for k in gone if live[k] is not None]
    assert not still_there, f"left behind after removing {lease}: {still_there}"
    assert_server_holds(kube, after)
    replaced = [fmt(k) for k in after if live[k] and live[k]["metadata"]["uid"] != uids[k]]
    assert not replaced, f"recreated although only {lease} was removed: {replaced}"
    extra = tms_objects_in(kube, namespace, {(k[0], k[1]) for k in before}) - set(after)
    assert not extra, f"on the server but no longer rendered: {sorted(map(fmt, extra))}"
    pulumi.up("--expect-no-changes")


def test_moving_an_alias_changes_the_alias_service_selector_in_place(
    example: tuple[ExampleRepo, Pulumi], kube: Kube, namespace: str, tmp_path: Path
) -> None:
    repo, pulumi = example
    before = repo.render(tmp_path / "before")
    pulumi.up()
    uids = {k: v["metadata"]["uid"] for k, v in live_objects(kube, before).items() if v}

    alias, source, target = "fraud", "fraud-detector", "image-classifier"

    def drop(doc):  # type: ignore[no-untyped-def]
        doc["spec"]["names"].remove(alias)
        if not doc["spec"]["names"]:
            del doc["spec"]["names"]

    def add(doc):  # type: ignore[no-untyped-def]
        doc["spec"].setdefault("names", []).append(alias)

    _edit_yaml(repo.lease_file(source), drop)
    _edit_yaml(repo.lease_file(target), add)
    after = repo.render(tmp_path / "after")
    assert set(after) == set(before), "moving an alias must neither add nor remove objects"
    changed = {k for k in before if before[k] != after[k]}
    alias_services = [k for k in changed if k[1] == "Service" and before[k]["spec"].get("selector")
                      != after[k]["spec"].get("selector")]
    assert len(alias_services) == 1, f"expected one Service whose selector moves, got {sorted(map(fmt, changed))}"

    changes = _changes(pulumi.preview_json())
    assert set(changes) <= {"update"}, f"moving an alias may only update in place: {changes}"
    assert changes.get("update"), "moving an alias must update the alias Service"

    pulumi.up()
    svc_key = alias_services[0]
    svc = kube.get(svc_key[0], "Service", svc_key[3], namespace)
    assert svc is not None and svc["metadata"]["uid"] == uids[svc_key], "the alias Service was replaced"
    assert svc["spec"]["selector"] == after[svc_key]["spec"]["selector"]
    assert svc["spec"]["selector"] != before[svc_key]["spec"]["selector"]
    live = assert_server_holds(kube, after)
    replaced = [fmt(k) for k in after if live[k]["metadata"]["uid"] != uids[k]]
    assert not replaced, f"recreated by an alias move: {replaced}"
    pulumi.up("--expect-no-changes")


def test_plugins_come_from_path_and_nothing_is_downloaded(
    example: tuple[ExampleRepo, Pulumi], pulumi_env: dict[str, str]
) -> None:
    """`pulumi plugin ls` of the private PULUMI_HOME is empty: the engine used the provider and
    language host next to `pulumi` (automatic plugin acquisition is switched off as well)."""
    _repo, pulumi = example
    pulumi.preview()
    listed = json.loads(pulumi.run("plugin", "ls", "--json").stdout or "null") or []
    assert listed == [], listed


def test_a_targeted_up_of_tms_plan_targets_leaves_nothing_for_a_full_up(
    example: tuple[ExampleRepo, Pulumi], kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """What deploy uses at fleet scale (bench/RESULTS.md): `pulumi up --target` of the URNs that
    `tms plan --targets` names. A changed, an added and a removed lease (pooled: its pool
    instance changes too) reach the API server, and a whole-stack preview then wants nothing:
    the targets were complete."""
    import subprocess

    repo, pulumi = example
    pulumi.up()
    before = repo.render(tmp_path / "before")
    uids = {k: v["metadata"]["uid"] for k, v in live_objects(kube, before).items() if v}
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q"], cwd=repo.path, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo.path, check=True)
    subprocess.run([*git, "commit", "-qm", "deployed"], cwd=repo.path, check=True)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo.path, check=True, capture_output=True,
                         text=True).stdout.strip()
    # the deployed commit, recorded on the stack as docs/lifecycle.md tells deploy.yml to
    pulumi.run("stack", "tag", "set", "tms:deployed", sha)

    ic = repo.lease_file("image-classifier")
    ic.write_text(ic.read_text().replace("name: resnet50", "name: resnet101"))
    repo.lease_file("speech").write_text(
        "apiVersion: tms-stack/v1\nkind: Lease\nmetadata: {name: speech, owner: team-risk}\n"
        "spec:\n  models: [{name: asr, uri: 'model://s3-models/speech/asr'}]\n  expires: 2027-06-01T12:00:00Z\n"
        "  triton: {resources: {gpu: 1}}\n")
    repo.lease_file("ranker").unlink()
    repo.tms("pool", "lock")
    base = pulumi.run("stack", "tag", "get", "tms:deployed").stdout.strip()
    assert base == sha
    urns = [u for u in repo.tms("plan", "--base", base, "--stack", STACK, "--targets").stdout.splitlines() if u]
    assert urns and not any(u.endswith("**") for u in urns), urns
    assert not [u for u in urns if "::fraud-detector" in u], "an untouched lease was targeted"

    state_before = _state_urns(pulumi)
    untouched = {u for u in state_before if "::fraud-detector" in u}
    assert untouched, state_before
    out = pulumi.run("up", "--yes", "--skip-preview", "--json", *[f"--target={u}" for u in urns]).stdout
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    # the program registered only the targeted groups (tms_stack/render/urns.py): it says so, and the
    # engine saw no step for any other group (ranker's group is gone from the render: its
    # targeted URNs are what the engine deletes)
    said = [e["diagnosticEvent"]["message"] for e in events if "diagnosticEvent" in e]
    registered = [m for m in said if re.search(r"registering 3 of (\d+) groups", m)]
    assert registered and int(re.search(r"of (\d+)", registered[0]).group(1)) > 3, said  # type: ignore[union-attr]
    # the SDK's debug line per registration names no resource of an untouched lease
    seen = [m for m in said if m.startswith("registering resource:")]
    assert any("name=speech" in m for m in seen), seen
    assert not [m for m in seen if "fraud-detector" in m], [m for m in seen if "fraud-detector" in m]
    # the engine carried those over as they were (a `same` step from the old state, nothing else)
    ops = {(e["resourcePreEvent"]["metadata"]["urn"], e["resourcePreEvent"]["metadata"]["op"])
           for e in events if "resourcePreEvent" in e}
    assert {op for urn, op in ops if urn in untouched} <= {"same"}, ops
    # ... and the engine kept every resource of the groups it did not see, as it was
    state_after = _state_urns(pulumi)
    assert untouched <= set(state_after), sorted(untouched - set(state_after))
    assert all(state_after[u] == state_before[u] for u in untouched), "an untouched lease's state changed"
    after = repo.render(tmp_path / "after")
    live = assert_server_holds(kube, after)
    gone = [fmt(k) for k in set(before) - set(after) if kube.get(k[0], k[1], k[3], k[2] or None) is not None]
    assert not gone, f"left behind by the targeted up: {gone}"
    # every object that stayed keeps its uid: unchanged ones, and changed ones too, since the
    # stack sets kubernetes:enableConfigMapMutable (a changed ConfigMap is updated in place, one
    # `update` step, never deleted and recreated)
    replaced = [fmt(k) for k in set(after) & set(before) if live[k]["metadata"]["uid"] != uids[k]]
    assert not replaced, f"recreated by the targeted up: {replaced}"
    cm = next(u for u in urns if u.endswith("ConfigMap::image-classifier:ConfigMap:image-classifier"))
    assert {op for urn, op in ops if urn == cm} == {"update"}, sorted(op for urn, op in ops if urn == cm)
    noop = _changes(pulumi.preview_json())
    assert not noop, f"the targets missed changes a full up would make: {noop}"


def test_a_targeted_up_that_only_deletes_registers_nothing_and_still_deletes(
    example: tuple[ExampleRepo, Pulumi], kube: Kube, tmp_path: Path
) -> None:
    """Removing a lease with no alias and no pool changes only its own group: the narrowed program
    registers no resource at all (not even the Kubernetes provider), and the engine deletes the
    lease's objects with the provider recorded in the state; everything else stays as it was."""
    import subprocess

    repo, pulumi = example
    pulumi.up()
    before = repo.render(tmp_path / "before")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q"], cwd=repo.path, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo.path, check=True)
    subprocess.run([*git, "commit", "-qm", "deployed"], cwd=repo.path, check=True)
    repo.lease_file("image-classifier").unlink()
    urns = [u for u in repo.tms("plan", "--base", "HEAD", "--stack", STACK, "--targets").stdout.splitlines() if u]
    assert urns and all("image-classifier" in u for u in urns), urns
    state_before = _state_urns(pulumi)

    out = pulumi.run("up", "--yes", "--skip-preview", "--json", *[f"--target={u}" for u in urns]).stdout
    said = [json.loads(line)["diagnosticEvent"]["message"] for line in out.splitlines()
            if line.strip() and "diagnosticEvent" in json.loads(line)]
    assert any(re.search(r"registering 0 of \d+ groups", m) for m in said), said
    assert not [m for m in said if m.startswith("registering resource:") and "ty=kubernetes:" in m]

    after = repo.render(tmp_path / "after")
    assert_server_holds(kube, after)
    left = [fmt(k) for k in set(before) - set(after) if kube.get(k[0], k[1], k[3], k[2] or None) is not None]
    assert not left, f"left behind: {left}"
    state_after = _state_urns(pulumi)
    assert set(state_after) == set(state_before) - set(urns)
    # the Stack's exports name the whole fleet, now without the removed lease; nothing else changed
    stack_urn = next(u for u in state_after if "::pulumi:pulumi:Stack::" in u)
    assert state_after[stack_urn]["outputs"]["leases"] == sorted(
        set(state_before[stack_urn]["outputs"]["leases"]) - {"image-classifier"})
    changed = [u for u in state_after if u != stack_urn and state_after[u] != state_before[u]]
    assert not changed, changed
    noop = _changes(pulumi.preview_json())
    assert not noop, f"a whole-stack preview still wants changes: {noop}"
