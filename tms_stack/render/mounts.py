"""What a Triton pod mounts from the policies' repositories: Secrets (for the agent) and volume
repositories (for the agent *and* Triton).

Scope decides what restarts (issue 11 #3). A pool instance mounts every Secret and every volume
repository the policies declare, Secrets as optional mounts: its pod template then depends on the
policies, never on which leases it hosts, and adding a lease changes only its ConfigMap. A bespoke
lease mounts only what its own models need (least privilege: it is the pod's only tenant, and
changing its models is changing its own pod).

Volume repositories are mounted into Triton too, read-only and at the same path as in the agent
(issue 11 #1): the agent links a model's files into `/models` instead of copying them (a volume
model can be large, and the repository is read-only and shared), so the link targets must resolve
inside the Triton container as well. Triton's model code then sees the whole repository, which
policies already grant to every lease that names it (docs/security.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tms_stack.models.desired import DesiredDocument, HttpsSource, S3Source, secret_dir, volume_dir
from tms_stack.models.policies import RepositoriesSpec


@dataclass
class Mounts:
    agent: list[dict[str, Any]] = field(default_factory=list)   # volumeMounts of the agent only
    shared: list[dict[str, Any]] = field(default_factory=list)  # volumeMounts of Triton and the agent
    volumes: list[dict[str, Any]] = field(default_factory=list)


def _volume_name(prefix: str, name: str) -> str:
    return f"{prefix}-{name}"[:63].rstrip("-.")


def lease_secrets(desired: DesiredDocument) -> list[str]:
    """Secrets the models of `desired` read."""
    names: set[str] = set()
    for lease in desired.leases:
        for model in lease.models:
            src = model.source
            for path in ((src.accessKeySecret, src.secretKeySecret) if isinstance(src, S3Source)
                         else (src.authorizationSecret,) if isinstance(src, HttpsSource) else ()):
                if path:
                    names.add(path.rsplit("/", 1)[-1])
    return sorted(names)


def lease_volumes(desired: DesiredDocument) -> list[str]:
    """Volume repositories the models of `desired` come from."""
    repos: set[str] = set()
    for lease in desired.leases:
        for model in lease.models:
            if model.uri.startswith("model://") and model.source.kind == "volume":
                repos.add(model.uri[len("model://"):].split("/", 1)[0])
    return sorted(repos)


def policy_secrets(repos: RepositoriesSpec) -> list[str]:
    names = {n for s3 in repos.s3 for n in (s3.accessKey, s3.secretKey) if n}
    names |= {h.secretName for h in repos.https if h.secretName}
    return sorted(names)


def repository_mounts(desired: DesiredDocument, repos: RepositoriesSpec, pooled: bool) -> Mounts:
    secrets = policy_secrets(repos) if pooled else lease_secrets(desired)
    claims = {v.repositoryName: v.volumeClaimName for v in repos.volumes}
    volumes = sorted(claims) if pooled else lease_volumes(desired)
    out = Mounts()
    for secret in secrets:
        vol = _volume_name("secret", secret)
        out.agent.append({"name": vol, "mountPath": secret_dir(secret), "readOnly": True})
        source: dict[str, Any] = {"secretName": secret}
        if pooled:
            # A Secret no hosted lease needs yet may not exist: the pod starts anyway, and a lease
            # needing it fails alone (the agent cannot read the key) until the admin creates it.
            source["optional"] = True
        out.volumes.append({"name": vol, "secret": source})
    for repo in volumes:
        vol = _volume_name("repo", repo)
        out.shared.append({"name": vol, "mountPath": volume_dir(repo), "readOnly": True})
        out.volumes.append({"name": vol, "persistentVolumeClaim": {"claimName": claims[repo], "readOnly": True}})
    return out
