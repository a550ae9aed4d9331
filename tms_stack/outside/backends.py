"""Which Triton backends a model needs, read from its `config.pbtxt` where the model lives.

Used by `tms pool lock` (never by `tms check`, which must not touch the network); results are
cached in the placement lock. Credentials in CI, where the Kubernetes Secrets named in policies
do not exist, come from the environment:
- S3: `TMS_S3_<REPO>_ACCESS_KEY_ID` / `_SECRET_ACCESS_KEY` (/ `_SESSION_TOKEN`) (REPO upper-cased,
  other characters as `_`), else the named profile `TMS_S3_<REPO>_PROFILE`, else boto3's usual
  chain (AWS_* variables, AWS_PROFILE, web identity / OIDC, instance role);
- HTTPS: `TMS_HTTPS_<SECRET>` holds the Authorization value for the secret that matches the URL;
- volumes: `TMS_VOLUME_<REPO>` is a local path where the volume is mounted.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from tms_stack.models.diagnostics import OutsideError
from tms_stack.models.policies import RepositoriesSpec
from tms_stack.models.urimatch import best_match
from tms_stack.outside.neterrors import network_reason
from tms_stack.outside.sources.archive import model_root
from tms_stack.outside.sources.s3 import anonymous_config

# Top-level fields only (no indentation inside nested messages matters: neither name occurs there);
# protobuf text format allows both quote styles.
_BACKEND = re.compile(r'^\s*backend\s*:\s*["\']([^"\']+)["\']', re.M)
_PLATFORM = re.compile(r'^\s*platform\s*:\s*["\']([^"\']+)["\']', re.M)
PLATFORMS = {
    "tensorrt_plan": "tensorrt", "tensorflow_graphdef": "tensorflow", "tensorflow_savedmodel": "tensorflow",
    "onnxruntime_onnx": "onnxruntime", "pytorch_libtorch": "pytorch", "ensemble": "",
}


class BackendError(OutsideError):
    """A model's backends could not be learnt from its repository."""


def parse_backends(config: str) -> list[str]:
    """Backends from config.pbtxt text: `backend:` wins, else `platform:` mapped to its backend.
    An ensemble needs no backend of its own (its steps do)."""
    if m := _BACKEND.search(config):
        return [m.group(1)]
    if m := _PLATFORM.search(config):
        backend = PLATFORMS.get(m.group(1), m.group(1))
        return [backend] if backend else []
    raise BackendError("config.pbtxt names neither backend nor platform")


