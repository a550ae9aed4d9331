"""Models as zips over HTTP(S), with the Authorization header from the matching secret (TLS only)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests

from tms_stack.models.desired import HttpsSource
from tms_stack.outside.sources.archive import ARCHIVE_NAME, extract_model
from tms_stack.outside.sources.base import (
    FetchContext,
    FetchError,
    Progress,
    abort_response,
    read_secret,
    read_some,
)
from tms_stack.outside.sources.hosts import check_url

MAX_REDIRECTS = 5


def _where(url: str) -> str:
    """The URL without its query string or fragment (signed URLs carry credentials there)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _get(url: str, token: str | None, ctx: FetchContext, trusted: bool) -> requests.Response:
    """GET with redirects followed by hand, so credentials only ever travel over TLS and every hop's
    address is checked (hosts.py).

    The Authorization value goes only to https:// URLs on the host it was matched for: a URL (or a
    redirect) to http:// with credentials is refused rather than sent in clear, and a redirect to
    another host drops them (as curl and requests do). A repository in the policies vouches only
    for its own host: a redirect elsewhere is checked like any other URL."""
    origin = urlsplit(url).hostname
    for _hop in range(MAX_REDIRECTS + 1):
        ctx.check()
        parts = urlsplit(url)
        check_url(url, trusted and parts.hostname == origin)
        headers = {}
        if token and parts.hostname == origin:
            if parts.scheme != "https":
                raise FetchError(f"{_where(url)}: refusing to send credentials over plain HTTP: "
                                 "use an https:// URL (the matching secret is only sent over TLS)")
            headers["Authorization"] = token
        try:
            response = requests.get(url, headers=headers, stream=True, allow_redirects=False,
                                    timeout=(min(10, ctx.read_wait()), ctx.read_wait()))
        except requests.RequestException as exc:
            raise FetchError(f"{_where(url)}: cannot download: {exc.__class__.__name__}") from None
        if response.status_code not in (301, 302, 303, 307, 308) or "Location" not in response.headers:
            return response
        response.close()
        url = urljoin(url, response.headers["Location"])
    raise FetchError(f"{_where(url)}: more than {MAX_REDIRECTS} redirects")


def fetch_https(source: HttpsSource, dest: Path, ctx: FetchContext | None = None,
                progress: Progress | None = None) -> None:
    if ctx is None:
        ctx = FetchContext(deadline=time.monotonic() + 3600)
    token = read_secret(source.authorizationSecret)
    where = _where(source.url)
    response = _get(source.url, token, ctx, source.trusted)
    archive = dest.parent / ARCHIVE_NAME
    try:
        with response:
            ctx.on_abort(abort_response(response.raw))
            if response.status_code in (401, 403):
                hint = "the secret's value was sent as Authorization" if token else "no https secret matches this URL"
                raise FetchError(f"{where}: HTTP {response.status_code} (unauthorized): {hint}")
            if response.status_code != 200:
                raise FetchError(f"{where}: HTTP {response.status_code}")
            total = int(response.headers.get("Content-Length") or 0) or None
            room = ctx.budget.available()
            if room is not None and total is not None and total > room:
                raise FetchError(f"{where}: {total} bytes do not fit the repositorySize budget ({room} bytes left)",
                                 kind="over the repository size")
            # Exclusive, no-follow: nothing planted at this path is written through.
            fd = os.open(archive, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as out:
                done = 0
                try:
                    while True:
                        ctx.check()
                        chunk = read_some(response.raw)
                        if not chunk:
                            break
                        ctx.charge(len(chunk), where)
                        out.write(chunk)
                        done += len(chunk)
                        if progress:
                            progress(done, total)
                except (requests.RequestException, OSError, ValueError) as exc:
                    if isinstance(exc, OSError) and exc.errno is not None and not isinstance(exc, ConnectionError):
                        raise  # a local write error (disk full): reported by the caller
                    ctx.check()  # an abort (deadline, shutdown) explains itself
                    raise FetchError(f"{where}: download interrupted: {exc.__class__.__name__}") from None
                except Exception as exc:  # noqa: BLE001 - urllib3 raises its own kinds (ReadTimeoutError, ...)
                    if isinstance(exc, FetchError):
                        raise
                    ctx.check()
                    raise FetchError(f"{where}: download interrupted: {exc.__class__.__name__}") from None
            if total is not None and done != total:
                raise FetchError(f"{where}: download ended after {done} of {total} bytes")
        extract_model(archive, dest, ctx)
    finally:
        archive.unlink(missing_ok=True)
