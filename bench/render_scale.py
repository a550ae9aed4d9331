"""`tms render --out DIR` on a generated repository of N leases and P pools: wall time and peak RSS,
beside its yardstick measured in the same run: writing the same bytes (every file the render wrote,
read back into memory first) to a fresh folder, the I/O floor.

Each run renders into a fresh folder, times the yardstick on its files, then renders again into
the same folder (nothing changed: only files whose content changed are written).
Targets (issue 27): under 10 s wall and within 2x of the yardstick.
Usage: .venv/bin/python bench/render_scale.py [--leases N] [--pools P] [--runs R] [--tree DIR] [--before DIR]
--tree DIR: time another checkout's CLI (bench/check_scale.py says how).
--before DIR: also time DIR's CLI in every run (fresh folder, then again), just before this tree's,
and say whether both wrote the same files with the same bytes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_scale import TMS, Run, measure, timed, tree_path, use_tree  # noqa: E402
from generate import generate  # noqa: E402

RENDER_ARGS = ["--now", "2026-11-22T00:00:00Z"]


def write_floor(files: dict[Path, bytes], dest: Path) -> Run:
    """Writing `files` (relative path -> bytes) under the fresh folder `dest`: wall and CPU seconds."""
    start, cpu = time.perf_counter(), time.process_time()
    made: set[Path] = set()
    for rel, data in files.items():
        folder = (dest / rel).parent
        if folder not in made:
            folder.mkdir(parents=True, exist_ok=True)
            made.add(folder)
        (dest / rel).write_bytes(data)
    return Run(time.perf_counter() - start, time.process_time() - cpu, 0, 0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--leases", type=int, default=10_000)
    ap.add_argument("--pools", type=int, default=50)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--tree", type=Path, help="time this checkout's CLI instead of this tree's")
    ap.add_argument("--before", type=Path, help="also time this checkout's CLI in every run (before/after)")
    args = ap.parse_args()
    if args.tree:
        use_tree(args.tree)
    before_path = tree_path(args.before) if args.before else None
    with tempfile.TemporaryDirectory() as tmp:
        repo = generate(Path(tmp) / "repo", args.leases, args.pools)
        print(f"generated {args.leases} leases, {args.pools} pools; CLI from {os.environ['PYTHONPATH']}"
              + (f", before: {before_path}" if before_path else ""), flush=True)
        _, _, rc = timed([*TMS, "pool", "lock", "--no-learn"], repo)
        assert rc == 0
        fresh: list[Run] = []
        again: list[Run] = []
        floors: list[Run] = []
        before_fresh: list[Run] = []
        before_again: list[Run] = []
        files: dict[Path, bytes] = {}
        for run in range(args.runs):
            if before_path:
                before_out = Path(tmp) / f"before-{run}"
                cmd = [*TMS, "render", "--out", str(before_out), *RENDER_ARGS]
                first = measure(cmd, repo, before_path)
                assert first.code == 0, f"tms render (before) failed with exit {first.code}"
                same = measure(cmd, repo, before_path)
                assert same.code == 0, f"tms render (before, again) failed with exit {same.code}"
                before_fresh.append(first)
                before_again.append(same)
                print(f"run {run + 1}: before: tms render {first.wall:.2f} s ({first.cpu:.2f} CPU s) into a fresh "
                      f"folder, {same.wall:.2f} s ({same.cpu:.2f} CPU s) again into the same folder; peak RSS "
                      f"{first.rss:.0f} MiB", flush=True)
            out = Path(tmp) / f"out-{run}"
            first = measure([*TMS, "render", "--out", str(out), *RENDER_ARGS], repo)
            assert first.code == 0, f"tms render failed with exit {first.code}"
            files = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*.yaml"))}
            floor = write_floor(files, Path(tmp) / f"floor-{run}")
            same = measure([*TMS, "render", "--out", str(out), *RENDER_ARGS], repo)
            assert same.code == 0, f"tms render (again) failed with exit {same.code}"
            fresh.append(first)
            again.append(same)
            floors.append(floor)
            print(f"run {run + 1}: tms render {first.wall:.2f} s ({first.cpu:.2f} CPU s) into a fresh folder, "
                  f"{same.wall:.2f} s ({same.cpu:.2f} CPU s) again into the same folder; writing the same bytes "
                  f"{floor.wall:.2f} s ({floor.cpu:.2f} CPU s): {first.wall / floor.wall:.2f}x wall, "
                  f"{first.cpu / floor.cpu:.2f}x CPU; peak RSS {first.rss:.0f} MiB", flush=True)
            if before_path:
                theirs = {p.relative_to(before_out): p.read_bytes() for p in sorted(before_out.rglob("*.yaml"))}
                differ = sorted(str(p) for p in set(theirs) | set(files) if theirs.get(p) != files.get(p))
                print(f"run {run + 1}: before and after wrote {'the same bytes' if not differ else 'DIFFERENT files'} "
                      f"({len(theirs)} and {len(files)} files{'; first differing: ' + differ[0] if differ else ''})",
                      flush=True)
                del theirs
        size = sum(len(b) for b in files.values()) / 2**20
        wall = statistics.median(r.wall for r in fresh)
        ratios = [r.wall / f.wall for r, f in zip(fresh, floors, strict=True)]
        cpu_ratios = [r.cpu / f.cpu for r, f in zip(fresh, floors, strict=True)]
        print(f"tms render of {args.leases} leases / {args.pools} pools: median {wall:.2f} s into a fresh folder "
              f"({statistics.median(r.cpu for r in fresh):.2f} CPU s; again, unchanged: "
              f"{statistics.median(r.wall for r in again):.2f} s), peak RSS {max(r.rss for r in fresh):.0f} MiB, "
              f"{len(files)} objects, {size:.0f} MiB of YAML; target < 10 s: {'PASS' if wall < 10 else 'FAIL'}")
        print(f"yardstick (writing the same bytes to a fresh folder): median {statistics.median(f.wall for f in floors):.2f} s "
              f"({statistics.median(f.cpu for f in floors):.2f} CPU s); render / write: median "
              f"{statistics.median(ratios):.2f}x wall, {statistics.median(cpu_ratios):.2f}x CPU; target <= 2x: "
              f"{'PASS' if statistics.median(ratios) <= 2 else 'FAIL'}")
        if before_fresh:
            print(f"before ({before_path}): median {statistics.median(r.wall for r in before_fresh):.2f} s into a fresh "
                  f"folder ({statistics.median(r.cpu for r in before_fresh):.2f} CPU s; again, unchanged: "
                  f"{statistics.median(r.wall for r in before_again):.2f} s), peak RSS "
                  f"{max(r.rss for r in before_fresh):.0f} MiB; render / write: median "
                  f"{statistics.median(b.wall / f.wall for b, f in zip(before_fresh, floors, strict=True)):.2f}x wall; "
                  f"after / before: {statistics.median(a.wall / b.wall for a, b in zip(fresh, before_fresh, strict=True)):.2f}x "
                  "wall (fresh folder)")

if __name__ == "__main__":
    main()
