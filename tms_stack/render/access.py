"""Who may reach a Triton pod, and with what: the per-pod model-control key and the NetworkPolicy.

The key (issue 11 #6). Triton's model-repository API is restricted to a header key
(`--http-restricted-api`). One key for the whole namespace let a Python-backend model read it
(from its environment, or from `/proc/<tritonserver>/cmdline`) and unload another lease's model
on another Triton. So every pod makes its own key at start: an init container (`tms agent-key`,
agent image) writes a random key into a memory-backed emptyDir that only this pod's containers
mount. Triton's container reads it from that file in a shell wrapper and passes it on its own
command line (Triton has no other way to take it), the agent reads the file. The key never sits
in a Secret, an environment variable or the pod spec, and it dies with the pod. What remains:
model code inside *this* Triton can read `/proc/<tritonserver>/cmdline` and so control *this*
Triton (docs/security.md, "What remains inherent").

The NetworkPolicy: clients reach only the inference ports (HTTP 8000 unless TLS hides it, gRPC
8001); the monitoring namespace reaches the metrics (8002) and agent (8080) ports. It is enforced
only by a NetworkPolicy-capable CNI (Calico, Cilium, ...); the kubelet's probes come from the node,
which such CNIs allow.
"""

from __future__ import annotations

from typing import Any

from tms_stack.models.stack import StackSettings
from tms_stack.render.labels import INSTANCE, metadata

HTTP, GRPC, METRICS, AGENT = 8000, 8001, 8002, 8080
REPO_KEY_DIR = "/var/run/tms/repo-key"
REPO_KEY_FILE = f"{REPO_KEY_DIR}/value"
REPO_KEY_HEADER = "tms-repo-key"
REPO_KEY_VOLUME = "repo-key"

# Runs `tritonserver "$@"` with the key read from the pod's own file. The script is a constant
# (no user string ever reaches it); the rendered args follow as "$@". It holds no `$(...)`: the
# kubelet expands `$(NAME)` in commands, so the file is read with the shell builtin `read`.
TRITON_WRAPPER = (
    'key=; read -r key < ' + REPO_KEY_FILE + '; '
    '[ -n "$key" ] || { echo "tms: no model-control key in ' + REPO_KEY_FILE + '" >&2; exit 1; }; '
    'exec tritonserver "$@" '
    f'"--http-restricted-api=model-repository:{REPO_KEY_HEADER}=$key" '
    f'"--grpc-restricted-protocol=model-repository:{REPO_KEY_HEADER}=$key"'
)


def triton_command(restricted: bool) -> list[str]:
    """Triton's `command`; its rendered options go to `args` either way."""
    if not restricted:
        return ["tritonserver"]
    return ["/bin/sh", "-c", TRITON_WRAPPER, "tritonserver"]


def key_volume() -> dict[str, Any]:
    # Memory-backed: the key never touches the node's disk.
    return {"name": REPO_KEY_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}


def key_mount() -> dict[str, Any]:
    return {"name": REPO_KEY_VOLUME, "mountPath": REPO_KEY_DIR, "readOnly": True}


def key_init_container(settings: StackSettings, security_context: dict[str, Any]) -> dict[str, Any]:
    """Writes this pod's random key before Triton and the agent start (kept if it already exists,
    so a restarted sandbox keeps the key its running Triton was given)."""
    return {
        "name": "repo-key",
        "image": settings.agentImage,
        "args": ["agent-key", REPO_KEY_FILE],
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
        "volumeMounts": [{"name": REPO_KEY_VOLUME, "mountPath": REPO_KEY_DIR}],
        "securityContext": security_context,
    }


def client_ports(settings: StackSettings) -> list[int]:
    """The inference ports clients may reach: gRPC, and HTTP unless TLS is on without plaintextHttp
    (render/tritonopts.py: Triton has no TLS for HTTP)."""
    http = settings.tls is None or settings.tls.plaintextHttp
    return [HTTP, GRPC] if http else [GRPC]


def network_policy(name: str, settings: StackSettings, labels: dict[str, str],
                   annotations: dict[str, str]) -> dict[str, Any]:
    """One per Triton Deployment (bespoke lease or pool instance), selecting its pods."""

    def ports(numbers: list[int]) -> list[dict[str, Any]]:
        return [{"protocol": "TCP", "port": n} for n in numbers]

    monitoring = {"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": settings.prometheus.namespace}}}
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": metadata(name, settings, labels, annotations),
        "spec": {
            "podSelector": {"matchLabels": {INSTANCE: name}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"ports": ports(client_ports(settings))},
                {"from": [monitoring], "ports": ports([METRICS, AGENT])},
            ],
        },
    }
