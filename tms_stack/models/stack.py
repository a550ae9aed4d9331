"""Stack settings: the `tms-stack:<name>` keys of `Pulumi.<stack>.yaml`, one model read by the
Pulumi program and by `tms render` alike, so both produce the same objects."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from tms_stack.models.common import DnsLabel, Duration, Strict
from tms_stack.models.nodeclass import NodeClassName
from tms_stack.models.release import default_agent_image

CONFIG_PREFIX = "tms-stack:"


class PrometheusSettings(Strict):
    # Prometheus selects PodMonitors and PrometheusRules by these labels (TMS troubleshooting).
    podMonitorLabels: dict[str, str] = Field(default_factory=lambda: {"release": "prometheus"})
    ruleLabels: dict[str, str] = Field(default_factory=lambda: {"release": "prometheus"})
    scrapeInterval: Duration = "15s"
    # Where Prometheus runs: the rendered NetworkPolicies let this namespace (and only it) reach the
    # metrics and agent ports (render/access.py).
    namespace: DnsLabel = "monitoring"


KEY_SIZES = {"RSA": (2048, 4096, 8192), "ECDSA": (256, 384, 521)}


class TlsSettings(Strict):
    """cert-manager issuer for Triton's TLS certificates (TMS `server.security.tls.certManager`).

    Present means enabled (TMS `tls.enabled: true`). Rendered as a Certificate per Triton
    Deployment and Triton's gRPC TLS flags (tms_stack/render/tritonopts.py)."""

    issuerName: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")]
    issuerKind: Annotated[str, Field(pattern=r"^[A-Z][A-Za-z0-9]{0,62}$")] = "ClusterIssuer"
    issuerGroup: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")] = "cert-manager.io"
    privateKeyAlgorithm: Literal["RSA", "ECDSA", "Ed25519"] = "RSA"
    privateKeySize: int = 4096  # ignored for Ed25519, as in TMS
    # Triton 2.51 has no TLS for HTTP: expose its plaintext HTTP port on the Services anyway?
    plaintextHttp: bool = False

    @model_validator(mode="after")
    def _size(self) -> TlsSettings:
        sizes = KEY_SIZES.get(self.privateKeyAlgorithm)
        if sizes and self.privateKeySize not in sizes:
            raise ValueError(f"privateKeySize {self.privateKeySize} is not a {self.privateKeyAlgorithm} key size: "
                             f"use one of {', '.join(map(str, sizes))} (TMS rule)")
        return self


class ScaleToZero(Strict):
    """HPA `minReplicas: 0` (TMS `autoscaling.replicas.limits.minimum: 0`). Kubernetes allows it
    only with the HPAScaleToZero feature gate and at least one External or Object metric, since
    a Deployment with no pods has no pod metrics to wake it: the admin names an External metric
    (e.g. requests waiting at a gateway) selected by `tms-stack.dev/lease=<lease>`."""

    externalMetric: Annotated[str, Field(pattern=r"^[A-Za-z_:][A-Za-z0-9_:]{0,199}$")]
    averageValue: Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?m?$")] = "1"


class TelemetrySettings(Strict):
    """Where `tms prune` learns whether an auto-renew lease served requests. `source` is required
    for auto-renew (check refuses it otherwise); the URL may instead come from the prune job's
    environment (TMS_PROMETHEUS_URL / TMS_TRITON_URL_TEMPLATE), which wins when both are set."""

    source: Literal["prometheus", "triton"]
    prometheusUrl: str | None = None
    tritonUrlTemplate: str | None = None


def _stack_name(value: str) -> str:
    if not STACK_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a Pulumi stack name: use 1-100 characters of A-Z a-z 0-9 _ . -")
    return value


# Pulumi's own rule for a stack name (it is part of every URN and of `Pulumi.<stack>.yaml`).
STACK_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,100}")
StackName = Annotated[str, AfterValidator(_stack_name)]


class ShardSettings(Strict):
    """`tms-stack:shards`: the fleet deployed as several Pulumi stacks (docs/real-engine.md,
    "Sharded stacks"). The stack whose file this is becomes the *home* stack: it holds the
    fleet-wide objects (alias Services, monitoring). `stacks` are the shard stacks that hold the
    lease groups; they run with this file's settings (`pulumi ... --stack <shard> --config-file
    Pulumi.<home>.yaml`).

    Each lease group (a bespoke lease, or a pool with its pooled leases) goes to the shard whose
    rendezvous hash of (shard, key) is highest, so an unrelated change never moves a group and
    adding a stack moves only the ~1/N groups that now prefer it (`tms shard moves`)."""

    stacks: Annotated[list[StackName], Field(min_length=1, max_length=200)]
    # What is hashed: "group" (the lease's or pool's name: even sizes) or "owner" (a team's
    # leases share a stack; a pool without an owner hashes by its name).
    by: Literal["group", "owner"] = "group"
    # A stack holding more leases is a `tms check` warning (add a stack): the engine's cost per
    # deploy grows with the state of the stack (~40 CPU s per 1,000 leases).
    maxLeases: Annotated[int, Field(ge=1)] = 1000
    # Explicit placements that win over the hash: a pool, lease or owner name -> one of `stacks`
    # or the home stack.
    pins: dict[str, StackName] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _members(self) -> ShardSettings:
        seen: set[str] = set()
        for name in self.stacks:
            if name in seen:
                raise ValueError(f"stack {name!r} is listed twice in shards.stacks")
            seen.add(name)
        return self


class StackSettings(Strict):
    namespace: DnsLabel = "default"
    partOf: str = "tms-stack"
    # The image the release workflow published for this version (models/release.py).
    agentImage: str = Field(default_factory=default_agent_image)
    imagePullSecrets: list[str] = Field(default_factory=list)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    customLabels: dict[str, str] = Field(default_factory=dict)
    customAnnotations: dict[str, str] = Field(default_factory=dict)
    tls: TlsSettings | None = None
    scaleToZero: ScaleToZero | None = None
    telemetry: TelemetrySettings | None = None
    # How long Triton may take to load its models before Kubernetes restarts it (TMS 1.1 fix).
    startupTimeout: Duration = "1h"
    # Pulumi waits this long for a Deployment to become ready (pulumi.com/timeoutSeconds).
    deployTimeout: Duration = "30m"
    # The node class (policies Limits spec.nodeClasses) of pools and bespoke leases that name none;
    # None: no scheduling constraints and whole GPUs (nvidia.com/gpu), as before node classes.
    defaultNodeClass: NodeClassName | None = None
    # Several Pulumi stacks for one fleet (ShardSettings); None: one stack holds everything.
    shards: ShardSettings | None = None
    # Test-only: no kubelet in the test cluster, so Pulumi must not wait for pods. Never in production.
    testSkipAwait: bool = False
