"""A small HTTP(S) server for model zips: wants an Authorization header on /private/, answers HEAD
and Range requests, and counts the bytes it sent (to prove partial reads). With `tls=True` it serves
HTTPS with a throwaway self-signed certificate (`server.ca_file`); `server.redirects` maps a path to
a Location it answers 302 with; `server.authorizations` records (path, Authorization) received;
`server.trickle` maps a path to seconds between the bytes it sends (a slow source) and
`server.truncate` holds paths whose body stops half way with the connection closed.
`hanging_server()` accepts connections and never answers (an endpoint that hangs)."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TOKEN = "Bearer tms-test-token"


class ZipServer(ThreadingHTTPServer):
    bytes_sent = 0
    ca_file: Path | None = None

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.redirects: dict[str, str] = {}
        self.authorizations: list[tuple[str, str | None]] = []
        self.trickle: dict[str, float] = {}
        self.truncate: set[str] = set()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA) and its key, written to `folder`."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def serve_dir(root: Path, tls: bool = False, host: str = "127.0.0.1") -> tuple[ZipServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def _resolve(self) -> Path | None:
            server: ZipServer = self.server  # type: ignore[assignment]
            server.authorizations.append((self.path, self.headers.get("Authorization")))
            if self.path in server.redirects:
                self.send_response(302)
                self.send_header("Location", server.redirects[self.path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
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
            server: ZipServer = self.server  # type: ignore[assignment]
            if self.path in server.trickle:
                import time

                try:
                    for i in range(len(chunk)):
                        self.wfile.write(chunk[i:i + 1])
                        self.wfile.flush()
                        time.sleep(server.trickle[self.path])
                except OSError:
                    pass  # the client went away
                return
            if self.path in server.truncate:
                self.wfile.write(chunk[: len(chunk) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(chunk)
            self.server.bytes_sent += len(chunk)  # type: ignore[attr-defined]

        def log_message(self, *args: object) -> None:
            pass

    server = ZipServer((host, 0), Handler)
    if tls:
        import ssl
        import tempfile

        cert_file, key_file = _self_signed(Path(tempfile.mkdtemp(prefix="zipserver-tls-")))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        server.ca_file = cert_file
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"{'https' if tls else 'http'}://{host}:{server.server_address[1]}"


def hanging_server() -> tuple[socket.socket, str]:
    """A TCP listener that accepts connections and never answers; close it to stop."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    # close() from another thread does not wake a blocked accept() on Linux: wake up now and then,
    # so that the thread ends (and lets go of what it holds) once the listener is closed.
    listener.settimeout(0.5)
    held: list[socket.socket] = []

    def accept() -> None:
        try:
            while True:
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                held.append(conn)
        finally:
            for conn in held:
                conn.close()

    threading.Thread(target=accept, daemon=True).start()
    return listener, f"127.0.0.1:{listener.getsockname()[1]}"
