"""What the two name-move tests watch while a deploy moves a name onto a new lease (the plain
`pulumi up` of test_node_name_move.py and deploy.yml in test_node_day.py): a client that keeps
calling a model through the name, and when the new lease became available and the name moved."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

from tests.e2e.kubeapi import Kube
from tests.e2e.node.node import Node

INSTANCE_LABEL = "tms-stack.dev/instance"


class RequestLoop:
    """Requests through a name from the node's client namespace, one after another, until the
    block ends; every answer is kept with its time."""

    def __init__(self, node: Node, url: str, body: object) -> None:
        self.node, self.url, self.body = node, url, body
        self.results: list[tuple[float, int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            status, text = self.node.client_http("POST", self.url, self.body, timeout=5)
            self.results.append((time.monotonic(), status, text[:200]))

    def __enter__(self) -> RequestLoop:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def failed(self, start: float) -> list[tuple[float, int, str]]:
        """(seconds after `start`, status, body) of every request that did not answer 200."""
        return [(round(t - start, 1), s, text) for t, s, text in self.results if s != 200]

    def assert_none_failed(self, start: float, during: str) -> None:
        failed = self.failed(start)
        assert len(self.results) >= 10, f"too few requests to judge: {len(self.results)}"
        assert not failed, f"{len(failed)} of {len(self.results)} requests failed {during}: {failed[:5]}"


@dataclass
class MoveWatch:
    """When `lease`'s Deployment first had an available replica and when the name's Service first
    selected `lease`; a name that moves before its new lease is available fails at once."""

    kube: Kube
    namespace: str
    name: str
    lease: str
    ready_at: float | None = field(default=None)
    moved_at: float | None = field(default=None)

    def poll(self) -> None:
        dep = self.kube.get("apps/v1", "Deployment", self.lease, self.namespace) or {}
        if self.ready_at is None and (dep.get("status") or {}).get("availableReplicas"):
            self.ready_at = time.monotonic()
        svc = self.kube.get("v1", "Service", self.name, self.namespace) or {"spec": {"selector": {}}}
        if self.moved_at is None and svc["spec"]["selector"].get(INSTANCE_LABEL) == self.lease:
            self.moved_at = time.monotonic()
            assert self.ready_at is not None, f"the name moved before {self.lease}'s Deployment was available"
