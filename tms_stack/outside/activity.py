"""Did a lease serve inference requests in a time window? Asked of Prometheus (the query API over
Triton's `nv_inference_request_success`, as scraped through the stack's PodMonitor) or, without
Prometheus, of Triton itself (statistics API `last_inference`).

Every source answers True (active), False (idle) or raises TelemetryError (unknown): prune never
guesses on an unknown. Each question has one deadline for the whole request (deadline_http), and
`ask_all` asks many at once, with a bound on concurrency and one budget for all of them."""

from __future__ import annotations

import http.client
import json
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote

from tms_stack.models import Lease
from tms_stack.models.diagnostics import OutsideError
from tms_stack.models.pool import k8s_pool_name
from tms_stack.outside import deadline_http


class TelemetryError(OutsideError):
    """Prometheus or Triton could not say whether a lease served requests."""


class ActivitySource(Protocol):
    name: str
    timeout: float

    def active(self, lease: Lease, start: datetime, end: datetime, *, instance: str | None = None,
               deadline: float | None = None) -> bool: ...


@dataclass(frozen=True)
class Question:
    lease: Lease
    start: datetime
    end: datetime
    instance: str | None = None   # a pooled lease: the Kubernetes name of the instance that holds it


def ask_all(source: ActivitySource, questions: list[Question], budget: float, workers: int,
            progress: Callable[[int, int], None] | None = None) -> list[bool | TelemetryError]:
    """Every question's answer (True/False) or its TelemetryError, in order. At most `workers`
    requests at once; each ends by its own timeout or by the budget's end, whichever is first; a
    question not started before the budget ran out is unknown without a request. So the whole call
    returns within `budget` seconds (plus thread start-up), whatever the server does."""
    end_all = time.monotonic() + budget
    done = 0
    lock = threading.Lock()

    def one(q: Question) -> bool | TelemetryError:
        nonlocal done
        try:
            if time.monotonic() >= end_all:
                return TelemetryError(f"not asked: the telemetry budget ({budget:g}s) was spent on other leases")
            deadline = min(time.monotonic() + source.timeout, end_all)
            return source.active(q.lease, q.start, q.end, instance=q.instance, deadline=deadline)
        except TelemetryError as exc:
            return exc
        finally:
            with lock:
                done += 1
                if progress is not None:
                    progress(done, len(questions))

    if not questions:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(questions))),
                            thread_name_prefix="tms-telemetry") as pool:
        return list(pool.map(one, questions))


def _get(what: str, url: str, params: dict[str, str] | None, deadline: float | None, timeout: float) -> deadline_http.Reply:
    try:
        return deadline_http.get(url, params, deadline if deadline is not None else time.monotonic() + timeout)
    except deadline_http.DeadlineExceeded:
        raise TelemetryError(f"{what} is unreachable: no whole answer within the deadline (Timeout)") from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise TelemetryError(f"{what} is unreachable: {exc.__class__.__name__}") from None


def _json(what: str, reply: deadline_http.Reply) -> Any:
    try:
        return json.loads(reply.body)
    except (ValueError, UnicodeDecodeError):
        raise TelemetryError(f"{what} answered something that is not JSON") from None


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

    def selector(self, lease: Lease, instance: str | None = None) -> str:
        if lease.spec.pool is None:
            # Pods of a bespoke lease carry tms-stack.dev/lease, relabelled to `lease` by the PodMonitor.
            return f'lease="{_escape(lease.name)}"'
        # Pool instances host many leases: count the lease's own models on the one instance that
        # holds it (tms-stack.dev/instance, relabelled to `instance_name`). Model names are unique
        # on an instance (placement never co-locates a repeated name), but not across the pool: a
        # neighbour on another instance may serve a model of the same name (issue 21).
        if instance is None:
            raise TelemetryError(f"lease {lease.name} is not placed on any instance of pool "
                                 f"{lease.spec.pool.name} in pools/placement.lock.yaml")

        models = "|".join(_escape_regex(m.name) for m in lease.spec.models)
        return (f'pool="{_escape(k8s_pool_name(lease.spec.pool.name))}",instance_name="{_escape(instance)}",'
                f'model=~"{models}"')

    def active(self, lease: Lease, start: datetime, end: datetime, *, instance: str | None = None,
               deadline: float | None = None) -> bool:
        query = (f"sum(increase(nv_inference_request_success{{{self.selector(lease, instance)}}}"
                 f"[{_seconds(end - start)}]))")
        what = f"Prometheus at {self.url}"
        reply = _get(what, f"{self.url.rstrip('/')}/api/v1/query",
                     {"query": query, "time": f"{end.timestamp():.3f}"}, deadline, self.timeout)
        if reply.status != 200:
            # Prometheus answers 400/422 with an error body for a bad query: say what it said.
            detail = ""
            try:
                body = json.loads(reply.body)
                if isinstance(body, dict) and isinstance(body.get("error"), str):
                    detail = ": " + body["error"][:200]
            except (ValueError, UnicodeDecodeError):
                pass
            raise TelemetryError(f"{what} answered HTTP {reply.status}{detail}")
        number = _sample(_json(what, reply))
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

    def active(self, lease: Lease, start: datetime, end: datetime, *, instance: str | None = None,
               deadline: float | None = None) -> bool:
        # A pooled lease's Service points at the instance that holds it, where its model names are
        # unique: asking through {service} is already per instance.
        base = self.url_template.format(lease=lease.name, service=lease.name, namespace=self.namespace)
        if deadline is None:
            deadline = time.monotonic() + self.timeout  # one deadline for all of the lease's models
        latest = 0
        for model in lease.spec.models:
            r = _get(f"Triton at {base}", f"{base.rstrip('/')}/v2/models/{quote(model.name, safe='')}/stats",
                     None, deadline, self.timeout)
            if r.status == 404:
                continue  # not loaded (any more): it serves nothing
            if r.status != 200:
                raise TelemetryError(f"Triton at {base}: statistics of {model.name} answered HTTP {r.status}")
            try:
                stats = json.loads(r.body).get("model_stats", [])
                for stat in stats:
                    latest = max(latest, int(stat.get("last_inference", 0)))
            except (ValueError, TypeError, AttributeError, OverflowError, UnicodeDecodeError):
                raise TelemetryError(f"Triton at {base}: statistics of {model.name} are not readable") from None
        # last_inference is milliseconds since the epoch (0: never).
        return latest > 0 and start.timestamp() * 1000 <= latest <= end.timestamp() * 1000 + 1000
