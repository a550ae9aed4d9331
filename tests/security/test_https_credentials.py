"""The agent sends a model repository's credentials over TLS only: never to an http:// URL, never
after a redirect to http://, never to another host a redirect points at. Real servers (the zip
server, with and without TLS), the real fetcher."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.zipserver import TOKEN, ZipServer, serve_dir
from tms_stack.models.desired import HttpsSource
from tms_stack.outside.sources import FetchError
from tms_stack.outside.sources.https import fetch_https


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("web")
    (root / "private").mkdir()
    with zipfile.ZipFile(root / "private" / "m.zip", "w") as zf:
        zf.writestr("m/config.pbtxt", 'name: "m"\nbackend: "python"\n')
    return root


@pytest.fixture(scope="module")
def servers(web: Path) -> Iterator[tuple[ZipServer, str, ZipServer, str]]:
    tls, tls_url = serve_dir(web, tls=True)
    plain, plain_url = serve_dir(web)
    yield tls, tls_url, plain, plain_url
    tls.shutdown()
    plain.shutdown()


@pytest.fixture
def secret(tmp_path: Path) -> str:
    folder = tmp_path / "pull-token"
    folder.mkdir()
    (folder / "value").write_text(TOKEN + "\n")
    return str(folder)


@pytest.fixture(autouse=True)
def trust(servers: tuple[ZipServer, str, ZipServer, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(servers[0].ca_file))
    # These servers listen on loopback, which the agent refuses unless the policies name the host
    # (tests/agent/test_agent_isolation.py); here only the credential rules are under test.
    monkeypatch.setattr("tms_stack.outside.sources.https.check_url", lambda url, allowed: None)
    for server in (servers[0], servers[2]):
        server.authorizations.clear()
        server.redirects.clear()


def test_credentials_go_over_tls(servers, secret: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tls, tls_url, _plain, _ = servers
    fetch_https(HttpsSource(url=f"{tls_url}/private/m.zip", authorizationSecret=secret), tmp_path / "m", None)
    assert (tmp_path / "m" / "config.pbtxt").is_file()
    assert tls.authorizations == [("/private/m.zip", TOKEN)]


def test_never_over_plain_http(servers, secret: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _tls, _, plain, plain_url = servers
    with pytest.raises(FetchError, match="refusing to send credentials over plain HTTP"):
        fetch_https(HttpsSource(url=f"{plain_url}/private/m.zip", authorizationSecret=secret), tmp_path / "m", None)
    assert plain.authorizations == []  # nothing was even asked


def test_never_after_a_redirect_to_http(servers, secret: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tls, tls_url, plain, plain_url = servers
    tls.redirects["/private/moved.zip"] = f"{plain_url}/private/m.zip"
    with pytest.raises(FetchError, match="refusing to send credentials over plain HTTP"):
        fetch_https(HttpsSource(url=f"{tls_url}/private/moved.zip", authorizationSecret=secret), tmp_path / "m", None)
    assert tls.authorizations == [("/private/moved.zip", TOKEN)]
    assert plain.authorizations == []


def test_not_to_another_host(servers, secret: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tls, tls_url, plain, plain_url = servers
    # localhost is another host name than 127.0.0.1: the redirect is followed without credentials.
    tls.redirects["/private/elsewhere.zip"] = plain_url.replace("127.0.0.1", "localhost") + "/private/m.zip"
    with pytest.raises(FetchError, match="HTTP 401"):
        fetch_https(HttpsSource(url=f"{tls_url}/private/elsewhere.zip", authorizationSecret=secret),
                    tmp_path / "m", None)
    assert plain.authorizations == [("/private/m.zip", None)]


def test_public_archives_still_come_over_http(servers, tmp_path: Path, web: Path) -> None:  # type: ignore[no-untyped-def]
    _tls, _, plain, plain_url = servers
    (web / "public.zip").write_bytes((web / "private" / "m.zip").read_bytes())
    fetch_https(HttpsSource(url=f"{plain_url}/public.zip"), tmp_path / "m", None)
    assert plain.authorizations == [("/public.zip", None)]
