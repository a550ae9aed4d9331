"""Models as zips over HTTP(S), with the Authorization header from the matching secret."""

from __future__ import annotations

import tempfile
from pathlib import Path

import requests

from tms_stack.desired import HttpsSource
from tms_stack.sources import FetchError, Progress, read_secret
from tms_stack.sources.archive import extract_model


def fetch_https(source: HttpsSource, dest: Path, limit: int | None, progress: Progress | None = None) -> None:
    headers = {}
    token = read_secret(source.authorizationSecret)
    if token:
        headers["Authorization"] = token
    try:
        response = requests.get(source.url, headers=headers, stream=True, timeout=(10, 120))
    except requests.RequestException as exc:
        raise FetchError(f"{source.url}: cannot download: {exc.__class__.__name__}") from None
    with response:
        if response.status_code in (401, 403):
            hint = "the secret's value was sent as Authorization" if token else "no https secret matches this URL"
            raise FetchError(f"{source.url}: HTTP {response.status_code} (unauthorized): {hint}")
        if response.status_code != 200:
            raise FetchError(f"{source.url}: HTTP {response.status_code}")
        total = int(response.headers.get("Content-Length") or 0) or None
        if limit is not None and total is not None and total > limit:
            raise FetchError(f"{source.url}: {total} bytes exceed the repositorySize limit of {limit}")
        with tempfile.NamedTemporaryFile(dir=dest.parent, prefix=".download-", suffix=".zip", delete=False) as tmp:
            done = 0
            try:
                for chunk in response.iter_content(1 << 20):
                    done += len(chunk)
                    if limit is not None and done > limit:
                        raise FetchError(f"{source.url}: download exceeds the repositorySize limit of {limit}")
                    tmp.write(chunk)
                    if progress:
                        progress(done, total)
            except requests.RequestException as exc:
                raise FetchError(f"{source.url}: download interrupted: {exc.__class__.__name__}") from None
    zip_path = Path(tmp.name)
    try:
        extract_model(zip_path, dest, limit)
    finally:
        zip_path.unlink(missing_ok=True)
