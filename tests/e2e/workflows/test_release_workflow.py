"""release.yml's first job, run as written by act on a pushed version tag: the tag, pyproject.toml and
tms_stack/__init__.py must agree before anything is published.

Its other jobs do not run here, each for a reason outside this repository: `agent-image` builds and
pushes a container image (docker/* actions, a container daemon and a registry; none on these
machines), `dist` needs that job's image digest, `github-release` needs `dist`'s artifact and
GitHub's releases API through the `gh` CLI, and `pypi` needs GitHub's OIDC token and PyPI.
What those jobs run is tested without the runner: tools/release.py (tests/lifecycle/test_release.py)
and the built package installed from a package index on loopback
(tests/lifecycle/test_release_install.py)."""

from __future__ import annotations

from typing import Any

import pytest

import tms_stack
from tests.e2e.workflows.act import Act, Fleet, repository_payload
from tests.e2e.workflows.github import GitHubStandIn

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def tag_push_event(tag: str, sha: str) -> dict[str, Any]:
    return {"ref": f"refs/tags/{tag}", "before": "0" * 40, "after": sha, "created": True, "deleted": False,
            "base_ref": None, "repository": repository_payload()}


@pytest.mark.parametrize("tag", [f"v{tms_stack.__version__}", "v999.0.0"])
def test_the_release_version_job_accepts_only_the_packages_own_version(act: Act, fleet: Fleet,
                                                                      github: GitHubStandIn, tag: str) -> None:
    sha = fleet.head("main")
    fleet.push(sha, f"refs/tags/{tag}")
    run = act.run(github, "release.yml", "push", tag_push_event(tag, sha), sha, job="version")
    if tag == f"v{tms_stack.__version__}":
        assert run.job_result("release", "version") == "succeeded", run.tail()
        assert f"version={tms_stack.__version__}" in run.log
    else:
        assert run.job_result("release", "version") == "failed", run.tail()
        assert f"tag 'v999.0.0' does not match the package version {tms_stack.__version__}" in run.log
