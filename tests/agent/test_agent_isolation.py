"""Issue 23 #5 and #6, issue 21 (declared backends), against a real tritonserver: tenant code never
reads what is not its own through the agent, and fetches never reach where they should not."""

from __future__ import annotations

import json
import logging
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.test_agent_outages import (
    Running,
    doc,
    https,
    leftovers,
    running,  # noqa: F401 - fixture
    triton,  # noqa: F401 - fixture
    zip_dir,
)
from tests.support.triton import Triton, write_python_model
from tests.support.wait import wait_until
from tests.support.zipserver import ZipServer, serve_dir
from tms_stack.models.desired import DesiredModel, HttpsSource, model_source
from tms_stack.models.policies import RepositoriesSpec
from tms_stack.outside.sources import Budget, FetchContext, FetchError
from tms_stack.outside.sources.archive import MAX_DEPTH, MAX_ENTRIES, extract_model

SECRET = "SECRET-TOKEN-4711"


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ZipServer, str, Path]]:
    root = tmp_path_factory.mktemp("isolation-web")
    write_python_model(root / "src" / "identity", "identity")
    files = root / "files"
    files.mkdir()
    zip_dir(root / "src" / "identity", files / "identity.zip")
    server, url = serve_dir(files)
    yield server, url, files
    server.shutdown()


def _everything_public(r: Running) -> str:
    """All an unauthenticated caller in the pod can read from the agent."""
    return json.dumps(r.agent.ready()[1]) + r.agent.metrics.render()


# --- 5: a tenant's symlink never makes the agent read (or show) a secret ---------------------------

@pytest.mark.parametrize("attack", ["symlink", "garbage"])
def test_a_replaced_config_is_refused_without_quoting_it(
        attack: str, triton: Triton, tmp_path: Path, running: list[Running],  # noqa: F811
        web: tuple[ZipServer, str, Path], caplog: pytest.LogCaptureFixture) -> None:
    _server, url, _ = web
    caplog.set_level(logging.DEBUG)
    secret = tmp_path / "secrets" / "repo-key" / "value"  # a Secret only the agent mounts
    secret.parent.mkdir(parents=True)
    secret.write_text(f"{SECRET} and more\n")
    model = https(url, "identity")
    r = Running(triton, tmp_path, doc(("tenant", [model.model_copy(update={"count": 2})])))
    running.append(r)
    wait_until(r.settled, what="the tenant's model")
    # Tenant code (a Python backend model runs inside Triton, which can write /models) swaps the file.
    config = triton.model_dir / "identity" / "config.pbtxt"
    config.unlink()
    if attack == "symlink":
        config.symlink_to(secret)
    else:
        config.write_text(f"{SECRET} {{ not a config\n")
    # The running agent reloads from the copy it read when it fetched the model, never the file.
    r.write(doc(("tenant", [model.model_copy(update={"count": 3})])))
    wait_until(lambda: r.settled() and r.agent.store.count_of("identity") == 3, timeout=30, what="the reload")
    assert "tenant" not in r.agent.failures
    # A restarted agent has no copy: it reads the file, checked, and refuses it.
    r.close()
    r = Running(triton, tmp_path, doc(("tenant", [model.model_copy(update={"count": 4})])))
    running.append(r)
    wait_until(lambda: "tenant" in r.agent.failures, timeout=30, what="the reload to be refused")
    failure = r.agent.failures["tenant"]
    assert failure.kind == "model refused", failure
    assert ("is a symlink" if attack == "symlink" else "line 1") in failure.reason, failure
    assert SECRET not in failure.reason
    assert SECRET not in _everything_public(r)
    assert not any(SECRET in rec.getMessage() for rec in caplog.records)
    assert r.agent.ready()[1]["failed"] == {"tenant": "model refused"}


def test_ready_shows_coarse_states_never_uris_or_reasons(
        triton: Triton, tmp_path: Path, running: list[Running],  # noqa: F811
        web: tuple[ZipServer, str, Path], caplog: pytest.LogCaptureFixture) -> None:
    _server, url, _ = web
    caplog.set_level(logging.DEBUG)
    signed = DesiredModel(name="ghost", uri=f"{url}/ghost.zip?X-Amz-Signature=sekrit-sig",
                          source=HttpsSource(url=f"{url}/ghost.zip?X-Amz-Signature=sekrit-sig", trusted=True))
    r = Running(triton, tmp_path, doc(("ok", [https(url, "identity")]), ("other", [signed])))
    running.append(r)
    wait_until(lambda: "other" in r.agent.failures, timeout=30, what="the signed URL to fail")
    wait_until(lambda: triton.ready("identity"), what="the healthy lease")
    body = r.agent.ready()[1]
    assert body["leases"]["other"] == "fetch failed" and body["failed"] == {"other": "fetch failed"}, body
    public = _everything_public(r)
    assert "sekrit" not in public and "ghost.zip" not in public and "HTTP 404" not in public
    assert not any("sekrit" in rec.getMessage() for rec in caplog.records if rec.name.startswith("tms"))
    assert "HTTP 404" in r.agent.failures["other"].reason  # the detail is in the log


# --- 6: fetches reach only where they may --------------------------------------------------------

