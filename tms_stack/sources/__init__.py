"""Fetching whole models into a directory: S3 (boto3), HTTPS zips, volume repositories.

Every fetcher writes into a fresh directory the caller later renames into place, so a model
directory Triton sees is always complete. Errors are `FetchError` with a message a person can act on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tms_stack.desired import HttpsSource, S3Source, Source, VolumeSource


class FetchError(Exception):
    pass


Progress = Callable[[int, int | None], None]  # (bytes so far, total bytes or None)


def read_secret(directory: str | None) -> str | None:
    """A mounted Secret's value: the key named like the Secret (TMS `--from-file NAME`), `value`,
    or its only key."""
    if not directory:
        return None
    folder = Path(directory)
    if not folder.is_dir():
        raise FetchError(f"secret {folder.name!r} is not mounted at {folder}")
    for candidate in (folder / folder.name, folder / "value"):
        if candidate.is_file():
            return candidate.read_text().strip()
    keys = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    if len(keys) == 1:
        return keys[0].read_text().strip()
    raise FetchError(f"secret {folder.name!r} has keys {sorted(p.name for p in keys)}: "
                     f"name the key {folder.name!r} or 'value'")


def fetch(source: Source, dest: Path, limit: int | None, progress: Progress | None = None) -> None:
    """Fill the empty directory `dest` with the model (config.pbtxt at its top)."""
    if isinstance(source, S3Source):
        from tms_stack.sources.s3 import fetch_s3

        fetch_s3(source, dest, limit, progress)
    elif isinstance(source, HttpsSource):
        from tms_stack.sources.https import fetch_https

        fetch_https(source, dest, limit, progress)
    elif isinstance(source, VolumeSource):
        from tms_stack.sources.volume import fetch_volume

        fetch_volume(source, dest)
    else:  # pragma: no cover
        raise FetchError(f"unknown source {source!r}")
