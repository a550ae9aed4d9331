"""A lease: models, the Triton that serves them (bespoke or a pool share), and its expiry."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from tms_stack.models.common import (
    ApiVersion,
    Cpu,
    DnsLabel,
    Duration,
    Gpu,
    Memory,
    OwnerName,
    Percent,
    QueueTime,
    RepoSize,
    Strict,
    WholeNumber,
)
from tms_stack.models.nodeclass import NodeClassName

# Triton model names become directory names in the model repository.
# Applied with fullmatch (`$` accepts a trailing newline). URIs are printable ASCII without spaces,
# quotes or backslashes: they reach the desired-models JSON, logs and the plan comment.
MODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
MODEL_URI = re.compile(r"(model://[a-z0-9][-a-z0-9]*/[!#-&(-\[\]-~]+|https?://[!#-&(-\[\]-~]+)")
BACKEND_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


def _model_name(value: str) -> str:
    if not MODEL_NAME.fullmatch(value) or value in (".", ".."):
        raise ValueError(
            f"{value!r} is not a Triton model name: use 1-128 of A-Z a-z 0-9 _ . -, not starting with '.' or '-'"
        )
    return value


def _model_uri(value: str) -> str:
    if not MODEL_URI.fullmatch(value) or len(value) > 2048:
        raise ValueError(
            f"{value!r} is not a model URI: use model://<repository>/<path> (a repository from policies) "
            "or an http(s):// URL of a zip archive"
        )
    return value


def _backend_name(value: str) -> str:
    if not BACKEND_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a Triton backend name (e.g. python, onnxruntime): use 1-64 of A-Z a-z 0-9 _ . -")
    return value


EXPIRES_MIN = datetime(1970, 1, 1, tzinfo=UTC)
EXPIRES_MAX = datetime(3000, 1, 1, tzinfo=UTC)

ModelName = Annotated[str, AfterValidator(_model_name)]
ModelUri = Annotated[str, AfterValidator(_model_uri)]


class LeaseMetadata(Strict):
    name: DnsLabel
    owner: OwnerName


class Model(Strict):
    name: ModelName
    uri: ModelUri
    count: WholeNumber = Field(default=0, ge=0, le=64)
    # Triton backends this model needs (e.g. [python]); learned from config.pbtxt when omitted.
    backends: list[Annotated[str, AfterValidator(_backend_name)]] | None = Field(default=None, max_length=16)


class AutoRenew(Strict):
    activityWindow: Duration | None = None
    renewalDuration: Duration | None = None


class Resources(Strict):
    cpu: Cpu | None = None
    gpu: Gpu | None = None
    systemMemory: Memory | None = None
    sharedMemory: Memory | None = None
    repositorySize: RepoSize | None = None


class Metric(Strict):
    enabled: bool | None = None
    threshold: Percent | None = None


class QueueTimeMetric(Strict):
    enabled: bool | None = None
    threshold: QueueTime | None = None


class Metrics(Strict):
    cpuUtilization: Metric | None = None
    gpuUtilization: Metric | None = None
    queueTime: QueueTimeMetric | None = None
    queueTimePercentage: Metric | None = None


class Autoscaling(Strict):
    minReplicas: WholeNumber | None = Field(default=None, ge=0)
    maxReplicas: WholeNumber | None = Field(default=None, ge=1)
    metrics: Metrics | None = None


class TritonSpec(Strict):
    image: str | None = None
    resources: Resources | None = None
    autoscaling: Autoscaling | None = None
    # A node class of the policies (Limits spec.nodeClasses); default: the stack's defaultNodeClass.
    nodeClass: NodeClassName | None = None


class PoolShare(Strict):
    name: str
    quota: WholeNumber = Field(ge=1)
    # The node class the lease needs: the pool must run on it (rule pool.node-class). The pool's
    # class decides where the lease runs; this only makes the lease's need reviewable.
    nodeClass: NodeClassName | None = None


class LeaseSpec(Strict):
    models: list[Model] = Field(min_length=1, max_length=64)
    expires: datetime
    autoRenew: AutoRenew | None = None
    names: list[DnsLabel] = Field(default_factory=list, max_length=16)
    triton: TritonSpec | None = None
    pool: PoolShare | None = None

    @field_validator("expires")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("expires needs a time zone: write it in UTC, e.g. 2026-12-01T18:00:00Z")
        try:
            value = value.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00 is before year 1 in UTC
            raise ValueError("expires is out of range: write a UTC time such as 2026-12-01T18:00:00Z") from None
        # The expiry is rendered as a unix-seconds label: before 1970 it is negative ("-86400"),
        # which the API server refuses (422) for every object of the deploy. The upper bound keeps
        # expires + any duration inside datetime's range (prune adds renewal durations).
        if not EXPIRES_MIN <= value < EXPIRES_MAX:
            raise ValueError(f"expires is out of range: must be from {EXPIRES_MIN:%Y-%m-%d} to before "
                             f"{EXPIRES_MAX:%Y-%m-%d} (UTC)")
        return value

    @model_validator(mode="after")
    def _exclusive(self) -> LeaseSpec:
        if self.triton is not None and self.pool is not None:
            raise ValueError(
                "triton and pool are mutually exclusive: a lease gets a bespoke Triton or a share of a pool"
            )
        return self


class Lease(Strict):
    apiVersion: ApiVersion
    kind: Literal["Lease"]
    metadata: LeaseMetadata
    spec: LeaseSpec

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def pooled(self) -> bool:
        return self.spec.pool is not None
