"""Hot load vs pod restart, on a real tritonserver (CPU, Python-backend models).

- hot: time from a desired-models (ConfigMap) change to the new model READY, with `tms agent`
  running beside a Triton that already serves N models;
- restart: time to restart tritonserver and have the agent load all N+1 models again (what a pod
  restart costs when the lease set is baked into the pod);
- the agent's idle RSS.
Usage: .venv/bin/python bench/agent_hot_load.py [--models N] [--runs R]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.support.triton import Triton, free_port, write_python_model  # noqa: E402
from tms_stack.models.desired import DesiredDocument, DesiredLease, DesiredModel, VolumeSource  # noqa: E402

KEY = "bench-key"


def document(src: Path, names: list[str]) -> DesiredDocument:
    return DesiredDocument(instance="bench", leases=[
        DesiredLease(name=f"lease-{n}", owner="bench", expires=datetime(2027, 1, 1, tzinfo=UTC),
                     models=[DesiredModel(name=n, uri=f"model://vol/{n}", source=VolumeSource(path=str(src / n)))])
        for n in names])


def wait(cond, timeout: float = 300) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise TimeoutError


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=4, help="models already loaded")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        src = tmp_path / "src"
        names = [f"m{i}" for i in range(args.models + args.runs)]
        for n in names:
            write_python_model(src / n, n, add=1)
        (tmp_path / "models").mkdir()
        triton = Triton(tmp_path / "models", tmp_path, repo_key=KEY).start()
        desired = tmp_path / "desired.json"
        desired.write_text(document(src, names[: args.models]).to_json())
        (tmp_path / "key").write_text(KEY)
        port = free_port()
        env = dict(os.environ, TMS_DESIRED=str(desired), TMS_MODEL_DIR=str(triton.model_dir),
                   TMS_TRITON_URL=triton.url, TMS_REPO_KEY_FILE=str(tmp_path / "key"), TMS_AGENT_PORT=str(port),
                   TMS_AGENT_INTERVAL="0.1", TMS_LOG_LEVEL="WARNING")
        agent = subprocess.Popen([str(ROOT / ".venv" / "bin" / "tms"), "agent"], env=env)

        def ready() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        try:
            wait(ready)
            time.sleep(3)
            rss = int(next(line for line in Path(f"/proc/{agent.pid}/status").read_text().splitlines()
                           if line.startswith("VmRSS")).split()[1]) / 1024
            hot, restart = [], []
            for run in range(args.runs):
                current = names[: args.models + run + 1]
                start = time.monotonic()
                desired.write_text(document(src, current).to_json())
                wait(lambda n=current[-1]: triton.ready(n))
                hot.append(time.monotonic() - start)
                start = time.monotonic()
                triton.kill()
                triton.start()
                wait(lambda c=current: all(triton.ready(n) for n in c))
                restart.append(time.monotonic() - start)
                print(f"run {run + 1}: hot add {hot[-1]:.2f} s; restart + reload of {len(current)} models "
                      f"{restart[-1]:.2f} s", flush=True)
        finally:
            agent.terminate()
            agent.wait(30)
            triton.stop()
    h, r = statistics.median(hot), statistics.median(restart)
    print(f"hot add of one model (ConfigMap change -> READY): median {h:.2f} s")
    print(f"tritonserver restart + reload of {args.models}+1 models: median {r:.2f} s")
    print(f"ratio restart/hot: {r / h:.1f}x; agent idle RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
