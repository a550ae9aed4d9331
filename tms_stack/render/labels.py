"""Labels and annotations every rendered object carries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tms_stack.models.stack import StackSettings

DOMAIN = "tms-stack.dev"
LEASE = f"{DOMAIN}/lease"
OWNER = f"{DOMAIN}/owner"
EXPIRES = f"{DOMAIN}/expires"           # label: unix seconds (label values cannot hold ':')
EXPIRES_AT = f"{DOMAIN}/expires-at"     # annotation: RFC 3339
POOL = f"{DOMAIN}/pool"
INSTANCE = f"{DOMAIN}/instance"         # the Triton Deployment a pod belongs to
ALIAS = f"{DOMAIN}/alias"
MANAGED_BY = "tms-stack"


def image_version(image: str) -> str:
    tail = image.rsplit("/", 1)[-1]
    version = tail.split("@", 1)[0].split(":", 1)[1] if ":" in tail.split("@", 1)[0] else "latest"
    return version[:63].strip("-_.") or "latest"


def common_labels(settings: StackSettings, instance: str, component: str) -> dict[str, str]:
    labels = dict(settings.customLabels)
    labels.update({
        "app.kubernetes.io/name": "triton",
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": settings.partOf,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    })
    return labels


def lease_labels(name: str, owner: str, expires: datetime) -> dict[str, str]:
    return {LEASE: name, OWNER: owner, EXPIRES: str(int(expires.timestamp()))}


def metadata(name: str, settings: StackSettings, labels: dict[str, str],
             annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": settings.namespace, "labels": dict(sorted(labels.items()))}
    merged = dict(settings.customAnnotations)
    merged.update(annotations or {})
    if merged:
        meta["annotations"] = dict(sorted(merged.items()))
    return meta


def rfc3339(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")
