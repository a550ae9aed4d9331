"""Two promises of docs/lifecycle.md, through the real engine against a real API server (kwok nodes):

- **Drift**: a rendered Deployment and Service changed in the cluster by hand (as `kubectl edit`
  would, another field manager) are found by `tms drift` (and nothing else, before and after) and
  put back by deploy.yml's scheduled run, which refreshes only those two. The shell of
  deploy.yml's `pulumi up` step is read from the workflow file and run as GitHub runs it, with the
  schedule's environment (``TARGETED=false``); the engine alone, without a refresh, sees nothing.
- **Name moves wait for readiness**: a name moved onto a lease created in the same change points at
  the new lease's pods only once its Deployment passed Pulumi's readiness await. The new lease's
  pods are held unschedulable (a taint on every node) while `pulumi up` runs: the alias Service
  must keep selecting the old lease the whole time, and follow only after the taint is lifted
  and the pods turn Ready. (The real node with a client looping through the name is
  tests/e2e/node/test_node_name_move.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import Pulumi
from tests.e2e.example import (
    STACK,
    ExampleRepo,
    assert_server_holds,
    create_admin_prerequisites,
    live_objects,
    require_program,
    require_render,
)
from tests.e2e.kubeapi import Kube

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}


@pytest.fixture
def example(tmp_path: Path, namespace: str, kube: Kube, pulumi_factory) -> tuple[ExampleRepo, Pulumi]:  # type: ignore[no-untyped-def]
    require_program()
    require_render()
    repo = ExampleRepo(tmp_path / "repo", namespace)
    create_admin_prerequisites(kube, repo)
    pulumi = pulumi_factory(repo.path, STACK)
    return repo, pulumi


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, env={**os.environ, **GIT_ENV}, check=True,
                          capture_output=True, text=True).stdout.strip()


def _deploy_step() -> str:
    flow = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    return next(s for s in flow["jobs"]["up"]["steps"] if s.get("name") == "pulumi up")["run"]


def _run_deploy_step(repo: ExampleRepo, pulumi: Pulumi, tmp_path: Path, targeted: bool) -> subprocess.CompletedProcess:
    """deploy.yml's `pulumi up` step as GitHub runs a `run:` (bash -eo pipefail), in the checkout,
    with the job's environment: STACK, TARGETED (false on the schedule), RUNNER_TEMP."""
    temp = tmp_path / "runner-temp"
    temp.mkdir(exist_ok=True)
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", _deploy_step()],
                          cwd=repo.path, capture_output=True, text=True, timeout=900,
                          env={**pulumi.env, **GIT_ENV, "STACK": STACK, "TARGETED": str(targeted).lower(),
                               "RUNNER_TEMP": str(temp), "NO_COLOR": "1"})


def _drift(repo: ExampleRepo, pulumi: Pulumi) -> list[str]:
    """`tms drift --stack` as a user runs it (the CLI, the engine's kubeconfig): the URNs, sorted."""
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "tms"), "drift", "--stack", STACK], cwd=repo.path,
                         capture_output=True, text=True, timeout=300, env={**pulumi.env, "NO_COLOR": "1"})
    assert out.returncode == 0, out.stdout + out.stderr
    return sorted(out.stdout.split())


def _patch(kube: Kube, path: str, body: dict) -> None:
    """What `kubectl edit` does: a strategic merge patch by another field manager."""
    kube.request("PATCH", path, params={"fieldManager": "kubectl-edit"}, data=json.dumps(body),
                 headers={"Content-Type": "application/strategic-merge-patch+json"})


def test_the_scheduled_deploy_puts_back_a_deployment_and_a_service_changed_by_hand(
    example: tuple[ExampleRepo, Pulumi], kube: Kube, namespace: str, tmp_path: Path
) -> None:
    repo, pulumi = example
    (repo.path / ".venv").symlink_to(ROOT / ".venv", target_is_directory=True)
    (repo.path / ".gitignore").write_text(".venv\n")
    _git(repo.path, "init", "-q", "-b", "main")
    _git(repo.path, "add", "-A")
    _git(repo.path, "commit", "-qm", "fleet")
    rendered = repo.render(tmp_path / "render")
    first = _run_deploy_step(repo, pulumi, tmp_path, targeted=False)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    uids = {k: v["metadata"]["uid"] for k, v in assert_server_holds(kube, rendered).items()}
    # `tms drift` against what the engine created: every kind of the example as the API server
    # stores it (defaults, canonical quantities), and nothing reported.
    assert _drift(repo, pulumi) == []

    lease = "image-classifier"   # bespoke, not autoscaled: it owns its replicas
    dep_key = ("apps/v1", "Deployment", namespace, lease)
    svc_key = ("v1", "Service", namespace, lease)
    base = f"/apis/apps/v1/namespaces/{namespace}/deployments/{lease}"
    _patch(kube, base, {"spec": {"replicas": 3, "template": {"spec": {"containers": [
        {"name": "triton", "image": "registry.example.com/hand-edited:1"}]}}}})
    _patch(kube, f"/api/v1/namespaces/{namespace}/services/{lease}",
           {"spec": {"selector": {"tms-stack.dev/instance": "fraud-detector"}}})
    live = live_objects(kube, rendered)
    assert live[dep_key]["spec"]["replicas"] == 3
    assert live[svc_key]["spec"]["selector"] == {"tms-stack.dev/instance": "fraud-detector"}

    # What deploy.yml ran before: the engine compares the program with its own state only, so it
    # sees nothing to do and the hand edits would stay.
    pulumi.run("preview", "--expect-no-changes")
    # tms drift sees exactly the two objects changed by hand.
    project = "tms-stack"
    assert _drift(repo, pulumi) == sorted([
        f"urn:pulumi:{STACK}::{project}::tms:index:Lease$kubernetes:apps/v1:Deployment::{lease}:Deployment:{lease}",
        f"urn:pulumi:{STACK}::{project}::tms:index:Lease$kubernetes:core/v1:Service::{lease}:Service:{lease}"])

    start = time.monotonic()
    scheduled = _run_deploy_step(repo, pulumi, tmp_path, targeted=False)
    took = time.monotonic() - start
    assert scheduled.returncode == 0, scheduled.stdout[-4000:] + scheduled.stderr[-4000:]
    # through `tms drift` (two objects refreshed), not the whole-stack refresh it falls back to
    logs = scheduled.stdout + scheduled.stderr
    assert "drift not listed" not in logs and "tms drift: 2 of " in logs, logs[-4000:]
    live = assert_server_holds(kube, rendered)
    assert live[dep_key]["spec"]["replicas"] == 1
    assert live[svc_key]["spec"]["selector"] == {"tms-stack.dev/instance": lease}
    replaced = [k for k in rendered if live[k]["metadata"]["uid"] != uids[k]]
    assert not replaced, f"repaired by replacing, not in place: {replaced}"
    # and the state now agrees with the cluster: a refresh finds nothing more to change
    pulumi.run("preview", "--refresh", "--expect-no-changes")
    assert _drift(repo, pulumi) == []
    print(f"\nscheduled deploy (refresh + up) that repaired the drift: {took:.1f}s")


