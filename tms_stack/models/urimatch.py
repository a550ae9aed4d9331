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
import re
from collections.abc import Sequence
from functools import lru_cache
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


def normalised_segments(path: str) -> list[str]:
    """The path's segments after removing dot segments (RFC 3986 5.2.4), as HTTP clients do before
    sending (`/private/../admin` is sent as `/admin`); `%2e` counts as a dot, since servers decode it.
    Matching a credential scope on anything else would send `/private`'s secret to `/admin`."""
    out: list[str] = []
    for raw in path.split("/"):
        seg = re.sub("%2e", ".", raw, flags=re.IGNORECASE)
        if seg in ("", "."):
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(raw)
    return out


def match_score(target: str, url: str) -> tuple[int, int] | None:
    """(host labels, path segments) matched, or None when `target` does not apply to `url`."""
    host, path, host_is_ip = _url_parts(url)
    t_host_name, t_path, target_is_ip = _target_parts(target)
    if target_is_ip or host_is_ip:
        if t_host_name.strip("[]") != host.strip("[]"):
            return None
        labels = 1
    else:
        want, have = t_host_name.split("."), host.split(".")
        if len(want) > len(have) or have[len(have) - len(want):] != want:
            return None
        labels = len(want)
    if len(t_path) > len(path) or path[: len(t_path)] != t_path:
        return None
    return labels, len(t_path)


# A fleet has a few targets and thousands of model URLs, each matched against every target by
# check and by render: both sides are split once (issue 27). Pure functions of the text.
@lru_cache(maxsize=8192)
def _url_parts(url: str) -> tuple[str, tuple[str, ...], bool]:
    parsed = urlparse(url)
    host = (parsed.hostname or "").lower().rstrip(".")
    return host, tuple(normalised_segments(parsed.path)), _is_ip(host)


@lru_cache(maxsize=1024)
def _target_parts(target: str) -> tuple[str, tuple[str, ...], bool]:
    t_host, t_path = _split_target(target)
    t_host_name = t_host.split(":", 1)[0] if not t_host.startswith("[") else t_host
    return t_host_name, tuple(t_path), _is_ip(t_host_name)


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


INTERNAL_SUFFIXES = (".svc", ".cluster.local", ".localhost")


def internal_ip_reason(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address is one a model fetch must not reach (issue 23 #6); None when it may."""
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if ip.is_unspecified or ip.is_multicast:
        return "not a unicast address"
    return None


def internal_host_reason(host: str) -> str | None:
    """Why `host` (a name or an IP literal, as written) is loopback, link-local or cluster-internal,
    without resolving it; None when nothing says so."""
    name = host.strip("[]").lower().rstrip(".")
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        if name == "localhost" or name.endswith(INTERNAL_SUFFIXES):
            return "a cluster-internal or local name"
        if "." not in name:
            return "a name without a domain (the pod's search domains make it cluster-internal)"
        return None
    return internal_ip_reason(ip)
