"""One day in the life of a lease, as one test: the repository's own workflow files run by act
(tests/e2e/workflows/act.py) with the Pulumi engine built from ../shared/vendor, against the real
node (kubelet + containerd + the locally built Triton and agent images, models from the S3 server).

1. An engineer's pull request adds the lease `adder` (model addone, the name `adding`): review.yml's
   three jobs pass, the plan artifact is what review-comment.yml posts as the comment.
2. The merge (a push to main) runs deploy.yml: the model answers through the name's Service.
3. A bad pull request (more CPU than the admin allows, an attacker's image) fails review's check
   job with annotations on its lines; GitHub's required check keeps it from main, so it never
   reaches deploy (and the cluster never sees it).
4. A second pull request renews `adder` (`tms lease renew`) and moves the name onto a new lease
   `adder-v2` (`tms lease name move`); deploy.yml runs while a client loops through the name: not
   one request fails, and the name moves only after adder-v2's Deployment is available.
5. The clock passes adder's expiry (real time: the lease expires minutes after it is renewed);
   prune.yml's scheduled run deletes the file, pushes to main and calls deploy.yml: adder's
   objects are gone from the cluster and the name still answers from adder-v2.

GitHub's own parts: the stand-in of tests/e2e/workflows/github.py (REST API, artifacts), the
merge button and starting the workflows on their events (the test does both). The times a user
waits are printed as bench/user_waits.py's table (and written as JSON to $TMS_BENCH_OUT when set).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from bench import user_waits
from tests.e2e.kubeapi import Kube
from tests.e2e.node.namemove import MoveWatch, RequestLoop
from tests.e2e.node.node import Node
from tests.e2e.node.stack import STACK, NodeStack
from tests.e2e.node.test_node_leases import s3  # noqa: F401  (the module's S3 server fixture)
from tests.e2e.workflows.act import (
    ROOT,
    Act,
    Fleet,
    Run,
    git,
    pull_request_event,
    push_event,
    schedule_event,
    workflow_run_event,
)
from tests.e2e.workflows.conftest import (  # noqa: F401  (the workflow runs' fixtures)
    act_bin,
    engine_act,
    git_server,
    github,
    vendored_actions,
    wheels,
)
from tests.e2e.workflows.github import GitHubStandIn, PullRequest
from tests.e2e.workflows.gitserver import GitServer
from tests.e2e.workflows.stackadmin import StackAdmin
from tests.support.s3server import S3Server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

NAMESPACE = "node-day"
ALIAS = "adding"
MARKER = "<!-- tms-stack-plan -->"
SMALL = {"cpu": "500m", "gpu": 0, "systemMemory": "1Gi", "sharedMemory": "64Mi", "repositorySize": "256Mi"}


def _stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _lease(name: str, models: list[str], names: list[str], expires: datetime, **triton: object) -> str:
    spec: dict = {"models": [{"name": m, "uri": f"model://s3-models/{m}", "backends": ["python"]} for m in models],
                  "expires": _stamp(expires), "triton": {"resources": SMALL, **triton}}
    if names:
        spec["names"] = names
    return yaml.safe_dump({"apiVersion": "tms-stack/v1", "kind": "Lease",
                           "metadata": {"name": name, "owner": "team-node"}, "spec": spec}, sort_keys=False)


def _expires_of(lease_yaml: str) -> datetime:
    value = yaml.safe_load(lease_yaml)["spec"]["expires"]
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _tms(work: Path, *args: str) -> str:
    """The engineer's `tms` in their clone of the fleet."""
    p = subprocess.run([str(ROOT / ".venv" / "bin" / "tms"), *args], cwd=work, capture_output=True, text=True,
                       timeout=120, env={**os.environ, "NO_COLOR": "1"})
    assert p.returncode == 0, f"tms {' '.join(args)}: {p.stdout}{p.stderr}"
    return p.stdout


class Day:
    """The fleet on the git server, its stack's admin, and the node it deploys to."""

    def __init__(self, data: NodeStack, fleet: Fleet, admin: StackAdmin, act: Act, gh: GitHubStandIn):
        self.data, self.fleet, self.admin, self.act, self.github = data, fleet, admin, act, gh
        self.kube = data.kube

    def run(self, workflow: str, event_name: str, event: dict, sha: str, **kw: object) -> Run:
        # the repository variable naming the stack (the workflows default to the example's)
        return self.act.run(self.github, workflow, event_name, event, sha, secrets=self.admin.secrets,
                            variables={"PULUMI_STACK": STACK}, env=self.admin.runner_env, **kw)  # type: ignore[arg-type]

    def pull_request(self, number: int, branch: str, edit) -> dict[str, str]:  # type: ignore[no-untyped-def]
        pr = self.fleet.open_pull_request(number, branch, edit)
        files = git(self.fleet.work, "diff", "--name-only", pr["base"], pr["head"]).split()
        self.github.pulls[number] = PullRequest(number, pr["head"], files)
        return pr

    def deployment(self, name: str) -> dict | None:
        return self.kube.get("apps/v1", "Deployment", name, NAMESPACE)


