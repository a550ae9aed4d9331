"""A real S3-compatible server on loopback for tests: versitygw (posix backend) built from Go
modules by scripts/deps.d/30-s3server.sh. It checks request signatures, so wrong keys fail as
they would against AWS or MinIO."""

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

    def client(self, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> Any:
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=access_key, aws_secret_access_key=secret_key)


def start_s3() -> Iterator[S3Server]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="tms-s3-") as data:
        proc = subprocess.Popen([str(binary()), "--access", ACCESS_KEY, "--secret", SECRET_KEY,
                                 "--port", f"127.0.0.1:{port}", "--quiet", "posix", data],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(endpoint, timeout=1)
                break
            except requests.RequestException as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    raise RuntimeError("versitygw did not start: " + (proc.stderr.read() or b"").decode()[-2000:]) from exc
                time.sleep(0.1)
        try:
            yield S3Server(endpoint)
        finally:
            proc.terminate()
            proc.wait(10)
