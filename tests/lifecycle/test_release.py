"""The release (issue 26): one version everywhere, and a workflow that publishes what `tms init`
pins. tools/release.py is what release.yml runs; test_release_install.py runs the whole path
against a real package index on loopback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

import tms_stack
from tests.conftest import ROOT

DIGEST = "sha256:" + "ab" * 32


def release(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "tools" / "release.py"), "--root", str(root), *args],
                          capture_output=True, text=True, timeout=60)


def copy_package(tmp: Path) -> Path:
    root = tmp / "src"
    shutil.copytree(ROOT / "tms_stack", root / "tms_stack", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_version_is_one_version() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert tms_stack.__version__ == pyproject
    from tms_stack.models.release import TAGGED_IMAGE
    assert TAGGED_IMAGE.endswith(f":{pyproject}")  # the tag release.yml (agent-image.yml) publishes
    out = release(ROOT, "version", f"v{pyproject}")
    assert out.returncode == 0 and out.stdout == f"version={pyproject}\n", out.stderr


def test_release_refuses_a_tag_or_a_package_that_disagrees(tmp_path: Path) -> None:
    root = copy_package(tmp_path)
    version = tms_stack.__version__
    wrong_tag = release(root, "version", "v9.9.9")
    assert wrong_tag.returncode == 1 and f"does not match the package version {version}" in wrong_tag.stderr
    init = root / "tms_stack" / "__init__.py"
    init.write_text(init.read_text().replace(f'__version__ = "{version}"', '__version__ = "9.9.9"'))
    split = release(root, "version", f"v{version}")
    assert split.returncode == 1 and "tms_stack/__init__.py says 9.9.9" in split.stderr


def test_a_stamped_build_defaults_to_the_released_image_by_digest(tmp_path: Path) -> None:
    root = copy_package(tmp_path)
    version = tms_stack.__version__
    bad = release(root, "stamp-image", f"ghcr.io/acme/agent:9.9.9@{DIGEST}")
    assert bad.returncode == 1 and "not the package version" in bad.stderr
    assert release(root, "stamp-image", f"ghcr.io/acme/agent:{version}").returncode == 1  # no digest
    image = f"ghcr.io/acme/agent:{version}@{DIGEST}"
    assert release(root, "stamp-image", image).returncode == 0
    assert json.loads((root / "tms_stack" / "release.json").read_text()) == {"agentImage": image}
    probe = ("from tms_stack.models.release import default_agent_image;"
             "from tms_stack.models.stack import StackSettings;"
             "print(default_agent_image()); print(StackSettings().agentImage)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert out.stdout.split() == [image, image], out.stderr
    # This checkout is no release build: the tag, which doctor reports as movable.
    from tms_stack.models.release import TAGGED_IMAGE, released_agent_image
    assert released_agent_image() is None and TAGGED_IMAGE == f"ghcr.io/tms-stack/agent:{version}"


def test_the_release_workflow_publishes_what_init_pins() -> None:
    flow = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    assert flow[True] == {"push": {"tags": ["v*"]}}
    jobs = flow["jobs"]
    assert "tools/release.py version" in jobs["version"]["steps"][-1]["run"]
    assert jobs["agent-image"]["uses"] == "./.github/workflows/agent-image.yml"
    assert jobs["agent-image"]["with"] == {"version": "${{ needs.version.outputs.version }}"}
    image = yaml.safe_load((ROOT / ".github" / "workflows" / "agent-image.yml").read_text())
    assert "image" in image[True]["workflow_call"]["outputs"]
    assert "steps.build.outputs.digest" in image["jobs"]["publish"]["outputs"]["image"]
    runs = [str(s.get("run", "")) for s in jobs["dist"]["steps"]]
    stamp = next(i for i, r in enumerate(runs) if "tools/release.py stamp-image" in r)
    build = next(i for i, r in enumerate(runs) if "python -m build" in r)
    assert stamp < build and "agent-image" in jobs["dist"]["needs"]
    assert "gh release" in yaml.safe_dump(jobs["github-release"]) and "dist" in jobs["github-release"]["needs"]
    pypi = jobs["pypi"]
    # Trusted publishing: an OIDC token for this job only, no password or secret anywhere.
    assert pypi["permissions"] == {"id-token": "write"} and pypi["environment"] == "pypi"
    (publish,) = [s for s in pypi["steps"] if str(s.get("uses", "")).startswith("pypa/gh-action-pypi-publish@")]
    assert "with" not in publish or "password" not in publish["with"]
    assert "secrets." not in (ROOT / ".github" / "workflows" / "release.yml").read_text()


@pytest.mark.parametrize("wheel_data", ["release.json"])
def test_the_wheel_carries_the_release_record(wheel_data: str) -> None:
    """release.json is package data (pyproject's globs), or the stamp would not reach the wheel."""
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["tms_stack"]
    assert wheel_data in globs
