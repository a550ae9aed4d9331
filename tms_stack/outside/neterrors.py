"""Network and kubeconfig failures in a user's words: what could not be reached and why
(`the host name does not resolve`, `connection refused`), never a library's class or repr
(`MaxRetryError`, `HTTPSConnectionPool(host=..., port=443): Max retries exceeded ...`,
`Invalid kube-config file. No configuration found.`; issue 26)."""

from __future__ import annotations

import os
import socket
import ssl
import warnings
from pathlib import Path


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and everything it wraps (urllib3's .reason, requests' args, __cause__)."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        cur = todo.pop(0)
        if cur in seen or len(seen) > 20:
            continue
        seen.append(cur)
        for nxt in (getattr(cur, "reason", None), cur.__cause__, cur.__context__, *getattr(cur, "args", ())):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    return seen


def network_reason(exc: BaseException) -> str:
    """Why a connection failed, in a few plain words."""
    names = {type(e).__name__ for e in _chain(exc)}
    chain = _chain(exc)
    if "NameResolutionError" in names or any(isinstance(e, socket.gaierror) for e in chain):
        return "the host name does not resolve"
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or any("refused" in str(e).lower() for e in chain):
        return "connection refused"
    if any(isinstance(e, TimeoutError | socket.timeout) for e in chain) or names & {
            "ConnectTimeoutError", "ReadTimeoutError", "ConnectTimeout", "ReadTimeout", "Timeout"}:
        return "no answer in time"
    if any(isinstance(e, ssl.SSLError) for e in chain) or names & {"SSLError"}:
        cert = next((e for e in chain if isinstance(e, ssl.SSLCertVerificationError)), None)
        return f"TLS failed ({cert.verify_message})" if cert is not None and cert.verify_message else "TLS failed"
    if any(isinstance(e, ConnectionResetError) for e in chain) or names & {"ProtocolError", "RemoteDisconnected"}:
        return "the connection was closed"
    return "the connection failed"


def kubeconfig_path(kubeconfig: str | None) -> str:
    if kubeconfig:
        return kubeconfig
    return os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")


def kubeconfig_problem(exc: BaseException, kubeconfig: str | None) -> str:
    """What is wrong with the kubeconfig, naming the file."""
    path = kubeconfig_path(kubeconfig)
    text = str(exc)
    mark = getattr(exc, "problem_mark", None)
    if mark is not None or type(exc).__module__.startswith("yaml"):
        where = f":{mark.line + 1}" if mark is not None else ""
        return f"{path}{where}: not valid YAML ({getattr(exc, 'problem', None) or 'unreadable'})"
    if "No configuration found" in text or "Invalid kube-config" in text:
        if not any(Path(p).exists() for p in path.split(os.pathsep) if p):
            return f"{path}: no such file (pass --kubeconfig FILE, or set KUBECONFIG)"
        return f"{path}: no clusters, users or contexts in it (empty or not a kubeconfig)"
    if "current-context" in text:
        return f"{path}: no current-context: pass --context NAME"
    if "context" in text.lower() and "not found" in text.lower():
        return f"{path}: {text.strip().rstrip('.')}"
    if isinstance(exc, FileNotFoundError):
        return f"{path}: no such file"
    if isinstance(exc, OSError):
        return f"{path}: {exc.strerror or 'unreadable'}"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"{path}: {first}"


def quiet_insecure_warning() -> None:
    """A kubeconfig with insecure-skip-tls-verify makes urllib3 warn on every request, in its own
    words; `tms doctor` says it once instead."""
    try:
        from urllib3.exceptions import InsecureRequestWarning
    except ImportError:  # pragma: no cover - urllib3 comes with requests
        return
    warnings.filterwarnings("ignore", category=InsecureRequestWarning)
