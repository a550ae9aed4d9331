"""`tms lease status`: the lease's State, readiness and events, as TMS reported them.

States are TMS's names: Pending (declared, its Triton not ready yet), Valid (its Triton is ready),
Invalid (the rollout failed), Expired (past `expires`: the prune job removes it), Released (the
file was deleted; found in git history). The cluster is read through the official `kubernetes`
client (kubeconfig or in-cluster, as kubectl does), with short timeouts; where no cluster is
reachable, the state comes from the files alone and says so.

`assess` is pure (cluster objects in, status out); `read_cluster` is the only I/O.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tms_stack.models.diagnostics import OutsideError
from tms_stack.outside.neterrors import kubeconfig_problem, network_reason, quiet_insecure_warning

TIMEOUT_S = 5
AGENT_PORT = 8080  # render/workload.py AGENT


@dataclass
class Event:
    type: str
    source: str
    when: datetime | None
    message: str
    object: str


@dataclass
class ClusterView:
    """What the cluster says about the Deployment serving a lease."""

    deployment: dict[str, Any] | None
    events: list[Event] = field(default_factory=list)
    # From the agent's /metrics (through the API server's pod proxy), when it answered:
    # model -> READY, and failed fetches/loads, for this lease.
    models: dict[str, bool] | None = None
    failures: int = 0
    agent_note: str | None = None
    # Why the agent gave up on this lease last (its /ready body): a pool instance stays Ready while
    # one of its leases fails (issue 11 #4), so this is where that lease's owner reads the reason.
    failure: str | None = None


_SAMPLE = re.compile(r'^(tms_agent_model_ready|tms_agent_model_load_failures_total)\{([^}]*)\}\s+(\S+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def agent_readiness(metrics: str, lease: str) -> tuple[dict[str, bool], int]:
    """This lease's models' readiness and load failures from the agent's Prometheus text."""
    models: dict[str, bool] = {}
    failures = 0
    for line in metrics.splitlines():
        m = _SAMPLE.match(line.strip())
        if not m:
            continue
        labels = {k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in _LABEL.findall(m.group(2))}
        if labels.get("lease") != lease:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        if m.group(1) == "tms_agent_model_ready":
            models[labels.get("model", "")] = value == 1
        else:
            failures += int(value)
    return models, failures


MAX_REASON = 400


def agent_failure(ready_body: str, lease: str) -> str | None:
    """This lease's failure reason from the agent's `/ready` JSON (`{"failed": {lease: reason}}`),
    made printable (control characters dropped, length capped): it quotes Triton and source errors."""
    import json

    try:
        detail = json.loads(ready_body)
    except (ValueError, TypeError):
        return None
    failed = detail.get("failed") if isinstance(detail, dict) else None
    reason = failed.get(lease) if isinstance(failed, dict) else None
    if not isinstance(reason, str) or not reason.strip():
        return None
    text = " ".join("".join(c if c.isprintable() else " " for c in reason).split())
    return text if len(text) <= MAX_REASON else text[:MAX_REASON - 1] + "…"


