"""`tms agent` against a real tritonserver (nvidia-pytriton's, CPU), a real S3-compatible server
(moto's server mode over HTTP) and an HTTP zip server: ordering, hot adds with zero failed
requests, removal, recovery after a Triton crash, and contained failures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT
from tests.support.s3server import ACCESS_KEY, SECRET_KEY, S3Server, start_s3
from tests.support.triton import Triton, free_port, write_ensemble, write_python_model
from tests.support.wait import wait_until
from tests.support.zipserver import TOKEN, serve_dir
from tms_stack.agent.runner import Agent, AgentConfig
from tms_stack.models.desired import (
    DesiredDocument,
    DesiredLease,
    DesiredModel,
    HttpsSource,
    S3Source,
    VolumeSource,
)

KEY = "agent-test-key"
EXPIRES = datetime(2027, 1, 1, tzinfo=UTC)


def zip_model(src: Path, dest: Path, nested: bool) -> Path:
    """Both TMS layouts: files at the top, or one folder named like the model."""
    with zipfile.ZipFile(dest, "w") as zf:
        for f in sorted(src.rglob("*")):
            if f.is_file():
                rel = f.relative_to(src).as_posix()
                zf.write(f, f"{src.name}/{rel}" if nested else rel)
    return dest


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("assets")
    src = root / "src"
    write_python_model(src / "identity", "identity", add=0)
    write_python_model(src / "addone", "addone", add=1)
    write_python_model(src / "addtwo", "addtwo", add=2)
    write_python_model(src / "broken", "broken", fail=True)
    write_ensemble(src / "ens", "ens", "addone", "addtwo")
    web = root / "web"
    (web / "private").mkdir(parents=True)
    zip_model(src / "identity", web / "identity.zip", nested=False)
    zip_model(src / "addtwo", web / "private" / "addtwo.zip", nested=True)
    zip_model(src / "broken", web / "broken.zip", nested=True)
    with zipfile.ZipFile(web / "clash.zip", "w") as zf:  # a file `1` and a folder `1`: FileExistsError
        zf.writestr("config.pbtxt", 'backend: "python"\n')
        zf.writestr("1", "not a folder")
        zf.writestr("1/model.py", "")
    (web / "corrupt.zip").write_bytes(b"PK\x03\x04 this is not really a zip" * 10)
    volume = root / "volume"
    for name in ("addone", "addtwo", "ens"):
        shutil.copytree(src / name, volume / "parts" / name)
    server, url = serve_dir(web)
    # Credentials only travel over TLS (the agent refuses them over plain HTTP): the private
    # archive is served over HTTPS with a throwaway CA the agent is told to trust.
    tls_server, tls_url = serve_dir(web, tls=True)
    old_bundle = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = str(tls_server.ca_file)
    s3_gen = start_s3()
    s3 = next(s3_gen)
    client = s3.client()
    client.create_bucket(Bucket="models")
    for f in (src / "addone").rglob("*"):
        if f.is_file():
            client.upload_file(str(f), "models", f"team/nested/addone/{f.relative_to(src / 'addone').as_posix()}")
    secrets = root / "secrets"
    for name, value in (("s3-key", ACCESS_KEY), ("s3-secret", SECRET_KEY), ("pull-token", TOKEN)):
        (secrets / name).mkdir(parents=True)
        (secrets / name / "value").write_text(value + "\n")
    yield {"url": url, "tls_url": tls_url, "s3": s3, "volume": volume, "secrets": secrets}
    server.shutdown()
    tls_server.shutdown()
    if old_bundle is None:
        os.environ.pop("REQUESTS_CA_BUNDLE", None)
    else:
        os.environ["REQUESTS_CA_BUNDLE"] = old_bundle
    next(s3_gen, None)


@pytest.fixture
def triton(tmp_path: Path) -> Iterator[Triton]:
    server = Triton(tmp_path / "models", tmp_path, repo_key=KEY)
    (tmp_path / "models").mkdir()
    server.start()
    yield server
    server.stop()


class ConfigMapDir:
    """A mounted ConfigMap as the kubelet writes it: `desired.json -> ..data/desired.json`,
    `..data -> ..<timestamp>`, updated by swapping the `..data` symlink."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "desired.json").symlink_to("..data/desired.json")
        self.version = 0

    @property
    def path(self) -> Path:
        return self.root / "desired.json"

    def write(self, doc: DesiredDocument) -> None:
        self.last = doc
        self.version += 1
        new = self.root / f"..2026_11_22_{self.version:04d}"
        new.mkdir()
        (new / "desired.json").write_text(doc.to_json())
        tmp = self.root / "..data_tmp"
        tmp.symlink_to(new.name)
        tmp.replace(self.root / "..data")


