"""A real HTTP endpoint on loopback that misbehaves in time, as a broken proxy or an overloaded
Prometheus does: `hang` accepts the connection, reads the request and never answers; `trickle`
answers a well-formed reply one byte per `interval` seconds (headers and body), so that no single
read ever waits longer than a socket timeout. Counts the connections it accepted."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from typing import Any

BODY = json.dumps({"status": "success", "data": {"resultType": "vector",
                                                  "result": [{"metric": {}, "value": [0, "3"]}]}}).encode()


class StallServer:
    def __init__(self, mode: str, interval: float = 1.0):
        assert mode in ("hang", "trickle")
        self.mode, self.interval = mode, interval
        self.stop = threading.Event()
        self.accepted = 0
        self.lock = threading.Lock()
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with owner.lock:
                    owner.accepted += 1
                sock: socket.socket = self.request
                sock.settimeout(5)
                try:
                    sock.recv(65536)  # the request (one GET fits)
                    if owner.mode == "hang":
                        owner.stop.wait()
                        return
                    reply = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             + f"Content-Length: {len(BODY)}\r\n\r\n".encode() + BODY)
                    for i in range(len(reply)):
                        sock.sendall(reply[i:i + 1])
                        if owner.stop.wait(owner.interval):
                            return
                except OSError:
                    return  # the client gave up, as it should

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 128

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> StallServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()
