"""The agent's watch of its own desired-models ConfigMap (agent/watch.py) against a real
kube-apiserver with RBAC, using the Role, RoleBinding and ServiceAccount `tms render` makes and a
token the API server issues for that ServiceAccount (what the kubelet projects into the agent)."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import NOW, copy_example
from tests.e2e.kubeapi import Kube
from tms_stack.agent.runner import Agent, AgentConfig
from tms_stack.agent.watch import ApiAccess, ConfigMapWatch
from tms_stack.commands.render import render_root
from tms_stack.render import all_objects

INSTANCE, OTHER = "shared-t4-pool-0", "image-classifier"


def _wait(what: str, ok: Callable[[], bool], timeout_s: float = 15) -> float:
    start = time.monotonic()
    while not ok():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"not within {timeout_s}s: {what}")
        time.sleep(0.05)
    return time.monotonic() - start


def _rendered(tmp_path: Path, namespace: str) -> dict[tuple[str, str], dict[str, Any]]:
    objs = {(o["kind"], o["metadata"]["name"]): o
            for o in all_objects(render_root(copy_example(tmp_path / "repo"), "example", NOW))}
    for o in objs.values():
        o["metadata"]["namespace"] = namespace
        for subject in o.get("subjects", []):
            subject["namespace"] = namespace
    return objs


@pytest.fixture
def access(tmp_path: Path, kube: Kube, namespace: str, control_plane) -> tuple[ApiAccess, dict]:  # type: ignore[no-untyped-def]
    objs = _rendered(tmp_path, namespace)
    for name in (INSTANCE, OTHER):
        for kind in ("ServiceAccount", "ConfigMap", "Role", "RoleBinding"):
            kube.apply(objs[(kind, name)])
    token = kube.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{INSTANCE}/token",
                         json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                               "spec": {"expirationSeconds": 3600}}).json()["status"]["token"]
    api_dir = tmp_path / "kube-api"
    api_dir.mkdir()
    (api_dir / "token").write_text(token)
    (api_dir / "namespace").write_text(namespace)
    shutil.copy(control_plane.workdir / "pki" / "ca.crt", api_dir / "ca.crt")
    return ApiAccess(control_plane.server, api_dir / "token", api_dir / "ca.crt", namespace, INSTANCE), objs


def test_the_token_reads_only_its_own_configmap(access: tuple[ApiAccess, dict]) -> None:
    acc, _ = access
    s = requests.Session()
    s.trust_env = False  # a session-level `verify` loses to REQUESTS_CA_BUNDLE otherwise
    s.verify = str(acc.ca_file)
    s.headers["Authorization"] = f"Bearer {acc.token_file.read_text()}"
    base = f"{acc.server}/api/v1/namespaces/{acc.namespace}"
    assert s.get(f"{base}/configmaps/{INSTANCE}").status_code == 200
    assert s.get(f"{base}/configmaps", params={"fieldSelector": f"metadata.name={INSTANCE}"}).status_code == 200
    for denied in (s.get(f"{base}/configmaps/{OTHER}"), s.get(f"{base}/configmaps"),
                   s.get(f"{base}/secrets"), s.get(f"{base}/pods"),
                   s.patch(f"{base}/configmaps/{INSTANCE}", json={"data": {}},
                           headers={"Content-Type": "application/merge-patch+json"})):
        assert denied.status_code == 403, (denied.request.method, denied.url, denied.status_code)


def test_a_change_reaches_the_agent_through_the_watch_and_the_file_is_the_fallback(
        tmp_path: Path, kube: Kube, access: tuple[ApiAccess, dict]) -> None:
    acc, objs = access
    cm = objs[("ConfigMap", INSTANCE)]
    full = cm["data"]["desired.json"]
    doc = json.loads(full)
    assert [lease["name"] for lease in doc["leases"]] == ["chat-embed", "chat-small"]

    def variant(leases: list[str]) -> str:
        return json.dumps({**doc, "leases": [l for l in doc["leases"] if l["name"] in leases]}) + "\n"

    # The mounted file lags behind (the kubelet refreshes it about a minute later).
    desired_file = tmp_path / "desired.json"
    desired_file.write_text(full)
    stop = threading.Event()
    # Watch requests of 1 s: the edits below span several renewals (each from the last version seen).
    watch = ConfigMapWatch(acc, watch_seconds=1)
    agent = Agent(AgentConfig(desired_file, tmp_path / "models"), triton=object(), watch=watch)  # type: ignore[arg-type]
    watch.start(stop)
    try:
        _wait("the watch's first read", lambda: watch.current() == full.encode())
        assert agent.read_desired() and agent.desired is not None
        kube.apply({**cm, "data": {"desired.json": variant(["chat-small"])}})
        took = _wait("the agent sees the edited ConfigMap", lambda: agent.read_desired())
        assert [l.name for l in agent.desired.leases] == ["chat-small"]
        assert took < 5, took
        # Several edits in a row, some between two watch requests: each is seen, in order.
        for leases in (["chat-embed"], ["chat-embed", "chat-small"], []):
            time.sleep(1.5)
            kube.apply({**cm, "data": {"desired.json": variant(leases)}})
            _wait(f"leases {leases}", lambda: agent.read_desired())
            assert [l.name for l in agent.desired.leases] == leases
        # An invalid document through the API is refused; the last good one stays.
        kube.apply({**cm, "data": {"desired.json": '{"instance": "x", "leases": "nope"}'}})
        _wait("the invalid document arrives", lambda: watch.current() == b'{"instance": "x", "leases": "nope"}')
        assert not agent.read_desired() and agent.desired.leases == []
        kube.apply({**cm, "data": {"desired.json": variant(["chat-small"])}})
        _wait("a good document again", lambda: agent.read_desired())

        # The ConfigMap deleted: the watch stops being synced; the agent keeps what it has and does
        # not apply the (older, unchanged) file over it ...
        kube.delete("v1", "ConfigMap", INSTANCE, acc.namespace)
        _wait("the watch gives up its copy", lambda: watch.current() is None)
        assert not agent.read_desired()
        assert [l.name for l in agent.desired.leases] == ["chat-small"]
        # ... until the file changes.
        desired_file.write_text(variant(["chat-embed"]))
        assert agent.read_desired()
        assert [l.name for l in agent.desired.leases] == ["chat-embed"]
        # Recreated: the watch picks it up again after its backoff.
        kube.apply({**cm, "data": {"desired.json": variant([])}})
        _wait("the watch resyncs", lambda: agent.read_desired(), timeout_s=30)
        assert agent.desired.leases == []
    finally:
        stop.set()


def test_a_forbidden_watch_logs_once_and_the_file_is_used(
        tmp_path: Path, access: tuple[ApiAccess, dict], caplog: pytest.LogCaptureFixture) -> None:
    acc, objs = access
    other = ApiAccess(acc.server, acc.token_file, acc.ca_file, acc.namespace, OTHER)  # not its ConfigMap
    desired_file = tmp_path / "desired.json"
    desired_file.write_text(objs[("ConfigMap", OTHER)]["data"]["desired.json"])
    stop = threading.Event()
    watch = ConfigMapWatch(other)
    agent = Agent(AgentConfig(desired_file, tmp_path / "models"), triton=object(), watch=watch)  # type: ignore[arg-type]
    caplog.set_level(logging.DEBUG, logger="tms.agent")
    watch.start(stop)
    try:
        assert agent.read_desired() and agent.desired is not None  # the file, at once
        _wait("two failed tries", lambda: sum("failed again" in r.getMessage() or "cannot watch" in r.getMessage()
                                              for r in caplog.records) >= 2, timeout_s=20)
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1 and "HTTP 403" in warnings[0] and "reading the mounted file" in warnings[0], warnings
        assert watch.current() is None
        assert [l.name for l in agent.desired.leases] == ["image-classifier"]
    finally:
        stop.set()
