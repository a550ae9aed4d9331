"""A Prometheus-compatible HTTP endpoint (`/api/v1/query`, or Triton's `/v2/models/*/stats`) that answers with a chosen reply shape,
odd ones included: what a proxy, a half-broken Prometheus or a lost scrape looks like to prune.
Real HTTP on a real socket (prune's own requests code talks to it); only the body is chosen.
The queries it received are kept, so tests can assert the PromQL that was sent."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


def vector(value: Any) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, value]}]}}


# name -> (HTTP status, body bytes). "active"/"idle" are the well-formed answers.
SHAPES: dict[str, tuple[int, bytes]] = {
    "active": (200, json.dumps(vector("3")).encode()),
    "idle": (200, json.dumps(vector("0")).encode()),
    "scalar": (200, b"5"),
    "no-data": (200, json.dumps({"status": "success"}).encode()),
    "list": (200, json.dumps([vector("3")]).encode()),
    "non-numeric": (200, json.dumps(vector("lots")).encode()),
    "no-value": (200, json.dumps({"status": "success", "data": {"result": [{"metric": {}}]}}).encode()),
    "value-not-pair": (200, json.dumps({"status": "success", "data": {"result": [{"value": 7}]}}).encode()),
    "empty-result": (200, json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}}).encode()),
    "nan": (200, json.dumps(vector("NaN")).encode()),
    "inf": (200, json.dumps(vector("+Inf")).encode()),
    "negative": (200, json.dumps(vector("-1")).encode()),
    "result-not-list": (200, json.dumps({"status": "success", "data": {"result": "x"}}).encode()),
    "data-not-object": (200, json.dumps({"status": "success", "data": [1]}).encode()),
    "series-not-object": (200, json.dumps({"status": "success", "data": {"result": [5]}}).encode()),
    "error-status": (200, json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error"}).encode()),
    "not-json": (200, b"<html>proxy login</html>"),
    "null": (200, b"null"),
    "http-500": (500, b"internal error"),
    "http-404": (404, b"not found"),
    "http-429": (429, b"slow down"),
}
ODD = [s for s in SHAPES if s not in ("active", "idle")]


class OddPrometheus:
    def __init__(self, shape: str = "idle", delay: float = 0.0):
        self.shape = shape
        self.delay = delay
        self.queries: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                url = urlparse(self.path)
                owner.queries.extend(parse_qs(url.query).get("query", []))
                if owner.delay:
                    time.sleep(owner.delay)
                # Any path: the same stub stands in for Triton's statistics API too.
                status, body = SHAPES[owner.shape]
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> OddPrometheus:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
