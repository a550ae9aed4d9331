"""The placement lock `pools/placement.lock.yaml`: which pool instance holds which pooled lease.

Committed to git so placement is reviewed in the pull request and stays put when unrelated
leases change. Written by `tms pool lock`; read by `tms check` (staleness) and rendering.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tms_stack.models.common import ApiVersion, Metadata, Strict, WholeNumber


class InstanceAssignment(Strict):
    index: WholeNumber = Field(ge=0)          # stable: Kubernetes name is `<pool>-<index>`
    leases: list[str] = Field(default_factory=list)   # in placement order (load order on the instance)
    backends: list[str] = Field(default_factory=list)  # Triton backends on this instance (sorted)
    # Each lease's quota when placed: a lease whose quota changed is the one to move, not its neighbours.
    quotas: dict[str, int] = Field(default_factory=dict)


class PoolPlacement(Strict):
    instances: list[InstanceAssignment] = Field(default_factory=list)


class PlacementLock(Strict):
    apiVersion: ApiVersion
    kind: Literal["PlacementLock"]
    metadata: Metadata = Field(default_factory=lambda: Metadata(name="placement"))
    pools: dict[str, PoolPlacement] = Field(default_factory=dict)
    # Learned Triton backends per model URI (from config.pbtxt), so later runs need no network.
    backends: dict[str, list[str]] = Field(default_factory=dict)
