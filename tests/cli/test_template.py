"""The template is the user's: emptying it (no leases, no pools) keeps `tms check` and the tests green.

Issue 14: the suite read the root's leases/ as its fixture, so following the README's "fork and
delete the example leases" turned every pull request red."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
USER_PARTS = ("leases", "pools", "policies", "Pulumi.example.yaml")


def _tracked_copy(dest: Path, drop: tuple[str, ...]) -> Path:
    """This tree's tracked files (as a fork would have them) without the `drop` paths."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    for name in filter(None, files.decode().split("\0")):
        if name.split("/")[0] in drop or not (ROOT / name).is_file():
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)
    return dest


def test_emptied_template_passes_check(tmp_path: Path) -> None:
    repo = _tracked_copy(tmp_path / "fork", ("leases", "pools"))
    (repo / "leases").mkdir()
    out = subprocess.run([sys.executable, "-c", "from tms_stack.cli import main; main()", "check"],
                         cwd=repo, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out
    assert out.stdout.startswith("OK: ")


def test_tests_do_not_read_the_roots_user_files(tmp_path: Path) -> None:
    """Run the unit and CLI tests in a copy whose root has no leases/, pools/, policies/ or stack file."""
    repo = _tracked_copy(tmp_path / "bare", USER_PARTS)
    for part in USER_PARTS:
        assert not (repo / part).exists()
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                          "tests/unit", "tests/cli/test_common.py"],
                         cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)},
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
