"""The agent's own metrics, in Prometheus text format (scraped by the stack's PodMonitor).

Names are a contract with the PrometheusRule alerts (render/monitoring.py) and docs/agent.md.
Every series carries `lease` and `owner` (issue 25: alerts are routed to the owning team), except
`tms_agent_triton_up` while no lease is desired (there is nobody to route it to). Readiness comes
from the readiness sampler (agent/readiness.py), never from a pass of the loop."""

from __future__ import annotations

import threading
from collections import defaultdict

BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


def _labels(**kv: str) -> str:
    inner = ",".join(f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
                     for k, v in sorted(kv.items()))
    return "{" + inner + "}"


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.owners: dict[str, str] = {}
        self.models: dict[str, list[str]] = {}
        self.model_ready: dict[tuple[str, str], int] = {}
        self.lease_ready: dict[str, int] = {}
        self.lease_expiry: dict[str, float] = {}
        self.failures: dict[tuple[str, str], int] = defaultdict(int)
        self.load_hist: dict[tuple[str, str], list[int]] = {}
        self.load_sum: dict[tuple[str, str], float] = defaultdict(float)
        self.triton_up = 0

    def set_desired(self, leases: dict[str, tuple[str, float, list[str]]]) -> None:
        """lease -> (owner, expiry, models)."""
        with self._lock:
            self.owners = {lease: owner for lease, (owner, _, _) in leases.items()}
            self.models = {lease: list(models) for lease, (_, _, models) in leases.items()}
            self.lease_expiry = {lease: expiry for lease, (_, expiry, _) in leases.items()}
            self.model_ready = {(lease, m): self.model_ready.get((lease, m), 0)
                                for lease, (_, _, models) in leases.items() for m in models}
            self.lease_ready = {lease: self.lease_ready.get(lease, 0) for lease in leases}

    def observe(self, up: bool, ready: set[str]) -> None:
        with self._lock:
            self.triton_up = int(up)
            for (lease, model) in self.model_ready:
                self.model_ready[(lease, model)] = int(up and model in ready)
            for lease in self.lease_ready:
                self.lease_ready[lease] = int(up and all(m in ready for m in self.models.get(lease, [])))

    def load_done(self, lease: str, model: str, seconds: float) -> None:
        with self._lock:
            hist = self.load_hist.setdefault((lease, model), [0] * (len(BUCKETS) + 1))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    hist[i] += 1
            hist[-1] += 1
            self.load_sum[(lease, model)] += seconds

    def failure(self, lease: str, model: str) -> None:
        with self._lock:
            self.failures[(lease, model)] += 1

    def _who(self, lease: str) -> dict[str, str]:
        return {"lease": lease, "owner": self.owners.get(lease, "")}

    def render(self) -> str:
        with self._lock:
            live = set(self.owners)
            out = [
                "# HELP tms_agent_model_ready 1 when the model is READY in Triton.",
                "# TYPE tms_agent_model_ready gauge",
                *(f"tms_agent_model_ready{_labels(**self._who(l), model=m)} {v}"
                  for (l, m), v in sorted(self.model_ready.items())),
                "# HELP tms_agent_lease_ready 1 when every model of the lease is READY.",
                "# TYPE tms_agent_lease_ready gauge",
                *(f"tms_agent_lease_ready{_labels(**self._who(l))} {v}" for l, v in sorted(self.lease_ready.items())),
                "# HELP tms_agent_lease_expiry_timestamp_seconds When the lease expires (unix time).",
                "# TYPE tms_agent_lease_expiry_timestamp_seconds gauge",
                *(f"tms_agent_lease_expiry_timestamp_seconds{_labels(**self._who(l))} {v:.0f}"
                  for l, v in sorted(self.lease_expiry.items())),
                "# HELP tms_agent_model_load_failures_total Failed fetches or loads.",
                "# TYPE tms_agent_model_load_failures_total counter",
                *(f"tms_agent_model_load_failures_total{_labels(**self._who(l), model=m)} {v}"
                  for (l, m), v in sorted(self.failures.items()) if l in live),
                "# HELP tms_agent_model_load_duration_seconds Time to load a model into Triton.",
                "# TYPE tms_agent_model_load_duration_seconds histogram",
            ]
            for (lease, model), hist in sorted(self.load_hist.items()):
                if lease not in live:
                    continue
                who = self._who(lease)
                for bound, count in zip(BUCKETS, hist, strict=False):
                    out.append(f"tms_agent_model_load_duration_seconds_bucket{_labels(**who, model=model, le=str(bound))}"
                               f" {count}")
                out.append(f'tms_agent_model_load_duration_seconds_bucket{_labels(**who, model=model, le="+Inf")} '
                           f"{hist[-1]}")
                out.append(f"tms_agent_model_load_duration_seconds_sum{_labels(**who, model=model)} "
                           f"{self.load_sum[(lease, model)]:.3f}")
                out.append(f"tms_agent_model_load_duration_seconds_count{_labels(**who, model=model)} {hist[-1]}")
            out += ["# HELP tms_agent_triton_up 1 when Triton answers (one series per lease, for routing).",
                    "# TYPE tms_agent_triton_up gauge"]
            out += ([f"tms_agent_triton_up{_labels(**self._who(l))} {self.triton_up}" for l in sorted(live)]
                    or [f"tms_agent_triton_up {self.triton_up}"])
            return "\n".join(out) + "\n"
