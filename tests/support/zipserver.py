"""A small HTTP server for model zips: wants an Authorization header on /private/, answers HEAD
and Range requests, and counts the bytes it sent (to prove partial reads)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TOKEN = "Bearer tms-test-token"


class ZipServer(ThreadingHTTPServer):
    bytes_sent = 0


def serve_dir(root: Path) -> tuple[ZipServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def _resolve(self) -> Path | None:
            if self.path.startswith("/private/") and self.headers.get("Authorization") != TOKEN:
                self.send_response(401)
                self.end_headers()
                return None
            path = root / self.path.lstrip("/")
            if not path.is_file():
                self.send_response(404)
                self.end_headers()
                return None
            return path

        def do_HEAD(self) -> None:  # noqa: N802
            if path := self._resolve():
                self.send_response(200)
                self.send_header("Content-Length", str(path.stat().st_size))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()

        def do_GET(self) -> None:  # noqa: N802
            path = self._resolve()
            if path is None:
                return
            data = path.read_bytes()
            wanted = self.headers.get("Range")
            if wanted and wanted.startswith("bytes="):
                start_s, _, end_s = wanted[6:].partition("-")
                start, end = int(start_s), min(int(end_s), len(data) - 1)
                chunk = data[start:end + 1]
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            else:
                chunk = data
                self.send_response(200)
            self.send_header("Content-Length", str(len(chunk)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            self.wfile.write(chunk)
            self.server.bytes_sent += len(chunk)  # type: ignore[attr-defined]

        def log_message(self, *args: object) -> None:
            pass

    server = ZipServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
