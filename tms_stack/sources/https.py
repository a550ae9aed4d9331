"""Models as zips over HTTP(S), with the Authorization header from the matching secret (TLS only)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests

from tms_stack.desired import HttpsSource
from tms_stack.sources import FetchError, Progress, read_secret
from tms_stack.sources.archive import extract_model

MAX_REDIRECTS = 5


def _get(url: str, token: str | None) -> requests.Response:
    """GET with redirects followed by hand, so credentials only ever travel over TLS.

    The Authorization value goes only to https:// URLs on the host it was matched for: a URL (or a
    redirect) to http:// with credentials is refused rather than sent in clear, and a redirect to
    another host drops them (as curl and requests do)."""
    origin = urlsplit(url).hostname
    for _hop in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        headers = {}
        if token and parts.hostname == origin:
            if parts.scheme != "https":
                raise FetchError(f"{url}: refusing to send credentials over plain HTTP: "
                                 "use an https:// URL (the matching secret is only sent over TLS)")
            headers["Authorization"] = token
        try:
            response = requests.get(url, headers=headers, stream=True, timeout=(10, 120), allow_redirects=False)
        except requests.RequestException as exc:
            raise FetchError(f"{url}: cannot download: {exc.__class__.__name__}") from None
        if response.status_code not in (301, 302, 303, 307, 308) or "Location" not in response.headers:
            return response
        response.close()
        url = urljoin(url, response.headers["Location"])
    raise FetchError(f"{url}: more than {MAX_REDIRECTS} redirects")


def fetch_https(source: HttpsSource, dest: Path, limit: int | None, progress: Progress | None = None) -> None:
    token = read_secret(source.authorizationSecret)
    response = _get(source.url, token)
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
