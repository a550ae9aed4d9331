"""A real S3-compatible server on loopback for tests: versitygw (posix backend) built from Go
modules by scripts/deps.d/30-s3server.sh. It checks request signatures, so wrong keys fail as
they would against AWS or MinIO.

Use the `s3_server` fixture (import it into your test module or conftest) or, for a fixture of
another scope, the `start_s3()` generator. Either yields an S3Server: `endpoint`, `access_key`,
`secret_key` and `client()`, a boto3 client factory (pass other keys to test refusals)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from tests.support.triton import free_port

ACCESS_KEY, SECRET_KEY = "tms-test-access", "tms-test-secret-key-0123456789"
VERSION = "v1.0.14"
ROOT = Path(__file__).resolve().parents[2]


def binary() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tms-stack" / "bin"
    path = cache / f"versitygw-{VERSION}" / "versitygw"
    if not path.exists():
        subprocess.run(["bash", str(ROOT / "scripts" / "deps.d" / "30-s3server.sh")], check=True)
    return path


@dataclass
class S3Server:
    endpoint: str
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = "us-east-1"

    def client(self, access_key: str | None = None, secret_key: str | None = None) -> Any:
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id=access_key or self.access_key,
                            aws_secret_access_key=secret_key or self.secret_key)


def start_s3(host: str = "127.0.0.1") -> Iterator[S3Server]:
    """Start versitygw on a free loopback port with an empty data directory; stop it and delete
    the data when the generator is closed or exhausted. Fails (never skips) if it cannot start.
    ``host``: another local address to listen on (the real node's pods reach the host through
    its bridge address, tests/e2e/node)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="tms-s3-") as tmp:
        data, log_path = Path(tmp) / "data", Path(tmp) / "versitygw.log"
        data.mkdir()
        # A log file, not a pipe: a chatty server must never block on a full pipe.
        log = log_path.open("wb")
        proc = subprocess.Popen([str(binary()), "--access", ACCESS_KEY, "--secret", SECRET_KEY,
                                 "--port", f"{host}:{port}", "--quiet", "posix", str(data)],
                                stdout=log, stderr=subprocess.STDOUT)
        endpoint = f"http://{host}:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(endpoint, timeout=1)
                break
            except requests.RequestException as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    proc.wait(10)
                    log.close()
                    raise RuntimeError("versitygw did not start within 30 s: "
                                       + log_path.read_text(errors="replace")[-2000:]) from exc
                time.sleep(0.1)
        try:
            yield S3Server(endpoint)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            log.close()


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    """A fresh, empty S3 server per test module (create your buckets in the test)."""
    yield from start_s3()