@pytest.fixture
def day(node_cluster: tuple[Kube, Node], s3: S3Server, cluster_tools: dict[str, dict],  # noqa: F811
        git_server: GitServer, engine_act: Act, github: GitHubStandIn,  # noqa: F811
        pulumi_tools: list[str], tmp_path: Path) -> Iterator[Day]:
    kube, node = node_cluster
    # the stack's monitoring group holds a PodMonitor and a PrometheusRule: their CRDs, as on a
    # cluster with prometheus-operator
    kube.install_crds([d for f in cluster_tools["crds"]["files"]
                       for d in yaml.safe_load_all(Path(f).read_text()) if d])
    # the node fixture's policies and stack file, pointed at this node's images and S3 server; no
    # lease yet (the first pull request adds it)
    data = NodeStack(tmp_path / "fleet-data", kube, node, s3, NAMESPACE)
    for f in (data.path / "leases").iterdir():
        f.unlink()
    data.admin_secrets()
    fleet = Fleet(git_server, tmp_path, data=data.path, stack=STACK)
    admin = StackAdmin(fleet, STACK, NAMESPACE, node.kubeconfig, pulumi_tools, tmp_path / "admin")
    try:
        yield Day(data, fleet, admin, engine_act, github)
    finally:
        kube.delete("v1", "Namespace", NAMESPACE)