def _set_hold(kube: Kube, on: bool) -> None:
    """A NoSchedule taint on every node: new pods stay Pending, running ones are left alone."""
    taint = {"key": "tms-e2e/hold", "value": "readiness", "effect": "NoSchedule"}
    for node in kube.list("v1", "Node"):
        taints = [t for t in node["spec"].get("taints") or [] if t["key"] != taint["key"]]
        if on:
            taints.append(taint)
        kube.request("PATCH", f"/api/v1/nodes/{node['metadata']['name']}", data=json.dumps({"spec": {"taints": taints}}),
                     headers={"Content-Type": "application/merge-patch+json"})


def test_a_name_moved_onto_a_new_lease_follows_only_once_its_pods_are_ready(
    example: tuple[ExampleRepo, Pulumi], kube: Kube, namespace: str, tmp_path: Path
) -> None:
    repo, pulumi = example
    pulumi.up()
    alias, old, new = "fraud", "fraud-detector", "classifier-v2"
    old_selector = {"tms-stack.dev/instance": old}
    assert kube.get("v1", "Service", alias, namespace)["spec"]["selector"] == old_selector
    fd = repo.lease_file(old)
    fd.write_text(fd.read_text().replace("  names: [fraud]\n", ""))
    repo.lease_file(new).write_text(
        "apiVersion: tms-stack/v1\nkind: Lease\nmetadata: {name: classifier-v2, owner: team-vision}\n"
        "spec:\n  models: [{name: resnet50, uri: 'model://aws-models/vision/resnet50'}]\n"
        "  expires: 2027-01-15T12:00:00Z\n  names: [fraud]\n")

    _set_hold(kube, True)
    try:
        proc = subprocess.Popen(["pulumi", "up", "--yes", "--skip-preview", "--non-interactive"], cwd=repo.path,
                                env=pulumi.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # the new lease's Deployment exists and its pod cannot be scheduled ...
        deadline = time.monotonic() + 180
        while not [p for p in kube.list("v1", "Pod", namespace, selector=f"tms-stack.dev/instance={new}")
                   if p["status"].get("phase") == "Pending"]:
            assert proc.poll() is None, proc.communicate()[0][-4000:]
            assert time.monotonic() < deadline, "the new lease's pod never appeared"
            time.sleep(0.5)
        # ... and for as long as that lasts, the name stays on the old lease (the engine has had
        # every chance to re-point it: the Service's update is ready to go except for its wait)
        held_until = time.monotonic() + 15
        while time.monotonic() < held_until:
            assert proc.poll() is None, proc.communicate()[0][-4000:]
            selector = kube.get("v1", "Service", alias, namespace)["spec"]["selector"]
            assert selector == old_selector, f"the name moved onto pods that are not Ready: {selector}"
            time.sleep(0.5)
    finally:
        _set_hold(kube, False)
    # the pods schedule, turn Ready, the Deployment's await passes, then the name follows
    moved_at = ready_at = None
    deadline = time.monotonic() + 240
    while proc.poll() is None or moved_at is None:
        assert time.monotonic() < deadline, "the name never moved"
        dep = kube.get("apps/v1", "Deployment", new, namespace) or {}
        if ready_at is None and (dep.get("status") or {}).get("availableReplicas"):
            ready_at = time.monotonic()
        if moved_at is None and kube.get("v1", "Service", alias, namespace)["spec"]["selector"] != old_selector:
            moved_at = time.monotonic()
            assert ready_at is not None, "the name moved before the new Deployment was available"
        time.sleep(0.2)
    out = proc.communicate()[0]
    assert proc.returncode == 0, out[-4000:]
    assert kube.get("v1", "Service", alias, namespace)["spec"]["selector"] == {"tms-stack.dev/instance": new}
    assert ready_at is not None and moved_at is not None and moved_at >= ready_at
    pulumi.run("preview", "--expect-no-changes")
