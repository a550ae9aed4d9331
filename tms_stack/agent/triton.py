"""Triton's model-repository API through tritonclient, with the restricted-endpoint key."""

from __future__ import annotations

from typing import Any

REPO_KEY_HEADER = "tms-repo-key"


class TritonError(Exception):
    pass


class TritonControl:
    def __init__(self, url: str, repo_key: str | None, load_timeout: float = 3600):
        import tritonclient.http as httpclient

        # Two clients: a load may take as long as the pod's startupTimeout (issue 11 #7), every
        # other call is quick and must not hang the loop that long.
        self._client = httpclient.InferenceServerClient(url=url, connection_timeout=10, network_timeout=30)
        self._loader = httpclient.InferenceServerClient(url=url, connection_timeout=10,
                                                        network_timeout=load_timeout)
        self.load_timeout = load_timeout
        self._headers = {REPO_KEY_HEADER: repo_key} if repo_key else {}

    def live(self) -> bool:
        try:
            return bool(self._client.is_server_live())
        except Exception:  # noqa: BLE001 - any failure means "not live now"
            return False

    def index(self) -> list[dict[str, Any]]:
        """Every model Triton knows, with its state (READY, UNAVAILABLE, LOADING, ...)."""
        try:
            return list(self._client.get_model_repository_index(headers=self._headers))
        except Exception as exc:  # noqa: BLE001
            raise TritonError(f"cannot read Triton's model index: {_message(exc)}") from None

    def load(self, name: str, config: str | None = None) -> None:
        """Load (or reload) `name`; `config` replaces its config.pbtxt (agent/modelconfig.py)."""
        try:
            self._loader.load_model(name, headers=self._headers, config=config)
        except Exception as exc:  # noqa: BLE001
            raise TritonError(f"Triton failed to load {name}: {_message(exc)}") from None

    def unload(self, name: str) -> None:
        try:
            self._client.unload_model(name, headers=self._headers, unload_dependents=False)
        except Exception as exc:  # noqa: BLE001
            raise TritonError(f"Triton failed to unload {name}: {_message(exc)}") from None


def _message(exc: Exception) -> str:
    text = getattr(exc, "message", None)
    text = text() if callable(text) else text
    return str(text or exc).strip()
