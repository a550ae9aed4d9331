"""deploy.yml, prune.yml and review.yml's `preview` job, run as written by act against a real API
server (tests/e2e's control plane, kwok nodes) with the Pulumi engine built from ../shared/vendor.

One fleet's afternoon, in order:
1. a pull request adds two leases: review.yml (check, test, preview) passes; `preview` is
   `pulumi preview` of the base's program with the PR's leases (the CLI installed by pulumi/actions);
2. the merge (a push to main) runs deploy.yml: the cluster holds what `tms render` of main says,
   and the stack records the deployed commit;
3. a rendered Deployment and Service are changed by hand; the hourly schedule's run of deploy.yml
   puts them back (`tms drift` finds them, `pulumi refresh --target` reads them back, `pulumi up`);
4. one lease passes its expiry; prune.yml's scheduled run deletes its file, pushes to main and
   calls deploy.yml (workflow_call, for the pushed commit): the lease's objects are gone.
And prune's workflow_dispatch in PR mode without PRUNE_TOKEN fails at its first step.

The admin's one-time setup is done by the test: the stack (a file backend; on GitHub,
PULUMI_ACCESS_TOKEN or a self-managed backend), the namespace's prerequisites, the `KUBECONFIG`
secret (the control plane's kubeconfig). GitHub's own parts: the stand-in of github.py, the merge.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from tests.e2e.conftest import ControlPlane
from tests.e2e.example import assert_server_holds, create_admin_prerequisites, fmt, live_objects
from tests.e2e.kubeapi import Kube
from tests.e2e.workflows.act import (
    Act,
    Fleet,
    dispatch_event,
    git,
    pull_request_event,
    push_event,
    schedule_event,
)
from tests.e2e.workflows.github import GitHubStandIn, PullRequest
from tests.e2e.workflows.stackadmin import StackAdmin

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]
STACK = "example"


def _lease(name: str, expires: str) -> str:
    return (f"apiVersion: tms-stack/v1\nkind: Lease\nmetadata:\n  name: {name}\n  owner: team-risk\n"
            f"spec:\n  models:\n    - name: m\n      uri: model://s3-models/{name}/m\n  expires: {expires}\n"
            f"  triton:\n    resources: {{gpu: 1}}\n")


class Cluster(StackAdmin):
    """The admin's setup of the example fleet against the test's API server (the namespace's
    prerequisites: the claims and Secrets the example's policies name)."""

    def __init__(self, fleet: Fleet, kube: Kube, namespace: str, control_plane: ControlPlane,
                 pulumi_tools: list[str], tmp_path: Path):
        super().__init__(fleet, STACK, namespace, control_plane.kubeconfig, pulumi_tools, tmp_path,
                         config={"tms-stack:deployTimeout": "3m"})   # kwok's pods are Ready in seconds
        create_admin_prerequisites(kube, SimpleNamespace(path=fleet.work, namespace=namespace))  # type: ignore[arg-type]


@pytest.fixture
def cluster(fleet: Fleet, kube: Kube, namespace: str, control_plane: ControlPlane, pulumi_tools: list[str],
            tmp_path: Path) -> Cluster:
    return Cluster(fleet, kube, namespace, control_plane, pulumi_tools, tmp_path)


def test_review_deploy_drift_and_prune_through_the_workflow_files(
        engine_act: Act, cluster: Cluster, fleet: Fleet, github: GitHubStandIn, kube: Kube, namespace: str,
        tmp_path: Path) -> None:
    act, times = engine_act, {}
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    # `stale` expires while this test runs: the clock passing expiry, without faking the clock
    stale_expires = now + timedelta(minutes=6)

    # 1. the pull request and its review (all three jobs)
    def edit(work: Path) -> None:
        (work / "leases" / "speech.yaml").write_text(_lease("speech", "2027-01-01T00:00:00Z"))
        (work / "leases" / "stale.yaml").write_text(_lease("stale", stale_expires.strftime("%Y-%m-%dT%H:%M:%SZ")))

    pr = fleet.open_pull_request(21, "two-leases", edit)
    github.pulls[21] = PullRequest(21, pr["head"], ["leases/speech.yaml", "leases/stale.yaml"])
    review = act.run(github, "review.yml", "pull_request", pull_request_event(pr), pr["merge"],
                     secrets=cluster.secrets, env=cluster.runner_env)
    times["review"] = review.seconds
    for job in ("check", "test", "preview"):
        assert review.job_result("review", job) == "succeeded", f"{job}:\n{review.tail()}"
    assert "Pulumi version 3.260.0 is already installed on this machine. Skipping download" in review.log
    assert "speech" in review.log and "create" in review.log, "the preview does not show the new lease"
    assert not kube.list("apps/v1", "Deployment", namespace), "a preview changed the cluster"

    # 2. merge -> push -> deploy.yml
    before, after = fleet.merge(pr)
    deploy = act.run(github, "deploy.yml", "push", push_event(before, after), after,
                     secrets=cluster.secrets, env=cluster.runner_env)
    times["deploy (push)"] = deploy.seconds
    assert deploy.job_result("deploy", "up") == "succeeded", deploy.tail()
    rendered = cluster.render(tmp_path / "render-1")
    assert {("Deployment", "speech"), ("Deployment", "stale")} <= {(k[1], k[3]) for k in rendered}
    live = assert_server_holds(kube, rendered)
    uids = {k: v["metadata"]["uid"] for k, v in live.items()}
    assert cluster.deployed() == after

    # 3. drift: changed by hand, put back by the scheduled reconcile
    kube.request("PATCH", f"/apis/apps/v1/namespaces/{namespace}/deployments/speech",
                 params={"fieldManager": "kubectl-edit"},
                 data=json.dumps({"spec": {"template": {"spec": {"containers": [
                     {"name": "triton", "image": "registry.example.com/hand-edited:1"}]}}}}),
                 headers={"Content-Type": "application/strategic-merge-patch+json"})
    kube.request("PATCH", f"/api/v1/namespaces/{namespace}/services/speech", params={"fieldManager": "kubectl-edit"},
                 data=json.dumps({"spec": {"selector": {"tms-stack.dev/instance": "stale"}}}),
                 headers={"Content-Type": "application/strategic-merge-patch+json"})
    cron = yaml.safe_load((fleet.work / ".github" / "workflows" / "deploy.yml").read_text())[True]["schedule"][0]["cron"]
    reconcile = act.run(github, "deploy.yml", "schedule", schedule_event(cron), fleet.head("main"),
                        secrets=cluster.secrets, env=cluster.runner_env)
    times["deploy (schedule)"] = reconcile.seconds
    assert reconcile.job_result("deploy", "up") == "succeeded", reconcile.tail()
    # `tms drift` found the two objects changed by hand (and nothing else), `pulumi refresh
    # --target` read those back, and the up put them back
    assert "drift not listed" not in reconcile.log and "tms drift: 2 of " in reconcile.log, reconcile.tail()
    assert f"drift: Deployment/{namespace}/speech: " in reconcile.log
    assert f"drift: Service/{namespace}/speech: " in reconcile.log
    assert "Deployment:speech refreshing" in reconcile.log and "Service:speech refreshing" in reconcile.log
    live = assert_server_holds(kube, rendered)
    assert [k for k in rendered if live[k]["metadata"]["uid"] != uids[k]] == [], "repaired by replacing"

    # 4. expiry: prune's scheduled run deletes the file, pushes, and calls deploy
    wait = (stale_expires - datetime.now(UTC)).total_seconds() + 5
    if wait > 0:
        time.sleep(wait)
    main_before = fleet.head("main")
    cron = yaml.safe_load((fleet.work / ".github" / "workflows" / "prune.yml").read_text())[True]["schedule"][0]["cron"]
    prune = act.run(github, "prune.yml", "schedule", schedule_event(cron), main_before,
                    secrets=cluster.secrets, env=cluster.runner_env)
    times["prune + deploy (workflow_call)"] = prune.seconds
    assert prune.job_result("prune", "prune") == "succeeded", prune.tail()
    pushed = fleet.head("main")
    assert pushed != main_before
    assert git(fleet.bare, "log", "-1", "--format=%s", "main").startswith("tms prune")
    tree = set(git(fleet.bare, "ls-tree", "-r", "--name-only", "main").splitlines())  # whole paths
    assert "leases/stale.yaml" not in tree and "leases/speech.yaml" in tree
    # prune's job `deploy` calls deploy.yml (workflow `deploy`), whose job is `up`
    assert prune.job_result("deploy/deploy", "up") == "succeeded", prune.tail()
    after_prune = cluster.render(tmp_path / "render-2")
    gone = set(rendered) - set(after_prune)
    assert gone and all(k[3] == "stale" for k in gone), sorted(map(fmt, gone))
    left = [fmt(k) for k, v in live_objects(kube, {k: rendered[k] for k in gone}).items() if v is not None]
    assert not left, f"left on the cluster after prune's deploy: {left}"
    assert_server_holds(kube, after_prune)
    assert cluster.deployed() == pushed

    # prune's manual run in PR mode without its token refuses at its first step
    refused = act.run(github, "prune.yml", "workflow_dispatch", dispatch_event(), pushed,
                      variables={"PRUNE_MODE": "pr"}, env=cluster.runner_env)
    assert refused.job_result("prune", "prune") == "failed"
    assert "PRUNE_MODE=pr needs the repository secret PRUNE_TOKEN" in refused.log
    print("\n" + "\n".join(f"{k}: {v:.0f}s" for k, v in times.items()))
