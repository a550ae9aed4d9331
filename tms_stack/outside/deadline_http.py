"""HTTP GET with one deadline for the whole exchange: name lookup, connect, TLS handshake, request,
headers and body. A socket timeout bounds each read, so a server that trickles a byte a second never trips it
(issue 22: 63 s for 2 leases behind a 10 s timeout); here every read may wait only for what is left
of the deadline, so nothing a server does can stretch a request past it.

Only what telemetry needs: GET, http and https, basic auth from the URL, no redirects, no proxy
variables, a bounded body."""

from __future__ import annotations

import base64
import http.client
import io
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

MAX_BODY = 8 * 1024 * 1024


class DeadlineExceeded(TimeoutError):
    pass


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded("deadline passed")
    return left


class _Reader(io.RawIOBase):
    def __init__(self, sock: socket.socket, deadline: float):
        self.sock, self.deadline = sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self.sock.settimeout(_left(self.deadline))
        try:
            return self.sock.recv_into(buffer)
        except TimeoutError:
            raise DeadlineExceeded("deadline passed while reading") from None


class _Socket:
    """What http.client needs of a socket, each operation bounded by the same deadline."""

    def __init__(self, sock: socket.socket, deadline: float):
        self.sock, self.deadline = sock, deadline

    def sendall(self, data: bytes) -> None:
        self.sock.settimeout(_left(self.deadline))
        self.sock.sendall(data)

    def makefile(self, mode: str, *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_Reader(self.sock, self.deadline))

    def settimeout(self, value: float | None) -> None:
        pass  # every operation sets its own from the deadline

    def close(self) -> None:
        pass  # http.client closes the connection before the body is read; `get` closes the socket


def _resolve(host: str, port: int, deadline: float) -> list[tuple]:  # type: ignore[type-arg]
    """getaddrinfo has no timeout of its own (a resolver that does not answer takes its own
    retries): it runs in a daemon thread that is left behind when the deadline passes."""
    box: dict[str, object] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["addrs"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name="tms-resolve", daemon=True).start()
    if not done.wait(_left(deadline)):
        raise DeadlineExceeded("deadline passed while resolving the host name")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["addrs"]  # type: ignore[return-value]


def _connect(host: str, port: int, deadline: float) -> socket.socket:
    last: OSError = OSError(f"{host}: no address")
    for family, kind, proto, _name, address in _resolve(host, port, deadline):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(_left(deadline))
            sock.connect(address)
            return sock
        except TimeoutError:
            sock.close()
            raise DeadlineExceeded("deadline passed while connecting") from None
        except OSError as exc:
            sock.close()
            last = exc
    raise last


def _handshake(sock: ssl.SSLSocket, deadline: float) -> None:
    sock.setblocking(False)
    while True:
        try:
            sock.do_handshake()
            return
        except ssl.SSLWantReadError:
            ready = select.select([sock], [], [], _left(deadline))[0]
        except ssl.SSLWantWriteError:
            ready = select.select([], [sock], [], _left(deadline))[1]
        if not ready:
            raise DeadlineExceeded("deadline passed during the TLS handshake")


def get(url: str, params: dict[str, str] | None, deadline: float, max_body: int = MAX_BODY) -> Reply:
    """GET `url` (with `params` as its query) and read the whole reply by `deadline` (a
    time.monotonic() value). Raises DeadlineExceeded, OSError, http.client.HTTPException or
    ValueError (a URL that is not http(s), a body over `max_body`)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path or "/"
    query = "&".join(q for q in (parts.query, urlencode(params or {})) if q)
    target = f"{path}?{query}" if query else path
    raw = _connect(parts.hostname, port, deadline)
    sock: socket.socket = raw
    try:
        if parts.scheme == "https":
            sock = ssl.create_default_context().wrap_socket(raw, server_hostname=parts.hostname,
                                                            do_handshake_on_connect=False)
            _handshake(sock, deadline)  # type: ignore[arg-type]
        conn = http.client.HTTPConnection(parts.hostname, port)
        conn.sock = _Socket(sock, deadline)  # type: ignore[assignment]
        headers = {"Accept": "application/json", "Connection": "close"}
        if parts.username is not None:
            token = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(token).decode()
        conn.request("GET", target, headers=headers)
        response = conn.getresponse()
        chunks, size = [], 0
        while True:
            chunk = response.read(64 * 1024)
            if not chunk:
                break
            size += len(chunk)
            if size > max_body:
                raise ValueError(f"reply larger than {max_body // 1024 // 1024} MiB")
            chunks.append(chunk)
        return Reply(response.status, b"".join(chunks))
    finally:
        sock.close()
