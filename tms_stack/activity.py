"""Did a lease serve inference requests in a time window? Asked of Prometheus (the query API over
Triton's `nv_inference_request_success`, as scraped through the stack's PodMonitor) or, without
Prometheus, of Triton itself (statistics API `last_inference`).

Every source answers True (active), False (idle) or raises TelemetryError (unknown): prune never
guesses on an unknown."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from urllib.parse import quote

import requests

from tms_stack.models import Lease


class TelemetryError(Exception):
    pass


class ActivitySource(Protocol):
    name: str

    def active(self, lease: Lease, start: datetime, end: datetime) -> bool: ...


def _seconds(delta: timedelta) -> str:
    return f"{max(int(delta.total_seconds()), 1)}s"


def _escape(value: str) -> str:
    """A PromQL double-quoted string: backslash, quote and line breaks escaped."""
    return (value.replace("\\", "\\\\").replace('"', '\\"')
            .replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t"))


_RE2_META = set("\\.+*?()|[]{}^$")


def _escape_regex(value: str) -> str:
    """A literal inside a `=~` matcher (RE2), then as a PromQL string."""
    return _escape("".join("\\" + c if c in _RE2_META else c for c in value))


def _sample(body: object) -> float | None:
    """The value of an instant-vector reply, None when there is no series; TelemetryError for any
    shape that is not a well-formed reply (a scalar, no `data`, a list, no `value`, non-numeric)."""
    if not isinstance(body, dict):
        raise TelemetryError(f"Prometheus answered {type(body).__name__}, not an object")
    if body.get("status") != "success":
        raise TelemetryError(f"Prometheus query failed: {str(body.get('error', 'no status'))[:200]}")
    data = body.get("data")
    results = data.get("result") if isinstance(data, dict) else None
    if not isinstance(results, list):
        raise TelemetryError("Prometheus reply has no data.result list")
    if not results:
        return None
    first = results[0]
    value = first.get("value") if isinstance(first, dict) else None
    if not isinstance(value, list) or len(value) != 2:
        raise TelemetryError("Prometheus series has no [time, value] pair")
    try:
        number = float(value[1])
    except (TypeError, ValueError):
        raise TelemetryError(f"Prometheus value {str(value[1])[:40]!r} is not a number") from None
    if math.isnan(number) or math.isinf(number) or number < 0:
        raise TelemetryError(f"Prometheus value {number} is not a count")
    return number


@dataclass
class PrometheusActivity:
    url: str
    timeout: float = 10.0
    name: str = "prometheus"

    def selector(self, lease: Lease) -> str:
        if lease.spec.pool is None:
            # Pods of a bespoke lease carry tms-stack.dev/lease, relabelled to `lease` by the PodMonitor.
            return f'lease="{_escape(lease.name)}"'
        # Pool instances host many leases: count the lease's own models on its pool's pods.
        from tms_stack.models.pool import k8s_pool_name

        models = "|".join(_escape_regex(m.name) for m in lease.spec.models)
        return f'pool="{k8s_pool_name(lease.spec.pool.name)}",model=~"{models}"'

    def active(self, lease: Lease, start: datetime, end: datetime) -> bool:
        query = f"sum(increase(nv_inference_request_success{{{self.selector(lease)}}}[{_seconds(end - start)}]))"
        try:
            response = requests.get(f"{self.url.rstrip('/')}/api/v1/query",
                                    params={"query": query, "time": f"{end.timestamp():.3f}"}, timeout=self.timeout)
            response.raise_for_status()
            body = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise TelemetryError(f"Prometheus at {self.url} is unreachable: {exc.__class__.__name__}") from None
        number = _sample(body)
        # No series at all: scrapes may simply have been lost, so it is unknown, never idle. A series
        # whose increase is zero was scraped and served nothing: idle.
        if number is None:
            raise TelemetryError("Prometheus has no series for this lease in the window")
        return number > 0


@dataclass
class TritonActivity:
    """`url_template` formats with {lease}, {service} and {namespace}, e.g.
    `http://{service}.{namespace}.svc:8000` in a cluster, or a fixed URL in tests."""

    url_template: str
    namespace: str = "default"
    timeout: float = 10.0
    name: str = "triton"

    def active(self, lease: Lease, start: datetime, end: datetime) -> bool:
        base = self.url_template.format(lease=lease.name, service=lease.name, namespace=self.namespace)
        latest = 0
        for model in lease.spec.models:
            try:
                r = requests.get(f"{base.rstrip('/')}/v2/models/{quote(model.name, safe='')}/stats",
                                 timeout=self.timeout)
            except requests.RequestException as exc:
                raise TelemetryError(f"Triton at {base} is unreachable: {exc.__class__.__name__}") from None
            if r.status_code == 404:
                continue  # not loaded (any more): it serves nothing
            if r.status_code != 200:
                raise TelemetryError(f"Triton at {base}: statistics of {model.name} answered HTTP {r.status_code}")
            try:
                stats = r.json().get("model_stats", [])
                for stat in stats:
                    latest = max(latest, int(stat.get("last_inference", 0)))
            except (ValueError, TypeError, AttributeError, OverflowError):
                raise TelemetryError(f"Triton at {base}: statistics of {model.name} are not readable") from None
        # last_inference is milliseconds since the epoch (0: never).
        return latest > 0 and start.timestamp() * 1000 <= latest <= end.timestamp() * 1000 + 1000