def s3_model(assets: dict, name: str, prefix: str) -> DesiredModel:
    s3: S3Server = assets["s3"]
    return DesiredModel(name=name, uri=f"model://s3/{prefix}", source=S3Source(
        bucket="models", prefix=prefix, endpoint=s3.endpoint,
        accessKeySecret=str(assets["secrets"] / "s3-key"), secretKeySecret=str(assets["secrets"] / "s3-secret")))


def https_model(assets: dict, name: str, path: str, token: bool = False) -> DesiredModel:
    url = f"{assets['tls_url' if token else 'url']}/{path}"
    return DesiredModel(name=name, uri=url, source=HttpsSource(
        url=url, authorizationSecret=str(assets["secrets"] / "pull-token") if token else None,
        trusted=True))  # the test servers listen on loopback: a repository in the policies names them


def volume_model(assets: dict, name: str) -> DesiredModel:
    return DesiredModel(name=name, uri=f"model://nfs/parts/{name}",
                        source=VolumeSource(path=str(assets["volume"] / "parts" / name)))


def doc(*leases: tuple[str, list[DesiredModel]]) -> DesiredDocument:
    return DesiredDocument(instance="test", repositorySize=2**30, leases=[
        DesiredLease(name=name, owner="team", expires=EXPIRES, models=models) for name, models in leases])


def settled(runner: Agent, cm: ConfigMapDir) -> Callable[[], bool]:
    """Ready for the document last written (not for the one the agent read before it)."""
    return lambda: runner.desired == cm.last and runner.ready()[0]


@pytest.fixture
def agent(triton: Triton, tmp_path: Path) -> Iterator[tuple[Agent, ConfigMapDir]]:
    cm = ConfigMapDir(tmp_path / "configmap")
    cm.write(doc())
    runner = Agent(AgentConfig(cm.path, triton.model_dir, triton.url, KEY, interval=0.2))
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)
    thread.start()
    yield runner, cm
    stop.set()
    thread.join(30)


def test_restricted_endpoint_refuses_requests_without_the_key(triton: Triton) -> None:
    r = requests.post(f"http://{triton.url}/v2/repository/index", timeout=10)
    assert r.status_code == 403 and "tms-repo-key" in r.text


def test_ensemble_loads_in_lease_order(agent: tuple[Agent, ConfigMapDir], triton: Triton, assets: dict,
                                       caplog: pytest.LogCaptureFixture) -> None:
    runner, cm = agent
    caplog.set_level("INFO", logger="tms.agent")
    cm.write(doc(("pipeline", [volume_model(assets, "addone"), volume_model(assets, "addtwo"),
                               volume_model(assets, "ens")])))
    wait_until(settled(runner, cm), what="the ensemble lease to be ready")
    assert triton.infer_identity("ens", 2.0) == 5.0  # 2 + 1 + 2
    loads = [r.getMessage() for r in caplog.records if r.getMessage().startswith("loading ")]
    assert [m.split()[1] for m in loads] == ["addone", "addtwo", "ens"]


def test_hot_add_keeps_serving_then_remove_deletes(agent: tuple[Agent, ConfigMapDir], triton: Triton,
                                                   assets: dict) -> None:
    runner, cm = agent
    first = ("serving", [https_model(assets, "identity", "identity.zip")])
    cm.write(doc(first))
    wait_until(settled(runner, cm), what="the first lease")
    counts = {"ok": 0, "failed": 0}
    errors: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                assert triton.infer_identity("identity", 3.0) == 3.0
                counts["ok"] += 1
            except Exception as exc:  # noqa: BLE001 - every failure counts
                counts["failed"] += 1
                errors.append(repr(exc)[:300])

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        time.sleep(0.5)
        cm.write(doc(first, ("added", [s3_model(assets, "addone", "team/nested/addone"),
                                       https_model(assets, "addtwo", "private/addtwo.zip", token=True)])))
        wait_until(settled(runner, cm), what="the added lease")
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join()
    assert counts["failed"] == 0 and counts["ok"] > 20, (counts, sorted(set(errors))[:5])
    assert triton.infer_identity("addone", 1.0) == 2.0
    assert (triton.model_dir / "addtwo" / "config.pbtxt").exists()  # nested zip layout unpacked
    # Removing the lease unloads its models and deletes their files (TMS 1.3 fix).
    cm.write(doc(first))
    # The agent unloads the lease's models one after the other (sorted): wait for both.
    wait_until(lambda: not any(triton.ready(m) or (triton.model_dir / m).exists() for m in ("addone", "addtwo")),
               what="the removed lease's two models to be unloaded and deleted")
    assert triton.ready("identity")


