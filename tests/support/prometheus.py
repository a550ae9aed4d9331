"""A real Prometheus server (Debian's package) scraping given targets, on loopback."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

from tests.support.triton import free_port


@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen

    def query(self, expr: str) -> list[dict]:
        r = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        r.raise_for_status()
        return r.json()["data"]["result"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_prometheus(workdir: Path, targets: list[tuple[str, dict[str, str]]], interval: str = "1s") -> Prometheus:
    """`targets`: (host:port, labels). The labels stand in for what the stack's PodMonitor
    relabelling puts on Triton's series (lease, pool, instance_name)."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: run scripts/deps.d/20-prometheus.sh (make test does)"
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [{"job_name": f"triton-{i}", "static_configs": [{"targets": [target], "labels": labels}]}
                           for i, (target, labels) in enumerate(targets)],
    }
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen(
        [binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=open(workdir / "prometheus.log", "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return Prometheus(url, proc)
        except requests.RequestException:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("prometheus did not start: " + (workdir / "prometheus.log").read_text()[-2000:])
