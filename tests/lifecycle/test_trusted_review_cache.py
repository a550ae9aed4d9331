"""scripts/trusted-review.sh keeps the base's dependencies in a venv cached under the user cache
directory. A venv's bin/python is a link to the interpreter that made it, and a runner's tool cache
can remove that interpreter (setup-python upgrading, a self-hosted runner's clean-up, or the act
harness's per-test tool cache): found by the day-in-the-life test, where every later review failed
with `venv-…/bin/python: No such file or directory` (exit 127). The script must notice and install
the venv again.

The base here is a stand-in with no dependencies and a review module that records its call: what is
tested is the script's cache, not the review (tests/security/test_review_steps.py runs that)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def _base(tmp_path: Path) -> Path:
    base = tmp_path / "base"
    (base / "tms_stack" / "commands").mkdir(parents=True)
    (base / "pyproject.toml").write_text('[project]\nname = "stand-in"\nversion = "0"\ndependencies = []\n')
    (base / "tms_stack" / "__init__.py").write_text("")
    (base / "tms_stack" / "commands" / "__init__.py").write_text("")
    (base / "tms_stack" / "commands" / "review.py").write_text(
        "import pathlib\n\ndef main(argv):\n    pathlib.Path(argv[2], 'ran').write_text(' '.join(argv))\n    return 0\n")
    return base


def _review(tmp_path: Path, base: Path, out: Path) -> subprocess.CompletedProcess[str]:
    pr = tmp_path / "pr"
    pr.mkdir(exist_ok=True)
    env = {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "TMS_REVIEW_PYTHON": getattr(sys, "_base_executable", sys.executable),
           # pip's own cache stays where pip keeps it: only the review's venv cache is private
           "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip")),
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    for key in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CONFIG_FILE"):
        if key in os.environ:
            env[key] = os.environ[key]
    return subprocess.run(["bash", str(ROOT / "scripts" / "trusted-review.sh"), str(base), str(pr), str(out)],
                          env=env, capture_output=True, text=True, timeout=600)


def test_a_cached_venv_whose_interpreter_is_gone_is_installed_again(tmp_path: Path) -> None:
    base = _base(tmp_path)
    first = _review(tmp_path, base, tmp_path / "out-1")
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "out-1" / "ran").is_file()
    [venv] = [p for p in (tmp_path / "cache" / "tms-stack" / "review").iterdir() if p.is_dir()]
    assert (venv / ".ready").is_file()

    # The interpreter the venv links to disappears, as a removed tool cache's does.
    python = venv / "bin" / "python"
    python.unlink()
    python.symlink_to(tmp_path / "gone" / "python3")

    second = _review(tmp_path, base, tmp_path / "out-2")
    assert second.returncode == 0, second.stderr
    assert "no longer runs; installing it again" in second.stderr
    assert (tmp_path / "out-2" / "ran").is_file()
    assert subprocess.run([str(python), "-c", ""]).returncode == 0

