"""Fetching whole models into a directory: S3 (boto3), HTTPS zips, volume repositories.

Every fetcher writes into a fresh directory the caller later renames into place, so a model
directory Triton sees is always complete. Errors are `FetchError` with a message a person can act on
and a coarse `kind`; every fetch runs under a `FetchContext` (sources/base.py).
"""

from __future__ import annotations

import time
from pathlib import Path

from tms_stack.models.desired import HttpsSource, S3Source, Source, VolumeSource
from tms_stack.outside.sources.base import (
    DISK_FULL,
    Budget,
    FetchContext,
    FetchError,
    Progress,
    read_secret,
)
from tms_stack.outside.sources.https import fetch_https
from tms_stack.outside.sources.s3 import fetch_s3
from tms_stack.outside.sources.volume import fetch_volume

__all__ = ["Budget", "FetchContext", "FetchError", "Progress", "fetch", "read_secret"]


def fetch(source: Source, dest: Path, ctx: FetchContext | None = None, progress: Progress | None = None,
          *, limit: int | None = None, timeout: float = 3600) -> None:
    """Fill the empty directory `dest` with the model (config.pbtxt at its top). Scratch files (an
    archive) go beside `dest`, in the caller's work directory, and are removed here either way.
    Without `ctx`: a deadline `timeout` seconds away and a budget of `limit` bytes."""
    if ctx is None:
        ctx = FetchContext(deadline=time.monotonic() + timeout, budget=Budget(limit, lambda: 0))
    try:
        if isinstance(source, S3Source):
            fetch_s3(source, dest, ctx, progress)
        elif isinstance(source, HttpsSource):
            fetch_https(source, dest, ctx, progress)
        elif isinstance(source, VolumeSource):
            fetch_volume(source, dest)
        else:  # pragma: no cover
            raise FetchError(f"unknown source {source!r}")
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise FetchError("disk full: no space left on the model volume (emptyDir) while writing the model",
                             kind="disk full") from None
        raise
