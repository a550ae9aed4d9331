"""`tms prune` wall time against telemetry that misbehaves in time (issue 22): a Prometheus that
accepts connections and never answers, one that trickles a byte a second, and one that answers at
once (every lease active: 300 renewals written through the check gate of issue 21).

Every lease of a generated repository (bench/generate.py) is an expired auto-renew lease, so each
one is a telemetry question. `--tms` runs another tree's CLI (e.g. the main checkout's, for the
numbers before); `--budget`/`--concurrency` are passed only when given (the old CLI has neither).
Usage: .venv/bin/python bench/prune_deadline.py --mode hang --leases 300 [--budget 30s] [--tms PATH]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from check_scale import TMS  # noqa: E402  (this tree's CLI, whatever the venv's editable install points at)
from generate import generate  # noqa: E402

from tests.support.oddprom import OddPrometheus  # noqa: E402
from tests.support.stallserver import StallServer  # noqa: E402

NOW = "2026-11-22T06:00:00Z"


def fleet(dest: Path, leases: int) -> Path:
    generate(dest, leases=leases, pools=5)
    for path in (dest / "leases").glob("*.yaml"):
        text = re.sub(r"expires: \S+", "expires: 2026-11-22T00:00:00Z", path.read_text())
        path.write_text(text + "  autoRenew: {}\n")
    subprocess.run([*TMS, "pool", "lock"], cwd=dest, check=True, capture_output=True)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["hang", "trickle", "answers"], default="hang")
    ap.add_argument("--leases", type=int, default=300)
    ap.add_argument("--budget")
    ap.add_argument("--concurrency")
    ap.add_argument("--tms", help="another tms executable to measure (default: this tree's)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-prune-") as tmp:
        repo = fleet(Path(tmp) / "fleet", args.leases)
        server = OddPrometheus("active") if args.mode == "answers" else StallServer(args.mode, interval=1.0)
        with server:
            cmd = [*([args.tms] if args.tms else TMS), "prune", "--now", NOW, "--prometheus-url", server.url, "-o", "json"]
            if args.budget:
                cmd += ["--telemetry-budget", args.budget]
            if args.concurrency:
                cmd += ["--telemetry-concurrency", args.concurrency]
            start = time.perf_counter()
            out = subprocess.run(cmd, cwd=repo, capture_output=True, text=True)
            took = time.perf_counter() - start
        if out.returncode != 0:
            sys.exit(f"tms prune exited {out.returncode}: {out.stderr[-2000:]}")
        report = json.loads(out.stdout)
        print(json.dumps({"mode": args.mode, "leases": args.leases, "budget": args.budget, "tms": args.tms,
                          "seconds": round(took, 1), "renewed": len(report["renewed"]),
                          "deleted": len(report["deleted"]), "unknown": len(report["unknown"])}))


if __name__ == "__main__":
    main()
