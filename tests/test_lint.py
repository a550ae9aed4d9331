"""The code stays lint-clean (ruff) and the package type-checks (mypy)."""

from __future__ import annotations

import subprocess

from tests.conftest import ROOT

VENV = ROOT / ".venv" / "bin"


def test_ruff() -> None:
    out = subprocess.run([str(VENV / "ruff"), "check", "tms_stack", "tests", "bench"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:]


def test_mypy() -> None:
    out = subprocess.run([str(VENV / "mypy"), "tms_stack"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:]
