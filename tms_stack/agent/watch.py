"""The agent's own desired-models ConfigMap, watched through the API server.

The mounted ConfigMap file reaches a running pod only on the kubelet's periodic pod sync (about a
minute plus its cache delay: a pooled lease added to a running instance answered after 79-146 s,
bench/RESULTS.md). A watch sees the change in about a second. The file stays the fallback: the
agent reads it while the watch is not synced (no API access configured, no permission, the API
server unreachable), and this thread never raises into the agent: a failure is logged once per
kind of failure, then retried with backoff.

Access is the pod's own ServiceAccount token, projected into the agent container only, and a Role
allowing get/list/watch on this one ConfigMap by name (render/workload.py, docs/security.md).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tms_stack.models.common import DNS1123
from tms_stack.models.desired import DESIRED_FILE

log = logging.getLogger("tms.agent.watch")
BACKOFF_START, BACKOFF_MAX = 1.0, 60.0
# One watch request: the server ends it after this, and the loop starts the next from the last
# resourceVersion (no event is lost). Short, with a client read timeout a little longer, so a
# connection that died silently (an API server gone without a FIN, a lost NAT entry) is noticed
# within WATCH_SECONDS + READ_SLACK seconds, then read again from scratch.
WATCH_SECONDS, READ_SLACK = 60, 30


@dataclass(frozen=True)
class ApiAccess:
    server: str          # https://host:port
    token_file: Path     # re-read on every request: the kubelet rotates a projected token
    ca_file: Path | None
    namespace: str
    name: str            # the ConfigMap


def access_from_env(name: str | None, api_dir: Path | None, env: dict[str, str] | None = None) -> ApiAccess | None:
    """The pod's API access (KUBERNETES_SERVICE_HOST/PORT, set by the kubelet in every container, and
    the projected token directory); None, meaning the file only, when any part is missing."""
    env = dict(os.environ) if env is None else env
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
    if not name or api_dir is None or not host or not (api_dir / "token").exists():
        return None
    server = env.get("TMS_KUBE_API_SERVER") or (f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}")
    ns_file = api_dir / "namespace"
    namespace = ns_file.read_text().strip() if ns_file.exists() else env.get("TMS_NAMESPACE", "")
    if not DNS1123.fullmatch(namespace) or not DNS1123.fullmatch(name):
        return None
    ca = api_dir / "ca.crt"
    return ApiAccess(server, api_dir / "token", ca if ca.exists() else None, namespace, name)


class ConfigMapWatch:
    """Holds the latest `desired.json` of the ConfigMap while the watch is synced.

    `current()` is None until the first successful read and again after any failure (the caller
    then reads the file); otherwise the data value, which is exactly what the mounted file holds."""

    def __init__(self, access: ApiAccess, on_change: threading.Event | None = None,
                 watch_seconds: int = WATCH_SECONDS):
        self.access = access
        self.watch_seconds = watch_seconds
        self.on_change = on_change
        self._lock = threading.Lock()
        self._raw: bytes | None = None
        self._logged: set[str] = set()
        self._thread: threading.Thread | None = None

    def current(self) -> bytes | None:
        with self._lock:
            return self._raw

    def _set(self, raw: bytes | None) -> None:
        with self._lock:
            changed = raw != self._raw
            self._raw = raw
        if changed and raw is not None and self.on_change is not None:
            self.on_change.set()

    def start(self, stop: threading.Event) -> None:
        self._thread = threading.Thread(target=self.run, args=(stop,), name="configmap-watch", daemon=True)
        self._thread.start()

    # --- the loop -------------------------------------------------------------------------

    def _api(self) -> Any:
        from kubernetes import client

        cfg = client.Configuration()
        cfg.host = self.access.server
        if self.access.ca_file is not None:
            cfg.ssl_ca_cert = str(self.access.ca_file)
        token_file = self.access.token_file

        def refresh(c: Any) -> None:
            c.api_key["authorization"] = "Bearer " + token_file.read_text().strip()

        cfg.refresh_api_key_hook = refresh
        cfg.api_key["authorization"] = ""
        return client.CoreV1Api(client.ApiClient(cfg))

    def run(self, stop: threading.Event) -> None:
        delay = BACKOFF_START
        api = None
        while not stop.is_set():
            try:
                if api is None:
                    api = self._api()
                self._watch(api, stop)
                delay = BACKOFF_START
            except Exception as exc:  # noqa: BLE001 - the watch must never take the agent down
                self._set(None)
                self._failed(exc)
                stop.wait(delay)
                delay = min(delay * 2, BACKOFF_MAX)

    def _failed(self, exc: BaseException) -> None:
        from kubernetes.client.rest import ApiException

        if isinstance(exc, ApiException):
            kind = f"HTTP {exc.status}"
            what = f"HTTP {exc.status} {exc.reason}"
        else:
            kind, what = type(exc).__name__, f"{type(exc).__name__}: {exc}"
        if kind in self._logged:
            log.debug("watch of ConfigMap %s failed again: %s", self.access.name, what)
            return
        self._logged.add(kind)
        log.warning("cannot watch ConfigMap %s/%s through the API server (%s); reading the mounted file "
                    "until it works (retrying with backoff)", self.access.namespace, self.access.name, what)

    def _watch(self, api: Any, stop: threading.Event) -> None:
        """One get (the current data and its resourceVersion), then watches from that version until
        the server says the version is gone (410: get again) or a request fails (raised)."""
        from kubernetes import watch
        from kubernetes.client.rest import ApiException

        cm = api.read_namespaced_config_map(self.access.name, self.access.namespace, _request_timeout=30)
        was = self.current()
        self._take(cm)
        if was is None:
            log.info("watching ConfigMap %s/%s through the API server", self.access.namespace, self.access.name)
            self._logged.clear()
        version = cm.metadata.resource_version
        selector = f"metadata.name={self.access.name}"
        while not stop.is_set():
            w = watch.Watch()
            try:
                for event in w.stream(api.list_namespaced_config_map, self.access.namespace,
                                      field_selector=selector, resource_version=version,
                                      allow_watch_bookmarks=True, timeout_seconds=self.watch_seconds,
                                      _request_timeout=(10, self.watch_seconds + READ_SLACK)):
                    if stop.is_set():
                        return
                    kind, obj = event["type"], event["object"]
                    if kind == "ERROR":
                        status = event.get("raw_object") or {}
                        if status.get("code") == 410:  # too old a version: read it again
                            return
                        raise ApiException(status=status.get("code"), reason=status.get("message"))
                    version = obj.metadata.resource_version or version
                    if kind in ("ADDED", "MODIFIED"):
                        self._take(obj)
                    elif kind == "DELETED":
                        raise RuntimeError(f"ConfigMap {self.access.name} was deleted")
            except ApiException as exc:
                if exc.status == 410:
                    return
                raise
            finally:
                w.stop()

    def _take(self, cm: Any) -> None:
        value = (cm.data or {}).get(DESIRED_FILE)
        if value is None:
            raise RuntimeError(f"ConfigMap {self.access.name} has no {DESIRED_FILE}")
        self._set(value.encode())
