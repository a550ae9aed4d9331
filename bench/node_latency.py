"""Apply-to-first-inference on the real node (kubelet + containerd, CPU tritonserver from the
nvidia-pytriton wheel, the locally built images; tests/e2e/node).

- bespoke: a new bespoke lease, from applying `tms render` output to its model answering a
  request through its Service (scheduling, sandbox, both containers starting, the agent fetching
  the model from S3 and loading it);
- pooled: a lease added to a pool instance that already serves another lease: apply (its
  ConfigMap and Service change) to its model answering; the kubelet must first refresh the
  ConfigMap volume in the running pod;
- restart: the alternative, the instance's pod deleted (what a pod-template change costs): until
  both leases' models answer again from the new pod.

Usage: .venv/bin/python bench/node_latency.py [--runs N]   (needs root, like the node tests)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import build_tools  # noqa: E402

from tests.e2e.node.node import GATEWAY  # noqa: E402
from tests.e2e.node.stack import NodeStack, node_cluster_running  # noqa: E402
from tests.support.s3server import start_s3  # noqa: E402
from tests.support.triton import write_python_model  # noqa: E402

SMALL = {"cpu": "500m", "gpu": 0, "systemMemory": "1Gi", "sharedMemory": "64Mi", "repositorySize": "256Mi"}


def expires() -> str:
    return (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def lease(name: str, model: str, **spec) -> dict:  # type: ignore[no-untyped-def]
    return {"apiVersion": "tms-stack/v1", "kind": "Lease", "metadata": {"name": name, "owner": "team-node"},
            "spec": {"models": [{"name": model, "uri": f"model://s3-models/{model}", "backends": ["python"]}],
                     "expires": expires(), **spec}}


def first_answer(stack: NodeStack, service: str, model: str, value: float, timeout_s: float = 300) -> None:
    assert stack.infer(service, model, value, timeout_s=timeout_s) == value + 1


def fmt(xs: list[float]) -> str:
    return f"{statistics.median(xs):.1f} s (runs: {', '.join(f'{x:.1f}' for x in xs)})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    tools = build_tools.build(["kube-apiserver", "etcd", "kwok", "crds"])
    bespoke, pooled, restart = [], [], []
    with tempfile.TemporaryDirectory(prefix="tms-bench-node-") as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "cp").mkdir()
        with node_cluster_running(tmp_path / "cp", tools) as (kube, node):
            gen = start_s3(host=GATEWAY)
            s3 = next(gen)
            client = s3.client()
            client.create_bucket(Bucket="models")
            src = tmp_path / "src"
            for i in range(1 + 2 * args.runs):
                write_python_model(src / f"add{i}", f"add{i}", add=1)
            for f in sorted(src.rglob("*")):
                if f.is_file():
                    client.upload_file(str(f), "models", f.relative_to(src).as_posix())
            try:
                for run in range(args.runs):
                    st = NodeStack(tmp_path / f"bespoke{run}", kube, node, s3, f"bench-bespoke-{run}")
                    (st.path / "leases" / "adder.yaml").unlink()
                    st.write_lease("b", lease("b", "add0", triton={"resources": SMALL}))
                    st.admin_secrets()
                    t0 = time.monotonic()
                    st.apply()
                    first_answer(st, "b", "add0", 1.0)
                    bespoke.append(time.monotonic() - t0)
                    print(f"bespoke run {run}: {bespoke[-1]:.1f} s", flush=True)
                    kube.delete("v1", "Namespace", st.namespace)

                st = NodeStack(tmp_path / "pool", kube, node, s3, "bench-pool")
                (st.path / "leases" / "adder.yaml").unlink()
                st.write_pool("bench-pool", {
                    "apiVersion": "tms-stack/v1", "kind": "Pool",
                    "metadata": {"name": "bench-pool", "owner": "team-node"},
                    "spec": {"instanceQuota": 10, "instances": {"min": 1, "max": 1}, "backendUniqueness": False,
                             "triton": {"resources": SMALL}}})
                st.write_lease("p0", lease("p0", "add0", pool={"name": "bench-pool", "quota": 1}))
                st.admin_secrets()
                pv = st.volume_claim(tmp_path / "volume")  # a pool instance mounts every policy volume
                st.tms("pool", "lock")
                st.apply()
                first_answer(st, "p0", "add0", 1.0)
                hosted = [("p0", "add0")]
                for run in range(args.runs):
                    name, model = f"p{run + 1}", f"add{run + 1}"
                    st.write_lease(name, lease(name, model, pool={"name": "bench-pool", "quota": 1}))
                    st.tms("pool", "lock")
                    pods_before = {p["metadata"]["uid"] for p in st.pods("bench-pool-0")}
                    t0 = time.monotonic()
                    st.apply()
                    first_answer(st, name, model, 2.0)
                    pooled.append(time.monotonic() - t0)
                    same = {p["metadata"]["uid"] for p in st.pods("bench-pool-0")} == pods_before
                    print(f"pooled run {run}: {pooled[-1]:.1f} s (same pod: {same})", flush=True)
                    # How the agent learnt of the lease: its watch of the ConfigMap, or the file.
                    for line in node.container_logs(st.namespace, n=2000).splitlines():
                        if "ConfigMap" in line or "desired models changed" in line or line.startswith("---"):
                            print("   ", line[:220], flush=True)
                    hosted.append((name, model))

                    pod = st.wait_ready("bench-pool-0")
                    t0 = time.monotonic()
                    kube.delete("v1", "Pod", pod["metadata"]["name"], st.namespace)
                    for svc, m in hosted:
                        first_answer(st, svc, m, 3.0)
                    restart.append(time.monotonic() - t0)
                    print(f"restart run {run}: {restart[-1]:.1f} s ({len(hosted)} leases)", flush=True)
                kube.delete("v1", "PersistentVolume", pv)
            finally:
                gen.close()
    print()
    print("| what | apply → first answered inference (median) |")
    print("| --- | --- |")
    print(f"| bespoke lease (new pod) | {fmt(bespoke)} |")
    print(f"| pooled lease added to a running instance | {fmt(pooled)} |")
    print(f"| pod restart instead (delete → every hosted lease answers) | {fmt(restart)} |")


if __name__ == "__main__":
    main()
