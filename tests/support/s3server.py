"""An S3-compatible server on loopback for tests: moto's server mode, a real HTTP S3 API that
boto3 talks to over the network (signatures, listing, errors). Building MinIO or versitygw from
Go modules is the stronger option (see docs/agent.md); moto is what runs everywhere today."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3

from tests.support.triton import free_port

ACCESS_KEY, SECRET_KEY = "tms-test-access", "tms-test-secret"


@dataclass
class S3Server:
    endpoint: str

    def client(self, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> Any:
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=access_key, aws_secret_access_key=secret_key)


def start_s3() -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        server.stop()
