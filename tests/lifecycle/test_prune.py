"""`tms prune` with a real Triton that served (or did not serve) requests, read through a real
Prometheus scraping it, or through Triton's statistics API; and fail-safe when telemetry is down."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT
from tests.support.prometheus import Prometheus, start_prometheus
from tests.support.triton import Triton, write_python_model

TMS = str(ROOT / ".venv" / "bin" / "tms")
LANDING = timedelta(seconds=75)

# Deliberately odd formatting and comments: only the expires line may change.
ACTIVE = """# Busy lease: renews itself while used.
apiVersion: tms-stack/v1
kind: Lease
metadata:
  name: busy          # owned by search
  owner: team-search
spec:
  models:
    -   name: busy_m
        uri: "model://shared-nfs/busy"   # quoted on purpose
  expires:   {expires}   # renewed by the prune job
  autoRenew: {{activityWindow: 10m, renewalDuration: 4h}}
"""
IDLE = ACTIVE.replace("busy", "idle").replace("Busy lease: renews itself while used.", "Idle lease.")
PLAIN = """apiVersion: tms-stack/v1
kind: Lease
metadata: {{name: plain, owner: team-search}}
spec:
  models: [{{name: plain_m, uri: "model://shared-nfs/plain"}}]
  expires: {expires}
  names: [plain-alias]
