"""scripts/trusted-review.sh on a generated fleet: wall time of the whole review and plan size.

Base: the generated repository (N leases, P pools) with this tree's tms_stack/ and pyproject.toml;
PR: the same plus 100 leases and a raised GPU maximum (--change wide: every group is rendered), or
one bespoke lease given one more CPU (--change one-lease: issue 27's review, as CI runs it). The cached venv is warmed first (its
first build is reported separately: it is paid once per pyproject.toml per machine).
Usage: .venv/bin/python bench/trusted_review.py [--leases N] [--pools P]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import ROOT, generate  # noqa: E402

SCRIPT = ROOT / "scripts" / "trusted-review.sh"


def review(base: Path, pr: Path, out: Path) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of the script and its children, exit code): on a shared machine
    the CPU time is the stabler number."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([str(SCRIPT), str(base), str(pr), str(out)], capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        sys.exit(f"trusted-review failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.returncode


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--leases", type=int, default=10_000)
    ap.add_argument("--pools", type=int, default=50)
    ap.add_argument("--change", choices=("wide", "one-lease"), default="wide")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = generate(Path(tmp) / "base", args.leases, args.pools)
        subprocess.run([sys.executable, "-c", "from tms_stack.cli import main; main()", "pool", "lock",
                        "--no-learn", "--root", str(base)], check=True, capture_output=True)
        shutil.copytree(base, Path(tmp) / "pr")
        pr = Path(tmp) / "pr"
        shutil.copytree(ROOT / "tms_stack", base / "tms_stack", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy2(ROOT / "pyproject.toml", base / "pyproject.toml")
        if args.change == "one-lease":
            changed = pr / "leases" / "lease-00001.yaml"
            text = changed.read_text()
            assert "resources: {cpu: 4, gpu: 1}" in text, "the generator's lease-00001 changed shape"
            changed.write_text(text.replace("resources: {cpu: 4, gpu: 1}", "resources: {cpu: 5, gpu: 1}"))
        for i in range(100 if args.change == "wide" else 0):
            name = f"extra-{i:03d}"
            (pr / "leases" / f"{name}.yaml").write_text(
                f"apiVersion: tms-stack/v1\nkind: Lease\nmetadata:\n  name: {name}\n  owner: team-{i % 97:02d}\n"
                f"spec:\n  models:\n    - name: m\n      uri: model://s3-models/extra/{i}\n"
                "  expires: 2027-01-01T00:00:00Z\n")
        subprocess.run([sys.executable, "-c", "from tms_stack.cli import main; main()", "pool", "lock",
                        "--no-learn", "--root", str(pr)], check=True, capture_output=True)
        if args.change == "wide":
            limits = pr / "policies" / "limits.yaml"
            limits.write_text(limits.read_text().replace("gpu: 4,", "gpu: 64,", 1))
        what = "+100 leases, GPU maximum raised" if args.change == "wide" else "one lease given one more CPU"
        print(f"generated {args.leases} leases, {args.pools} pools; PR: {what}", flush=True)
        secs, cpu, rc = review(base, base, Path(tmp) / "warm")
        print(f"base against itself (venv cached or built first): {secs:.1f} s wall, {cpu:.1f} s CPU (exit {rc})",
              flush=True)
        secs, cpu, rc = review(base, pr, Path(tmp) / "out")
        plan = (Path(tmp) / "out" / "plan.md").read_text()
        check = (Path(tmp) / "out" / "check.txt").read_text().strip().splitlines()
        print(f"trusted review of {args.leases} leases ({what}): {secs:.1f} s wall, {cpu:.1f} s CPU "
              f"(check exit {rc}: {check[-1] if check else ''}); plan.md {len(plan):,} characters (limit 65,536)")


if __name__ == "__main__":
    main()
