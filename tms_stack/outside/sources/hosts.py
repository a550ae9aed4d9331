"""Where the agent may fetch from: never link-local (cloud metadata at 169.254.169.254), loopback
or cluster-internal addresses, unless a repository in the policies names the host.

Checked for every hop (redirects included) before a connection is made, on every address the name
resolves to. The cluster's own Service and pod ranges are not known to the agent; names only the
cluster's DNS answers (`*.svc`, `*.cluster.local`, names without a dot, which the pod's search
domains complete) and the API server's address are refused, and a NetworkPolicy egress rule is
the complete answer (docs/security.md).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from urllib.parse import urlsplit

from tms_stack.models.urimatch import internal_host_reason, internal_ip_reason
from tms_stack.outside.sources.base import FetchError


def internal_reason(host: str) -> str | None:
    return internal_host_reason(host)


def _ip_reason(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    why = internal_ip_reason(ip)
    if why:
        return why
    api = os.environ.get("KUBERNETES_SERVICE_HOST", "")
    if api and api.strip("[]") == str(ip):
        return "the Kubernetes API server"
    return None


def check_url(url: str, allowed: bool) -> None:
    """Refuse `url` when its host is (or resolves to) an internal address, unless `allowed`."""
    if allowed:
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    why = internal_reason(host)
    if why is None:
        try:
            infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80),
                                       type=socket.SOCK_STREAM)
        except OSError:
            return  # the client reports "cannot download" itself
        for info in infos:
            why = _ip_reason(ipaddress.ip_address(info[4][0]))
            if why:
                break
    if why:
        raise FetchError(f"{host}: refusing to fetch from {why}; a repository in the policies must name this "
                         "host to allow it", kind="source address refused")
