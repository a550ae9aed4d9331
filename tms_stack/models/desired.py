"""The desired-models document: what the renderer puts in each Triton's ConfigMap and the agent
loads. The contract between rendering and `tms agent` (see docs/internals.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from tms_stack.models import Lease
from tms_stack.models.policies import RepositoriesSpec
from tms_stack.models.urimatch import best_match

DESIRED_FILE = "desired.json"
SECRETS_DIR = "/var/run/tms/secrets"
VOLUMES_DIR = "/var/run/tms/volumes"


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class S3Source(_Doc):
    kind: Literal["s3"] = "s3"
    bucket: str
    prefix: str
    endpoint: str | None = None
    region: str | None = None
    # Directories where the access-key / secret-key Secrets are mounted; None: IAM role / env.
    accessKeySecret: str | None = None
    secretKeySecret: str | None = None


class HttpsSource(_Doc):
    kind: Literal["https"] = "https"
    url: str
    # Directory where the Secret whose value is the Authorization header is mounted; None: no header.
    authorizationSecret: str | None = None
    # A repository in the policies names this URL's host: the agent may fetch from it even when it
    # is internal (loopback, link-local, cluster-internal; outside/sources/hosts.py).
    trusted: bool = False


class VolumeSource(_Doc):
    kind: Literal["volume"] = "volume"
    path: str


Source = Annotated[S3Source | HttpsSource | VolumeSource, Field(discriminator="kind")]


class DesiredModel(_Doc):
    name: str
    uri: str
    count: int = 0
    # The backends the lease declares for this model (pool placement trusts them); the agent
    # refuses a model whose config names another. None: not declared (learned, nothing to verify).
    backends: list[str] | None = None
    source: Source


class DesiredLease(_Doc):
    name: str
    owner: str
    expires: datetime
    models: list[DesiredModel]


class DesiredDocument(_Doc):
    version: Literal[1] = 1
    instance: str
    repositorySize: int | None = None  # bytes the agent may use under the model directory
    leases: list[DesiredLease] = Field(default_factory=list)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)


def secret_dir(name: str) -> str:
    return f"{SECRETS_DIR}/{name}"


def volume_dir(repository: str) -> str:
    return f"{VOLUMES_DIR}/{repository}"


def model_source(uri: str, repos: RepositoriesSpec) -> S3Source | HttpsSource | VolumeSource:
    """Where the agent fetches `uri` from. Assumes `tms check` passed (repositories exist)."""
    if uri.startswith("model://"):
        repo_name, _, path = uri[len("model://"):].partition("/")
        path = path.strip("/")
        for s3 in repos.s3:
            if s3.repositoryName == repo_name:
                return S3Source(
                    bucket=s3.bucketName, prefix=path,
                    endpoint=s3.endpoint, region=None if s3.endpoint else s3.awsRegion,
                    accessKeySecret=secret_dir(s3.accessKey) if s3.accessKey else None,
                    secretKeySecret=secret_dir(s3.secretKey) if s3.secretKey else None,
                )
        for vol in repos.volumes:
            if vol.repositoryName == repo_name:
                return VolumeSource(path=f"{volume_dir(repo_name)}/{path}")
        raise KeyError(f"repository {repo_name!r} is not declared in policies")
    repo = best_match([(h.targetUri, h) for h in repos.https], uri)
    secret = repo.secretName if repo is not None else None
    return HttpsSource(url=uri, authorizationSecret=secret_dir(secret) if secret else None, trusted=repo is not None)


def desired_lease(lease: Lease, repos: RepositoriesSpec) -> DesiredLease:
    return DesiredLease(
        name=lease.name, owner=lease.metadata.owner, expires=lease.spec.expires,
        models=[DesiredModel(name=m.name, uri=m.uri, count=m.count, backends=m.backends,
                             source=model_source(m.uri, repos))
                for m in lease.spec.models],
    )
