"""A name moved onto a lease created in the same change, on the real node with the real engine
(docs/lifecycle.md, "Name moves wait for readiness"): a client loops through the name's Service
for the whole `pulumi up` and after it, and not one request fails.

The new lease's pod needs seconds to become Ready (the agent fetches its models from S3 and loads
them into its Triton). The alias Service depends on the new lease's Deployment in the program, so
the engine re-points it only after Pulumi's readiness await saw that Deployment available; until
then the name keeps answering from the old lease. (Were the Service re-pointed at once, its
endpoints would be empty until the pod was Ready and kube-proxy would refuse the requests.)"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import Pulumi, pulumi_environment
from tests.e2e.kubeapi import Kube
from tests.e2e.node.namemove import MoveWatch, RequestLoop
from tests.e2e.node.node import Node
from tests.e2e.node.stack import STACK, NodeStack
from tests.e2e.node.test_node_leases import s3  # noqa: F401  (the module's S3 server fixture)
from tests.support.s3server import S3Server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

NAMESPACE = "node-name-move"
SMALL = {"cpu": "500m", "gpu": 0, "systemMemory": "1Gi", "sharedMemory": "64Mi", "repositorySize": "256Mi"}
ALIAS = "adding"


def _lease(name: str, models: list[str], names: list[str]) -> dict:
    expires = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    spec = {"models": [{"name": m, "uri": f"model://s3-models/{m}", "backends": ["python"]} for m in models],
            "expires": expires, "triton": {"resources": SMALL}}
    if names:
        spec["names"] = names
    return {"apiVersion": "tms-stack/v1", "kind": "Lease", "metadata": {"name": name, "owner": "team-node"},
            "spec": spec}


@pytest.fixture
def deployable(node_cluster: tuple[Kube, Node], s3: S3Server, pulumi_tools: list[str],  # noqa: F811
               cluster_tools: dict[str, dict], tmp_path: Path) -> Iterator[tuple[NodeStack, Pulumi]]:
    kube, node = node_cluster
    kube.install_crds([d for f in cluster_tools["crds"]["files"]
                       for d in yaml.safe_load_all(Path(f).read_text()) if d])
    stack = NodeStack(tmp_path / "repo", kube, node, s3, NAMESPACE)
    stack.write_lease("adder", _lease("adder", ["addone"], [ALIAS]))
    stack.admin_secrets()
    (tmp_path / "home").mkdir()
    (tmp_path / "state").mkdir()
    pulumi = Pulumi(stack.make_pulumi_project(),
                    pulumi_environment(pulumi_tools, node.kubeconfig, tmp_path / "home", tmp_path / "state"))
    pulumi.run("stack", "init", STACK)
    try:
        yield stack, pulumi
    finally:
        kube.delete("v1", "Namespace", NAMESPACE)


def test_a_name_moved_onto_a_new_lease_never_fails_a_request(deployable: tuple[NodeStack, Pulumi]) -> None:
    stack, pulumi = deployable
    kube = stack.kube
    pulumi.up()
    assert stack.infer(ALIAS, "addone", 41.0) == 42.0, "the name does not answer before the move"

    # the change of one pull request: a new lease `adder-v2` (both models) takes the name
    stack.write_lease("adder", _lease("adder", ["addone"], []))
    stack.write_lease("adder-v2", _lease("adder-v2", ["addone", "addtwo"], [ALIAS]))
    ip = stack.service_ip(ALIAS)
    url = f"http://{ip}:8000/v2/models/addone/infer"
    body = {"inputs": [{"name": "INPUT0", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
    with RequestLoop(stack.node, url, body) as requests:
        start = time.monotonic()
        proc = subprocess.Popen(["pulumi", "up", "--yes", "--skip-preview", "--non-interactive"], cwd=stack.path,
                                env=pulumi.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        watch = MoveWatch(kube, NAMESPACE, ALIAS, "adder-v2")
        while proc.poll() is None or watch.moved_at is None:
            assert time.monotonic() - start < 600, "the move did not finish in 10 minutes"
            watch.poll()
            time.sleep(0.3)
        out = proc.communicate()[0]
        assert proc.returncode == 0, out[-4000:]
        # the name now answers from the new lease (only it serves addtwo) ...
        assert stack.infer(ALIAS, "addtwo", 1.0, timeout_s=120) == 3.0
        time.sleep(3)
    # ... and not one request through the name failed, before, during or after the move
    requests.assert_none_failed(start, "during the move")
    ready_at, moved_at, results = watch.ready_at, watch.moved_at, requests.results
    print(f"\nname move: {len(results)} requests, 0 failed; new lease available after "
          f"{ready_at - start:.1f}s, name moved after {moved_at - start:.1f}s")  # type: ignore[operator]
