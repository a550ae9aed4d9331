"""Admin policy, the TMS `values.yaml` split by concern: Limits, Allowlist, Repositories.

Defaults are TMS 1.4's Helm defaults unless a comment says otherwise.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from tms_stack.models.common import (
    ApiVersion,
    Cpu,
    Duration,
    Gpu,
    Memory,
    Metadata,
    OwnerName,
    QueueTime,
    RepositoryName,
    RepoSize,
    Strict,
    WholeNumber,
)
from tms_stack.models.nodeclass import WHOLE_GPU, NodeClass, NodeClassName, ResourceName
from tms_stack.models.units import parse_queue_time_us

# ---- Limits ---------------------------------------------------------------------------

class ResourceValues(Strict):
    cpu: Cpu
    gpu: Gpu
    systemMemory: Memory
    sharedMemory: Memory
    repositorySize: RepoSize


def _default_resources() -> ResourceValues:
    return ResourceValues(cpu="2", gpu=1, systemMemory="4Gi", sharedMemory="256Mi", repositorySize="2Gi")


def _min_resources() -> ResourceValues:
    return ResourceValues(cpu="1", gpu=0, systemMemory="256Mi", sharedMemory="32Mi", repositorySize="256Mi")


def _max_resources() -> ResourceValues:
    return ResourceValues(cpu="16", gpu=4, systemMemory="32Gi", sharedMemory="2Gi", repositorySize="100Gi")


_TMS_RESOURCES = {"default": _default_resources, "minimum": _min_resources, "maximum": _max_resources}


class ResourceLimits(Strict):
    default: ResourceValues = Field(default_factory=_default_resources)
    minimum: ResourceValues = Field(default_factory=_min_resources)
    maximum: ResourceValues = Field(default_factory=_max_resources)

    @model_validator(mode="before")
    @classmethod
    def _fill_left_out(cls, data: object) -> object:
        """TMS defaults fill every value left out, within a block too: `default: {cpu: 2, gpu: 1}`
        keeps TMS's memory and repository size (docs/user-guide.md; issue 14: it was refused)."""
        if not isinstance(data, dict):
            return data
        filled = dict(data)
        for key, tms in _TMS_RESOURCES.items():
            given = data.get(key)
            if isinstance(given, dict):
                filled[key] = {**tms().model_dump(mode="json"), **given}
        return filled


class TritonLimits(Strict):
    resources: ResourceLimits = Field(default_factory=ResourceLimits)
    # TMS `triton.enableRestrictedAccess`: only the agent may call the model-repository API.
    enableRestrictedAccess: bool = True
    # TMS `server.logLevel` / `server.traceLevel` set the verbosity of TMS's own server. We have no
    # server: the process that serves is Triton, so they become Triton's --log-* flags and its
    # trace level (docs/tmsctl.md, "Helm values").
    logLevel: Literal["error", "warning", "info", "verbose"] = "info"
    traceLevel: Literal["off", "timestamps", "tensors"] = "off"


class DurationLimit(Strict):
    default: Duration
    maximum: Duration


class LeaseDurationLimit(DurationLimit):
    # Ours: a lease that would live less than this once merged (a pull request reviewed for most of
    # its duration) gets a warning in the plan; one already expired is refused (lease.expired-on-arrival).
    minimum: Duration = "1h"


class LeaseLimits(Strict):
    duration: LeaseDurationLimit = Field(default_factory=lambda: LeaseDurationLimit(default="8h", maximum="30d"))


class AutoRenewLimits(Strict):
    enabled: bool = True
    window: DurationLimit = Field(default_factory=lambda: DurationLimit(default="5m", maximum="5m"))
    # Ours: TMS renewed by the lease's renewal duration with no admin bound.
    renewalDuration: DurationLimit = Field(default_factory=lambda: DurationLimit(default="8h", maximum="7d"))
    # Ours (fail closed, within bounds): an auto-renew lease whose activity stays unknown is kept at
    # most this long past `expires`; render and the program leave out leases expired longer than it.
    unknownGrace: Duration = "24h"