def test_triton_restart_reloads_everything(agent: tuple[Agent, ConfigMapDir], triton: Triton, assets: dict) -> None:
    runner, cm = agent
    cm.write(doc(("a", [https_model(assets, "identity", "identity.zip")]),
                 ("b", [volume_model(assets, "addone"), volume_model(assets, "addtwo"), volume_model(assets, "ens")])))
    wait_until(settled(runner, cm), what="both leases")
    triton.kill()
    wait_until(lambda: not runner.ready()[0], timeout=20, what="the agent to notice")
    triton.start()
    wait_until(lambda: runner.ready()[0], what="recovery after the restart")
    assert triton.infer_identity("ens", 0.0) == 3.0 and triton.infer_identity("identity", 4.0) == 4.0


def test_failures_are_reported_and_contained(agent: tuple[Agent, ConfigMapDir], triton: Triton, assets: dict) -> None:
    runner, cm = agent
    healthy = ("healthy", [https_model(assets, "identity", "identity.zip")])
    bad = [
        ("corrupt", [https_model(assets, "corrupt", "corrupt.zip")], "not a valid zip archive"),
        ("clash", [https_model(assets, "clash", "clash.zip")], "FileExistsError"),
        ("missing-s3", [s3_model(assets, "ghost", "team/does-not-exist")], "no objects under this prefix"),
        ("no-token", [https_model(assets, "addtwo", "private/addtwo.zip", token=False)], "HTTP 401"),
        ("fails-in-triton", [volume_model(assets, "addone"), https_model(assets, "broken", "broken.zip")],
         "Triton failed to load broken"),
    ]
    cm.write(doc(healthy, *[(name, models) for name, models, _ in bad]))
    wait_until(lambda: set(runner.failures) == {name for name, _, _ in bad}, what="every bad lease to fail")
    for name, _, message in bad:
        assert message in runner.failures[name].reason, (name, runner.failures[name].reason)
    ok, detail = runner.ready()
    assert not ok and set(detail["failed"]) == {name for name, _, _ in bad}
    assert triton.infer_identity("identity", 7.0) == 7.0
    # No partially loaded leases: addone loaded first, then broken failed, so addone went away again.
    wait_until(lambda: not triton.ready("addone"), timeout=30, what="the partial lease to be unloaded")
    metrics = runner.metrics.render()
    assert 'tms_agent_model_load_failures_total{lease="corrupt",model="corrupt",owner="team"}' in metrics
    assert 'tms_agent_model_ready{lease="healthy",model="identity",owner="team"} 1' in metrics
    # Dropping the bad leases makes the instance ready again.
    cm.write(doc(healthy))
    wait_until(settled(runner, cm), what="readiness without the bad leases")


def test_tms_agent_process_serves_ready_and_metrics(triton: Triton, assets: dict, tmp_path: Path) -> None:
    cm = ConfigMapDir(tmp_path / "cm")
    cm.write(doc(("a", [https_model(assets, "identity", "identity.zip")])))
    (tmp_path / "key").write_text(KEY)
    port = free_port()
    env = dict(os.environ, TMS_DESIRED=str(cm.path), TMS_MODEL_DIR=str(triton.model_dir), TMS_TRITON_URL=triton.url,
               TMS_REPO_KEY_FILE=str(tmp_path / "key"), TMS_AGENT_PORT=str(port), TMS_AGENT_INTERVAL="0.2")
    proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "tms"), "agent"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def ready() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(ready, what="`tms agent` /ready")
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).text == "ok\n"
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        assert 'tms_agent_model_ready{lease="a",model="identity",owner="team"} 1' in metrics
        assert f'tms_agent_lease_expiry_timestamp_seconds{{lease="a",owner="team"}} {EXPIRES.timestamp():.0f}' in metrics
        cm.write(doc(("a", [https_model(assets, "identity", "identity.zip"),
                            https_model(assets, "broken", "broken.zip")])))
        def failed() -> dict:
            r = requests.get(f"http://127.0.0.1:{port}/ready", timeout=2)
            return json.loads(r.text)["failed"] if r.status_code == 503 else {}

        wait_until(lambda: "a" in failed(), what="/ready to report the failed lease")
        assert failed()["a"] == "load failed"  # a coarse state: the reason is in the log
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "fetching identity from" in out and "loaded identity" in out
    assert "Triton failed to load broken" in out
