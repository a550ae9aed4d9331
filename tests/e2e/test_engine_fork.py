"""A fork without ../shared/vendor: the engine tests skip with a message saying why and what to
do, instead of failing or silently passing (tests/e2e/conftest.py, `pulumi_tools`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]


def test_without_vendored_sources_the_engine_tests_skip_with_the_reason(tmp_path: Path) -> None:
    empty = tmp_path / "no-vendor"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("TMS_PULUMI_BIN_DIR", "PYTEST_XDIST_WORKER")}
    env["TMS_VENDOR_DIR"] = str(empty)  # as if ../shared were absent
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", "-q", "-n0",
         "tests/e2e/test_engine_smoke.py::test_the_engine_runs_the_recorded_cli_and_provider_versions"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=540,
    )
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    assert "1 skipped" in out, out[-4000:]
    assert "the Pulumi engine cannot be built here (no ../shared/vendor" in out, out[-4000:]
    assert "set TMS_PULUMI_BIN_DIR" in out and "403 Forbidden" in out, out[-4000:]