class ReplicaDefaults(Strict):
    minimum: WholeNumber = Field(default=1, ge=0)
    maximum: WholeNumber = Field(default=5, ge=1)


class ReplicaLimits(Strict):
    minimum: WholeNumber = Field(default=1, ge=0)
    maximumIdle: WholeNumber = Field(default=1, ge=0)
    maximum: WholeNumber = Field(default=10, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> ReplicaLimits:
        if not self.minimum <= self.maximumIdle <= self.maximum:
            raise ValueError(
                "replica limits must satisfy minimum <= maximumIdle <= maximum "
                f"(got {self.minimum} <= {self.maximumIdle} <= {self.maximum})"
            )
        return self


class Replicas(Strict):
    default: ReplicaDefaults = Field(default_factory=ReplicaDefaults)
    limits: ReplicaLimits = Field(default_factory=ReplicaLimits)

    @model_validator(mode="after")
    def _defaults_within(self) -> Replicas:
        d, lim = self.default, self.limits
        if not lim.minimum <= d.minimum <= lim.maximumIdle:
            raise ValueError(
                f"default minimum replicas {d.minimum} must be within limits.minimum {lim.minimum} "
                f"and limits.maximumIdle {lim.maximumIdle}"
            )
        if not max(d.minimum, 1) <= d.maximum <= lim.maximum:
            raise ValueError(
                f"default maximum replicas {d.maximum} must be within default minimum and limits.maximum {lim.maximum}"
            )
        return self


class Threshold(Strict):
    """A percentage threshold (TMS: 0 exclusive to 100 inclusive)."""

    default: int
    minimum: int
    maximum: int

    @model_validator(mode="after")
    def _range(self) -> Threshold:
        # Checked here, not in the metric, so the error points at the threshold's own line.
        if not (0 < self.minimum <= self.default <= self.maximum <= 100):
            raise ValueError(
                "percentage thresholds must satisfy 0 < minimum <= default <= maximum <= 100 "
                f"(got {self.minimum}, {self.default}, {self.maximum})"
            )
        return self


class PercentMetricPolicy(Strict):
    allowed: bool = False
    enabled: bool = False
    threshold: Threshold = Field(default_factory=lambda: Threshold(default=90, minimum=50, maximum=100))

    @model_validator(mode="after")
    def _allowed(self) -> PercentMetricPolicy:
        if self.enabled and not self.allowed:
            raise ValueError("a metric enabled by default must also be allowed")
        return self


class QueueThreshold(Strict):
    """Microseconds; maximum 0 or negative means no upper limit (TMS)."""

    default: QueueTime = 10000
    minimum: QueueTime = 10000
    maximum: QueueTime = 0

    @model_validator(mode="after")
    def _range(self) -> QueueThreshold:
        lo = parse_queue_time_us(self.minimum)
        default = parse_queue_time_us(self.default)
        hi = parse_queue_time_us(self.maximum)
        if lo <= 0 or default < lo or (hi > 0 and default > hi):
            raise ValueError(
                "queue-time thresholds must satisfy 0 < minimum <= default <= maximum (maximum <= 0: no limit); "
                f"got minimum {lo}us, default {default}us, maximum {hi}us"
            )
        return self


class QueueTimePolicy(Strict):
    allowed: bool = False
    enabled: bool = False
    threshold: QueueThreshold = Field(default_factory=QueueThreshold)

    @model_validator(mode="after")
    def _allowed(self) -> QueueTimePolicy:
        if self.enabled and not self.allowed:
            raise ValueError("a metric enabled by default must also be allowed")
        return self


class QueueTimePercentagePolicy(PercentMetricPolicy):
    # TMS: queueTimePercentage's threshold defaults differ (default 50, minimum 1), also when the
    # metric is configured without a threshold.
    threshold: Threshold = Field(default_factory=lambda: Threshold(default=50, minimum=1, maximum=100))


class MetricPolicies(Strict):
    cpuUtilization: PercentMetricPolicy = Field(default_factory=PercentMetricPolicy)
    gpuUtilization: PercentMetricPolicy = Field(default_factory=PercentMetricPolicy)
    queueTime: QueueTimePolicy = Field(default_factory=QueueTimePolicy)
    queueTimePercentage: QueueTimePercentagePolicy = Field(default_factory=QueueTimePercentagePolicy)


METRIC_NAMES = ("cpuUtilization", "gpuUtilization", "queueTime", "queueTimePercentage")


class AutoscalingLimits(Strict):
    enabled: bool = False
    replicas: Replicas = Field(default_factory=Replicas)
    metrics: MetricPolicies = Field(default_factory=MetricPolicies)

    @model_validator(mode="after")
    def _one_metric(self) -> AutoscalingLimits:
        if self.enabled and not any(getattr(self.metrics, m).allowed for m in METRIC_NAMES):
            raise ValueError("autoscaling is enabled but no metric is allowed: allow at least one (TMS rule)")
        return self


class QuotaRange(Strict):
    minimum: WholeNumber = Field(default=1, ge=1)
    maximum: WholeNumber = Field(default=1000, ge=1)


class PoolLimits(Strict):
    enabled: bool = False
    instanceQuota: QuotaRange = Field(default_factory=QuotaRange)
    maxInstances: WholeNumber = Field(default=32, ge=1, le=10_000)  # = pool.MAX_POOL_INSTANCES
    # TMS `shareTriton.byDefault`: a lease that names neither `triton` nor `pool` shares a Triton.
    # TMS had one implicit share target; ours is a named pool (`defaultPool`) with `defaultQuota`.
    byDefault: bool = False
    defaultPool: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{8,512}$")] | None = None
    defaultQuota: WholeNumber = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _default_pool(self) -> PoolLimits:
        if self.byDefault and not self.enabled:
            raise ValueError("byDefault needs pools enabled (enabled: true)")
        if self.byDefault and not self.defaultPool:
            raise ValueError("byDefault needs defaultPool: the pool leases without triton or pool go to")
        return self


RESERVED_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?|[a-z0-9][-a-z0-9.]{0,251}\*")  # fullmatch


def _reserved_name(value: str) -> str:
    if not RESERVED_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a reserved name: use a Kubernetes name (lowercase letters, digits, "
                         "'-' and '.', starting and ending with a letter or digit), or a prefix ending in '*' "
                         "such as 'vault-*'")
    return value


class Budget(Strict):
    # Whole GPUs (nvidia.com/gpu), and every GPU resource without an entry of its own in
    # gpuResources (fail closed: a MIG slice then counts as a GPU).
    gpus: WholeNumber | None = Field(default=None, ge=0)
    leases: WholeNumber | None = Field(default=None, ge=0)
    # Ours: a budget per GPU resource name of the node classes (nvidia.com/mig-1g.10gb: 14).
    gpuResources: dict[ResourceName, Annotated[WholeNumber, Field(ge=0)]] = Field(default_factory=dict,
                                                                                   max_length=64)

    def bucket(self, resource: str) -> str:
        """The budget a GPU resource counts against: its own entry, else `gpus`."""
        return resource if resource in self.gpuResources else WHOLE_GPU

    def limit(self, bucket: str) -> int | None:
        return self.gpuResources[bucket] if bucket in self.gpuResources else self.gpus


class Budgets(Strict):
    default: Budget = Field(default_factory=Budget)
    owners: dict[OwnerName, Budget] = Field(default_factory=dict)

    def for_owner(self, owner: str) -> Budget:
        return self.owners.get(owner, self.default)


# GitHub's CODEOWNERS owners: `@org/team` (a team with write access) or `@user`. Email addresses,
# which CODEOWNERS also accepts, are refused: they cannot be checked against the organisation.
GITHUB_LOGIN = r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}"
APPROVER = re.compile(rf"@{GITHUB_LOGIN}(?:/[A-Za-z0-9][A-Za-z0-9._-]{{0,99}})?")
# A CODEOWNERS path an admin adds to the admin-owned lines: anchored, no spaces, no `#`, no `!`
# (GitHub does not support negation) and no `[...]` (not supported either).
ADMIN_PATH = re.compile(r"/[A-Za-z0-9._*/-]{1,200}")


