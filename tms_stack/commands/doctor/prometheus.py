"""Prometheus reachability, when the stack's telemetry reads it (auto-renew: docs/lifecycle.md)."""

from __future__ import annotations

import os
from typing import Any

from tms_stack.commands.doctor import Check

TIMEOUT_S = 5


def prometheus_check(settings: Any) -> Check:
    """`vector(1)` through the query API of the URL the prune job would use (env wins, as in prune)."""
    import requests

    telemetry = settings.telemetry if settings is not None else None
    url = os.environ.get("TMS_PROMETHEUS_URL") or (telemetry.prometheusUrl if telemetry else None)
    if not url:
        return Check("prometheus", "query", "skip", "no Prometheus configured (tms-stack:telemetry."
                     "prometheusUrl or TMS_PROMETHEUS_URL); auto-renew cannot read usage")
    try:
        r = requests.get(url.rstrip("/") + "/api/v1/query", params={"query": "vector(1)"}, timeout=TIMEOUT_S)
        ok = r.status_code == 200 and r.json().get("status") == "success"
        why = f"HTTP {r.status_code}"
    except (requests.RequestException, ValueError) as exc:
        ok, why = False, exc.__class__.__name__
    if ok:
        return Check("prometheus", "query", "ok", f"{url} answers queries")
    return Check("prometheus", "query", "fail", f"{url} does not answer a query ({why})",
                 f"curl '{url.rstrip('/')}/api/v1/query?query=vector(1)' from where the prune job runs")
