"""Prune has a total time bound (issue 22): one deadline per request that a server trickling a
byte a second cannot stretch, questions asked concurrently, and one budget for all of them after
which the leases not yet asked are unknown (kept until unknownGrace, never deleted as idle).
Against real HTTP servers on loopback (tests/support/stallserver.py) and the real `tms prune`.
The bounds asserted are the behaviour under test (without them these runs take 10 s per lease or
a minute per trickled reply), with generous slack for a loaded machine; speeds are in bench/."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.support.stallserver import BODY, StallServer
from tms_stack.models import Lease
from tms_stack.outside import deadline_http
from tms_stack.outside.activity import PrometheusActivity, Question, TelemetryError, ask_all

TMS = str(ROOT / ".venv" / "bin" / "tms")
END = datetime(2026, 11, 22, tzinfo=UTC)
NOW = "2026-11-22T06:00:00Z"


def lease(name: str = "busy") -> Lease:
    return Lease.model_validate({"apiVersion": "tms-stack/v1", "kind": "Lease",
                                 "metadata": {"name": name, "owner": "team-a"},
                                 "spec": {"models": [{"name": "m1", "uri": "model://shared-nfs/m1"}],
                                          "expires": "2026-11-22T00:00:00Z", "autoRenew": {}}})


def test_a_trickled_reply_cannot_stretch_the_deadline() -> None:
    # The reply is ~150 bytes at one byte per 0.2 s: ~30 s if each read only had a socket timeout.
    with StallServer("trickle", interval=0.2) as srv:
        t0 = time.monotonic()
        with pytest.raises(deadline_http.DeadlineExceeded):
            deadline_http.get(srv.url + "/api/v1/query", {"query": "up"}, time.monotonic() + 1.5)
        assert time.monotonic() - t0 < 5
        t0 = time.monotonic()
        with pytest.raises(TelemetryError, match="unreachable: no whole answer within the deadline"):
            PrometheusActivity(srv.url, timeout=1.5).active(lease(), END - timedelta(minutes=5), END)
        assert time.monotonic() - t0 < 5


def test_a_fast_trickle_within_the_deadline_is_read_whole() -> None:
    with StallServer("trickle", interval=0.001) as srv:
        reply = deadline_http.get(srv.url + "/api/v1/query", {"query": "up"}, time.monotonic() + 30)
    assert reply.status == 200 and reply.body == BODY


def test_a_server_that_never_answers_costs_one_deadline() -> None:
    with StallServer("hang") as srv:
        t0 = time.monotonic()
        with pytest.raises(deadline_http.DeadlineExceeded):
            deadline_http.get(srv.url, None, time.monotonic() + 1.0)
        assert time.monotonic() - t0 < 4


def test_a_tls_handshake_that_never_completes_costs_one_deadline() -> None:
    with StallServer("hang") as srv:
        t0 = time.monotonic()
        with pytest.raises(deadline_http.DeadlineExceeded, match="TLS handshake"):
            deadline_http.get(srv.url.replace("http://", "https://"), None, time.monotonic() + 1.0)
        assert time.monotonic() - t0 < 4


def test_a_name_lookup_that_hangs_costs_one_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Injected fault: a resolver that does not answer (getaddrinfo has no timeout of its own)."""
    import socket

    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: time.sleep(30))
    t0 = time.monotonic()
    with pytest.raises(deadline_http.DeadlineExceeded, match="resolving"):
        deadline_http.get("http://prometheus.invalid:9090/api/v1/query", None, time.monotonic() + 1.0)
    assert time.monotonic() - t0 < 4


def test_questions_run_concurrently_and_stop_at_the_budget() -> None:
    """40 questions, 4 at a time, 10 s each, budget 2 s: the old one-at-a-time loop took 400 s."""
    with StallServer("hang") as srv:
        source = PrometheusActivity(srv.url, timeout=10)
        questions = [Question(lease(f"l{i}"), END - timedelta(minutes=5), END) for i in range(40)]
        seen: list[tuple[int, int]] = []
        t0 = time.monotonic()
        answers = ask_all(source, questions, budget=2.0, workers=4, progress=lambda d, n: seen.append((d, n)))
        took = time.monotonic() - t0
        assert took < 8, took
        assert len(answers) == 40 and all(isinstance(a, TelemetryError) for a in answers)
        asked = [a for a in answers if "within the deadline" in str(a)]
        skipped = [a for a in answers if "not asked: the telemetry budget (2s)" in str(a)]
        assert len(asked) == 4 and len(skipped) == 36         # 4 in flight, then the budget was spent
        assert srv.accepted == 4
        assert seen[-1] == (40, 40)


# --- the whole command --------------------------------------------------------------------------

AUTO = """apiVersion: tms-stack/v1
kind: Lease
metadata: {{name: {name}, owner: team-search}}
spec:
  models: [{{name: {name}_m, uri: "model://shared-nfs/{name}"}}]
  expires: 2026-11-22T05:00:00Z
  autoRenew: {{activityWindow: 10m, renewalDuration: 4h}}
"""


@pytest.mark.parametrize("mode", ["hang", "trickle"])
def test_prune_finishes_within_its_budget_and_deletes_no_unknown_lease(example_repo: Path, mode: str) -> None:
    names = [f"auto-{i:02d}" for i in range(30)]
    for name in names:
        (example_repo / "leases" / f"{name}.yaml").write_text(AUTO.format(name=name))
    before = {n: (example_repo / "leases" / f"{n}.yaml").read_text() for n in names}
    with StallServer(mode, interval=1.0) as srv:
        t0 = time.monotonic()
        out = subprocess.run([TMS, "prune", "--now", NOW, "--prometheus-url", srv.url, "--telemetry-budget", "3s",
                              "--telemetry-concurrency", "4", "-o", "json"], cwd=example_repo,
                             capture_output=True, text=True, timeout=120)
        took = time.monotonic() - t0
    assert out.returncode == 0, out.stderr
    assert took < 30, took          # 3 s of questions + loading and checking; was 30 x 10 s
    import json
    report = json.loads(out.stdout)
    unknown = {u["lease"]: u["why"] for u in report["unknown"]}
    assert set(names) <= set(unknown)                     # within the grace: kept, never idle
    assert sum("not asked: the telemetry budget (3s)" in w for w in unknown.values()) >= 20
    assert all(n not in {d["lease"] for d in report["deleted"]} for n in names)
    assert {n: (example_repo / "leases" / f"{n}.yaml").read_text() for n in names} == before
    assert "activity of 30/30 leases asked" in out.stderr


def test_prune_budget_must_be_a_duration(example_repo: Path) -> None:
    out = subprocess.run([TMS, "prune", "--now", NOW, "--telemetry-budget", "soon"], cwd=example_repo,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--telemetry-budget" in out.stderr and "Traceback" not in out.stderr
