"""Defensive telemetry (issue 13 items 2, 4 and 6): any Prometheus or Triton reply shape is
"unknown", never a crash and never "idle"; label values are escaped in PromQL. Against a real HTTP
endpoint (tests/support/oddprom.py); the real-Prometheus tests stay in test_prune.py."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.oddprom import ODD, SHAPES, OddPrometheus
from tms_stack.models import Lease
from tms_stack.outside.activity import (
    PrometheusActivity,
    TelemetryError,
    TritonActivity,
    _escape,
    _escape_regex,
)

END = datetime(2026, 11, 22, tzinfo=UTC)
START = END - timedelta(minutes=5)


def lease(pool: bool = False, model: str = "m1") -> Lease:
    spec: dict[str, object] = {"models": [{"name": model, "uri": "model://shared-nfs/m1"}],
                               "expires": "2026-11-22T00:00:00Z", "autoRenew": {}}
    if pool:
        spec["pool"] = {"name": "shared-t4-pool", "quota": 1}
    return Lease.model_validate({"apiVersion": "tms-stack/v1", "kind": "Lease",
                                 "metadata": {"name": "busy", "owner": "team-a"}, "spec": spec})


@pytest.fixture(scope="module")
def server() -> OddPrometheus:
    with OddPrometheus() as srv:
        yield srv  # type: ignore[misc]


def test_well_formed_replies(server: OddPrometheus) -> None:
    source = PrometheusActivity(server.url, timeout=5)
    server.shape = "active"
    assert source.active(lease(), START, END) is True
    server.shape = "idle"  # a series whose increase is zero: scraped, served nothing
    assert source.active(lease(), START, END) is False


@pytest.mark.parametrize("shape", ODD)
def test_odd_prometheus_reply_is_unknown(server: OddPrometheus, shape: str) -> None:
    server.shape = shape
    with pytest.raises(TelemetryError):
        PrometheusActivity(server.url, timeout=5).active(lease(), START, END)


def test_no_series_and_nan_are_unknown_not_idle(server: OddPrometheus) -> None:
    for shape in ("empty-result", "nan"):
        server.shape = shape
        with pytest.raises(TelemetryError, match="no series|not a count"):
            PrometheusActivity(server.url, timeout=5).active(lease(), START, END)


def test_timeout_and_refused_are_unknown() -> None:
    with OddPrometheus("active", delay=2.0) as slow:
        with pytest.raises(TelemetryError, match="unreachable: .*Timeout"):
            PrometheusActivity(slow.url, timeout=0.3).active(lease(), START, END)
    with pytest.raises(TelemetryError, match="unreachable"):
        PrometheusActivity("http://127.0.0.1:9", timeout=2).active(lease(), START, END)


# --- PromQL escaping ---------------------------------------------------------------------------

NASTY = ['a"b', "a\\b", "line\nbreak", "tab\tcr\r", "dot.star*", "a|b(c)[d]{e}^$+?"]


@pytest.mark.parametrize("value", NASTY)
def test_label_strings_round_trip(value: str) -> None:
    escaped = _escape(value)
    assert "\n" not in escaped and "\r" not in escaped
    # PromQL double-quoted strings use Go's escapes, which for these characters are JSON's.
    assert json.loads(f'"{escaped}"') == value


@pytest.mark.parametrize("value", NASTY)
def test_regex_matcher_matches_the_name_literally(value: str) -> None:
    pattern = json.loads(f'"{_escape_regex(value)}"')
    assert re.fullmatch(pattern, value)
    assert not re.fullmatch(pattern, value + "x") and not re.fullmatch(pattern, "x" + value)


def test_pooled_query_sent_is_escaped_and_names_the_instance(server: OddPrometheus) -> None:
    server.shape = "active"
    server.queries.clear()
    PrometheusActivity(server.url, timeout=5).active(lease(pool=True, model="chat.v2"), START, END,
                                                     instance='shared-t4-pool-0"}or{x="')
    assert server.queries == [
        'sum(increase(nv_inference_request_success{pool="shared-t4-pool",'
        'instance_name="shared-t4-pool-0\\"}or{x=\\"",model=~"chat\\\\.v2"}[300s]))']


def test_pooled_lease_without_a_placement_is_unknown(server: OddPrometheus) -> None:
    server.queries.clear()
    with pytest.raises(TelemetryError, match="not placed on any instance"):
        PrometheusActivity(server.url, timeout=5).active(lease(pool=True), START, END)
    assert server.queries == []


# --- Triton statistics API ----------------------------------------------------------------------

TRITON_ODD = {
    "list": "[1, 2]", "scalar": "5", "null": "null", "not-json": "<html>",
    "stats-not-list": '{"model_stats": 5}', "stat-not-object": '{"model_stats": [3]}',
    "last-not-number": '{"model_stats": [{"last_inference": "soon"}]}',
}


@pytest.mark.parametrize("shape", sorted(TRITON_ODD))
def test_odd_triton_reply_is_unknown(shape: str) -> None:
    SHAPES["triton-" + shape] = (200, TRITON_ODD[shape].encode())
    with OddPrometheus("triton-" + shape) as srv, pytest.raises(TelemetryError):
        TritonActivity(srv.url, timeout=5).active(lease(), START, END)


def test_triton_http_error_and_refused_are_unknown() -> None:
    with OddPrometheus("http-500") as srv, pytest.raises(TelemetryError, match="HTTP 500"):
        TritonActivity(srv.url, timeout=5).active(lease(), START, END)
    with pytest.raises(TelemetryError, match="unreachable"):
        TritonActivity("http://127.0.0.1:9", timeout=2).active(lease(), START, END)