def _approver(value: str) -> str:
    if not APPROVER.fullmatch(value):
        raise ValueError(f"{value!r} is not a GitHub team or user: write @org/team-slug or @username")
    return value


def _admin_path(value: str) -> str:
    if not ADMIN_PATH.fullmatch(value) or "**" in value:
        raise ValueError(f"{value!r} is not a CODEOWNERS path tms writes: start with /, use letters, digits, "
                         "'.', '_', '-', '/' and single '*' (e.g. /scripts/ or /requirements.txt)")
    return value


Approver = Annotated[str, AfterValidator(_approver)]
AdminPath = Annotated[str, AfterValidator(_admin_path)]


class CodeOwners(Strict):
    """Ours: who GitHub asks to approve what (docs/security.md, "Who may change what").
    `tms codeowners` writes .github/CODEOWNERS from this and the owners' approvers; once it is set,
    `tms check` fails when that file is out of step (rule codeowners.stale)."""

    admins: list[Approver] = Field(min_length=1, max_length=50)
    # Admin-owned paths named in CODEOWNERS besides the gate's own (policies, pools, stack files,
    # .github/, .gitattributes, leases/); `*` gives the admins everything else anyway.
    adminPaths: list[AdminPath] = Field(default_factory=list, max_length=200)


def _unique(values: list[str], what: str) -> None:
    seen = [v.lower() for v in values]
    dupes = sorted({v for v in seen if seen.count(v) > 1})
    if dupes:
        raise ValueError(f"{what} lists {', '.join(dupes)} more than once")


