"""The Triton Deployment (Triton + model agent), its desired-models ConfigMap, ServiceAccount, and
the Role + RoleBinding that let the agent (only) watch that one ConfigMap.

Shared by bespoke leases (one Deployment per lease) and pool instances (one per instance).

The agent reads its desired models from the API server (a watch: a pool instance's new lease is
seen in about a second) and from the mounted ConfigMap file (the kubelet refreshes it only on its
periodic pod sync, about a minute; the fallback when the watch fails). The API token reaches the
agent container alone: the pod automounts none, and a projected token volume is mounted only in
the agent; the Role grants `get`/`list`/`watch` on this Deployment's own ConfigMap and nothing
else, since Triton runs tenant code (Python-backend models) in the same pod (docs/security.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tms_stack.logic.resolve import EffectiveResources
from tms_stack.models import units
from tms_stack.models.desired import DESIRED_FILE, DesiredDocument
from tms_stack.models.policies import RepositoriesSpec
from tms_stack.models.stack import StackSettings
from tms_stack.render.access import (
    AGENT,
    GRPC,
    HTTP,
    METRICS,
    REPO_KEY_FILE,
    key_init_container,
    key_mount,
    key_volume,
    network_policy,
    triton_command,
)
from tms_stack.render.labels import EXPIRES, INSTANCE, image_version, metadata
from tms_stack.render.mounts import repository_mounts
from tms_stack.render.tritonopts import (
    TLS_DIR,
    certificate,
    dns_names,
    tls_args,
    tls_names_digest,
    tls_secret,
)

MODEL_DIR = "/models"
DESIRED_DIR = "/etc/tms/desired"
KUBE_API_DIR = "/var/run/secrets/tms/kube-api"  # token, ca.crt, namespace: the agent's only
TOKEN_SECONDS = 3600  # the kubelet rotates it at 80% of its life; the agent re-reads the file
# Triton runs as the image's own non-root user (uid 1000: `triton-server` in NVIDIA's images), the
# agent as another user (issue 23 #5, #7): the model folders it writes are its own (0755/0644), so
# tenant code in Triton can read them but not replace a file inside them, and the agent refuses any
# file under /models it does not own (agent/safefile.py). fsGroup 1000 is both users' group: Triton
# reads the key file (0440) and the agent writes the shared emptyDirs.
TRITON_UID, AGENT_UID, POD_GROUP = 1000, 1001, 1000
_LOCKED_DOWN: dict[str, Any] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                "seccompProfile": {"type": "RuntimeDefault"}}
AGENT_SECURITY: dict[str, Any] = {"runAsNonRoot": True, "runAsUser": AGENT_UID, "runAsGroup": POD_GROUP,
                                  **_LOCKED_DOWN, "readOnlyRootFilesystem": True}
TRITON_SECURITY: dict[str, Any] = {"runAsNonRoot": True, "runAsUser": TRITON_UID, "runAsGroup": POD_GROUP,
                                   **_LOCKED_DOWN}
TLS_NAMES = "tms-stack.dev/tls-names"
# The agent's budget counts a model's archive and its unpacked copy within `repositorySize`; the
# emptyDir's limit adds room for what the budget does not see (file-system blocks, Triton's own
# files), so a model that fits the budget never gets the pod evicted (issue 23 #3).
HEADROOM_FRACTION, HEADROOM_MIN = 0.10, 64 * 2**20


def models_size_limit(repository_size: int) -> int:
    """`repositorySize` plus 10 % (at least 64 MiB), rounded up to a whole MiB."""
    total = repository_size + max(int(repository_size * HEADROOM_FRACTION), HEADROOM_MIN)
    return -(-total // 2**20) * 2**20


__all__ = ["AGENT", "GRPC", "HTTP", "METRICS", "Workload", "iam_role", "render_workload", "service"]


@dataclass(frozen=True)
class Workload:
    """One Triton Deployment to render."""

    name: str                       # Deployment, ConfigMap and ServiceAccount name
    image: str
    resources: EffectiveResources
    desired: DesiredDocument
    labels: dict[str, str]          # object labels (pod template gets them too)
    annotations: dict[str, str]
    replicas: int | None            # None when an HPA owns the count
    restricted: bool                # restricted model-repository endpoint
    triton_args: tuple[str, ...] = ()  # admin options: log and trace levels (render/tritonopts.py)
    # A pool instance: mounts every repository of the policies and is Ready after the agent's first
    # pass (docs/agent.md); a bespoke lease mounts its own and is Ready when all its models are.
    pooled: bool = False
    # nodeSelector, tolerations and affinity of its node class (models/nodeclass.py NodeClass.pod_spec).
    scheduling: dict[str, Any] | None = None
    # Other Services that reach this Triton (aliases; a pool instance's hosted leases): TLS names.
    service_names: tuple[str, ...] = ()


def iam_role(desired: DesiredDocument, repos: RepositoriesSpec,
             pooled: bool = False) -> tuple[str | None, str | None]:
    """(role ARN, AWS region) for the pod when one of its models lives in a role-based S3 repository;
    a pool instance takes them from every repository (its hosted leases must not change its pod)."""
    used = {s3.repositoryName for s3 in repos.s3} if pooled else {
        m.uri[len("model://"):].split("/", 1)[0] for lease in desired.leases for m in lease.models
        if m.uri.startswith("model://")}
    role = region = None
    for s3 in repos.s3:
        if s3.repositoryName in used:
            role = role or s3.role
            region = region or s3.awsRegion
    return role, region


def render_workload(w: Workload, settings: StackSettings, repos: RepositoriesSpec) -> list[dict[str, Any]]:
    role, region = iam_role(w.desired, repos, w.pooled)
    sa_annotations = dict(w.annotations)
    if role:
        sa_annotations["eks.amazonaws.com/role-arn"] = role
    service_account = {
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": metadata(w.name, settings, w.labels, sa_annotations),
        "automountServiceAccountToken": False,
    }
    config_map = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": metadata(w.name, settings, w.labels, w.annotations),
        "data": {DESIRED_FILE: w.desired.to_json() + "\n"},
    }
    objects: list[dict[str, Any]] = [service_account, config_map, *_config_map_reader(w, settings),
                                     _deployment(w, settings, region, repos),
                                     network_policy(w.name, settings, w.labels, w.annotations)]
    if settings.tls is not None:
        objects.append(certificate(w.name, settings, w.labels, w.annotations, w.service_names))
    return objects


def _config_map_reader(w: Workload, settings: StackSettings) -> list[dict[str, Any]]:
    """Role + RoleBinding: the pod's ServiceAccount may get/list/watch its own ConfigMap, by name
    (a list or watch is allowed only with the field selector `metadata.name=<it>`), nothing else."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": metadata(w.name, settings, w.labels, w.annotations),
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [w.name],
                   "verbs": ["get", "list", "watch"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": metadata(w.name, settings, w.labels, w.annotations),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": w.name},
        "subjects": [{"kind": "ServiceAccount", "name": w.name, "namespace": settings.namespace}],
    }
    return [role, binding]


