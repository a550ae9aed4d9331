"""The soak of issue 22 at a size the suite can afford: randomized concurrent edits from several
processes and git merges of side branches on one checkout; every change reported as done is in the
final tree, nothing is left half-written, and `tms check` passes. bench/soak.py runs the issue's
1,000 edits (bench/RESULTS.md)."""

from __future__ import annotations

import os
from pathlib import Path

from bench.soak import run

OPS = int(os.environ.get("TMS_SOAK_OPS", "12"))


def test_concurrent_edits_and_merges_lose_nothing(tmp_path: Path) -> None:
    report = run(OPS, workers=3, merges=1, seed=22, base=tmp_path)
    assert report["failed"] == [], report["failed"]
    assert report["lost"] == [], report["lost"]
    assert report["check"] == 0, report["check_output"]
    assert report["leftover_temp_files"] == []
    assert report["ops"] == OPS and report["done"] > OPS // 2, report
    assert report["merges"] >= 1, report
