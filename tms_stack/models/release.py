"""What this build of tms-stack knows about its own release: the version, and the agent image that
the release workflow published for it (.github/workflows/release.yml stamps `agentImage`, an
`IMAGE:VERSION@sha256:...` reference, into tms_stack/release.json before it builds the wheel; a
checkout or a build made elsewhere has none).

The default `tms-stack:agentImage` is that digest when known, else the version tag the release
workflow publishes (`ghcr.io/tms-stack/agent:VERSION`), which can move: `tms doctor` says which."""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources

from tms_stack import __version__

IMAGE_REPOSITORY = "ghcr.io/tms-stack/agent"
TAGGED_IMAGE = f"{IMAGE_REPOSITORY}:{__version__}"
# registry/path:tag@sha256:<64 hex>, all lowercase but the tag (OCI distribution spec).
PINNED = re.compile(r"[a-z0-9][a-z0-9.-]*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+"
                    r":[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}@sha256:[0-9a-f]{64}")


@cache
def released_agent_image() -> str | None:
    """The image the release workflow published for this version, pinned by digest; None when
    this is not a release build."""
    try:
        data = json.loads(resources.files("tms_stack").joinpath("release.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    image = data.get("agentImage") if isinstance(data, dict) else None
    return image if isinstance(image, str) and PINNED.fullmatch(image) else None


def default_agent_image() -> str:
    return released_agent_image() or TAGGED_IMAGE


def is_pinned(image: str) -> bool:
    return "@sha256:" in image
