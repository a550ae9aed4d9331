"""Fixtures for the tests on a real node: a control plane of their own (no kwok nodes) and
one kubelet + containerd node (tests/e2e/node/node.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import ADMIN_TOKEN, ControlPlane, _uncaptured
from tests.e2e.kubeapi import Kube
from tests.e2e.node.node import Node


@pytest.fixture(scope="package")
def node_cluster(
    cluster_tools: dict[str, dict], tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[Kube, Node]]:
    cp = ControlPlane(tmp_path_factory.mktemp("node-control-plane"), cluster_tools)
    node = Node(cp.kubeconfig)
    try:
        cp.start()
        kube = Kube(cp.server, ADMIN_TOKEN, str(cp.workdir / "pki" / "ca.crt"))
        with _uncaptured(request):
            node.start(images=[])
        deadline = time.monotonic() + 90
        while True:
            n = kube.get("v1", "Node", node.name)
            conds = {c["type"]: c["status"] for c in ((n or {}).get("status") or {}).get("conditions", [])}
            if conds.get("Ready") == "True":
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"node {node.name} not Ready after 90s: {conds}\n{node.log_tail('kubelet')}")
            time.sleep(0.5)
        node.start_proxy()
        yield kube, node
    finally:
        node.stop()
        cp.stop()
