"""Triton options that come from admin settings: TLS (a cert-manager Certificate per Triton
Deployment and Triton's gRPC TLS flags), and log / trace levels.

TLS as TMS configured it (`server.security.tls`: a cert-manager issuer, private-key algorithm
and size). What Triton 2.51 can do decides the rest (`tritonserver --help`): TLS exists for gRPC
only (`--grpc-use-ssl`, `--grpc-server-cert`, `--grpc-server-key`); its HTTP endpoint has no TLS
option. So with TLS on, gRPC (8001) is encrypted and the Service exposes the plaintext HTTP port
only when the admin says so (`tls.plaintextHttp: true`); inside the pod the agent and the probes
keep using HTTP on localhost. See docs/rendering.md, "TLS".
"""

from __future__ import annotations

from typing import Any

from tms_stack.models.stack import StackSettings
from tms_stack.render.labels import metadata

TLS_DIR = "/var/run/tms/tls"
CERTIFICATE_API = "cert-manager.io/v1"


def tls_secret(workload: str) -> str:
    return f"{workload}-tls"


def tls_args() -> list[str]:
    return [
        "--grpc-use-ssl=true",
        f"--grpc-server-cert={TLS_DIR}/tls.crt",
        f"--grpc-server-key={TLS_DIR}/tls.key",
    ]


def dns_names(workload: str, namespace: str, services: tuple[str, ...] = ()) -> list[str]:
    """Exactly the names of the Services that reach this Triton: its own, and `services` (a bespoke
    lease's aliases; a pool instance's hosted leases and their aliases). Never a wildcard (issue 23
    #7): the key sits in the Triton container, where tenant code can read it, so a wildcard for
    the namespace would let any tenant present a valid certificate for every other lease's Service.
    Triton reads its certificate only at start, so the pod template carries a digest of these names
    (`tls_names_digest`): when they change, the Deployment rolls (maxUnavailable 0) and the new
    pods present the re-issued certificate."""
    out: list[str] = []
    for name in (workload, *sorted(set(services) - {workload})):
        out += [name, f"{name}.{namespace}", f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local"]
    return out


def tls_names_digest(names: list[str]) -> str:
    import hashlib

    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


def certificate(workload: str, settings: StackSettings, labels: dict[str, str],
                annotations: dict[str, str], services: tuple[str, ...] = ()) -> dict[str, Any]:
    tls = settings.tls
    assert tls is not None
    private_key: dict[str, Any] = {"algorithm": tls.privateKeyAlgorithm, "rotationPolicy": "Always"}
    if tls.privateKeyAlgorithm != "Ed25519":  # cert-manager ignores a size for Ed25519 (TMS too)
        private_key["size"] = tls.privateKeySize
    return {
        "apiVersion": CERTIFICATE_API, "kind": "Certificate",
        "metadata": metadata(workload, settings, labels, annotations),
        "spec": {
            "secretName": tls_secret(workload),
            "commonName": workload,
            "dnsNames": dns_names(workload, settings.namespace, services),
            "usages": ["server auth", "digital signature", "key encipherment"],
            "privateKey": private_key,
            "issuerRef": {"name": tls.issuerName, "kind": tls.issuerKind, "group": tls.issuerGroup},
        },
    }


# TMS `server.logLevel` -> Triton's log switches (info is Triton's default: no flag).
LOG_FLAGS = {
    "error": ["--log-info=false", "--log-warning=false"],
    "warning": ["--log-info=false"],
    "info": [],
    "verbose": ["--log-verbose=1"],
}
TRACE_FILE = "/tmp/tms-trace/trace.json"


def log_args(log_level: str, trace_level: str) -> list[str]:
    args = list(LOG_FLAGS[log_level])
    if trace_level != "off":
        # Triton writes traces to a file (rotated every 100 traces); read them with kubectl cp.
        args += [f"--trace-config=level={trace_level.upper()}",
                 f"--trace-config=triton,file={TRACE_FILE}",
                 "--trace-config=triton,log-frequency=100"]
    return args
