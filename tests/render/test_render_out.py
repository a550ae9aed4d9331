"""`tms render --out` brings a folder it wrote before up to date instead of recreating it (issue
27: deleting and recreating 78,000 files took 56 s of a 10,000-lease render): unchanged files are
not rewritten, objects no longer rendered are removed, and nothing in the folder is followed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

TMS = [sys.executable, "-c", "from tms_stack.cli import main; main()"]


def _render(repo: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TMS, "render", "--out", str(out), "--now", "2026-11-22T00:00:00Z"], cwd=repo,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_a_second_render_rewrites_only_what_changed(example_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = _render(example_repo, out)
    assert first.returncode == 0, first.stderr
    files = {p: p.stat().st_mtime_ns for p in out.rglob("*.yaml")}
    assert files
    # an edit of one lease, and one lease removed
    lease = example_repo / "leases" / "fraud-detector.yaml"
    gone = sorted(p for p in (example_repo / "leases").glob("*.yaml") if p != lease and "pool" not in p.read_text())[0]
    gone.unlink()
    lease.write_text(lease.read_text().replace("maxReplicas: 4", "maxReplicas: 3", 1))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (out / "stray-link").symlink_to(outside, target_is_directory=True)
    os.utime(out, None)
    second = _render(example_repo, out)
    assert second.returncode == 0, second.stderr
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*.yaml")}
    rewritten = [p for p in after if p in files and after[p] != files[p]]
    assert [p.name for p in rewritten] == ["HorizontalPodAutoscaler-fraud-detector.yaml"], rewritten
    assert not any(gone.stem in str(p) for p in after), "the removed lease's objects are still there"
    assert set(after) < set(files)
    assert not (out / "stray-link").exists() and list(outside.iterdir()) == []
    assert not [d for d in out.rglob("*") if d.is_dir() and not any(d.iterdir())], "empty folders left"