def test_one_day_in_the_life_of_a_lease(day: Day, tmp_path: Path) -> None:
    waits: dict[str, float] = {}
    kube, data, fleet = day.kube, day.data, day.fleet

    # 1. the pull request that adds the lease, and its review
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=12)
    pr = day.pull_request(31, "adder", lambda work: (work / "leases" / "adder.yaml").write_text(
        _lease("adder", ["addone"], [ALIAS], expires)))
    review = day.run("review.yml", "pull_request", pull_request_event(pr), pr["merge"])
    for job in ("check", "test", "preview"):
        assert review.job_result("review", job) == "succeeded", f"{job}:\n{review.tail()}"
    assert "tool=false" in review.log, "a leases-only pull request ran the tool's test suite"
    with zipfile.ZipFile(day.github.uploaded(review.run_id)["tms-plan"]) as zf:
        plan = zf.read("plan.md").decode()
    assert plan.startswith(MARKER) and "adder" in plan and ALIAS in plan, plan
    comment = day.run("review-comment.yml", "workflow_run", workflow_run_event(review.run_id, pr["head"], "success"),
                      fleet.head("main"))
    assert comment.job_result("review-comment", "comment") == "succeeded", comment.tail()
    assert [c["body"] for c in day.github.pulls[31].comments] == [plan], "the comment is the uploaded plan"
    waits["pull request opened -> review result (review.yml, 3 jobs)"] = review.seconds
    waits["pull request opened -> plan comment (+ review-comment.yml)"] = review.seconds + comment.seconds
    assert day.deployment("adder") is None, "a review changed the cluster"

    # 2. merge -> deploy.yml -> the model answers through its name
    merged = time.monotonic()
    before, after = fleet.merge(pr)
    deploy = day.run("deploy.yml", "push", push_event(before, after), after)
    assert deploy.job_result("deploy", "up") == "succeeded", deploy.tail()
    assert data.infer(ALIAS, "addone", 41.0, timeout_s=180) == 42.0
    waits["merge -> model answering (deploy.yml)"] = time.monotonic() - merged
    assert day.admin.deployed() == after

    # 3. a bad pull request fails review's check job, with annotations on its lines
    bad = day.pull_request(32, "greedy", lambda work: (work / "leases" / "greedy.yaml").write_text(
        _lease("greedy", ["addone"], [], expires).replace("cpu: 500m", "cpu: '8'")
        .replace("  triton:\n", "  triton:\n    image: docker.io/attacker/miner:latest\n")))
    refused = day.run("review.yml", "pull_request", pull_request_event(bad), bad["merge"], job="check")
    assert refused.job_result("review", "check") == "failed", refused.tail()
    assert "::error file=leases/greedy.yaml" in refused.log, refused.tail()
    assert "docker.io/attacker/miner" in refused.log and "cpu" in refused.log
    # GitHub's branch protection requires `check`: the pull request is never merged, so deploy.yml
    # never sees it; main and the cluster are as before
    assert fleet.head("main") == after and day.deployment("greedy") is None

    # 4. renew adder and move the name onto a new lease, while a client loops through the name
    def second(work: Path) -> None:
        (work / "leases" / "adder-v2.yaml").write_text(
            _lease("adder-v2", ["addone", "addtwo"], [], datetime.now(UTC) + timedelta(days=2)))
        # renewed to expire a few minutes from now (never earlier than it was): step 5 waits for it
        minutes = max(5, math.ceil((expires - datetime.now(UTC)).total_seconds() / 60) + 1)
        _tms(work, "lease", "renew", "adder", "--duration", f"{minutes}m")
        _tms(work, "lease", "name", "move", ALIAS, "adder", "adder-v2")

    pr2 = day.pull_request(33, "adder-v2", second)
    renewed = _expires_of(git(fleet.work, "show", f"{pr2['head']}:leases/adder.yaml"))
    assert renewed > expires, "renew moved the expiry earlier"
    review2 = day.run("review.yml", "pull_request", pull_request_event(pr2), pr2["merge"], job="check")
    assert review2.job_result("review", "check") == "succeeded", review2.tail()

    before, after = fleet.merge(pr2)
    url = f"http://{data.service_ip(ALIAS)}:8000/v2/models/addone/infer"
    body = {"inputs": [{"name": "INPUT0", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
    with RequestLoop(data.node, url, body) as requests:
        runs: list[Run] = []
        deploying = threading.Thread(target=lambda: runs.append(
            day.run("deploy.yml", "push", push_event(before, after), after)), daemon=True)
        start = time.monotonic()
        deploying.start()
        watch = MoveWatch(kube, NAMESPACE, ALIAS, "adder-v2")
        while deploying.is_alive():
            assert time.monotonic() - start < 1200, "deploy.yml did not finish in 20 minutes"
            watch.poll()
            time.sleep(0.3)
        deploying.join()
        [move] = runs
        assert move.job_result("deploy", "up") == "succeeded", move.tail()
        assert data.infer(ALIAS, "addtwo", 1.0, timeout_s=120) == 3.0, "the name does not answer from adder-v2"
        waits["merge -> name answering from the new lease (deploy.yml)"] = time.monotonic() - start
        time.sleep(2)
    requests.assert_none_failed(start, "through the name during the move")
    ready_at, moved_at, results = watch.ready_at, watch.moved_at, requests.results
    assert moved_at is not None, "the name's Service never selected adder-v2"

    # 5. the clock passes adder's expiry; prune's scheduled run removes it and deploys
    wait = (renewed - datetime.now(UTC)).total_seconds() + 5
    if wait > 0:
        print(f"\nwaiting {wait:.0f}s for adder's expiry ({_stamp(renewed)})", flush=True)
        time.sleep(wait)
    main_before = fleet.head("main")
    cron = yaml.safe_load((fleet.work / ".github" / "workflows" / "prune.yml").read_text())[True]["schedule"][0]["cron"]
    pruned = time.monotonic()
    prune = day.run("prune.yml", "schedule", schedule_event(cron), main_before)
    assert prune.job_result("prune", "prune") == "succeeded", prune.tail()
    # prune's job `deploy` calls deploy.yml (workflow `deploy`), whose job is `up`
    assert prune.job_result("deploy/deploy", "up") == "succeeded", prune.tail()
    # whole paths: the fleet repository also holds tests/fixtures/node/leases/adder.yaml
    tree = set(git(fleet.bare, "ls-tree", "-r", "--name-only", "main").splitlines())
    assert "leases/adder.yaml" not in tree and "leases/adder-v2.yaml" in tree
    assert git(fleet.bare, "log", "-1", "--format=%s", "main").startswith("tms prune")
    deadline = time.monotonic() + 120
    while any(kube.get(*k, NAMESPACE) for k in (("apps/v1", "Deployment", "adder"), ("v1", "Service", "adder"),
                                                 ("v1", "ConfigMap", "adder"))):
        assert time.monotonic() < deadline, "adder's objects are still on the cluster after prune's deploy"
        time.sleep(1)
    waits["prune's scheduled run -> expired lease's objects gone (prune.yml + deploy.yml)"] = time.monotonic() - pruned
    assert data.infer(ALIAS, "addtwo", 2.0, timeout_s=60) == 4.0, "the name stopped answering after prune"
    assert day.admin.deployed() == fleet.head("main")

    print(f"\nname move: {len(results)} requests, 0 failed; adder-v2 available after {ready_at - start:.1f}s, "  # type: ignore[operator]
          f"name moved after {moved_at - start:.1f}s")
    # the table bench/user_waits.py prints, from what this run measured
    out = Path(os.environ.get("TMS_BENCH_OUT") or tmp_path / "waits.json")
    out.write_text(json.dumps(
        {"waits_s": waits, "requests_during_move": len(results), "failed_during_move": len(requests.failed(start)),
         "name_moved_after_s": moved_at - start, "new_lease_available_after_s": ready_at - start}, indent=2))
    print(user_waits.table([json.loads(out.read_text())]))