class LimitsSpec(Strict):
    triton: TritonLimits = Field(default_factory=TritonLimits)
    leases: LeaseLimits = Field(default_factory=LeaseLimits)
    autoRenew: AutoRenewLimits = Field(default_factory=AutoRenewLimits)
    autoscaling: AutoscalingLimits = Field(default_factory=AutoscalingLimits)
    pools: PoolLimits = Field(default_factory=PoolLimits)
    budgets: Budgets = Field(default_factory=Budgets)
    # Ours: the owners leases and pools may name (DNS-1123 labels). Budgets are per owner, so a
    # free-text owner (`team-vision-0..2`) would multiply any budget; once a budget is set, an
    # owner not listed here is an error (rule owner.unknown). docs/security.md.
    # A mapping names, per owner, the GitHub teams or users who act for it (their approval is
    # required for the owner's lease folder, leases/<owner>/): `team-risk: ["@acme/risk"]`.
    owners: list[OwnerName] | dict[OwnerName, list[Approver]] | None = Field(default=None, max_length=10_000)
    codeOwners: CodeOwners | None = None
    # Ours: where lease files live. `flat`: leases/<name>.yaml (CODEOWNERS cannot see the owner, so
    # every lease file is the admins'); `by-owner`: leases/<owner>/<name>.yaml, one CODEOWNERS line
    # per owner folder. `tms lease migrate` moves a repository from flat to by-owner.
    leaseLayout: Literal["flat", "by-owner"] = "flat"
    # Ours: the node classes pools and bespoke leases may choose (tms_stack/models/nodeclass.py).
    nodeClasses: dict[NodeClassName, NodeClass] = Field(default_factory=dict, max_length=256)
    # Ours: names no lease may take (its own name, an alias or anything it renders), beside the
    # built-in ones (rules/ownership.py): objects other systems create in the namespace. An entry
    # is a Kubernetes name, or a prefix ending in `*` (`vault-*`).
    reservedNames: list[Annotated[str, AfterValidator(_reserved_name)]] = Field(default_factory=list,
                                                                               max_length=1_000)

    @model_validator(mode="after")
    def _authority(self) -> LimitsSpec:
        if isinstance(self.owners, dict):
            for owner, approvers in self.owners.items():
                _unique(approvers, f"owners.{owner}")
        if self.codeOwners is not None:
            _unique(self.codeOwners.admins, "codeOwners.admins")
        if self.leaseLayout == "by-owner" and self.codeOwners is None:
            raise ValueError("leaseLayout by-owner needs codeOwners.admins: owner folders exist so that "
                             "CODEOWNERS can require each owner's approval (docs/security.md)")
        return self

    def owner_names(self) -> list[str]:
        return sorted(self.owners or ())

    def approvers(self, owner: str) -> list[str]:
        """The GitHub teams or users who act for `owner` ([] when none are declared)."""
        return list(self.owners.get(owner, [])) if isinstance(self.owners, dict) else []


