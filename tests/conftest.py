"""Fixtures every test may use. Real-server fixtures live in tests/support/."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The tests' own example repository. The root's leases/, pools/, policies/ and stack files
# belong to whoever forks this template; no test reads them.
EXAMPLE = ROOT / "tests" / "fixtures" / "example"
# The example's leases expire in 2027; tests evaluate time at a fixed instant.
NOW = datetime(2026, 11, 22, tzinfo=UTC)
EXAMPLE_PARTS = ("leases", "pools", "policies", "Pulumi.yaml", "Pulumi.example.yaml")


def copy_example(dest: Path) -> Path:
    """A private copy of the test fixture repository (tests/fixtures/example)."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in EXAMPLE_PARTS:
        src = EXAMPLE / part
        if src.is_dir():
            shutil.copytree(src, dest / part)
        elif src.exists():
            shutil.copy2(src, dest / part)
    return dest


@pytest.fixture
def example_repo(tmp_path: Path) -> Path:
    return copy_example(tmp_path / "repo")


@pytest.fixture
def now() -> datetime:
    return NOW
