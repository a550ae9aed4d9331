"""Fixtures of the unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private parse-cache folder (pack, key, kept answers) for one test, no key or mode from outside."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("TMS_CACHE_DIR", str(folder))
    monkeypatch.delenv("TMS_CACHE_KEY", raising=False)
    monkeypatch.delenv("TMS_CACHE", raising=False)
    return folder
