"""Activity of a pooled lease is measured on the instance that holds it (issue 21): an idle lease
that names its model like a busy neighbour's model (on another instance of the same pool) is idle,
not renewed forever. A real Prometheus scrapes two endpoints that expose Triton's counter as pool
instances do (labels from the PodMonitor's relabelling: pool, instance_name); placement comes from
the real `tms pool lock`."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.support.prometheus import Prometheus, start_prometheus
from tms_stack.commands.prune import decide, placements
from tms_stack.outside.activity import PrometheusActivity
from tms_stack.repo.loader import load_repository

TMS = str(ROOT / ".venv" / "bin" / "tms")


class Counter:
    """/metrics with Triton's success counter for one model, as a pool instance exposes it."""

    def __init__(self, model: str) -> None:
        self.value = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                body = (f'nv_inference_request_success{{model="{model}",version="1"}} {owner.value}\n').encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Prometheus, Counter, Counter]]:
    busy, idle = Counter("chat_small"), Counter("chat_small")
    prom = start_prometheus(tmp_path_factory.mktemp("prom"), [
        (busy.target, {"pool": "shared-t4-pool", "instance_name": "shared-t4-pool-0"}),
        (idle.target, {"pool": "shared-t4-pool", "instance_name": "shared-t4-pool-1"})])
    deadline = time.monotonic() + 60
    while len(prom.query("nv_inference_request_success")) < 2:
        assert time.monotonic() < deadline, "Prometheus never scraped the endpoints"
        time.sleep(0.5)
    time.sleep(2)
    busy.value = 20                                   # the neighbour served 20 requests
    deadline = time.monotonic() + 30
    while not prom.query('nv_inference_request_success{instance_name="shared-t4-pool-0"} > 0'):
        assert time.monotonic() < deadline, "Prometheus never scraped the requests"
        time.sleep(0.5)
    time.sleep(2)
    yield prom, busy, idle
    prom.stop()
    for c in (busy, idle):
        c.server.shutdown()


COPYCAT = """apiVersion: tms-stack/v1
kind: Lease
metadata: {{name: copycat, owner: team-assist}}
spec:
  models: [{{name: chat_small, uri: model://s3-models/chat/small, backends: [python]}}]
  expires: {expires}
  autoRenew: {{}}
  pool: {{name: shared-t4-pool, quota: 2}}
"""


def test_pooled_activity_is_measured_on_the_leases_own_instance(example_repo: Path,
                                                                 prometheus: tuple[Prometheus, Counter, Counter]) -> None:
    prom, _, _ = prometheus
    now = datetime.now(UTC).replace(microsecond=0)
    # Judged now: expired one scrape interval (15 s, the stack's default) + 1 min + 1 s ago.
    expires = f"{now - timedelta(seconds=76):%Y-%m-%dT%H:%M:%SZ}"
    (example_repo / "leases" / "copycat.yaml").write_text(COPYCAT.format(expires=expires))
    small = example_repo / "leases" / "chat-small.yaml"
    small.write_text(small.read_text().replace("2027-02-01T00:00:00Z", expires))
    lock = subprocess.run([TMS, "pool", "lock"], cwd=example_repo, capture_output=True, text=True, timeout=60)
    assert lock.returncode == 0, lock.stdout + lock.stderr
    repo = load_repository(example_repo)
    # The same model name never shares an instance: the copycat sits beside nobody it copies.
    assert placements(repo) == {"chat-embed": "shared-t4-pool-0", "chat-small": "shared-t4-pool-0",
                                "copycat": "shared-t4-pool-1", "ranker": "cpu-inference-pool-0"}
    result = decide(repo, now, PrometheusActivity(prom.url, timeout=10))
    assert [r.lease for r in result.renewed] == ["chat-small"], result.commit_message()
    assert [e[0] for e in result.expired] == ["copycat"], result.commit_message()
    assert not result.unknown
