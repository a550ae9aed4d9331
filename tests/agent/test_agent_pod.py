"""What the rendered pod asks of the agent (issue 11 #4, #6, #7), against a real tritonserver:
a model's `count` reaches Triton, a pool instance's readiness is the agent's first pass, the load
timeout is the configured one, and the per-pod key chain (init container -> memory file -> Triton's
wrapper -> agent) works with the wrapper exactly as rendered."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from tests.support.triton import (
    Triton,
    _site_packages,
    backend_dir,
    free_port,
    triton_home,
    write_python_model,
)
from tests.support.wait import wait_until
from tms_stack.agent.runner import Agent, AgentConfig
from tms_stack.cli.agent import write_key
from tms_stack.models.desired import DesiredDocument, DesiredLease, DesiredModel, VolumeSource
from tms_stack.render.access import REPO_KEY_FILE, TRITON_WRAPPER, triton_command

KEY = "agent-pod-test-key"
EXPIRES = datetime(2027, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def volume(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("volume")
    write_python_model(root / "addone", "addone", add=1)
    write_python_model(root / "identity", "identity")
    write_python_model(root / "broken", "broken", fail=True)
    write_python_model(root / "slow", "slow", sleep=4)
    return root


def model(volume: Path, name: str, count: int = 0) -> DesiredModel:
    return DesiredModel(name=name, uri=f"model://nfs/{name}", count=count, source=VolumeSource(path=str(volume / name)))


def doc(*leases: tuple[str, list[DesiredModel]]) -> DesiredDocument:
    return DesiredDocument(instance="test", repositorySize=2**30, leases=[
        DesiredLease(name=name, owner="team", expires=EXPIRES, models=models) for name, models in leases])


@pytest.fixture
def triton(tmp_path: Path) -> Iterator[Triton]:
    (tmp_path / "models").mkdir()
    server = Triton(tmp_path / "models", tmp_path, repo_key=KEY).start()
    yield server
    server.stop()


class Running:
    """An agent thread over a desired file the test rewrites (content compared, like the ConfigMap)."""

    def __init__(self, triton: Triton, tmp_path: Path, initial: DesiredDocument | None = None, **config: object):
        self.path = tmp_path / "desired.json"
        self.write(initial or doc())
        self.agent = Agent(AgentConfig(self.path, triton.model_dir, triton.url, KEY, interval=0.1,
                                       **config))  # type: ignore[arg-type]
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
def running(triton: Triton, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Running]:
    run = Running(triton, tmp_path, **getattr(request, "param", {}))
    yield run
    run.close()


def instance_counts(triton: Triton, name: str) -> list[int]:
    config = requests.get(f"http://{triton.url}/v2/models/{name}/config", timeout=10).json()
    return [g.get("count") for g in config.get("instance_group", [])]


def test_count_reaches_triton_and_a_changed_count_reloads(running: Running, triton: Triton, volume: Path) -> None:
    running.write(doc(("a", [model(volume, "addone", count=3)])))
    wait_until(running.settled, what="addone with 3 instances")
    assert instance_counts(triton, "addone") == [3]
    assert triton.infer_identity("addone", 1.0) == 2.0  # the override kept the model's inputs/outputs
    running.write(doc(("a", [model(volume, "addone", count=2)])))
    wait_until(lambda: instance_counts(triton, "addone") == [2], what="the reload with count 2")
    # The agent container restarts while Triton keeps running, and the count changes meanwhile:
    # the new agent knows what Triton runs from the mark beside the model's files.
    running.close()
    restarted = Running(triton, running.path.parent, doc(("a", [model(volume, "addone", count=4)])))
    try:
        wait_until(lambda: instance_counts(triton, "addone") == [4], what="the reload with count 4 after a restart")
        # count 0: the model's own config.pbtxt again (count 1).
        restarted.write(doc(("a", [model(volume, "addone", count=0)])))
        wait_until(lambda: instance_counts(triton, "addone") == [1], what="the reload with the model's own config")
        assert triton.infer_identity("addone", 5.0) == 6.0
    finally:
        restarted.close()


def test_a_pool_instance_is_ready_after_its_first_pass_whatever_one_lease_does(
        triton: Triton, volume: Path, tmp_path: Path) -> None:
    good = ("good", [model(volume, "identity")])
    # The agent starts with its ConfigMap as the kubelet mounts it: one good, one broken lease.
    (tmp_path / "pool").mkdir()
    running = Running(triton, tmp_path / "pool", doc(good, ("bad", [model(volume, "broken")])),
                      first_pass_readiness=True)
    try:
        _pool_instance_checks(running, triton, volume, good)
    finally:
        running.close()


def _pool_instance_checks(running: Running, triton: Triton, volume: Path,
                          good: tuple[str, list[DesiredModel]]) -> None:
    wait_until(lambda: running.agent.ready()[0], what="Ready after the first pass")
    # Ready means the whole first pass is done: the good lease loaded, the bad one failed.
    ok, detail = running.agent.ready()
    assert ok and "bad" in detail["failed"] and detail["leases"]["bad"] == "load failed", detail
    assert triton.ready("identity")
    metrics = running.agent.metrics.render()
    assert 'tms_agent_lease_ready{lease="good",owner="team"} 1' in metrics and 'tms_agent_lease_ready{lease="bad",owner="team"} 0' in metrics
    # A newly added lease that takes 4 s to load never makes the instance unready meanwhile.
    running.write(doc(good, ("bad", [model(volume, "broken")]), ("late", [model(volume, "slow")])))
    samples = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not triton.ready("slow"):
        samples.append(running.agent.ready()[0])
        time.sleep(0.1)
    assert triton.ready("slow") and len(samples) > 20 and all(samples), samples
    assert triton.infer_identity("identity", 2.0) == 2.0
    # A Triton restart starts a new first pass: not Ready until the models are back.
    triton.kill()
    wait_until(lambda: not running.agent.ready()[0], timeout=20, what="the agent to notice the restart")
    triton.start()
    wait_until(lambda: running.agent.ready()[0], what="Ready after the new first pass")
    assert triton.ready("identity") and triton.ready("slow")


@pytest.mark.parametrize("running", [{"load_timeout": 1.5}], indirect=True)
def test_the_load_timeout_is_the_configured_one(running: Running, volume: Path) -> None:
    start = time.monotonic()
    running.write(doc(("late", [model(volume, "slow")])))
    wait_until(lambda: "late" in running.agent.failures, timeout=30, what="the load to time out")
    # The model needs 4 s; the agent gave up after its 1.5 s (it was a fixed 3,600 s before).
    assert time.monotonic() - start < 3.9
    assert "Triton failed to load slow" in running.agent.failures["late"].reason


def test_agent_key_writes_a_private_random_key_once(tmp_path: Path) -> None:
    path = tmp_path / "value"
    assert write_key(path)
    key = path.read_text()
    assert len(key.strip()) == 64 and int(key, 16) and key.endswith("\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o440
    assert not write_key(path) and path.read_text() == key  # a re-run init container keeps it
    other = tmp_path / "other"
    write_key(other)
    assert other.read_text() != key  # every pod its own
    path.chmod(0o640)
    path.write_text("")  # left empty by a killed init container: replaced
    assert write_key(path) and len(path.read_text().strip()) == 64


def _mount_namespace() -> list[str]:
    """`unshare` arguments for a private mount namespace (root here; a user namespace elsewhere)."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    for args in (["unshare", "-m"], ["unshare", "-rm"]):
        if subprocess.run([*args, "true"], capture_output=True).returncode == 0:
            return args
    pytest.skip("no mount namespace available (unshare -m and -rm both refused)")