def _env_key(name: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first bytes (a local file header, or empty)
# Without range requests (Python's http.server, TMS's quickstart) the whole archive is read once.
FULL_DOWNLOAD_LIMIT = 4 << 30


class HttpRangeFile(io.RawIOBase):
    """A read-only, seekable view of a remote file through HTTP range requests, so zipfile reads
    the central directory and one member instead of the whole archive."""

    def __init__(self, url: str, headers: dict[str, str], session: requests.Session | None = None):
        self.url, self.headers = url, headers
        self.session = session or requests.Session()
        head = self.session.head(url, headers=headers, allow_redirects=True, timeout=30)
        if head.status_code in (401, 403):
            raise BackendError(f"{url}: HTTP {head.status_code} (unauthorized)")
        if head.status_code != 200:
            raise BackendError(f"{url}: HTTP {head.status_code}")
        self.ranges = "bytes" in head.headers.get("Accept-Ranges", "") and "Content-Length" in head.headers
        self.size = int(head.headers.get("Content-Length") or 0)
        self.pos = 0
        self.bytes_read = 0

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = {0: offset, 1: self.pos + offset, 2: self.size + offset}[whence]
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = self.size - self.pos
        if n == 0 or self.pos >= self.size:
            return b""
        end = min(self.pos + n, self.size) - 1
        r = self.session.get(self.url, headers={**self.headers, "Range": f"bytes={self.pos}-{end}"}, timeout=60)
        if r.status_code != 206:
            raise BackendError(f"{self.url}: range request answered HTTP {r.status_code}")
        self.pos += len(r.content)
        self.bytes_read += len(r.content)
        return r.content


def _whole(url: str, headers: dict[str, str]) -> io.BytesIO:
    """The archive in memory-backed temp storage, for servers without range requests."""
    import tempfile

    with requests.get(url, headers=headers, stream=True, timeout=(10, 120)) as r:
        if r.status_code in (401, 403):
            raise BackendError(f"{url}: HTTP {r.status_code} (unauthorized)")
        if r.status_code != 200:
            raise BackendError(f"{url}: HTTP {r.status_code}")
        spool = tempfile.SpooledTemporaryFile(max_size=64 << 20)
        for chunk in r.iter_content(1 << 20):
            spool.write(chunk)
            if spool.tell() > FULL_DOWNLOAD_LIMIT:
                raise BackendError(f"{url}: larger than {FULL_DOWNLOAD_LIMIT} bytes and the server "
                                   "does not allow range requests")
    spool.seek(0)
    return spool  # type: ignore[return-value]


def https_config(url: str, repos: RepositoriesSpec) -> tuple[str, int]:
    """(config.pbtxt text, bytes downloaded). The archive is recognised as a zip by its first
    bytes, whatever the URL ends with (TMS: `uri=http://host:8000/densenet_onnx`)."""
    secret = best_match([(h.targetUri, h.secretName) for h in repos.https], url)
    headers = {}
    if secret:
        if not url.startswith("https://"):
            # Whoever runs `tms pool lock` holds the token: never send it in clear (docs/security.md).
            raise BackendError(f"{url}: refusing to send the secret {secret!r} over plain HTTP: use https://")
        token = os.environ.get(f"TMS_HTTPS_{_env_key(secret)}")
        if token is None:
            raise BackendError(f"{url}: needs the secret {secret!r}: set TMS_HTTPS_{_env_key(secret)}")
        headers["Authorization"] = token
    remote = HttpRangeFile(url, headers)
    source: Any = remote if remote.ranges else _whole(url, headers)
    head = source.read(4)
    source.seek(0)
    if head not in ZIP_MAGIC:
        raise BackendError(f"{url}: not a zip archive (the content starts with {head!r}, a zip with b'PK\\x03\\x04')")
    try:
        with zipfile.ZipFile(source) as zf:
            root = model_root(zf.namelist())
            try:
                text = zf.read(root + "config.pbtxt").decode()
            except KeyError:
                raise BackendError(f"{url}: the zip has no config.pbtxt") from None
    except zipfile.BadZipFile:
        raise BackendError(f"{url}: not a valid zip archive") from None
    return text, remote.bytes_read if remote.ranges else source.tell()


def s3_config(repo_name: str, path: str, repos: RepositoriesSpec) -> str:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = next(r for r in repos.s3 if r.repositoryName == repo_name)
    kwargs: dict[str, str] = {}
    if s3.endpoint:
        kwargs["endpoint_url"] = s3.endpoint
    kwargs["region_name"] = s3.awsRegion or "us-east-1"
    prefix = f"TMS_S3_{_env_key(repo_name)}_"
    if key := os.environ.get(prefix + "ACCESS_KEY_ID"):
        kwargs["aws_access_key_id"] = key
        kwargs["aws_secret_access_key"] = os.environ.get(prefix + "SECRET_ACCESS_KEY", "")
        if token := os.environ.get(prefix + "SESSION_TOKEN"):
            kwargs["aws_session_token"] = token
    object_key = f"{path.strip('/')}/config.pbtxt"
    try:
        session = boto3.Session(profile_name=os.environ.get(prefix + "PROFILE") or None)
        # Bounded: a wrong endpoint must fail in seconds, not after boto3's long default retries.
        config = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2})
        if "aws_access_key_id" not in kwargs and session.get_credentials() is None:
            # No credentials anywhere: a public bucket, read with unsigned requests (TMS 0.9).
            config = config.merge(anonymous_config())
        body = session.client("s3", config=config, **kwargs).get_object(Bucket=s3.bucketName, Key=object_key)["Body"].read()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404"):
            raise BackendError(f"s3://{s3.bucketName}/{object_key}: no such object") from None
        if code == "NoSuchBucket":
            raise BackendError(f"s3://{s3.bucketName}/{object_key}: no such bucket {s3.bucketName!r} "
                               f"(policies: repository {repo_name})") from None
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"):
            raise BackendError(f"s3://{s3.bucketName}/{object_key}: access denied ({code}): check "
                               f"TMS_S3_{_env_key(repo_name)}_ACCESS_KEY_ID/_SECRET_ACCESS_KEY") from None
        raise BackendError(f"s3://{s3.bucketName}/{object_key}: {code or exc}") from None
    except BotoCoreError as exc:  # no credentials anywhere, unknown profile, endpoint unreachable
        raise BackendError(f"s3://{s3.bucketName}/{object_key}: {exc}; set {prefix}ACCESS_KEY_ID/"
                           f"_SECRET_ACCESS_KEY or {prefix}PROFILE, or AWS_* for boto3") from None
    return body.decode()


def volume_config(repo_name: str, path: str) -> str:
    mount = os.environ.get(f"TMS_VOLUME_{_env_key(repo_name)}")
    if not mount:
        raise BackendError(f"volume {repo_name!r} is not mounted here: set TMS_VOLUME_{_env_key(repo_name)}")
    config = Path(mount) / path.strip("/") / "config.pbtxt"
    if not config.is_file():
        raise BackendError(f"{config}: no such file")
    return config.read_text()


def learn_one(uri: str, repos: RepositoriesSpec) -> list[str]:
    if uri.startswith("model://"):
        repo_name, _, path = uri[len("model://"):].partition("/")
        if any(r.repositoryName == repo_name for r in repos.s3):
            return parse_backends(s3_config(repo_name, path, repos))
        return parse_backends(volume_config(repo_name, path))
    return parse_backends(https_config(uri, repos)[0])


def learn_backends(uris: list[str], repos: RepositoriesSpec,
                   progress: Callable[[int, int, str, str], None] | None = None,
                   ) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Backends per URI, and per URI that could not be read, why (its backend stays unknown)."""
    learned, errors = {}, {}
    for n, uri in enumerate(uris, 1):
        try:
            learned[uri] = learn_one(uri, repos)
        except BackendError as exc:
            errors[uri] = str(exc)
        except requests.RequestException as exc:
            # Not requests' repr (`HTTPSConnectionPool(host=..., port=443): Max retries exceeded`).
            host = urlsplit(uri).hostname or uri
            errors[uri] = f"cannot reach {host} ({network_reason(exc)})"
        if progress:
            progress(n, len(uris), uri, ", ".join(learned[uri]) or "(none: ensemble)" if uri in learned else "unknown")
    return learned, errors
