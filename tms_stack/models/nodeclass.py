"""Node classes: where a Triton pod may run and which GPU resource it asks for (policies Limits
`spec.nodeClasses`). Admins declare them; stacks name the default, pools and bespoke leases choose
one by name (docs/user-guide.md, "Node classes").

Only what the pod spec needs is modelled, and each string is validated here because it reaches
the rendered pod spec as is: label keys and values, taint keys and effects, extended resource
names. Affinity is node affinity (required and preferred node selector terms): pod (anti-)affinity
would need the pods' labels, which are ours, not the admin's."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from tms_stack.models.common import Strict, WholeNumber

WHOLE_GPU = "nvidia.com/gpu"
# A label key: optional DNS-subdomain prefix and a name of at most 63 characters (Kubernetes).
_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_PREFIX = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*"
LABEL_KEY = re.compile(rf"({_PREFIX}/)?{_NAME}")
LABEL_VALUE = re.compile(rf"({_NAME})?")
# An extended resource: a domain outside kubernetes.io and a name (nvidia.com/mig-1g.10gb).
RESOURCE_NAME = re.compile(rf"{_PREFIX}/{_NAME}")
CLASS_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def _label_key(value: str) -> str:
    if not LABEL_KEY.fullmatch(value) or len(value.split("/", 1)[0]) > 253:
        raise ValueError(f"{value!r} is not a Kubernetes label key (e.g. nvidia.com/gpu.product)")
    return value


def _label_value(value: str) -> str:
    if not LABEL_VALUE.fullmatch(value):
        raise ValueError(f"{value!r} is not a Kubernetes label value: at most 63 of A-Z a-z 0-9 - _ ., "
                         "starting and ending with a letter or digit")
    return value


def _resource_name(value: str) -> str:
    domain = value.split("/", 1)[0]
    if not RESOURCE_NAME.fullmatch(value) or domain == "kubernetes.io" or domain.endswith(".kubernetes.io"):
        raise ValueError(f"{value!r} is not an extended resource name: use <domain>/<name>, e.g. "
                         "nvidia.com/gpu, nvidia.com/mig-1g.10gb or nvidia.com/gpu.shared")
    return value


def _class_name(value: str) -> str:
    if not CLASS_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a node class name: use 1-63 lowercase letters, digits and '-', "
                         "starting and ending with a letter or digit")
    return value


LabelKey = Annotated[str, AfterValidator(_label_key)]
LabelValue = Annotated[str, AfterValidator(_label_value)]
ResourceName = Annotated[str, AfterValidator(_resource_name)]
NodeClassName = Annotated[str, AfterValidator(_class_name)]


class Toleration(Strict):
    key: LabelKey | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: LabelValue | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    tolerationSeconds: WholeNumber | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _shape(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError("a toleration with operator Exists takes no value")
        if self.key is None and self.operator != "Exists":
            raise ValueError("a toleration without a key must use operator Exists (it tolerates every taint)")
        if self.tolerationSeconds is not None and self.effect != "NoExecute":
            raise ValueError("tolerationSeconds applies to effect NoExecute only")
        return self


class MatchExpression(Strict):
    key: LabelKey
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
    values: list[LabelValue] = Field(default_factory=list, max_length=64)

    @model_validator(mode="after")
    def _values(self) -> MatchExpression:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs at least one value")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no values")
        if self.operator in ("Gt", "Lt") and (len(self.values) != 1 or not self.values[0].lstrip("-").isdigit()):
            raise ValueError(f"operator {self.operator} takes exactly one whole-number value")
        return self


class NodeSelectorTerm(Strict):
    matchExpressions: list[MatchExpression] = Field(min_length=1, max_length=32)


class RequiredNodeAffinity(Strict):
    nodeSelectorTerms: list[NodeSelectorTerm] = Field(min_length=1, max_length=16)


class PreferredTerm(Strict):
    weight: WholeNumber = Field(ge=1, le=100)
    preference: NodeSelectorTerm


class NodeAffinity(Strict):
    requiredDuringSchedulingIgnoredDuringExecution: RequiredNodeAffinity | None = None
    preferredDuringSchedulingIgnoredDuringExecution: list[PreferredTerm] | None = Field(default=None, max_length=16)


class Affinity(Strict):
    nodeAffinity: NodeAffinity


class NodeClass(Strict):
    """One kind of node: how a pod gets there, and the GPU resource it requests there."""

    nodeSelector: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=32)
    tolerations: list[Toleration] = Field(default_factory=list, max_length=32)
    affinity: Affinity | None = None
    # Whole GPUs (nvidia.com/gpu), a MIG profile (nvidia.com/mig-1g.10gb) or a time-sliced GPU
    # (the GPU operator's nvidia.com/gpu.shared, or nvidia.com/gpu replicas on a sliced node).
    gpuResource: ResourceName = WHOLE_GPU
    # The most of gpuResource one Triton pod may request: what one node of the class has (8 GPUs,
    # 7 MIG slices), 1 for time-slicing (more replicas give no more compute). None: no bound.
    maxGpus: WholeNumber | None = Field(default=None, ge=0)

    def pod_spec(self) -> dict[str, Any]:
        """The pod spec fields this class sets (nodeSelector, tolerations, affinity)."""
        out: dict[str, Any] = {}
        if self.nodeSelector:
            out["nodeSelector"] = dict(sorted(self.nodeSelector.items()))
        if self.tolerations:
            out["tolerations"] = [t.model_dump(exclude_none=True) for t in self.tolerations]
        if self.affinity is not None:
            out["affinity"] = self.affinity.model_dump(exclude_none=True)
        return out
