"""A real tritonserver (from the nvidia-pytriton wheel, CPU only) for tests, plus helpers that write
Python-backend models: identity, add-one, one that fails to load, and a two-model ensemble."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _site_packages() -> Path:
    import pytriton

    return Path(pytriton.__file__).resolve().parent.parent


def triton_home() -> Path:
    return _site_packages() / "pytriton" / "tritonserver"


def backend_dir(cache: Path) -> Path:
    """The Python backend with the stub for this interpreter (copied once per test session)."""
    target = cache / "backends"
    if (target / "python" / "triton_python_backend_stub").exists():
        return target
    shutil.copytree(triton_home() / "backends", target, dirs_exist_ok=True)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = triton_home() / "python_backend_stubs" / version / "triton_python_backend_stub"
    shutil.copy2(stub, target / "python" / "triton_python_backend_stub")
    # The stub embeds the system interpreter, which may lack numpy; the backend directory is on its
    # sys.path, so expose this venv's numpy there.
    for name in ("numpy", "numpy.libs"):
        if (_site_packages() / name).exists() and not (target / "python" / name).exists():
            (target / "python" / name).symlink_to(_site_packages() / name)
    return target


@dataclass
class Triton:
    model_dir: Path
    workdir: Path
    repo_key: str | None = None
    http_port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 60) -> Triton:
        args = [
            str(triton_home() / "bin" / "tritonserver"),
            f"--model-repository={self.model_dir}",
            f"--backend-directory={backend_dir(self.workdir)}",
            "--model-control-mode=explicit",
            f"--http-port={self.http_port}", f"--grpc-port={self.grpc_port}",
            f"--metrics-port={self.metrics_port}", "--metrics-interval-ms=500",
            "--exit-timeout-secs=2", "--log-verbose=0",
        ]
        if self.repo_key:
            args += [f"--http-restricted-api=model-repository:tms-repo-key={self.repo_key}",
                     f"--grpc-restricted-protocol=model-repository:tms-repo-key={self.repo_key}"]
        # The Python backend stub runs the system interpreter; give it this venv (numpy).
        env = dict(os.environ, LD_LIBRARY_PATH=str(_site_packages() / "nvidia_pytriton.libs"),
                   PYTHONPATH=str(_site_packages()))
        log = open(self.workdir / f"triton-{self.http_port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tritonserver exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                if requests.get(f"http://{self.url}/v2/health/live", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"tritonserver did not become live in {timeout}s: {self.log_tail()}")

    def log_tail(self, n: int = 3000) -> str:
        logs = sorted(self.workdir.glob("triton-*.log"))
        return logs[-1].read_text(errors="replace")[-n:] if logs else ""

    def kill(self) -> None:
        """SIGKILL, as when a container dies."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> Triton:
        self.kill()
        return self.start()

    def ready(self, model: str) -> bool:
        r = requests.get(f"http://{self.url}/v2/models/{model}/ready", timeout=5)
        return r.status_code == 200

    def infer_identity(self, model: str, value: float = 1.0) -> float:
        body = {"inputs": [{"name": "INPUT0", "shape": [1], "datatype": "FP32", "data": [value]}]}
        r = requests.post(f"http://{self.url}/v2/models/{model}/infer", json=body, timeout=10)
        r.raise_for_status()
        return r.json()["outputs"][0]["data"][0]


CONFIG = """name: "{name}"
backend: "python"
max_batch_size: 0
input [ {{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 1 ] }} ]
output [ {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 1 ] }} ]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
"""

MODEL_PY = '''import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        {init}

    def execute(self, requests):
        out = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", x + {add})]))
        return out
'''

ENSEMBLE = """name: "{name}"
platform: "ensemble"
max_batch_size: 0
input [ {{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 1 ] }} ]
output [ {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 1 ] }} ]
ensemble_scheduling {{
  step [
    {{ model_name: "{first}" model_version: -1
      input_map {{ key: "INPUT0" value: "INPUT0" }} output_map {{ key: "OUTPUT0" value: "mid" }} }},
    {{ model_name: "{second}" model_version: -1
      input_map {{ key: "INPUT0" value: "mid" }} output_map {{ key: "OUTPUT0" value: "OUTPUT0" }} }}
  ]
}}
"""


def write_python_model(dest: Path, name: str, add: float = 0.0, fail: bool = False, sleep: float = 0.0) -> Path:
    """A Triton model directory `dest/` (config.pbtxt + 1/model.py) that adds `add` to its input."""
    (dest / "1").mkdir(parents=True, exist_ok=True)
    (dest / "config.pbtxt").write_text(CONFIG.format(name=name))
    init = "raise RuntimeError('this model is broken on purpose')" if fail else (
        f"import time; time.sleep({sleep})" if sleep else "pass")
    (dest / "1" / "model.py").write_text(MODEL_PY.format(init=init, add=add))
    return dest


def write_ensemble(dest: Path, name: str, first: str, second: str) -> Path:
    (dest / "1").mkdir(parents=True, exist_ok=True)
    (dest / "config.pbtxt").write_text(ENSEMBLE.format(name=name, first=first, second=second))
    return dest