def test_internal_hosts_are_refused_unless_the_policies_name_them(
        triton: Triton, tmp_path: Path, running: list[Running],  # noqa: F811
        web: tuple[ZipServer, str, Path]) -> None:
    server, url, _ = web
    server.authorizations.clear()
    metadata = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
    r = Running(triton, tmp_path, doc(
        ("metadata", [DesiredModel(name="meta", uri=metadata, source=HttpsSource(url=metadata))]),
        ("loopback", [DesiredModel(name="loop", uri=f"{url}/identity.zip",
                                   source=HttpsSource(url=f"{url}/identity.zip"))]),
        ("named", [https(url, "identity")])))  # trusted: a repository in the policies names it
    running.append(r)
    wait_until(lambda: {"metadata", "loopback"} <= set(r.agent.failures), timeout=30, what="both refused")
    for lease in ("metadata", "loopback"):
        assert r.agent.failures[lease].kind == "source address refused", r.agent.failures[lease]
    assert "link-local" in r.agent.failures["metadata"].reason
    wait_until(lambda: triton.ready("identity"), what="the named repository's model")
    assert server.authorizations == [("/identity.zip", None)]  # the refused one never reached it


def test_credential_scopes_match_the_normalised_path() -> None:
    repos = RepositoriesSpec.model_validate({"https": [
        {"targetUri": "https://models.example.com/private", "secretName": "private-token"}]})
    inside = model_source("https://models.example.com/private/m.zip", repos)
    assert isinstance(inside, HttpsSource) and inside.authorizationSecret and inside.trusted
    for escape in ("https://models.example.com/private/../admin/export",
                   "https://models.example.com/private/%2e%2e/admin/export",
                   "https://models.example.com/private/./../admin/export"):
        src = model_source(escape, repos)
        assert isinstance(src, HttpsSource) and src.authorizationSecret is None and not src.trusted, escape


def _ctx() -> FetchContext:
    import time

    return FetchContext(deadline=time.monotonic() + 60, budget=Budget(1 << 30, lambda: 0))


def test_archives_have_entry_count_and_depth_limits(tmp_path: Path) -> None:
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as zf:
        zf.writestr("config.pbtxt", 'backend: "python"\n')
        for i in range(30_000):
            zf.writestr(f"1/e{i}", b"")
    with pytest.raises(FetchError, match=f"more than the {MAX_ENTRIES}") as err:
        extract_model(many, tmp_path / "out1", _ctx())
    assert err.value.kind == "archive refused" and not (tmp_path / "out1").exists()
    deep = tmp_path / "deep.zip"
    with zipfile.ZipFile(deep, "w") as zf:
        zf.writestr("config.pbtxt", 'backend: "python"\n')
        zf.writestr("/".join(["d"] * (MAX_DEPTH + 5)) + "/f", b"x")
    with pytest.raises(FetchError, match="levels deep"):
        extract_model(deep, tmp_path / "out2", _ctx())
    fine = tmp_path / "fine.zip"
    with zipfile.ZipFile(fine, "w") as zf:
        zf.writestr("config.pbtxt", 'backend: "python"\n')
        zf.writestr("1/model.py", "")
    extract_model(fine, tmp_path / "out3", _ctx())
    assert (tmp_path / "out3" / "1" / "model.py").is_file()


# --- issue 21: the declared backends are verified before Triton sees the model --------------------

def test_a_model_whose_backend_is_not_declared_is_refused(
        triton: Triton, tmp_path: Path, running: list[Running],  # noqa: F811
        web: tuple[ZipServer, str, Path]) -> None:
    _server, url, _ = web
    lying = https(url, "identity").model_copy(update={"backends": ["onnxruntime"]})
    r = Running(triton, tmp_path, doc(("liar", [lying])))
    running.append(r)
    wait_until(lambda: "liar" in r.agent.failures, timeout=30, what="the lie to be refused")
    assert r.agent.failures["liar"].kind == "model refused"
    assert "needs backend ['python']" in r.agent.failures["liar"].reason
    assert not triton.ready("identity") and not (triton.model_dir / "identity").exists()
    assert not leftovers(triton.model_dir)
    r.write(doc(("honest", [https(url, "identity").model_copy(update={"backends": ["python"]})])))
    wait_until(r.settled, what="the honest lease")
    assert os.path.isdir(triton.model_dir / "identity")


def test_names_are_checked_on_every_address_they_resolve_to(monkeypatch: pytest.MonkeyPatch) -> None:
    """A public-looking name that resolves to the metadata address (or the API server) is refused
    too; a repository in the policies vouches for its host."""
    import socket

    from tms_stack.outside.sources.hosts import check_url

    answers = {"sneaky.example.com": "169.254.169.254", "api.example.com": "10.96.0.1",
               "models.example.com": "203.0.113.7"}

    def resolve(host: str, *args: object, **kwargs: object) -> list:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], 443))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    with pytest.raises(FetchError, match="link-local") as err:
        check_url("https://sneaky.example.com/m.zip", allowed=False)
    assert err.value.kind == "source address refused"
    with pytest.raises(FetchError, match="API server"):
        check_url("https://api.example.com/m.zip", allowed=False)
    check_url("https://models.example.com/m.zip", allowed=False)
    check_url("https://sneaky.example.com/m.zip", allowed=True)
    for literal in ("http://[::ffff:127.0.0.1]/x", "http://0.0.0.0/x", "http://kubernetes.default.svc/x",
                    "http://minio:9000/x", "http://LOCALHOST./x"):
        with pytest.raises(FetchError):
            check_url(literal, allowed=False)
