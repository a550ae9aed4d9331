"""Fixtures for running the workflow files with act (tests/e2e/workflows/act.py): act built from the Go
module proxy and cached like the other Go tools (tools/build_tools.py, piece ``act``), the vendored
actions unpacked once per session, a git server, the GitHub stand-in and a fresh fleet per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import _uncaptured, build_tools
from tests.e2e.workflows.act import (
    REPOSITORY,
    Act,
    Fleet,
    pinned_actions,
    unpack_actions,
    vendor_actions_dir,
    wheelhouse,
)
from tests.e2e.workflows.github import GitHubStandIn
from tests.e2e.workflows.gitserver import GitServer


@pytest.fixture(scope="session")
def act_bin(request: pytest.FixtureRequest) -> str:
    with _uncaptured(request):
        result = build_tools.build(["act"])["act"]
    if "error" in result:
        pytest.fail("could not build act: " + result["error"])
    return result["path"]


@pytest.fixture(scope="session")
def vendored_actions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    vendor = vendor_actions_dir()
    if vendor is None:
        pytest.skip("no ../shared/vendor/actions (the actions the workflows pin, at their commits): "
                    "the workflow files cannot run here without them")
    actions = unpack_actions(vendor, tmp_path_factory.mktemp("actions"))
    # docker/*: agent-image's build needs a container engine; pypa/gh-action-pypi-publish: release.yml's
    # upload needs GitHub's OIDC and PyPI (tests/lifecycle/test_release_install.py tests the package
    # against a local index instead). Neither job runs here, so neither action is vendored.
    missing = {f"{a}@{sha}" for a, sha in pinned_actions()
               if not a.startswith("docker/") and a != "pypa/gh-action-pypi-publish"} - set(actions)
    assert not missing, f"pinned by the workflows but not vendored: {sorted(missing)}"
    return actions


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[GitServer]:
    with GitServer(tmp_path / "git-server") as server:
        yield server


@pytest.fixture
def fleet(git_server: GitServer, tmp_path: Path) -> Fleet:
    return Fleet(git_server, tmp_path)


@pytest.fixture
def github(tmp_path: Path) -> Iterator[GitHubStandIn]:
    with GitHubStandIn(REPOSITORY, tmp_path / "artifacts") as gh:
        yield gh


@pytest.fixture
def act(act_bin: str, vendored_actions: dict[str, Path], git_server: GitServer, github: GitHubStandIn,
        tmp_path: Path) -> Act:
    return Act(act_bin, tmp_path / "act", git_server, vendored_actions, [])


@pytest.fixture(scope="session")
def wheels() -> Path:
    return wheelhouse(build_tools.cache_root())


@pytest.fixture
def engine_act(act_bin: str, vendored_actions: dict[str, Path], git_server: GitServer, pulumi_tools: list[str],
               wheels: Path, tmp_path: Path) -> Act:
    """A runner with the Pulumi engine built from ../shared/vendor on PATH (pulumi/actions finds it
    at the version the workflows pin and downloads nothing) and the wheelhouse for pip."""
    return Act(act_bin, tmp_path / "act", git_server, vendored_actions, list(pulumi_tools), wheels)
