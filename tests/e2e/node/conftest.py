"""Fixtures for the tests on a real node: a control plane of their own (no kwok nodes) and
one kubelet + containerd node (tests/e2e/node/node.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import _uncaptured
from tests.e2e.kubeapi import Kube
from tests.e2e.node.node import Node
from tests.e2e.node.stack import node_cluster_running


@pytest.fixture(scope="package")
def node_cluster(
    cluster_tools: dict[str, dict], tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[Kube, Node]]:
    with _uncaptured(request):
        # the kubelet rewrites ConfigMap volumes of running pods on its pod sync: every 10 s here
        # instead of the default minute, so a hosted lease's ConfigMap reaches the agent quickly
        # (bench/node_latency.py measures with the default)
        cm = node_cluster_running(tmp_path_factory.mktemp("node-control-plane"), cluster_tools,
                                  sync_frequency="10s")
        kube_node = cm.__enter__()
    try:
        yield kube_node
    finally:
        cm.__exit__(None, None, None)
