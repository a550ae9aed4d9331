"""The agent under a slow source and a failing neighbour, on a real tritonserver (issue 23).

- reload: after a Triton restart (SIGKILL, start again), seconds from Triton answering to the
  neighbour lease's model READY, with and without another lease's download hanging (a zip
  trickling one byte every 0.5 s) — goal: the same;
- sharing: requests to a healthy lease's model while a lease sharing that model fails on every
  retry (its other model is broken) — goal: 0 failed.
`tms agent` runs as a process beside Triton with the pod's defaults (1-s interval).
Usage: .venv/bin/python bench/agent_outages.py [--runs R] [--share-seconds S]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.support.triton import Triton, free_port, write_python_model  # noqa: E402
from tests.support.zipserver import serve_dir  # noqa: E402
from tms_stack.models.desired import DesiredDocument, DesiredLease, DesiredModel, HttpsSource  # noqa: E402

KEY = "bench-key"


def model(url: str, name: str) -> DesiredModel:
    return DesiredModel(name=name, uri=f"{url}/{name}.zip", source=HttpsSource(url=f"{url}/{name}.zip", trusted=True))


def document(*leases: tuple[str, list[DesiredModel]]) -> DesiredDocument:
    return DesiredDocument(instance="bench", repositorySize=2**30, leases=[
        DesiredLease(name=n, owner=f"team-{n}", expires=datetime(2027, 1, 1, tzinfo=UTC), models=ms)
        for n, ms in leases])


def wait(cond, timeout: float = 300, step: float = 0.05) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(step)
    raise TimeoutError


def zip_dir(src: Path, dest: Path) -> None:
    with zipfile.ZipFile(dest, "w") as zf:
        for f in sorted(src.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(src).as_posix())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--share-seconds", type=float, default=40.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        web = tmp_path / "web"
        web.mkdir()
        for name, kw in (("identity", {}), ("slowzip", {}), ("broken", {"fail": True})):
            write_python_model(tmp_path / "src" / name, name, **kw)  # type: ignore[arg-type]
            zip_dir(tmp_path / "src" / name, web / f"{name}.zip")
        server, url = serve_dir(web)
        server.trickle["/slowzip.zip"] = 0.5
        (tmp_path / "models").mkdir()
        triton = Triton(tmp_path / "models", tmp_path, repo_key=KEY).start()
        (tmp_path / "key").write_text(KEY)
        desired = tmp_path / "desired.json"
        neighbour = ("neighbour", [model(url, "identity")])
        desired.write_text(document(neighbour).to_json())
        port = free_port()
        env = dict(os.environ, TMS_DESIRED=str(desired), TMS_MODEL_DIR=str(triton.model_dir),
                   TMS_TRITON_URL=triton.url, TMS_REPO_KEY_FILE=str(tmp_path / "key"), TMS_AGENT_PORT=str(port))
        agent = subprocess.Popen([str(ROOT / ".venv" / "bin" / "tms"), "agent"], env=env,
                                 stdout=open(tmp_path / "agent.log", "w"), stderr=subprocess.STDOUT)  # noqa: SIM115
        try:
            wait(lambda: triton.ready("identity"), 120)

            def reload_once() -> float:
                triton.kill()
                triton.start()
                started = time.monotonic()
                wait(lambda: triton.ready("identity"), 120)
                return time.monotonic() - started

            calm = [reload_once() for _ in range(args.runs)]
            desired.write_text(document(neighbour, ("slow", [model(url, "slowzip")])).to_json())
            wait(lambda: any(e.name.startswith(".tms-tmp-") for e in triton.model_dir.iterdir()), 60)
            hung = [reload_once() for _ in range(args.runs)]
            still = any(e.name.startswith(".tms-tmp-") for e in triton.model_dir.iterdir())
            print(f"neighbour reload after a Triton restart: no hang median {statistics.median(calm):.2f} s "
                  f"({', '.join(f'{x:.2f}' for x in calm)}); a download hanging meanwhile median "
                  f"{statistics.median(hung):.2f} s ({', '.join(f'{x:.2f}' for x in hung)}); "
                  f"the download still running at the end: {still}")

            shared = model(url, "identity")
            desired.write_text(document(("a", [shared, model(url, "broken")]), ("b", [shared])).to_json())
            counts = {"ok": 0, "failed": 0}
            stop = threading.Event()

            def hammer() -> None:
                while not stop.is_set():
                    try:
                        triton.infer_identity("identity", 1.0)
                        counts["ok"] += 1
                    except Exception:  # noqa: BLE001 - every failure counts
                        counts["failed"] += 1

            thread = threading.Thread(target=hammer)
            thread.start()
            time.sleep(args.share_seconds)
            stop.set()
            thread.join()
            log = (tmp_path / "agent.log").read_text()
            retries = log.count("lease a failed")
            print(f"healthy lease b sharing identity with failing lease a over {args.share_seconds:.0f} s: "
                  f"{counts['failed']} failed of {counts['ok'] + counts['failed']} requests; lease a failed "
                  f"{retries} times")
            r = requests.get(f"http://127.0.0.1:{port}/ready", timeout=5)
            print(f"/ready: {r.status_code} {r.text.strip()}")
        finally:
            agent.terminate()
            agent.wait(30)
            triton.stop()
            server.shutdown()


if __name__ == "__main__":
    main()
