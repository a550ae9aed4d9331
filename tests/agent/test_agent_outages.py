"""Issue 23 #1-#4 against a real tritonserver: the agent never hides an outage.

A slow or hanging source (an HTTP server trickling one byte at a time, a TCP endpoint that accepts
and never answers) must not delay any other lease, and readiness must follow what Triton holds
whatever the agent is doing; a failing lease must not unload a model a healthy lease shares;
downloads leave nothing behind; SIGTERM stops the agent within the pod's grace period."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT
from tests.support.triton import Triton, free_port, write_python_model
from tests.support.wait import wait_until
from tests.support.zipserver import ZipServer, hanging_server, serve_dir
from tms_stack.agent.runner import Agent, AgentConfig
from tms_stack.models.desired import DesiredDocument, DesiredLease, DesiredModel, HttpsSource, S3Source

KEY = "outage-test-key"
EXPIRES = datetime(2027, 1, 1, tzinfo=UTC)


def zip_dir(src: Path, dest: Path, stored: bool = False) -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(src.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(src).as_posix())
    return dest


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ZipServer, str, Path]]:
    root = tmp_path_factory.mktemp("outage-web")
    src = root / "src"
    for name, kwargs in (("identity", {}), ("addone", {"add": 1}), ("slowzip", {}), ("broken", {"fail": True}),
                         ("big", {}), ("small", {})):
        write_python_model(src / name, name, **kwargs)  # type: ignore[arg-type]
    # `big`: 200 KB of incompressible bytes, stored: archive and unpacked copy are ~200 KB each.
    (src / "big" / "1" / "weights.bin").write_bytes(os.urandom(200_000))
    files = root / "files"
    files.mkdir()
    for name in ("identity", "addone", "slowzip", "broken", "big", "small"):
        zip_dir(src / name, files / f"{name}.zip", stored=name == "big")
    (files / "truncated.zip").write_bytes((files / "identity.zip").read_bytes())
    server, url = serve_dir(files)
    server.trickle["/slowzip.zip"] = 0.5   # ~1 byte every half second: minutes for the whole zip
    server.truncate.add("/truncated.zip")
    yield server, url, files
    server.shutdown()


def https(url: str, name: str, path: str | None = None) -> DesiredModel:
    full = f"{url}/{path or name + '.zip'}"
    return DesiredModel(name=name, uri=full, source=HttpsSource(url=full, trusted=True))


def doc(*leases: tuple[str, list[DesiredModel]], size: int = 2**30) -> DesiredDocument:
    return DesiredDocument(instance="test", repositorySize=size, leases=[
        DesiredLease(name=name, owner=f"team-{name}", expires=EXPIRES, models=models) for name, models in leases])


@pytest.fixture
def triton(tmp_path: Path) -> Iterator[Triton]:
    (tmp_path / "models").mkdir()
    server = Triton(tmp_path / "models", tmp_path, repo_key=KEY).start()
    yield server
    server.stop()


class Running:
    def __init__(self, triton: Triton, tmp_path: Path, first: DesiredDocument, **config: object):
        self.path = tmp_path / "desired.json"
        self.write(first)
        self.agent = Agent(AgentConfig(self.path, triton.model_dir, triton.url, KEY, interval=0.2,
                                       sample_interval=0.2, **config))  # type: ignore[arg-type]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.agent.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def write(self, desired: DesiredDocument) -> None:
        self.last = desired
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(desired.to_json())
        tmp.replace(self.path)

    def settled(self) -> bool:
        return self.agent.desired == self.last and self.agent.ready()[0]

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)


@pytest.fixture
def running(triton: Triton, tmp_path: Path) -> Iterator[list[Running]]:
    made: list[Running] = []
    yield made
    for r in made:
        r.close()


def leftovers(model_dir: Path) -> list[str]:
    return sorted(e.name for e in model_dir.iterdir() if e.name.startswith((".tms-tmp-", ".download-")))


# --- 1: one slow download never freezes the others, and readiness is the truth -------------------

def test_a_hanging_download_never_delays_a_neighbours_reload_and_ready_follows_triton(
        triton: Triton, tmp_path: Path, running: list[Running], web: tuple[ZipServer, str, Path]) -> None:
    _server, url, _ = web
    neighbour = ("neighbour", [https(url, "identity")])
    r = Running(triton, tmp_path, doc(neighbour))
    running.append(r)
    wait_until(r.settled, what="the neighbour to be ready")
    r.write(doc(neighbour, ("slow", [https(url, "slowzip")])))
    wait_until(lambda: leftovers(triton.model_dir), what="the slow download to start")
    # Readiness follows Triton's own index, sampled apart from the agent's work: the model is
    # unloaded behind the agent's back and /ready turns 503 within a few seconds.
    requests.post(f"http://{triton.url}/v2/repository/models/identity/unload", headers={"tms-repo-key": KEY},
                  timeout=10).raise_for_status()
    gone = time.monotonic()
    seen: list[str] = []

    def flipped() -> bool:
        seen.append(r.agent.metrics.render())
        return not r.agent.ready()[0]

    wait_until(flipped, timeout=5, interval=0.05, what="/ready to turn 503")
    assert time.monotonic() - gone < 3
    assert any('tms_agent_model_ready{lease="neighbour",model="identity",owner="team-neighbour"} 0' in m
               for m in seen) or 'owner="team-neighbour"} 0' in r.agent.metrics.render()
    wait_until(lambda: triton.ready("identity"), timeout=15, what="the agent to reload the neighbour")
    # Triton restarts while the slow download runs: the neighbour is back within seconds.
    triton.kill()
    wait_until(lambda: not r.agent.ready()[0], timeout=5, interval=0.05, what="not Ready while Triton is down")
    wait_until(lambda: 'tms_agent_triton_up{lease="neighbour",owner="team-neighbour"} 0' in r.agent.metrics.render(),
               timeout=3, interval=0.05, what="tms_agent_triton_up 0")
    triton.start()
    restarted = time.monotonic()
    wait_until(lambda: triton.ready("identity"), timeout=20, interval=0.1, what="the neighbour's reload")
    reload_s = time.monotonic() - restarted
    assert leftovers(triton.model_dir), "the slow download should still be running"
    assert reload_s < 10, reload_s
    # the next sample (0.2 s) shows it; the bespoke pod stays not Ready while `slow` is missing
    wait_until(lambda: r.agent.ready()[1].get("leases") == {"neighbour": "ready", "slow": "loading"}, timeout=5,
               what="the neighbour ready, the slow lease loading")
    assert not r.agent.ready()[0]


def test_a_pool_instance_is_ready_again_after_a_restart_behind_a_hanging_download(
        triton: Triton, tmp_path: Path, running: list[Running], web: tuple[ZipServer, str, Path]) -> None:
    _server, url, _ = web
    neighbour = ("neighbour", [https(url, "identity")])
    r = Running(triton, tmp_path, doc(neighbour), first_pass_readiness=True)
    running.append(r)
    wait_until(r.settled, what="the pool instance to be ready")
    r.write(doc(neighbour, ("slow", [https(url, "slowzip")])))
    wait_until(lambda: leftovers(triton.model_dir), what="the slow download to start")
    triton.kill()
    wait_until(lambda: not r.agent.ready()[0], timeout=5, interval=0.05, what="not Ready while Triton is down")
    triton.start()
    wait_until(lambda: r.agent.ready()[0], timeout=20, what="Ready again (the neighbour reloaded)")
    assert triton.ready("identity") and leftovers(triton.model_dir)
    # The lease removed while it still downloads: the download stops now, not at its deadline.
    r.write(doc(neighbour))
    wait_until(lambda: not leftovers(triton.model_dir), timeout=10, what="the removed lease's download to stop")


def test_every_fetch_has_a_deadline_and_a_read_timeout(
        triton: Triton, tmp_path: Path, running: list[Running], web: tuple[ZipServer, str, Path]) -> None:
    _server, url, _ = web
    listener, hang = hanging_server()
    try:
        r = Running(triton, tmp_path, doc(
            ("trickle", [https(url, "slowzip")]),
            ("hang-https", [https(f"http://{hang}", "hung", "hung.zip")]),
            ("hang-s3", [DesiredModel(name="s3hung", uri="model://s3/m", source=S3Source(
                bucket="b", prefix="m", endpoint=f"http://{hang}", accessKeySecret=None))]),
            ("fine", [https(url, "identity")])), fetch_deadline=3, read_timeout=1)
        running.append(r)
        started = time.monotonic()
        wait_until(lambda: {"trickle", "hang-https", "hang-s3"} <= set(r.agent.failures), timeout=30,
                   what="the three slow sources to fail")
        assert time.monotonic() - started < 15
        assert r.agent.failures["trickle"].kind == "fetch deadline exceeded", r.agent.failures["trickle"]
        for lease in ("hang-https", "hang-s3"):
            assert r.agent.failures[lease].kind in ("fetch failed", "fetch deadline exceeded"), r.agent.failures[lease]
        assert triton.ready("identity")
        wait_until(lambda: not leftovers(triton.model_dir), timeout=10, what="the work folders to be removed")
    finally:
        listener.close()


# --- 2: a failing lease never unloads a model a healthy lease shares ------------------------------

def test_a_failing_lease_never_unloads_a_shared_model(
        triton: Triton, tmp_path: Path, running: list[Running], web: tuple[ZipServer, str, Path]) -> None:
    _server, url, _ = web
    shared = https(url, "identity")
    r = Running(triton, tmp_path, doc(("b", [shared])))
    running.append(r)
    wait_until(r.settled, what="lease b")
    counts = {"ok": 0, "failed": 0}
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                assert triton.infer_identity("identity", 2.0) == 2.0
                counts["ok"] += 1
            except Exception:  # noqa: BLE001 - every failure counts
                counts["failed"] += 1

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        # Lease a comes first (it would "own" the shared model) and fails on every retry.
        r.write(doc(("a", [shared, https(url, "broken")]), ("b", [shared])))
        wait_until(lambda: r.agent.failures.get("a") is not None and r.agent.failures["a"].count >= 2,
                   timeout=40, what="lease a to fail twice")
    finally:
        stop.set()
        thread.join()
    assert counts == {"ok": counts["ok"], "failed": 0} and counts["ok"] > 20, counts
    assert triton.ready("identity") and not triton.ready("broken")
    # Once no lease wants it, it goes.
    r.write(doc())
    wait_until(lambda: not triton.ready("identity") and not (triton.model_dir / "identity").exists(),
               what="the model no lease wants to be unloaded and deleted")


# --- 3: downloads never leak, the budget counts archive + unpacked, disk full is disk full -------

def test_truncated_and_over_budget_downloads_leave_nothing_and_others_still_fit(
        triton: Triton, tmp_path: Path, running: list[Running], web: tuple[ZipServer, str, Path]) -> None:
    _server, url, files = web
    big = (files / "big.zip").stat().st_size
    # Room for the unpacked copy of `big` (and the small model), not for its archive beside it.
    size = big + 60_000
    r = Running(triton, tmp_path, doc(("cut", [https(url, "truncated", "truncated.zip")]),
                                      ("huge", [https(url, "big")]), size=size))
    running.append(r)
    wait_until(lambda: {"cut", "huge"} <= set(r.agent.failures), timeout=30, what="both to fail")
    assert any(w in r.agent.failures["cut"].reason for w in ("download ended after", "download interrupted")), \
        r.agent.failures["cut"]
    assert r.agent.failures["huge"].kind == "over the repository size", r.agent.failures["huge"]
    wait_until(lambda: not leftovers(triton.model_dir), timeout=10, what="no partial file left")
    # Retries leave nothing behind either, and a model that fits is still served.
    wait_until(lambda: r.agent.failures["cut"].count >= 2, timeout=30, what="a retry")
    r.write(doc(("cut", [https(url, "truncated", "truncated.zip")]), ("huge", [https(url, "big")]),
                ("fits", [https(url, "small")]), size=size))
    wait_until(lambda: triton.ready("small"), timeout=30, what="the model that fits")
    assert not leftovers(triton.model_dir)


def _mount_namespace() -> list[str]:
    import shutil

    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("no private mount namespace here (unshare -m refused)")
    return ["unshare", "-m"]


def _agent_env(triton: Triton, desired: Path, port: int, key_file: Path) -> dict[str, str]:
    return dict(os.environ, TMS_DESIRED=str(desired), TMS_MODEL_DIR=str(triton.model_dir), TMS_TRITON_URL=triton.url,
                TMS_REPO_KEY_FILE=str(key_file), TMS_AGENT_PORT=str(port), TMS_AGENT_INTERVAL="0.2")


def _ready_body(port: int) -> dict:
    try:
        return json.loads(requests.get(f"http://127.0.0.1:{port}/ready", timeout=2).text)
    except (requests.RequestException, ValueError):
        return {}


def test_disk_full_is_reported_as_disk_full(triton: Triton, tmp_path: Path,
                                            web: tuple[ZipServer, str, Path]) -> None:
    """The agent's view of /models is a 64 KiB tmpfs (its own mount namespace): the 200 KB model
    fills it. The lease's state says "disk full" and the work folder is gone."""
    _server, url, _ = web
    (tmp_path / "key").write_text(KEY)
    desired = tmp_path / "desired.json"
    desired.write_text(doc(("full", [https(url, "big")])).to_json())
    port = free_port()
    tms = ROOT / ".venv" / "bin" / "tms"
    script = f'mount -t tmpfs -o size=64k tmpfs "{triton.model_dir}" && exec "$@"'
    proc = subprocess.Popen([*_mount_namespace(), "/bin/sh", "-c", script, "sh", str(tms), "agent"],
                            env=_agent_env(triton, desired, port, tmp_path / "key"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: _ready_body(port).get("failed", {}).get("full") == "disk full", timeout=30,
                   what="/ready to say disk full")
        inside = Path(f"/proc/{proc.pid}/root") / str(triton.model_dir).lstrip("/")
        assert not leftovers(inside), leftovers(inside)
        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
        assert health.status_code == 200  # alive; not Ready, and the reason is in the log
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "disk full" in out


# --- 4: SIGTERM stops the agent within the grace period, leaving nothing half-written -------------

def test_sigterm_during_a_download_stops_quickly_and_cleans_up(
        triton: Triton, tmp_path: Path, web: tuple[ZipServer, str, Path]) -> None:
    _server, url, _ = web
    (tmp_path / "key").write_text(KEY)
    desired = tmp_path / "desired.json"
    desired.write_text(doc(("slow", [https(url, "slowzip")])).to_json())
    port = free_port()
    proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "tms"), "agent"],
                            env=_agent_env(triton, desired, port, tmp_path / "key"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: leftovers(triton.model_dir), timeout=30, what="the download to start")
        time.sleep(1)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert took < 15, took  # the pod's grace is 60 s
    assert not leftovers(triton.model_dir) and not (triton.model_dir / "slowzip").exists()
    assert "1 download(s) aborted" in out, out[-2000:]


def test_the_outages_bench_runs_at_a_tiny_size(tmp_path: Path) -> None:
    """bench/agent_outages.py (bench/RESULTS.md) runs to the end (tests/unit/test_bench_scripts.py)."""
    import sys

    done = subprocess.run([sys.executable, str(ROOT / "bench" / "agent_outages.py"), "--runs", "1",
                           "--share-seconds", "3"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "neighbour reload after a Triton restart" in done.stdout and " 0 failed of " in done.stdout, done.stdout