class Limits(Strict):
    apiVersion: ApiVersion
    kind: Literal["Limits"]
    metadata: Metadata
    spec: LimitsSpec = Field(default_factory=LimitsSpec)


# ---- Allowlist ------------------------------------------------------------------------

IMAGE_REF = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?")  # fullmatch


def _image(value: str) -> str:
    if not IMAGE_REF.fullmatch(value) or len(value) > 512:
        raise ValueError(f"{value!r} is not a container image reference (e.g. nvcr.io/nvidia/tritonserver:24.08-py3)")
    return value


Image = Annotated[str, AfterValidator(_image)]


class AllowlistSpec(Strict):
    default: Image | None = None  # image used when a lease or pool names none
    images: list[Image] = Field(default_factory=list)


class Allowlist(Strict):
    apiVersion: ApiVersion
    kind: Literal["Allowlist"]
    metadata: Metadata
    spec: AllowlistSpec = Field(default_factory=AllowlistSpec)


# ---- Repositories ---------------------------------------------------------------------

# A Kubernetes object name (DNS-1123 subdomain); pydantic's patterns are whole-string matches.
SecretName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")]


class S3Repository(Strict):
    repositoryName: RepositoryName
    bucketName: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    awsRegion: Annotated[str, Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]$")] | None = None
    endpoint: Annotated[str, Field(pattern=r"^https?://[^\s/]+(/\S*)?$")] | None = None
    accessKey: SecretName | None = None    # name of a Kubernetes Secret (key `value`)
    secretKey: SecretName | None = None    # name of a Kubernetes Secret (key `value`)
    role: Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$")] | None = None  # IAM role ARN for the pod's ServiceAccount

    @model_validator(mode="after")
    def _where(self) -> S3Repository:
        if not self.awsRegion and not self.endpoint:
            raise ValueError("an s3 repository needs endpoint or awsRegion (endpoint wins when both are set)")
        if bool(self.accessKey) != bool(self.secretKey):
            raise ValueError("accessKey and secretKey go together: set both secret names, or neither (IAM role)")
        if self.role and self.accessKey:
            raise ValueError("use either an IAM role or accessKey/secretKey secrets, not both")
        return self


class VolumeRepository(Strict):
    repositoryName: RepositoryName
    volumeClaimName: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")]


class HttpsRepository(Strict):
    targetUri: Annotated[str, Field(min_length=1, max_length=2048)]
    secretName: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")]


class RepositoriesSpec(Strict):
    s3: list[S3Repository] = Field(default_factory=list)
    volumes: list[VolumeRepository] = Field(default_factory=list)
    https: list[HttpsRepository] = Field(default_factory=list)


class Repositories(Strict):
    apiVersion: ApiVersion
    kind: Literal["Repositories"]
    metadata: Metadata
    spec: RepositoriesSpec = Field(default_factory=RepositoriesSpec)
