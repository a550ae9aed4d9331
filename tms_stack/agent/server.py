"""/healthz, /ready and /metrics."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve(port: int, ready: Callable[[], tuple[bool, dict]], metrics: Callable[[], str],
          host: str = "0.0.0.0") -> ThreadingHTTPServer:  # noqa: S104 - the pod's port
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/healthz":
                self._send(200, "text/plain", "ok\n")
            elif self.path == "/ready":
                ok, detail = ready()
                self._send(200 if ok else 503, "application/json", json.dumps(detail, indent=2) + "\n")
            elif self.path == "/metrics":
                self._send(200, "text/plain; version=0.0.4", metrics())
            else:
                self._send(404, "text/plain", "not found\n")

        def _send(self, code: int, ctype: str, body: str) -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:  # probes every few seconds: keep the log for models
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="agent-http", daemon=True).start()
    return server