@dataclass
class LeaseStatus:
    name: str
    state: str
    expires: datetime | None
    triton: str | None            # Service DNS name clients use
    image: str | None
    readied: datetime | None
    models: list[str]
    events: list[Event]
    note: str | None = None       # why the cluster was not consulted, or what is missing

    def to_json(self) -> dict[str, Any]:
        def ts(t: datetime | None) -> str | None:
            return f"{t:%Y-%m-%dT%H:%M:%SZ}" if t else None

        return {"lease": self.name, "state": self.state, "expires": ts(self.expires), "triton": self.triton,
                "image": self.image, "readied": ts(self.readied), "models": self.models,
                "events": [{"type": e.type, "source": e.source, "time": ts(e.when), "object": e.object,
                            "message": e.message} for e in self.events],
                "note": self.note}


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def _condition(deployment: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (deployment.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond  # type: ignore[no-any-return]
    return None


def assess(expires: datetime, now: datetime, view: ClusterView | None) -> tuple[str, datetime | None, str | None]:
    """(state, readied, note) from the lease's expiry and what the cluster shows."""
    if now >= expires:
        return "Expired", None, None
    if view is None:
        # No cluster to ask: say so, as `tms lease list` does, instead of guessing Pending.
        return "Unknown", None, None
    dep = view.deployment
    if dep is None:
        return "Pending", None, "no Deployment in the cluster yet: the change is not deployed (merge it)"
    progressing = _condition(dep, "Progressing")
    if progressing and progressing.get("status") == "False" and progressing.get("reason") == "ProgressDeadlineExceeded":
        return "Invalid", None, f"rollout failed: {progressing.get('message', '')}".strip()
    available = _condition(dep, "Available")
    ready = int((dep.get("status") or {}).get("readyReplicas") or 0)
    if not (ready >= 1 and available and available.get("status") == "True"):
        return "Pending", None, None
    readied = _time(available.get("lastTransitionTime"))
    if view.models:  # the agent said, per model: TMS's "all or nothing" lease
        waiting = sorted(m for m, ok in view.models.items() if not ok)
        if not waiting:
            return "Valid", readied, None
        if view.failures:
            why = f": {view.failure}" if view.failure else ""
            return "Invalid", None, (f"not loaded: {', '.join(waiting)} ({view.failures} failed fetch/load "
                                     f"attempt(s)){why}")
        return "Pending", None, f"loading: {', '.join(waiting)}"
    return "Valid", readied, view.agent_note


def removal(root: Path, name: str) -> tuple[datetime, str] | None:
    """(when, commit message) of the commit that last deleted leases/<name>.yaml (or
    leases/<owner>/<name>.yaml): the message says
    why it went (prune's names the leases it removed for expiry; commands/prune.py)."""
    try:
        out = subprocess.run(["git", "log", "-1", "--diff-filter=D", "--format=%cI%x00%B", "--",
                              f"leases/{name}.yaml", f":(glob)leases/*/{name}.yaml"],
                             cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0 or "\0" not in out.stdout:
        return None
    stamp, _, message = out.stdout.partition("\0")
    when = _time(stamp.strip())
    return (when, message) if when is not None else None


# ---- I/O: the cluster ---------------------------------------------------------------------

class ClusterUnreachable(OutsideError):
    """The Kubernetes API could not be reached or refused the credentials."""


def _api_client(kubeconfig: str | None, context: str | None) -> Any:
    import yaml
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    try:
        if kubeconfig or context or not _in_cluster():
            api = config.new_client_from_config(config_file=kubeconfig, context=context)
        else:
            config.load_incluster_config()
            api = client.ApiClient()
    except (ConfigException, OSError, TypeError, ValueError, KeyError, AttributeError, yaml.YAMLError) as exc:
        raise ClusterUnreachable(f"no usable kubeconfig: {kubeconfig_problem(exc, kubeconfig)}") from None
    if not api.configuration.verify_ssl:
        quiet_insecure_warning()
    return api


def _in_cluster() -> bool:
    import os

    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def read_deployments(namespace: str, kubeconfig: str | None = None, context: str | None = None) -> dict[str, Any]:
    """Every tms-stack Deployment of the namespace, by name, in one request (for `lease list`)."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import HTTPError

    api = _api_client(kubeconfig, context)
    try:
        items = client.AppsV1Api(api).list_namespaced_deployment(
            namespace, label_selector="app.kubernetes.io/managed-by=tms-stack", _request_timeout=TIMEOUT_S).items
    except ApiException as exc:
        raise ClusterUnreachable(f"the cluster refused: HTTP {exc.status} {exc.reason}") from None
    except (HTTPError, OSError) as exc:
        raise ClusterUnreachable(f"cannot reach the cluster at {api.configuration.host} "
                                 f"({network_reason(exc)})") from None
    return {d.metadata.name: api.sanitize_for_serialization(d) for d in items}


def _agent(core: Any, namespace: str, pod: str, lease: str, view: ClusterView) -> None:
    """Per-model readiness from the agent's /metrics, through the API server's pod proxy (needs
    `pods/proxy` get; where it is refused or the pod does not answer, readiness stays the pod's)."""
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import HTTPError

    try:
        text = core.connect_get_namespaced_pod_proxy_with_path(f"{pod}:{AGENT_PORT}", namespace, "metrics",
                                                               _request_timeout=TIMEOUT_S)
    except (ApiException, HTTPError, OSError) as exc:
        status = getattr(exc, "status", None)
        view.agent_note = (f"per-model readiness unknown: the agent of pod {pod} did not answer through the "
                           f"API server proxy ({f'HTTP {status}' if status else network_reason(exc)})")
        return
    models, failures = agent_readiness(str(text), lease)
    view.models, view.failures = models or None, failures
    if failures:
        try:
            body = core.connect_get_namespaced_pod_proxy_with_path(f"{pod}:{AGENT_PORT}", namespace, "ready",
                                                                   _request_timeout=TIMEOUT_S)
        except ApiException as exc:  # 503 while a bespoke lease's model is not READY: the body still says why
            body = exc.body
        except (HTTPError, OSError):
            body = None
        view.failure = agent_failure(body.decode(errors="replace") if isinstance(body, bytes) else str(body), lease)


def read_cluster(deployment: str, namespace: str, kubeconfig: str | None = None,
                 context: str | None = None, lease: str | None = None) -> ClusterView:
    """The Deployment and the events of it, its ReplicaSets and pods (newest last), and the
    lease's per-model readiness from one ready pod's agent."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import HTTPError

    api = _api_client(kubeconfig, context)
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    try:
        try:
            dep = api.sanitize_for_serialization(
                apps.read_namespaced_deployment(deployment, namespace, _request_timeout=TIMEOUT_S))
        except ApiException as exc:
            if exc.status != 404:
                raise
            return ClusterView(None)
        selector = ",".join(f"{k}={v}" for k, v in (dep["spec"]["selector"].get("matchLabels") or {}).items())
        names = {deployment}
        for rs in apps.list_namespaced_replica_set(namespace, label_selector=selector,
                                                   _request_timeout=TIMEOUT_S).items:
            names.add(rs.metadata.name)
        pods = core.list_namespaced_pod(namespace, label_selector=selector, _request_timeout=TIMEOUT_S).items
        ready_pods = []
        for pod in pods:
            names.add(pod.metadata.name)
            if any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []) if pod.status):
                ready_pods.append(pod.metadata.name)
        events = []
        for ev in core.list_namespaced_event(namespace, _request_timeout=TIMEOUT_S).items:
            obj = ev.involved_object
            if obj is None or obj.name not in names:
                continue
            when = _time(ev.last_timestamp or ev.event_time or ev.first_timestamp
                         or (ev.metadata.creation_timestamp if ev.metadata else None))
            source = (ev.source.component if ev.source and ev.source.component else ev.reporting_component) or ""
            events.append(Event(ev.type or "Normal", source, when, (ev.message or "").strip(),
                                f"{obj.kind}/{obj.name}"))
        events.sort(key=lambda e: (e.when or datetime.min.replace(tzinfo=UTC), e.object))
        view = ClusterView(dep, events)
        if lease and ready_pods:
            _agent(core, namespace, sorted(ready_pods)[0], lease, view)
        return view
    except ApiException as exc:
        raise ClusterUnreachable(f"the cluster refused: HTTP {exc.status} {exc.reason}") from None
    except (HTTPError, OSError) as exc:
        raise ClusterUnreachable(f"cannot reach the cluster at {api.configuration.host} "
                                 f"({network_reason(exc)})") from None
