"""The release path of issue 26, for real, against a PyPI-compatible index (pypiserver) on
loopback: build the sdist and wheel as release.yml does (version checked, agent image stamped),
upload them with twine, `uv tool install` tms-stack from that index into a temporary tool
folder, `tms init` a fleet with it, and install the fleet's requirements.txt with pip from the
same index, as its workflows do. Then the fleet's own tms checks a lease, and `tms doctor` finds
the pin resolvable (pip's configuration: PIP_INDEX_URL) and names the stamped image.

The index answers tms-stack itself; for its dependencies pypiserver redirects to its fallback
index (pip's and uv's default), so this needs the package registry, and minutes: slow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import tms_stack
from tests.conftest import ROOT
from tests.support.triton import free_port

pytestmark = pytest.mark.slow
VENV_BIN = Path(sys.executable).parent
DIGEST = "sha256:" + "5e" * 32


def run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=900, **kw)  # type: ignore[call-overload]
    assert out.returncode == 0, f"{argv}\n{out.stdout}\n{out.stderr}"
    assert "Traceback" not in out.stdout + out.stderr
    return out


def source_tree(dest: Path) -> Path:
    """What the release job checks out: the tracked files of this worktree (as they are now)."""
    files = run(["git", "ls-files", "-z", "--", "tms_stack", "pyproject.toml", "README.md", "tools/release.py"],
                cwd=ROOT).stdout.split("\0")
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    return dest


def test_release_build_upload_install_init_and_fleet_requirements(tmp_path: Path) -> None:
    version = tms_stack.__version__
    src = source_tree(tmp_path / "src")
    # release.yml: check the tag, stamp the published image's digest, build.
    assert run([sys.executable, "tools/release.py", "version", f"v{version}"], cwd=src).stdout == f"version={version}\n"
    image = f"ghcr.io/acme/agent:{version}@{DIGEST}"
    run([sys.executable, "tools/release.py", "stamp-image", image], cwd=src)
    run([sys.executable, "-m", "build", "--outdir", str(tmp_path / "dist"), str(src)])
    built = sorted(p.name for p in (tmp_path / "dist").iterdir())
    assert built == [f"tms_stack-{version}-py3-none-any.whl", f"tms_stack-{version}.tar.gz"], built

    packages = tmp_path / "index"
    packages.mkdir()
    port = free_port()
    server = subprocess.Popen([str(VENV_BIN / "pypi-server"), "run", "-i", "127.0.0.1", "-p", str(port),
                               "-a", ".", "-P", ".", str(packages)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        index = f"http://127.0.0.1:{port}/simple/"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(index, timeout=2).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "pypiserver did not start"
                time.sleep(0.2)
        run([str(VENV_BIN / "twine"), "upload", "--non-interactive", "--repository-url", f"http://127.0.0.1:{port}/",
             "-u", "release", "-p", "unused", *map(str, sorted((tmp_path / "dist").iterdir()))])
        assert sorted(p.name for p in packages.iterdir()) == built

        # The README's install line, with the local index as the only configured one.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "VIRTUAL_ENV"))}
        env |= {"UV_TOOL_DIR": str(tmp_path / "tools"), "UV_TOOL_BIN_DIR": str(tmp_path / "bin"),
                "UV_INDEX_URL": index, "UV_PYTHON": sys.executable, "PIP_INDEX_URL": index,
                "PIP_DISABLE_PIP_VERSION_CHECK": "1", "HOME": str(tmp_path / "home"), "NO_COLOR": "1",
                "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
                "UV_CACHE_DIR": str(Path.home() / ".cache" / "uv"),
                "PIP_CACHE_DIR": str(Path.home() / ".cache" / "pip")}
        run([str(VENV_BIN / "uv"), "tool", "install", f"tms-stack=={version}"], env=env)
        tms = tmp_path / "bin" / "tms"
        assert run([str(tms), "--version"], env=env).stdout == f"tms {version}\n"

        fleet = tmp_path / "my-fleet"
        made = json.loads(run([str(tms), "init", str(fleet), "-o", "json"], env=env).stdout)
        assert made["toolSpec"] == f"tms-stack=={version}" and made["agentImage"] == image
        assert made["branch"] == "main"
        assert f"tms-stack:agentImage: {image}" in (fleet / "Pulumi.production.yaml").read_text()

        # The fleet's workflows: python -m venv .venv && .venv/bin/pip install -r requirements.txt
        run([sys.executable, "-m", "venv", str(fleet / ".venv")], env=env)
        run([str(fleet / ".venv" / "bin" / "pip"), "install", "-q", "-r", "requirements.txt"], cwd=fleet, env=env)
        fleet_tms = str(fleet / ".venv" / "bin" / "tms")
        assert run([fleet_tms, "--version"], env=env).stdout == f"tms {version}\n"
        run([fleet_tms, "lease", "create", "my-model", "-m", "name=my_model,uri=https://models.example.com/m.zip",
             "--owner", "my-team", "--duration", "8h"], cwd=fleet, env=env)
        assert "1 lease(s)" in run([fleet_tms, "check"], cwd=fleet, env=env).stdout

        doctor = subprocess.run([str(tms), "doctor", "-o", "json"], cwd=fleet, env=env, capture_output=True,
                                text=True, timeout=300)
        checks = {f"{c['area']} {c['name']}": c for c in json.loads(doctor.stdout)["checks"]}
        pin = checks["repository tms-stack pin"]
        assert pin["status"] == "ok" and index in pin["detail"] and "pip configuration" in pin["detail"], pin
        agent = checks["stack Pulumi.production.yaml agentImage"]
        assert agent["status"] == "ok" and image in agent["detail"] and "release workflow" in agent["detail"]
        assert checks["repository branch"]["status"] == "ok", checks["repository branch"]
        # A pin the index does not have fails, naming the index it asked.
        (fleet / "requirements.txt").write_text("tms-stack==99.0.0\n")
        doctor = subprocess.run([str(tms), "doctor", "-o", "json"], cwd=fleet, env=env, capture_output=True,
                                text=True, timeout=300)
        assert doctor.returncode == 1
        pin = {f"{c['area']} {c['name']}": c for c in json.loads(doctor.stdout)["checks"]}["repository tms-stack pin"]
        assert pin["status"] == "fail" and "tms-stack==99.0.0" in pin["detail"] and index in pin["detail"], pin
    finally:
        server.terminate()
        server.wait(timeout=30)