def test_the_rendered_key_chain_runs_a_real_triton(tmp_path: Path, volume: Path) -> None:
    """In a private mount namespace with /run on tmpfs (so the rendered path
    /var/run/tms/repo-key/value is this test's alone): `tms agent-key` as the init container,
    then the rendered Triton command (the constant wrapper) exec'ing the real tritonserver. The agent
    loads with the key from that file; another pod's key and no key are refused."""
    assert triton_command(True) == ["/bin/sh", "-c", TRITON_WRAPPER, "tritonserver"]
    models = tmp_path / "models"
    models.mkdir()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "tritonserver").symlink_to(triton_home() / "bin" / "tritonserver")
    http = free_port()
    args = [f"--model-repository={models}", f"--backend-directory={backend_dir(tmp_path)}",
            "--model-control-mode=explicit", f"--http-port={http}", f"--grpc-port={free_port()}",
            f"--metrics-port={free_port()}", "--exit-timeout-secs=2"]
    tms = Path(os.environ.get("VIRTUAL_ENV") or Path(__file__).resolve().parents[2] / ".venv") / "bin" / "tms"
    pod = (f'mount -t tmpfs tmpfs /run && mkdir -p {os.path.dirname(REPO_KEY_FILE)} && '
           f'"$0" agent-key {REPO_KEY_FILE} && exec "$@"')
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}",
               LD_LIBRARY_PATH=str(_site_packages() / "nvidia_pytriton.libs"), PYTHONPATH=str(_site_packages()))
    log = open(tmp_path / "pod.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([*_mount_namespace(), "/bin/sh", "-c", pod, str(tms), *triton_command(True), *args],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"127.0.0.1:{http}"

        def live() -> bool:
            assert proc.poll() is None, (tmp_path / "pod.log").read_text()[-3000:]
            try:
                return requests.get(f"http://{url}/v2/health/live", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_until(live, timeout=60, what="the wrapped tritonserver")
        # The key exists only inside the pod's mount namespace; read it the way its agent would.
        # (/var/run is a link to /run: an absolute link under /proc/PID/root would leave the pod's root.)
        key_file = Path(f"/proc/{proc.pid}/root") / Path(REPO_KEY_FILE).resolve().relative_to("/")
        key = key_file.read_text().strip()
        assert len(key) == 64
        host = Path(REPO_KEY_FILE)  # the key never left the pod's namespace
        assert not host.exists() or host.read_text().strip() != key
        index = f"http://{url}/v2/repository/index"
        assert requests.post(index, timeout=10).status_code == 403
        assert requests.post(index, headers={"tms-repo-key": "another-pods-key"}, timeout=10).status_code == 403
        assert requests.post(index, headers={"tms-repo-key": key}, timeout=10).status_code == 200
        desired = tmp_path / "desired.json"
        desired.write_text(doc(("a", [model(volume, "addone")])).to_json())
        agent = Agent(AgentConfig(desired, models, url, key, interval=0.1))
        agent.run_once()
        assert agent.ready()[0], agent.ready()[1]
        body = {"inputs": [{"name": "INPUT0", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
        r = requests.post(f"http://{url}/v2/models/addone/infer", json=body, timeout=10)
        assert r.json()["outputs"][0]["data"] == [2.0]
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(20)
        log.close()


def test_the_wrapper_refuses_an_empty_key(tmp_path: Path) -> None:
    ns = _mount_namespace()
    script = (f'mount -t tmpfs tmpfs /run && mkdir -p {os.path.dirname(REPO_KEY_FILE)} && '
              f': > {REPO_KEY_FILE} && exec "$@"')
    out = subprocess.run([*ns, "/bin/sh", "-c", script, "sh", *triton_command(True), "--help"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and f"tms: no model-control key in {REPO_KEY_FILE}" in out.stderr
