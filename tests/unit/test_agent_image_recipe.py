"""docker/agent.Dockerfile (the published recipe) and tools/build_images.py (what the real-node
tests run) must describe the same agent image: same Debian packages, same site directory, same
launcher, same user, entrypoint and command."""

from __future__ import annotations

import re
import sys

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))

import build_images  # noqa: E402


def _dockerfile() -> str:
    return (ROOT / "docker" / "agent.Dockerfile").read_text()


def _final_stage() -> str:
    return _dockerfile().split("\nFROM ")[-1]


def test_the_final_stage_installs_the_base_packages_of_the_test_images() -> None:
    stage = _final_stage()
    m = re.search(r"apt-get install -y --no-install-recommends\s*\\?\s*\n?\s*([^\\&]+)", stage)
    assert m, stage
    assert sorted(m.group(1).split()) == sorted(build_images.BASE_PACKAGES)
    assert stage.startswith(f"debian:{build_images._codename()}-slim"), "the base must be the build machine's Debian"


def test_same_site_directory_launcher_user_and_entrypoint() -> None:
    stage = _final_stage()
    assert f"COPY --from=build /site/ {build_images.SITE}/" in stage
    launcher = re.search(r"printf '([^']*)' > /usr/local/bin/tms", stage)
    assert launcher and launcher.group(1).encode().decode("unicode_escape") == build_images.LAUNCHER
    assert f"USER {build_images.TMS_UID}" in stage
    assert f"tms:x:{build_images.TMS_UID}:{build_images.TMS_UID}::/home/tms:/usr/sbin/nologin" in stage
    assert 'ENTRYPOINT ["tms"]' in stage and 'CMD ["agent"]' in stage
