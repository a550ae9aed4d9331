"""A pool: shared Triton instances that pooled leases are placed onto by quota."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from tms_stack.models.common import ApiVersion, OwnerName, Strict, WholeNumber
from tms_stack.models.lease import Resources
from tms_stack.models.nodeclass import NodeClassName

POOL_NAME = re.compile(r"[A-Za-z0-9_-]{8,512}")  # fullmatch: no trailing newline


def _pool_name(value: str) -> str:
    if not POOL_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a pool name: use 8-512 characters of A-Z a-z 0-9 _ - (TMS rule)")
    return value


PoolName = Annotated[str, AfterValidator(_pool_name)]


class PoolMetadata(Strict):
    name: PoolName
    # Who is accountable: a pool's GPUs count against this owner's budget (policies Limits
    # spec.owners); required as soon as budgets apply (rule owner.unknown).
    owner: OwnerName | None = None


# Far above any real pool, low enough that placement and rendering stay bounded on hostile input.
MAX_POOL_INSTANCES = 10_000


class Instances(Strict):
    min: WholeNumber = Field(default=0, ge=0)
    max: WholeNumber = Field(ge=1, le=MAX_POOL_INSTANCES)

    @model_validator(mode="after")
    def _ordered(self) -> Instances:
        if self.min > self.max:
            raise ValueError(f"instances.min {self.min} is greater than instances.max {self.max}")
        return self


class PoolTriton(Strict):
    image: str | None = None
    resources: Resources | None = None
    # A node class of the policies; default: the stack's defaultNodeClass.
    nodeClass: NodeClassName | None = None


class PoolSpec(Strict):
    instanceQuota: WholeNumber = Field(ge=1)
    instances: Instances
    backendUniqueness: bool = True
    triton: PoolTriton | None = None


class Pool(Strict):
    apiVersion: ApiVersion
    kind: Literal["Pool"]
    metadata: PoolMetadata
    spec: PoolSpec

    @property
    def name(self) -> str:
        return self.metadata.name

    def instance_name(self, index: int) -> str:
        """Kubernetes name of instance `index`: pool names may hold `_` and capitals, k8s names may not."""
        return f"{k8s_pool_name(self.name)}-{index}"


def k8s_pool_name(name: str) -> str:
    safe = re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-") or "pool"
    return safe[:50].rstrip("-")