def _kube_api_volume() -> dict[str, Any]:
    """What the in-cluster default token mount holds (token, the cluster CA, the namespace), as a
    volume only the agent mounts. The CA ConfigMap is optional: a cluster without it still starts
    the pod; the agent's watch then fails to verify the server and it reads the file only."""
    return {"name": "kube-api", "projected": {"sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": TOKEN_SECONDS}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}],
                       "optional": True}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
    ]}}


def _deployment(w: Workload, settings: StackSettings, region: str | None,
                repos: RepositoriesSpec) -> dict[str, Any]:
    res = w.resources
    memory = units.format_memory(res.system_memory)
    triton_resources: dict[str, Any] = {
        "requests": {"cpu": res.cpu, "memory": memory},
        "limits": {"cpu": res.cpu, "memory": memory},
    }
    if res.gpu:
        # Extended resources are requested as limits (and requests equal to them): whole GPUs, a
        # MIG profile or a time-sliced GPU, as the node class says.
        triton_resources["requests"][res.gpu_resource] = str(res.gpu)
        triton_resources["limits"][res.gpu_resource] = str(res.gpu)
    args = [
        f"--model-repository={MODEL_DIR}",
        "--model-control-mode=explicit",
        "--strict-readiness=true",
        "--exit-timeout-secs=30",
        f"--http-port={HTTP}", f"--grpc-port={GRPC}", f"--metrics-port={METRICS}",
        "--allow-metrics=true", "--allow-gpu-metrics=true",
        *w.triton_args,
    ]
    if settings.tls is not None:
        args += tls_args()
    mounts = repository_mounts(w.desired, repos, w.pooled)
    startup_s = int(units.parse_duration(settings.startupTimeout).total_seconds())
    period = 10
    triton: dict[str, Any] = {
        "name": "triton",
        "image": w.image,
        # With the restricted API, a wrapper adds this pod's own key (render/access.py).
        "command": triton_command(w.restricted),
        "args": args,
        "ports": [
            {"name": "http", "containerPort": HTTP, "protocol": "TCP"},
            {"name": "grpc", "containerPort": GRPC, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS, "protocol": "TCP"},
        ],
        "resources": triton_resources,
        "securityContext": TRITON_SECURITY,
        # Liveness only after startup succeeded, and startup allows long model loads (TMS 1.1 bug:
        # the startup probe killed Tritons loading large models).
        "startupProbe": {"httpGet": {"path": "/v2/health/live", "port": "http"},
                         "periodSeconds": period, "failureThreshold": max(startup_s // period, 1)},
        "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": "http"},
                          "periodSeconds": 15, "timeoutSeconds": 5, "failureThreshold": 4},
        "volumeMounts": [
            {"name": "models", "mountPath": MODEL_DIR},
            {"name": "dshm", "mountPath": "/dev/shm"},
            *([key_mount()] if w.restricted else []),
            *mounts.shared,
        ],
    }
    if not res.gpu:
        # Without a GPU request the NVIDIA container runtime would still expose every GPU of the
        # node to a container whose image asks for them (NVIDIA_VISIBLE_DEVICES=all in Triton's
        # image): `void` makes it expose none.
        triton["env"] = [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"}]
    agent_env: list[dict[str, Any]] = [
        {"name": "TMS_DESIRED", "value": f"{DESIRED_DIR}/{DESIRED_FILE}"},
        {"name": "TMS_DESIRED_CONFIGMAP", "value": w.name},
        {"name": "TMS_KUBE_API_DIR", "value": KUBE_API_DIR},
        {"name": "TMS_MODEL_DIR", "value": MODEL_DIR},
        {"name": "TMS_TRITON_URL", "value": f"localhost:{HTTP}"},
        {"name": "TMS_AGENT_PORT", "value": str(AGENT)},
        {"name": "TMS_REPOSITORY_SIZE", "value": str(res.repository_size)},
        # A model load may take as long as the startup probe allows (issue 11 #7).
        {"name": "TMS_LOAD_TIMEOUT", "value": str(startup_s)},
        {"name": "TMS_READINESS", "value": "first-pass" if w.pooled else "all-models"},
    ]
    if w.restricted:
        agent_env.append({"name": "TMS_REPO_KEY_FILE", "value": REPO_KEY_FILE})
    if region:
        agent_env.append({"name": "AWS_DEFAULT_REGION", "value": region})  # IRSA needs it (server#8090)
    agent_mounts: list[dict[str, Any]] = [
        {"name": "models", "mountPath": MODEL_DIR},
        {"name": "desired", "mountPath": DESIRED_DIR, "readOnly": True},
        {"name": "kube-api", "mountPath": KUBE_API_DIR, "readOnly": True},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "models", "emptyDir": {"sizeLimit": units.format_memory(models_size_limit(res.repository_size))}},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": units.format_memory(res.shared_memory)}},
        {"name": "desired", "configMap": {"name": w.name}},
        _kube_api_volume(),
    ]
    if w.restricted:
        agent_mounts.append(key_mount())
        volumes.append(key_volume())
    if settings.tls is not None:
        triton["volumeMounts"].append({"name": "tls", "mountPath": TLS_DIR, "readOnly": True})
        volumes.append({"name": "tls", "secret": {"secretName": tls_secret(w.name)}})
    agent_mounts += mounts.agent + mounts.shared
    volumes += mounts.volumes
    agent = {
        "name": "agent",
        "image": settings.agentImage,
        "args": ["agent"],
        "env": agent_env,
        "ports": [{"name": "agent", "containerPort": AGENT, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        # Bespoke: Ready when every desired model is READY. Pool instance: Ready once the agent's
        # first pass is done; one lease's failure never flips it afterwards (docs/agent.md).
        # /ready answers from the agent's own sample of Triton (at most ~3 s old): probed every 2 s
        # and believed at once, a pod whose models are gone leaves its Services within seconds.
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "agent"}, "periodSeconds": 2,
                           "timeoutSeconds": 2, "failureThreshold": 1},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "agent"}, "periodSeconds": 20,
                          "failureThreshold": 3},
        "volumeMounts": agent_mounts,
        "securityContext": AGENT_SECURITY,
    }
    # The pod template never carries the expiry: a renewal must not roll the Deployment (issue 11, #2).
    pod_labels = {k: v for k, v in w.labels.items() if k != EXPIRES}
    pod_labels[INSTANCE] = w.name
    pod_labels["app.kubernetes.io/version"] = image_version(w.image)
    pod_spec: dict[str, Any] = {
        "serviceAccountName": w.name,
        # No container gets a token by default; the agent alone mounts one (_kube_api_volume).
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 60,
        "securityContext": {"fsGroup": POD_GROUP, "seccompProfile": {"type": "RuntimeDefault"}},
        **({"initContainers": [key_init_container(settings, AGENT_SECURITY)]} if w.restricted else {}),
        "containers": [triton, agent],
        "volumes": volumes,
        **(w.scheduling or {}),
    }
    if settings.imagePullSecrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in settings.imagePullSecrets]
    annotations = dict(w.annotations)
    annotations["pulumi.com/timeoutSeconds"] = str(int(units.parse_duration(settings.deployTimeout).total_seconds()))
    if settings.testSkipAwait:
        annotations["pulumi.com/skipAwait"] = "true"
    pod_annotations = dict(settings.customAnnotations)
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {INSTANCE: w.name}},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "template": {"metadata": {"labels": dict(sorted(pod_labels.items()))}, "spec": pod_spec},
    }
    if settings.tls is not None:
        # Triton reads its certificate only at start: new Service names roll the pods.
        pod_annotations[TLS_NAMES] = tls_names_digest(dns_names(w.name, settings.namespace, w.service_names))
    if pod_annotations:
        spec["template"]["metadata"]["annotations"] = dict(sorted(pod_annotations.items()))
    if w.replicas is not None:
        spec = {"replicas": w.replicas, **spec}
    labels = dict(w.labels)
    labels["app.kubernetes.io/version"] = image_version(w.image)
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": metadata(w.name, settings, labels, annotations), "spec": spec}


def service(name: str, settings: StackSettings, labels: dict[str, str], selector: dict[str, str],
            annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": metadata(name, settings, labels, annotations),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [
                # Triton has no TLS for HTTP: with TLS on, its plaintext port is not exposed unless
                # the admin allows it (render/tritonopts.py).
                *([{"name": "http", "port": HTTP, "targetPort": "http", "protocol": "TCP"}]
                  if settings.tls is None or settings.tls.plaintextHttp else []),
                {"name": "grpc", "port": GRPC, "targetPort": "grpc", "protocol": "TCP"},
                {"name": "metrics", "port": METRICS, "targetPort": "metrics", "protocol": "TCP"},
            ],
        },
    }
