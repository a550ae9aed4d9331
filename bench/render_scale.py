"""`tms render --out DIR` on a generated repository of 10,000 leases and 50 pools: time and peak RSS.
Usage: .venv/bin/python bench/render_scale.py [--leases N] [--pools P]"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_scale import TMS, timed  # noqa: E402
from generate import generate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--leases", type=int, default=10_000)
    ap.add_argument("--pools", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = generate(Path(tmp) / "repo", args.leases, args.pools)
        secs, rss, rc = timed([TMS, "pool", "lock", "--no-learn"], repo)
        assert rc == 0
        out = Path(tmp) / "out"
        secs, rss, rc = timed([TMS, "render", "--out", str(out), "--now", "2026-11-22T00:00:00Z"], repo)
        assert rc == 0, f"tms render failed with exit {rc}"
        files = sum(1 for p in out.rglob("*.yaml"))
        size = sum(p.stat().st_size for p in out.rglob("*.yaml")) / 2**20
        print(f"tms render of {args.leases} leases / {args.pools} pools: {secs:.2f} s, peak RSS {rss:.0f} MiB, "
              f"{files} objects, {size:.0f} MiB of YAML")


if __name__ == "__main__":
    main()
