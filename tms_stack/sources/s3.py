"""Models from S3 or an S3-compatible store, through boto3."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tms_stack.desired import S3Source
from tms_stack.sources import FetchError, Progress, read_secret


def anonymous_config() -> Any:
    """botocore settings for unsigned requests: public buckets need no credentials (TMS 0.9:
    "public S3 model repositories without IAM")."""
    from botocore import UNSIGNED
    from botocore.config import Config

    return Config(signature_version=UNSIGNED)


def s3_client(source: S3Source) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=60)
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


def fetch_s3(source: S3Source, dest: Path, limit: int | None, progress: Progress | None = None) -> None:
    prefix = source.prefix.strip("/") + "/"
    try:
        client = s3_client(source)
        objects = list_objects(client, source)
    except FetchError:
        raise
    except Exception as exc:  # noqa: BLE001 - botocore raises many kinds; all become one clear error
        raise _explain(exc, source) from None
    if not objects:
        raise FetchError(f"s3://{source.bucket}/{prefix}: no objects under this prefix (is the model path right?)")
    total = sum(size for _, size in objects)
    if limit is not None and total > limit:
        raise FetchError(f"s3://{source.bucket}/{prefix}: {total} bytes exceed the repositorySize limit of {limit}")
    done = 0
    for key, size in objects:
        rel = key[len(prefix):]
        if not rel or rel.endswith("/"):
            continue
        target = (dest / rel).resolve()
        if not target.is_relative_to(dest.resolve()):
            raise FetchError(f"s3://{source.bucket}/{key}: object key escapes the model directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            client.download_file(source.bucket, key, str(target))
        except Exception as exc:  # noqa: BLE001
            raise _explain(exc, source) from None
        done += size
        if progress:
            progress(done, total)
