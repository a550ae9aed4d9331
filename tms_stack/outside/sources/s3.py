"""Models from S3 or an S3-compatible store, through boto3."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tms_stack.models.desired import S3Source
from tms_stack.outside.sources.base import (
    FetchContext,
    FetchError,
    Progress,
    abort_response,
    read_secret,
    read_some,
)


def anonymous_config() -> Any:
    """botocore settings for unsigned requests: public buckets need no credentials (TMS 0.9:
    "public S3 model repositories without IAM")."""
    from botocore import UNSIGNED
    from botocore.config import Config

    return Config(signature_version=UNSIGNED)


def s3_client(source: S3Source, read_timeout: float = 60) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=min(10, read_timeout),
                    read_timeout=read_timeout)
    kwargs: dict[str, Any] = {"config": config}
    if source.endpoint:
        kwargs["endpoint_url"] = source.endpoint
        kwargs["region_name"] = source.region or "us-east-1"
    elif source.region:
        kwargs["region_name"] = source.region
    if source.accessKeySecret:
        kwargs["aws_access_key_id"] = read_secret(source.accessKeySecret)
        kwargs["aws_secret_access_key"] = read_secret(source.secretKeySecret)
        return boto3.client("s3", **kwargs)
    # Otherwise boto3's chain applies: AWS_* env, the pod's IAM role (IRSA web identity), ...
    # and where it finds nothing, the bucket is public: unsigned requests instead of failing with
    # NoCredentialsError before the endpoint is even contacted.
    session = boto3.Session()
    if session.get_credentials() is None:
        kwargs["config"] = config.merge(anonymous_config())
    return session.client("s3", **kwargs)


def _explain(exc: Exception, source: S3Source) -> FetchError:
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    where = f"s3://{source.bucket}/{source.prefix}" + (f" at {source.endpoint}" if source.endpoint else "")
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"):
            return FetchError(f"{where}: access denied ({code}): check the access-key secrets or the IAM role")
        if code in ("NoSuchBucket",):
            return FetchError(f"{where}: bucket {source.bucket!r} does not exist")
        return FetchError(f"{where}: {code or exc}")
    if isinstance(exc, NoCredentialsError):
        return FetchError(f"{where}: no credentials (no access-key secrets, no IAM role, no AWS_* env)")
    if isinstance(exc, EndpointConnectionError):
        return FetchError(f"{where}: cannot connect to the endpoint")
    return FetchError(f"{where}: {exc}")


def list_objects(client: Any, source: S3Source) -> list[tuple[str, int]]:
    prefix = source.prefix.strip("/") + "/"
    found: list[tuple[str, int]] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=source.bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            found.append((obj["Key"], obj["Size"]))
    return found


def fetch_s3(source: S3Source, dest: Path, ctx: FetchContext, progress: Progress | None = None) -> None:
    """Each object is streamed by hand (not boto3's threaded download_file), so the deadline is
    checked between reads and a shutdown can abort a blocked read."""
    prefix = source.prefix.strip("/") + "/"
    where = f"s3://{source.bucket}/{prefix}"
    try:
        client = s3_client(source, ctx.read_wait())
        objects = list_objects(client, source)
    except FetchError:
        raise
    except Exception as exc:  # noqa: BLE001 - botocore raises many kinds; all become one clear error
        ctx.check()
        raise _explain(exc, source) from None
    if not objects:
        raise FetchError(f"{where}: no objects under this prefix (is the model path right?)")
    total = sum(size for _, size in objects)
    room = ctx.budget.available()
    if room is not None and total > room:
        raise FetchError(f"{where}: {total} bytes do not fit the repositorySize budget ({room} bytes left)",
                         kind="over the repository size")
    done = 0
    for key, _size in objects:
        rel = key[len(prefix):]
        if not rel or rel.endswith("/"):
            continue
        target = (dest / rel).resolve()
        if not target.is_relative_to(dest.resolve()):
            raise FetchError(f"s3://{source.bucket}/{key}: object key escapes the model directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        ctx.check()
        try:
            body = client.get_object(Bucket=source.bucket, Key=key)["Body"]
        except Exception as exc:  # noqa: BLE001
            ctx.check()
            raise _explain(exc, source) from None
        raw = getattr(body, "_raw_stream", body)
        ctx.on_abort(abort_response(raw))
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as out, body:
            while True:
                ctx.check()
                try:
                    chunk = read_some(raw)
                except Exception as exc:  # noqa: BLE001 - urllib3/botocore read errors of every kind
                    ctx.check()
                    raise FetchError(f"s3://{source.bucket}/{key}: download interrupted: "
                                     f"{exc.__class__.__name__}") from None
                if not chunk:
                    break
                ctx.charge(len(chunk), f"s3://{source.bucket}/{key}")
                out.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