"""


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Triton, Prometheus, Triton]]:
    work = tmp_path_factory.mktemp("prune")
    tritons = []
    for name in ("busy", "idle"):
        models = work / f"models-{name}"
        write_python_model(models / f"{name}_m", f"{name}_m")
        t = Triton(models, work).start()
        requests.post(f"http://{t.url}/v2/repository/models/{name}_m/load", timeout=120).raise_for_status()
        tritons.append(t)
    busy, idle = tritons
    prom = start_prometheus(work / "prom", [(f"127.0.0.1:{busy.metrics_port}", {"lease": "busy"}),
                                            (f"127.0.0.1:{idle.metrics_port}", {"lease": "idle"})])
    # Prometheus applies discovered targets after a few seconds; a counter first scraped after the
    # requests would show no increase, so wait for a scrape of the zero counters first.
    deadline = time.monotonic() + 60
    while not prom.query('nv_inference_request_success{lease="busy"}'):
        assert time.monotonic() < deadline, "Prometheus never scraped Triton"
        time.sleep(0.5)
    time.sleep(1.5)
    for _ in range(20):
        busy.infer_identity("busy_m", 1.0)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = prom.query('sum(nv_inference_request_success{lease="busy"})')
        if got and float(got[0]["value"][1]) >= 20:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("Prometheus never scraped the requests")
    # The tests take "now" to the second; let the scrape that saw the requests fall before it.
    time.sleep(2)
    yield busy, prom, idle
    prom.stop()
    busy.stop()
    idle.stop()


def repo_with_expired(example_repo: Path) -> tuple[Path, datetime]:
    now = datetime.now(UTC).replace(microsecond=0)
    # Judged only once one scrape interval (the stack's default 15 s) and a minute have passed.
    expires = f"{now - LANDING - timedelta(seconds=1):%Y-%m-%dT%H:%M:%SZ}"
    (example_repo / "leases" / "busy.yaml").write_text(ACTIVE.format(expires=expires))
    (example_repo / "leases" / "idle.yaml").write_text(IDLE.format(expires=expires))
    (example_repo / "leases" / "plain.yaml").write_text(PLAIN.format(expires=expires))
    return example_repo, now


def prune(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TMS, "prune", *args], cwd=repo, capture_output=True, text=True, timeout=120)


def snapshot(repo: Path) -> dict[str, str]:
    return {p.relative_to(repo).as_posix(): p.read_text() for p in repo.rglob("*.yaml")}


def assert_renewed_in_place(before: str, after: str, old: datetime) -> None:
    b, a = before.splitlines(keepends=True), after.splitlines(keepends=True)
    assert len(a) == len(b)
    diff = [(x, y) for x, y in zip(b, a, strict=True) if x != y]
    assert len(diff) == 1 and diff[0][0].lstrip().startswith("expires:")
    new = (old + timedelta(hours=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert diff[0][1] == diff[0][0].replace(old.strftime("%Y-%m-%dT%H:%M:%SZ"), new)


@pytest.mark.parametrize("telemetry", ["prometheus", "triton-stats"])
def test_active_renewed_idle_deleted(example_repo: Path, servers: tuple[Triton, Prometheus, Triton],
                                     telemetry: str) -> None:
    busy, prom, idle = servers
    repo, now = repo_with_expired(example_repo)
    if telemetry == "triton-stats":
        # One Triton serving both leases' models, as a pool instance would.
        write_python_model(busy.model_dir / "idle_m", "idle_m")
        requests.post(f"http://{busy.url}/v2/repository/models/idle_m/load", timeout=120).raise_for_status()
        args = ["--triton-url", f"http://{busy.url}"]
    else:
        args = ["--prometheus-url", prom.url]
    before = snapshot(repo)
    out = prune(repo, "--now", f"{now:%Y-%m-%dT%H:%M:%SZ}", *args)
    assert out.returncode == 0, out.stdout + out.stderr
    after = snapshot(repo)
    assert "leases/idle.yaml" not in after and "leases/plain.yaml" not in after
    assert "leases/busy.yaml" in after, out.stdout
    assert_renewed_in_place(before["leases/busy.yaml"], after["leases/busy.yaml"], now - LANDING - timedelta(seconds=1))
    untouched = {k for k in before if k not in ("leases/busy.yaml", "leases/idle.yaml", "leases/plain.yaml")}
    assert {k: after[k] for k in untouched} == {k: before[k] for k in untouched}
    assert out.stdout.startswith("tms prune: remove 2 expired leases, renew 1\n")
    assert "- idle (leases/idle.yaml)" in out.stdout and "- plain (leases/plain.yaml)" in out.stdout
    assert "- busy (leases/busy.yaml): " in out.stdout
    check = subprocess.run([TMS, "check", "--now", f"{now:%Y-%m-%dT%H:%M:%SZ}"], cwd=repo, capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout


def test_telemetry_down_is_fail_safe(example_repo: Path) -> None:
    repo, now = repo_with_expired(example_repo)
    before = snapshot(repo)
    out = prune(repo, "--now", f"{now:%Y-%m-%dT%H:%M:%SZ}", "--prometheus-url", "http://127.0.0.1:9")
    assert out.returncode == 0, out.stderr
    after = snapshot(repo)
    assert after["leases/busy.yaml"] == before["leases/busy.yaml"]
    assert after["leases/idle.yaml"] == before["leases/idle.yaml"]
    assert "leases/plain.yaml" not in after  # not auto-renew: expiry needs no telemetry
    assert "Left alone (activity unknown, fail safe):" in out.stdout
    assert "Prometheus at http://127.0.0.1:9 is unreachable" in out.stdout
    assert "2 auto-renew lease(s) left alone" in out.stderr


def test_dry_run_changes_nothing(example_repo: Path) -> None:
    repo, now = repo_with_expired(example_repo)
    before = snapshot(repo)
    out = prune(repo, "--now", f"{now:%Y-%m-%dT%H:%M:%SZ}", "--dry-run")
    assert out.returncode == 0 and "remove 1 expired lease" in out.stdout
    assert snapshot(repo) == before


def test_pooled_lease_removal_updates_the_lock(example_repo: Path) -> None:
    out = prune(example_repo, "--now", "2027-02-02T00:00:00Z")
    # chat-embed expired; chat-small is auto-renew and no telemetry is configured: left alone.
    assert "- chat-embed (leases/chat-embed.yaml)" in out.stdout
    assert "- chat-small (leases/chat-small.yaml): no telemetry source configured" in out.stdout
    lock = (example_repo / "pools" / "placement.lock.yaml").read_text()
    assert "chat-embed" not in lock and "leases: [chat-small]" in lock and "ranker" in lock
    check = subprocess.run([TMS, "check", "--now", "2027-02-02T00:00:00Z"], cwd=example_repo, capture_output=True,
                           text=True)
    assert "lock" not in check.stdout, check.stdout
