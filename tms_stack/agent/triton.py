"""Triton's model-repository API over HTTP, with the restricted-endpoint key.

Plain `requests` calls (one connection per call), so the readiness sampler, the main loop and the
load workers can call Triton from their own threads at once; each call has its own timeout: a load
may take as long as the pod's startupTimeout (issue 11 #7), an index read only a few seconds.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests

from tms_stack.models.diagnostics import OutsideError

REPO_KEY_HEADER = "tms-repo-key"
QUICK = 5.0  # seconds: index, unload, health


class TritonError(OutsideError):
    """Triton refused or could not be reached."""


class TritonControl:
    def __init__(self, url: str, repo_key: str | None, load_timeout: float = 3600, quick: float = QUICK):
        self.base = url if url.startswith(("http://", "https://")) else f"http://{url}"
        self.load_timeout = load_timeout
        self.quick = quick
        self._headers = {REPO_KEY_HEADER: repo_key} if repo_key else {}

    def _post(self, path: str, body: dict[str, Any], timeout: float, what: str) -> Any:
        try:
            r = requests.post(self.base + path, json=body, headers=self._headers, timeout=(min(timeout, 5), timeout))
        except requests.RequestException as exc:
            raise TritonError(f"{what}: {exc.__class__.__name__}") from None
        if r.status_code != 200:
            try:
                message = r.json().get("error", "")
            except ValueError:
                message = r.text[:500]
            raise TritonError(f"{what}: HTTP {r.status_code}: {message}".rstrip(": "))
        return r.json() if r.content else None

    def live(self) -> bool:
        try:
            return requests.get(self.base + "/v2/health/live", timeout=self.quick).status_code == 200
        except requests.RequestException:
            return False

    def index(self) -> list[dict[str, Any]]:
        """Every model Triton knows, with its state (READY, UNAVAILABLE, LOADING, ...)."""
        out = self._post("/v2/repository/index", {}, self.quick, "cannot read Triton's model index")
        return list(out or [])

    def load(self, name: str, config: str | None = None) -> None:
        """Load (or reload) `name`; `config` replaces its config.pbtxt (agent/modelconfig.py)."""
        body: dict[str, Any] = {"parameters": {"config": config}} if config is not None else {}
        self._post(f"/v2/repository/models/{quote(name, safe='')}/load", body, self.load_timeout,
                   f"Triton failed to load {name}")

    def unload(self, name: str) -> None:
        self._post(f"/v2/repository/models/{quote(name, safe='')}/unload",
                   {"parameters": {"unload_dependents": False}}, max(self.quick, 30), f"Triton failed to unload {name}")


