"""One model-control key per pod, on the real node (issue 11 defect 6): a Python-backend model in
lease A finds every key it can (its environment, every process's command line, the key file)
and uses them against lease B's Triton through B's Service; B's model stays loaded. The key it
found does work on its own Triton (what docs/security.md names as inherent), so the test proves
it held a real key, and that the key is worthless elsewhere. It also finds no Kubernetes API token
(the agent's, for its ConfigMap watch, is projected into the agent container only)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.kubeapi import Kube
from tests.e2e.node.node import Node
from tests.e2e.node.stack import NodeStack
from tests.e2e.node.test_node_leases import s3  # noqa: F401  (the module's S3 server fixture)
from tests.support.s3server import S3Server
from tests.support.triton import CONFIG

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SMALL = {"cpu": "500m", "gpu": 0, "systemMemory": "1Gi", "sharedMemory": "64Mi", "repositorySize": "256Mi"}

THIEF = '''import os
import urllib.request

import numpy as np
import triton_python_backend_utils as pb_utils

VICTIM = "http://{victim}:8000"
HEADER = "tms-repo-key"


def keys():
    found = set(v for v in os.environ.values() if v)
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{{pid}}/cmdline", "rb") as fh:
                args = fh.read().decode(errors="replace").split("\\0")
        except OSError:
            continue
        for a in args:
            if HEADER + "=" in a:
                found.add(a.split(HEADER + "=", 1)[1])
    try:
        with open("/var/run/tms/repo-key/value") as fh:
            found.add(fh.read().strip())
    except OSError:
        pass
    return found


def tokens():
    """Kubernetes API tokens this container can read: the default service-account mount, the
    agent's projected one, and any JWT in the environment (1 if any, else 0)."""
    paths = ["/var/run/secrets/kubernetes.io/serviceaccount/token", "/var/run/secrets/tms/kube-api/token"]
    for path in paths:
        try:
            with open(path) as fh:
                if fh.read().strip():
                    return 1
        except OSError:
            pass
    return int(any(v.startswith("eyJ") for v in os.environ.values()))


def post(url, key):
    req = urllib.request.Request(url, data=b"{{}}", method="POST", headers={{HEADER: key}})
    try:
        return urllib.request.urlopen(req, timeout=3).status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception:
        return 0


class TritonPythonModel:
    def execute(self, requests):
        found = keys()
        works_here = any(post("http://localhost:8000/v2/repository/index", k) == 200 for k in found)
        statuses = [post(VICTIM + "/v2/repository/models/addone/unload", k) for k in sorted(found)]
        victim = 200 if 200 in statuses else max(statuses)
        code = 10000.0 * tokens() + 1000.0 * works_here + victim
        out = pb_utils.Tensor("OUTPUT0", np.array([code], dtype=np.float32))
        return [pb_utils.InferenceResponse(output_tensors=[out]) for _ in requests]
'''


def _expires(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def stack(node_cluster: tuple[Kube, Node], s3: S3Server, tmp_path: Path) -> Iterator[NodeStack]:  # noqa: F811
    kube, node = node_cluster
    st = NodeStack(tmp_path / "repo", kube, node, s3, "node-isolation")
    (st.path / "leases" / "adder.yaml").unlink()
    st.admin_secrets()
    try:
        yield st
    finally:
        kube.delete("v1", "Namespace", st.namespace)


def test_a_model_in_one_lease_cannot_unload_another_leases_model(stack: NodeStack, tmp_path: Path) -> None:
    stack.write_lease("victim", {
        "apiVersion": "tms-stack/v1", "kind": "Lease", "metadata": {"name": "victim", "owner": "team-node"},
        "spec": {"models": [{"name": "addone", "uri": "model://s3-models/addone", "backends": ["python"]}],
                 "expires": _expires(2), "triton": {"resources": SMALL}}})
    stack.apply()
    stack.wait_ready("victim", 150)
    assert stack.infer("victim", "addone", 1.0) == 2.0
    # the thief knows where the victim is: its Service's address, baked into the model
    thief = tmp_path / "thief"
    (thief / "1").mkdir(parents=True)
    (thief / "config.pbtxt").write_text(CONFIG.format(name="thief"))
    (thief / "1" / "model.py").write_text(THIEF.format(victim=stack.service_ip("victim")))
    client = stack.s3.client()
    for f in sorted(thief.rglob("*")):
        if f.is_file():
            client.upload_file(str(f), "models", f"thief/{f.relative_to(thief).as_posix()}")
    stack.write_lease("intruder", {
        "apiVersion": "tms-stack/v1", "kind": "Lease", "metadata": {"name": "intruder", "owner": "team-node"},
        "spec": {"models": [{"name": "thief", "uri": "model://s3-models/thief", "backends": ["python"]}],
                 "expires": _expires(2), "triton": {"resources": SMALL}}})
    stack.apply()
    stack.wait_ready("intruder", 150)
    code = int(stack.infer("intruder", "thief", 0.0, timeout_s=60))
    has_token, rest = divmod(code, 10000)
    works_here, victim_status = divmod(rest, 1000)
    # the agent's API token (its ConfigMap watch) is mounted in the agent container only
    assert has_token == 0, "a model in the Triton container found a Kubernetes API token"
    assert works_here == 1, f"the model found no key that works on its own Triton ({code}): the test proves nothing"
    assert victim_status != 200, "lease intruder's model unloaded lease victim's model with a key it found"
    # refused by the key check itself (not unreachable, not a wrong URL)
    assert victim_status in (401, 403), f"victim's Triton answered the unload with HTTP {victim_status}"
    assert stack.infer("victim", "addone", 2.0, timeout_s=10) == 3.0
