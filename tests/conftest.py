"""Fixtures every test may use. Real-server fixtures live in tests/support/."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="session", autouse=True)
def _private_parse_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """`tms check`/`tms plan` keep a parse cache in the user's cache folder (docs/review.md): the
    tests' runs (and the commands they start, which inherit the environment) keep theirs here."""
    os.environ.setdefault("TMS_CACHE_DIR", str(tmp_path_factory.mktemp("parse-cache")))


@pytest.fixture
def example_repo(tmp_path: Path) -> Path:
    return copy_example(tmp_path / "repo")


@pytest.fixture
def now() -> datetime:
    return NOW


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With pytest-xdist (`make test` runs one process; `-n 2 --dist loadgroup` is for a faster
    local run), the tests of the real
    node share one worker: a host holds one node at a time (its bridge, addresses and iptables
    rules; tests/e2e/node/stack.py's NODE_LOCK), and their package-scoped node is started once
    there instead of once per worker. Everything else is independent (free ports, tmp paths,
    private mount namespaces) and spreads over both workers."""
    node = ROOT / "tests" / "e2e" / "node"
    for item in items:
        if node in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.xdist_group("real-node"))
