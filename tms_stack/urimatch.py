"""TMS's rule for which HTTPS secret goes with a model URL (`targetUri` matching).

1. Host: DNS labels match right to left (`models.company.com` matches `cdn.models.company.com`,
   not `models.cdn.company.com`); IP addresses match exactly.
2. Path: segments match left to right (`internal-cdn/repository` matches
   `internal-cdn/repository/ai_models`, not `internal-cdn/ai_models/repository`).
When several targets match, the most specific wins (most host labels, then most path segments);
ties go to the first one listed, so the admin's order decides.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import TypeVar
from urllib.parse import urlparse

T = TypeVar("T")


def _split_target(target: str) -> tuple[str, list[str]]:
    text = target.split("://", 1)[-1]
    host, _, path = text.partition("/")
    return host.lower().rstrip("."), [p for p in path.split("/") if p]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def match_score(target: str, url: str) -> tuple[int, int] | None:
    """(host labels, path segments) matched, or None when `target` does not apply to `url`."""
    parsed = urlparse(url)
    host = (parsed.hostname or "").lower().rstrip(".")
    t_host, t_path = _split_target(target)
    t_host_name = t_host.split(":", 1)[0] if not t_host.startswith("[") else t_host
    if _is_ip(t_host_name) or _is_ip(host):
        if t_host_name.strip("[]") != host.strip("[]"):
            return None
        labels = 1
    else:
        want, have = t_host_name.split("."), host.split(".")
        if len(want) > len(have) or have[len(have) - len(want):] != want:
            return None
        labels = len(want)
    path = [p for p in parsed.path.split("/") if p]
    if len(t_path) > len(path) or path[: len(t_path)] != t_path:
        return None
    return labels, len(t_path)


def best_match(targets: Sequence[tuple[str, T]], url: str) -> T | None:
    """The value of the most specific target matching `url`."""
    best: tuple[tuple[int, int], int, T] | None = None
    for index, (target, value) in enumerate(targets):
        score = match_score(target, url)
        if score is None:
            continue
        if best is None or score > best[0]:
            best = (score, index, value)
    return best[2] if best else None
