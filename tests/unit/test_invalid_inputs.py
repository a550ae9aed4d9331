"""Table-driven: each row breaks one TMS rule in a copy of the example and asserts the exact
file:line, the rule id and a fragment of the message. The unedited example must pass."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import NOW
from tms_stack.commands.check import run_check
from tms_stack.models.diagnostics import Severity

FD, CS, IC, CE = "leases/fraud-detector.yaml", "leases/chat-small.yaml", "leases/image-classifier.yaml", "leases/chat-embed.yaml"
P, LIM, REPOS, ALLOW = "pools/shared-t4-pool.yaml", "policies/limits.yaml", "policies/repositories.yaml", "policies/allowlist.yaml"

POOL_FILE = """apiVersion: tms-stack/v1
kind: Pool
metadata:
  name: Shared-T4-Pool
spec:
  instanceQuota: 8
  instances: {min: 0, max: 2}
"""


OWNERS = "  owners: [team-assist"
CODE_OWNERS = "  codeOwners: {admins: ['@acme/tms-admins']}\n"


@dataclass(frozen=True)
class Case:
    id: str
    edits: tuple[tuple[str, str | None, str | None], ...]  # (file, old text or None = whole file, new text or None = delete)
    file: str
    line: int
    rule: str
    message: str = ""
    severity: Severity = Severity.ERROR
    exit_code: int = 1


def c(id: str, file: str, old: str | None, new: str | None, line: int, rule: str, message: str = "",
      at: str | None = None, **kw: object) -> Case:
    return Case(id, ((file, old, new),), at or file, line, rule, message, **kw)  # type: ignore[arg-type]


CASES = [
    # --- resources: TMS limits (default/minimum/maximum) and unit rules
    c("cpu-over-max", FD, "cpu: 4, gpu: 2", "cpu: 40, gpu: 2", 22, "resources.maximum",
      "cpu: 40 exceeds the admin maximum 16 (policies/limits.yaml:12)"),
    c("gpu-over-max", FD, "cpu: 4, gpu: 2", "cpu: 4, gpu: 8", 22, "resources.maximum",
      "gpu: 8 exceeds the admin maximum 4 (policies/limits.yaml:12)"),
    c("system-memory-over-max", FD, "systemMemory: 32Gi", "systemMemory: 128Gi", 22, "resources.maximum", "64Gi"),
    c("shared-memory-over-max", FD, "sharedMemory: 512Mi", "sharedMemory: 4Gi", 22, "resources.maximum", "2Gi"),
    c("repository-size-over-max", FD, "repositorySize: 4Gi", "repositorySize: 200Gi", 22, "resources.maximum"),
    c("cpu-below-min", FD, "cpu: 4, gpu: 2", "cpu: 500m, gpu: 2", 22, "resources.minimum", "500m is below"),
    c("shared-memory-below-min", FD, "sharedMemory: 512Mi", "sharedMemory: 16Mi", 22, "resources.minimum"),
    c("system-memory-headroom", FD, "systemMemory: 32Gi", "systemMemory: 600Mi", 22, "resources.memory",
      "at least 128Mi above sharedMemory 512Mi"),
    c("default-resources-over-lease-max", LIM, "maximum: {cpu: 16, gpu: 4", "maximum: {cpu: 16, gpu: 0", 22,
      "resources.maximum", "gpu: 2 exceeds", at=FD),
    # --- stack files: every Pulumi.<stack>.yaml is checked (a typo used to fall back silently)
    c("stack-unknown-key", "Pulumi.example.yaml", "tms-stack:namespace:", "tms-stack:namspace:", 3,
      "stacksettings.schema", "unknown key 'namspace'"),
    c("cpu-bad-unit", FD, "cpu: 4, gpu: 2", "cpu: 2x, gpu: 2", 22, "lease.schema", "not a CPU quantity"),
    c("memory-bad-unit", FD, "systemMemory: 32Gi", "systemMemory: 32GB", 22, "lease.schema", "Ki, Mi, Gi, Ti"),
    c("memory-no-unit", FD, "systemMemory: 32Gi", "systemMemory: 4096", 22, "lease.schema", "not a memory size"),
    c("gpu-fraction", FD, "cpu: 4, gpu: 2", "cpu: 4, gpu: 1.5", 22, "lease.schema", "integer"),
    c("gpu-negative", FD, "cpu: 4, gpu: 2", "cpu: 4, gpu: -1", 22, "lease.schema", "whole numbers"),
    c("repository-size-ki", FD, "repositorySize: 4Gi", "repositorySize: 4096Ki", 22, "lease.schema", "Mi, Gi, Ti"),
    c("cpu-bool", FD, "cpu: 4, gpu: 2", "cpu: true, gpu: 2", 22, "lease.schema"),
    # --- file shape: unknown keys at every level, missing fields, wrong types
    c("unknown-top-key", FD, "kind: Lease\n", "kind: Lease\nextra: 1\n", 4, "lease.schema", "unknown key 'extra'"),
    c("unknown-metadata-key", FD, "  owner: team-risk\n", "  owner: team-risk\n  labels: {}\n", 7, "lease.schema",
      "allowed keys are name, owner"),
    c("unknown-spec-key", FD, "  names: [fraud]\n", "  names: [fraud]\n  replicas: 2\n", 20, "lease.schema",
      "unknown key 'replicas'"),
    c("unknown-model-key", FD, "      count: 2\n", "      count: 2\n      version: 3\n", 15, "lease.schema",
      "allowed keys are name, uri, count, backends"),
    c("unknown-resource-key", FD, "repositorySize: 4Gi}", "repositorySize: 4Gi, disk: 1Gi}", 22, "lease.schema",
      "unknown key 'disk'"),
    c("unknown-autoscaling-key", FD, "      minReplicas: 1\n", "      minReplicas: 1\n      targetCPU: 50\n", 25,
      "lease.schema", "minReplicas, maxReplicas, metrics"),
    c("unknown-metric", FD, "        gpuUtilization: {enabled: true, threshold: 80}",
      "        memoryUtilization: {enabled: true, threshold: 80}", 28, "lease.schema",
      "cpuUtilization, gpuUtilization, queueTime, queueTimePercentage"),
    c("unknown-autorenew-key", FD, "    renewalDuration: 4h\n", "    renewalDuration: 4h\n    maxRenewals: 3\n", 19,
      "lease.schema", "activityWindow, renewalDuration"),
    c("missing-owner", FD, "  owner: team-risk\n", "", 4, "lease.schema", "metadata.owner: required"),
    c("missing-models", IC, "  models:\n    - name: resnet50\n      uri: model://aws-models/vision/resnet50\n", "",
      7, "lease.schema", "spec.models: required"),
    c("missing-expires", IC, "  expires: 2027-01-15T12:00:00Z\n", "", 7, "lease.schema", "spec.expires: required"),
    c("empty-models", IC, "  models:\n    - name: resnet50\n      uri: model://aws-models/vision/resnet50\n",
      "  models: []\n", 8, "lease.schema", "at least 1"),
    c("expires-not-a-time", IC, "expires: 2027-01-15T12:00:00Z", "expires: next tuesday", 11, "lease.schema",
      "datetime"),
    c("wrong-api-version", IC, "apiVersion: tms-stack/v1", "apiVersion: tms-stack/v2", 2, "lease.schema",
      "'tms-stack/v1'"),
    c("models-not-a-list", IC, "  models:\n    - name: resnet50\n      uri: model://aws-models/vision/resnet50\n",
      "  models: resnet50\n", 8, "lease.schema", "list"),
    # --- names
    c("lease-name-not-dns", IC, "  name: image-classifier", "  name: Image_Classifier", 5, "lease.schema",
      "DNS-1035"),
    c("lease-name-not-file-stem", IC, "  name: image-classifier", "  name: image-classify", 5,
      "lease.name-matches-file", "must equal the file name 'image-classifier'"),
    c("owner-not-dns", IC, "owner: team-vision", "owner: Team Vision", 6, "lease.schema", "DNS-1123"),
    c("model-name-read-as-a-number", IC, "    - name: resnet50", "    - name: 08", 9, "lease.schema",
      "YAML reads this as an integer (8): put the text in quotes"),
    c("model-name-path", IC, "    - name: resnet50", "    - name: ../resnet50", 9, "lease.schema",
      "not a Triton model name"),
    c("duplicate-model-name", FD, "    - name: fraud_xgb", "    - name: preprocess", 12, "model.name-unique",
      "appears twice"),
    c("model-count-negative", FD, "      count: 2", "      count: -1", 14, "lease.schema", "greater than or equal to 0"),
    c("model-uri-internal", FD, "      uri: https://models.example.com/private/fraud_xgb.zip",
      "      uri: https://127.0.0.1:9000/private/fraud_xgb.zip", 13, "model.uri-internal", "loopback"),
    # --- model URIs and repositories
    c("uri-unknown-scheme", IC, "uri: model://aws-models/vision/resnet50", "uri: s3://bucket/resnet50", 10,
      "lease.schema", "model://<repository>/<path>"),
    c("uri-unknown-repository", IC, "uri: model://aws-models/vision/resnet50",
      "uri: model://gcs-models/vision/resnet50", 10, "model.repository", "known repositories: aws-models, s3-models, shared-nfs"),
    c("uri-repository-without-path", IC, "uri: model://aws-models/vision/resnet50", "uri: model://aws-models/..", 10,
      "model.uri", "without '..'"),
    # --- bespoke vs pool
    c("triton-and-pool", CS, "  pool: {name: shared-t4-pool, quota: 2}",
      "  pool: {name: shared-t4-pool, quota: 2}\n  triton: {image: nvcr.io/nvidia/tritonserver:24.08-py3}", 7,
      "lease.schema", "mutually exclusive"),
    c("image-not-allowlisted", FD, "image: nvcr.io/nvidia/tritonserver:24.08-py3",
      "image: nvcr.io/nvidia/tritonserver:23.01-py3", 21, "image.allowlist", "not on the allowlist (policies/allowlist.yaml:"),
    # --- autoscaling
    c("autoscaling-disabled", LIM, "    enabled: true\n    replicas:", "    enabled: false\n    replicas:", 23,
      "autoscaling.disabled", "autoscaling is disabled by the admin (policies/limits.yaml:21)", at=FD),
    c("metric-not-allowed", LIM, "      queueTime:\n        allowed: true", "      queueTime:\n        allowed: false",
      27, "autoscaling.metric-not-allowed", "queueTime is not allowed", at=FD),
    c("gpu-threshold-below-min", FD, "threshold: 80}", "threshold: 20}", 28, "autoscaling.threshold", "50..100"),
    c("gpu-threshold-over-100", FD, "threshold: 80}", "threshold: 150}", 28, "autoscaling.threshold"),
    c("queue-time-below-min", FD, "threshold: 200ms}", "threshold: 5ms}", 27, "autoscaling.threshold",
      "5000us) is outside the admin range 10000us..no limit"),
    c("queue-time-over-max", LIM, "maximum: 0}", "maximum: 100000}", 27, "autoscaling.threshold",
      "10000us..100000us", at=FD),
    c("queue-time-bad-unit", FD, "threshold: 200ms}", "threshold: 200 apples}", 27, "lease.schema", "queue time"),
    c("min-replicas-over-maximum-idle", FD, "minReplicas: 1", "minReplicas: 3", 24, "autoscaling.replicas",
      "within 1..2"),
    c("min-replicas-below-minimum", FD, "minReplicas: 1", "minReplicas: 0", 24, "autoscaling.replicas"),
    c("max-replicas-over-limit", FD, "maxReplicas: 4", "maxReplicas: 12", 25, "autoscaling.replicas",
      "exceeds the admin maximum 10"),
    Case("max-below-min", ((FD, "minReplicas: 1", "minReplicas: 2"), (FD, "maxReplicas: 4", "maxReplicas: 1")),
         FD, 25, "autoscaling.replicas", "less than minReplicas 2"),
    Case("no-metric-enabled", ((FD, "queueTime: {enabled: true", "queueTime: {enabled: false"),
                               (FD, "gpuUtilization: {enabled: true", "gpuUtilization: {enabled: false")),
         FD, 23, "autoscaling.no-metric", "at least one enabled metric"),
    # --- durations and auto-renew
    c("auto-renew-disabled", LIM, "  autoRenew:\n    enabled: true", "  autoRenew:\n    enabled: false", 16,
      "autorenew.disabled", at=FD),
    c("activity-window-over-max", FD, "activityWindow: 30m", "activityWindow: 2h", 17, "autorenew.window",
      "exceeds the admin maximum 1h"),
    c("renewal-over-max", FD, "renewalDuration: 4h", "renewalDuration: 30d", 18, "autorenew.renewal", "7d"),
    Case("renewal-over-lease-max", ((LIM, "maximum: 365d}", "maximum: 1d}"),
                                    (FD, "renewalDuration: 4h", "renewalDuration: 2d")),
         FD, 18, "autorenew.renewal", "maximum lease duration 1d"),
    c("autorenew-without-telemetry", "Pulumi.example.yaml",
      "  tms-stack:telemetry:\n    source: prometheus\n",
      "", 13, "autorenew.telemetry", "sets no `tms-stack:telemetry`", at=CS),
    c("duration-bad-format", FD, "activityWindow: 30m", "activityWindow: 30 minutes", 17, "lease.schema",
      "not a duration"),
    c("lease-longer-than-maximum", LIM, "duration: {default: 8h, maximum: 365d}",
      "duration: {default: 8h, maximum: 30d}", 11, "lease.duration", "maximum duration 30d", at=IC),
    c("expires-block-scalar", IC, "expires: 2027-01-15T12:00:00Z", "expires: |-\n    2027-01-15T12:00:00Z", 11,
      "lease.expires-form", "is a block scalar (`|`, `|-`, `>`, `>-`): write it as a plain or quoted timestamp"),
    c("expires-tagged", IC, "expires: 2027-01-15T12:00:00Z", "expires: !!timestamp 2027-01-15T12:00:00Z", 11,
      "lease.expires-form", "carries a tag"),
    c("lease-expired-is-a-warning", IC, "2027-01-15T12:00:00Z", "2026-11-01T00:00:00Z", 11, "lease.expired",
      "prune job", severity=Severity.WARNING, exit_code=0),
    # --- pools and pooled leases
    c("pools-disabled", LIM, "  pools:\n    enabled: true", "  pools:\n    enabled: false", 15, "pools.disabled",
      at=CS),
    c("pool-does-not-exist", CS, "name: shared-t4-pool, quota: 2", "name: shared-a100-pool, quota: 2", 15,
      "pool.exists", "known pools: cpu_inference_pool, shared-t4-pool"),
    c("pool-wrong-case", CS, "name: shared-t4-pool, quota: 2", "name: Shared-T4-Pool, quota: 2", 15,
      "pool.exists", "did you mean 'shared-t4-pool'"),
    c("quota-over-instance-quota", CS, "quota: 2}", "quota: 9}", 15, "pool.quota", "instanceQuota 8"),
    c("quota-zero", CS, "quota: 2}", "quota: 0}", 15, "lease.schema", "greater than or equal to 1"),
    Case("pool-full", ((P, "instances: {min: 1, max: 4}", "instances: {min: 1, max: 1}"),
                       (CS, "quota: 2}", "quota: 4}")),
         CS, 15, "pool.full", "pool shared-t4-pool is full: needs quota 4, largest free slot 3, instances at max 1"),
    c("pool-grows-needs-new-instance-lock-stale", CS, "quota: 2}", "quota: 4}", 1, "lock.stale",
      "run `tms pool lock && git add pools/placement.lock.yaml && git commit", at="pools/placement.lock.yaml"),
    c("pool-name-too-short", P, "name: shared-t4-pool", "name: t4pool", 5, "pool.schema", "8-512 characters"),
    c("pool-name-not-file-stem", P, "name: shared-t4-pool", "name: shared-t4-pool2", 5, "pool.name-matches-file"),
    c("pool-name-case-clash", "pools/Shared-T4-Pool.yaml", None, POOL_FILE, 5, "pool.name-unique",
      "case-insensitively", at=P),
    c("pool-min-over-max", P, "instances: {min: 1, max: 4}", "instances: {min: 5, max: 4}", 9, "pool.schema",
      "greater than instances.max"),
    c("pool-instance-quota-over-admin", P, "instanceQuota: 8", "instanceQuota: 500", 8, "pool.instance-quota",
      "1..100"),
    c("pool-instances-over-admin", P, "instances: {min: 1, max: 4}", "instances: {min: 1, max: 20}", 9,
      "pool.instances", "maximum 8"),
    c("pool-image-not-allowlisted", P, "image: nvcr.io/nvidia/tritonserver:24.08-py3",
      "image: nvcr.io/nvidia/tritonserver:22.01-py3", 12, "image.allowlist"),
    c("pool-resources-over-max", P, "cpu: 8, gpu: 1", "cpu: 8, gpu: 6", 13, "resources.maximum"),
    c("cpu-threshold-below-min", FD, "gpuUtilization: {enabled: true, threshold: 80}",
      "cpuUtilization: {enabled: true, threshold: 40}", 28, "autoscaling.threshold",
      "cpuUtilization threshold 40 is outside the admin range 50..100 percent (policies/limits.yaml:29)"),
    c("queue-time-percentage-zero", FD, "gpuUtilization: {enabled: true, threshold: 80}",
      "queueTimePercentage: {enabled: true, threshold: 0}", 28, "autoscaling.threshold", "1..100 percent"),
    c("activity-window-zero", FD, "activityWindow: 30m", "activityWindow: 0s", 17, "autorenew.window",
      "longer than 0s"),
    c("duration-negative", FD, "activityWindow: 30m", "activityWindow: -5m", 17, "lease.schema", "not a duration"),
    c("expires-date-only", FD, "expires: 2027-06-30T18:00:00Z", "expires: 2027-06-30", 15, "lease.schema",
      "needs a time zone"),
    c("expires-before-year-1-in-utc", FD, "expires: 2027-06-30T18:00:00Z", "expires: 0001-01-01T00:00:00+05:00", 15,
      "lease.schema", "expires is out of range"),
    c("expires-long-ago", FD, "expires: 2027-06-30T18:00:00Z", "expires: 1970-01-02T00:00:00Z", 15,
      "lease.expired", "lease expired at 1970-01-02T00:00:00Z", severity=Severity.WARNING, exit_code=0),
    # Before 1970 the unix-seconds label would be negative, which the API server refuses (422).
    c("expires-before-1970", FD, "expires: 2027-06-30T18:00:00Z", "expires: 1969-12-31T00:00:00Z", 15,
      "lease.schema", "expires is out of range: must be from 1970-01-01"),
    c("expires-absurdly-far", FD, "expires: 2027-06-30T18:00:00Z", "expires: 9999-12-31T00:00:00Z", 15,
      "lease.schema", "to before 3000-01-01"),
    c("cpu-fractional-millicores", FD, "cpu: 4, gpu: 2", "cpu: 1500.5m, gpu: 2", 22, "lease.schema",
      "millicores (e.g. 1500m)"),
    c("memory-fractional", FD, "sharedMemory: 512Mi", "sharedMemory: 0.5Gi", 22, "lease.schema", "whole number"),
    c("uri-ftp", FD, "uri: https://models.example.com/private/fraud_xgb.zip",
      "uri: ftp://models.example.com/private/fraud_xgb.zip", 13, "lease.schema", "is not a model URI"),
    c("uri-plain-http-with-credentials", FD, "uri: https://models.example.com/private/fraud_xgb.zip",
      "uri: http://models.example.com/private/fraud_xgb.zip", 13, "model.plain-http",
      "matches the credentialed target of secret 'model-pull-token'"),
    c("files-symlink", "leases/evil.yaml", None, "@symlink:/etc/hostname", 0, "files.layout", "symbolic link"),
    c("uri-http-no-host", FD, "uri: https://models.example.com/private/fraud_xgb.zip",
      "uri: http:///private/fraud_xgb", 13, "model.uri", "needs a host"),
    c("autoscaling-on-pooled-lease", CS, "  pool: {name: shared-t4-pool, quota: 2}",
      "  pool: {name: shared-t4-pool, quota: 2}\n  autoscaling: {}", 16, "lease.schema", "unknown key 'autoscaling'"),
    c("missing-api-version", FD, "apiVersion: tms-stack/v1\n", "", 2, "lease.schema",
      "apiVersion: required field is missing"),
    c("missing-kind", FD, "kind: Lease\n", "", 2, "kind", "missing kind", exit_code=2),
    c("lease-name-too-long", FD, "  name: fraud-detector", "  name: " + "f" * 64, 5, "lease.schema", "1-63"),
    c("pools-disabled-pool-file", LIM, "  pools:\n    enabled: true", "  pools:\n    enabled: false", 3,
      "pools.disabled", "pools.enabled: false", at=P),
    c("pool-unknown-key", P, "  backendUniqueness: true\n", "  backendUniqueness: true\n  replicas: 2\n", 11,
      "pool.schema", "unknown key 'replicas'"),
    c("pool-missing-instance-quota", P, "  instanceQuota: 8\n", "", 7, "pool.schema",
      "spec.instanceQuota: required field is missing"),
    c("lock-missing", "pools/placement.lock.yaml", None, None, 0, "lock.missing", "run `tms pool lock`"),
    c("lock-bad-type", "pools/placement.lock.yaml", "quotas: {ranker: 1}", "quotas: {ranker: one}", 12,
      "placementlock.schema", "valid integer"),
    c("lock-conflict-markers", "pools/placement.lock.yaml", "      leases: [chat-embed, chat-small]\n",
      "<<<<<<< HEAD\n      leases: [chat-embed, chat-small]\n=======\n      leases: [chat-embed, chat-small, x]\n"
      ">>>>>>> feature\n", 16, "lock.conflict",
      "run `git checkout --ours pools/placement.lock.yaml && tms pool lock && git add", exit_code=2),
    c("lock-broken-yaml", "pools/placement.lock.yaml", "pools:\n", "pools: [\n", 8, "yaml", "invalid YAML",
      exit_code=2),
    c("pool-instances-absurd", P, "instances: {min: 1, max: 4}", "instances: {min: 1, max: 100000000}", 9,
      "pool.schema", "less than or equal to 10000"),
    c("lease-named-like-a-pool-instance", "leases/shared-t4-pool-0.yaml", None,
      "apiVersion: tms-stack/v1\nkind: Lease\nmetadata:\n  owner: team-vision\n  name: shared-t4-pool-0\n"
      "spec:\n  models: [{name: m, uri: 'model://shared-nfs/m'}]\n  expires: 2027-01-15T12:00:00Z\n", 5,
      "names.reserved", "instance of pool pools/shared-t4-pool.yaml (reserved up to its instances.max and past it, for any index"),
    c("alias-is-the-last-pool-instance", CS, "names: [chat]", "names: [shared-t4-pool-3]", 14, "names.clash",
      "Service of pool pools/shared-t4-pool.yaml"),
    # --- aliases
    c("alias-twice-in-one-lease", CS, "names: [chat]", "names: [chat, chat]", 14, "names.unique",
      "'chat' appears twice in spec.names"),
    # --- aliases
    c("alias-is-a-lease-name", CS, "names: [chat]", "names: [ranker]", 14, "names.clash", "Service of lease"),
    c("alias-taken", CS, "names: [chat]", "names: [fraud]", 19, "names.unique", "already taken by leases/chat-small.yaml",
      at=FD),
    c("alias-is-a-pool-instance", CS, "names: [chat]", "names: [shared-t4-pool-0]", 14, "names.clash",
      "Service of pool"),
    c("alias-not-dns", CS, "names: [chat]", "names: [Chat_Bot]", 14, "lease.schema", "DNS-1035"),
    # --- owners and budgets (ours)
    c("owner-not-declared", IC, "owner: team-vision", "owner: team-vision-0", 6, "owner.unknown",
      "owner 'team-vision-0' is not declared in policies Limits spec.owners (policies/limits.yaml:52): known owners: "
      "team-assist, team-nlp"),
    c("pool-without-owner", P, "  owner: team-platform\n", "", 4, "owner.unknown",
      "pool shared-t4-pool needs metadata.owner"),
    c("budget-for-an-undeclared-owner", LIM, "team-risk: {gpus: 16, leases: 50}", "team-rsik: {gpus: 16, leases: 50}",
      49, "owner.unknown", "budget for owner 'team-rsik', who is not declared"),
    c("pool-gpus-count-against-its-owner", LIM, "team-platform: {gpus: 32", "team-platform: {gpus: 3", 6,
      "budget.gpus",
      "by pool (at instances.max): shared-t4-pool 4 (1 always on)", at=P),
    c("budget-gpus", LIM, "team-risk: {gpus: 16, leases: 50}", "team-risk: {gpus: 4, leases: 50}", 6, "budget.gpus",
      "owner team-risk would hold 8 GPUs (at max replicas), over the budget of 4 (policies/limits.yaml:49)", at=FD),
    c("pooled-count-over-quota", CS, "      backends: [python]\n", "      backends: [python]\n      count: 3\n", 12,
      "pool.count", "count 3 of model 'chat_small' exceeds this lease's quota 2"),
    c("pooled-lease-share-counts-against-its-owner", LIM, "default: {gpus: 8, leases: 20}", "default: {gpus: 0, leases: 20}",
      5, "budget.gpus", "owner team-assist would hold 0.88 GPUs (at max replicas), over the budget of 0", at=CE),
    c("budget-leases", LIM, "default: {gpus: 8, leases: 20}", "default: {gpus: 8, leases: 1}", 6, "budget.leases",
      "owner team-assist has 2 leases", at=CS),
    # --- unreadable input: exit 2
    c("broken-yaml", IC, "  expires: 2027-01-15T12:00:00Z\n", "  expires: [2027-01-15T12:00:00Z\n", 12, "yaml",
      "invalid YAML", exit_code=2),
    c("unknown-kind", IC, "kind: Lease", "kind: Leese", 3, "kind", "unknown kind 'Leese'", exit_code=2),
    c("pool-in-leases-folder", "leases/shared.yaml", None, POOL_FILE, 2, "kind", "this folder holds Lease",
      exit_code=2),
    c("duplicate-key", IC, "  expires: 2027-01-15T12:00:00Z\n",
      "  expires: 2027-01-15T12:00:00Z\n  expires: 2027-01-16T12:00:00Z\n", 12, "yaml", "duplicate key 'expires'",
      exit_code=2),
    c("not-a-mapping", IC, None, "- just\n- a list\n", 1, "yaml", "expected a YAML mapping", exit_code=2),
    c("empty-file", IC, None, "", 1, "yaml", "file is empty", exit_code=2),
    c("binary-file", IC, None, "\udcff\udcfe", 1, "yaml", "not UTF-8", exit_code=2),
    # --- policies themselves
    c("second-limits-file", "policies/more-limits.yaml", None,
      "apiVersion: tms-stack/v1\nkind: Limits\nmetadata: {name: more}\n", 2, "policy.duplicate",
      "policies/limits.yaml already defines it"),
    c("policy-default-over-max", LIM, "default: {cpu: 2,", "default: {cpu: 32,", 10, "limits.resources-order",
      "minimum <= default <= maximum"),
    c("policy-replica-limits-order", LIM, "maximumIdle: 2, maximum: 10}", "maximumIdle: 20, maximum: 10}", 24,
      "limits.schema", "minimum <= maximumIdle <= maximum"),
    c("policy-enabled-not-allowed", LIM, "        allowed: true\n        enabled: false\n        threshold: {default: 90",
      "        allowed: false\n        enabled: true\n        threshold: {default: 90", 26, "limits.schema",
      "must also be allowed"),
    c("policy-threshold-over-100", LIM, "threshold: {default: 90, minimum: 50, maximum: 100}",
      "threshold: {default: 90, minimum: 50, maximum: 120}", 29, "limits.schema", "<= 100"),
    c("policy-unknown-key", LIM, "    maxInstances: 8\n", "    maxInstances: 8\n    shareByDefault: true\n", 46,
      "limits.schema", "unknown key 'shareByDefault'"),
    c("policy-bydefault-without-pool", LIM, "    maxInstances: 8\n", "    maxInstances: 8\n    byDefault: true\n", 42,
      "limits.schema", "byDefault needs defaultPool"),
    c("s3-without-endpoint-or-region", REPOS, "      endpoint: http://minio.storage.svc:9000\n", "", 9,
      "repositories.schema", "endpoint or awsRegion"),
    c("s3-key-without-secret", REPOS, "      secretKey: s3-secret-key\n", "", 9, "repositories.schema",
      "accessKey and secretKey go together"),
    c("repository-name-invalid", REPOS, "repositoryName: s3-models", "repositoryName: S3_Models", 9,
      "repositories.schema", "lowercase"),
    c("repository-name-duplicate", REPOS, "repositoryName: shared-nfs", "repositoryName: s3-models", 20,
      "repositories.duplicate", "already used by s3[0]"),
    c("target-uri-with-scheme", REPOS, "targetUri: models.example.com/private",
      "targetUri: https://models.example.com/private", 24, "repositories.target-uri", "without a scheme"),
    c("allowlist-default-not-listed", ALLOW, "default: nvcr.io/nvidia/tritonserver:24.08-py3",
      "default: nvcr.io/nvidia/tritonserver:24.09-py3", 7, "allowlist.default", "not in images"),
    c("allowlist-duplicate", ALLOW, "    - nvcr.io/nvidia/tritonserver:24.05-py3",
      "    - nvcr.io/nvidia/tritonserver:24.08-py3", 10, "allowlist.duplicate", "listed twice"),
    c("policy-lease-duration-order", LIM, "duration: {default: 8h, maximum: 365d}",
      "duration: {default: 400d, maximum: 365d}", 15, "limits.duration-order", "400d exceeds the maximum 365d"),
    c("policy-renew-window-order", LIM, "window: {default: 5m, maximum: 1h}", "window: {default: 2h, maximum: 1h}",
      18, "limits.duration-order", "auto-renew window 2h exceeds the maximum 1h"),
    c("policy-instance-quota-order", LIM, "instanceQuota: {minimum: 1, maximum: 100}",
      "instanceQuota: {minimum: 200, maximum: 100}", 44, "limits.quota-order", "minimum 200 exceeds maximum 100"),
    c("policy-default-memory-headroom", LIM, "default: {cpu: 2, gpu: 1, systemMemory: 4Gi",
      "default: {cpu: 2, gpu: 1, systemMemory: 300Mi", 10, "resources.memory", "128Mi above default sharedMemory"),
    c("policy-max-instances-zero", LIM, "maxInstances: 8", "maxInstances: 0", 45, "limits.schema",
      "greater than or equal to 1"),
    c("policy-reserved-name-not-a-name", LIM, "  owners: [team-assist,", "  reservedNames: [Vault_*]\n  owners: [team-assist,",
      52, "limits.schema", "'Vault_*' is not a reserved name"),
    c("policy-budget-owner-not-dns", LIM, "team-risk: {gpus: 16", "Team_Risk: {gpus: 16", 49, "limits.schema",
      "DNS-1123"),
    Case("policy-autoscaling-without-allowed-metric",
         ((LIM, "        enabled: true\n", "        enabled: false\n"),)
         + ((LIM, "        allowed: true", "        allowed: false"),) * 4,
         LIM, 20, "limits.schema", "no metric is allowed"),
    c("policy-broken-yaml-stops-the-cascade", LIM, "    enabled: true\n    replicas:",
      "    enabled: true\n    metrics: {}\n    replicas:", 26, "yaml", "duplicate key 'metrics'", exit_code=2),
    c("policy-default-replicas-over-limit", LIM, "default: {minimum: 1, maximum: 5}",
      "default: {minimum: 1, maximum: 50}", 22, "limits.schema", "within default minimum and limits.maximum 10"),
    c("policy-queue-time-default-below-minimum", LIM, "threshold: {default: 10000, minimum: 10000",
      "threshold: {default: 5000, minimum: 10000", 37, "limits.schema", "maximum <= 0: no limit"),
    c("policy-percent-threshold-zero", LIM, "threshold: {default: 50, minimum: 1, maximum: 100}",
      "threshold: {default: 50, minimum: 0, maximum: 100}", 41, "limits.schema", "0 < minimum"),
    # --- node classes (issue 25): only classes the policies offer, and what one node of them gives
    c("node-class-unknown", FD, "    image: nvcr.io/nvidia/tritonserver:24.08-py3\n",
      "    image: nvcr.io/nvidia/tritonserver:24.08-py3\n    nodeClass: h100\n", 22, "nodeclass.unknown",
      "node class 'h100' is not offered by the policies (policies/limits.yaml:56); offered: a100, a100-mig-1g, "
      "t4-shared"),
    c("pool-node-class-unknown", P, "    image: nvcr.io/nvidia/tritonserver:24.08-py3\n",
      "    image: nvcr.io/nvidia/tritonserver:24.08-py3\n    nodeClass: A100\n", 13, "pool.schema",
      "not a node class name"),
    c("stack-default-node-class-unknown", "Pulumi.example.yaml", "  tms-stack:partOf: tms-stack\n",
      "  tms-stack:partOf: tms-stack\n  tms-stack:defaultNodeClass: h100\n", 5, "nodeclass.unknown",
      "defaultNodeClass 'h100' is not offered by the policies"),
    c("node-class-gpus", FD, "    image: nvcr.io/nvidia/tritonserver:24.08-py3\n",
      "    image: nvcr.io/nvidia/tritonserver:24.08-py3\n    nodeClass: t4-shared\n", 23, "nodeclass.gpus",
      "gpu: 2 is more than node class t4-shared can give: at most 1 nvidia.com/gpu.shared per Triton "
      "(policies/limits.yaml:72)"),
    c("stack-default-node-class-gpus", "Pulumi.example.yaml", "  tms-stack:partOf: tms-stack\n",
      "  tms-stack:partOf: tms-stack\n  tms-stack:defaultNodeClass: t4-shared\n", 22, "nodeclass.gpus",
      "node class t4-shared (the default of Pulumi.example.yaml) can give", at=FD),
    c("shard-lists-its-home", "Pulumi.example.yaml", "  tms-stack:partOf: tms-stack\n",
      "  tms-stack:partOf: tms-stack\n  tms-stack:shards:\n    stacks: [example-b, example]\n", 6,
      "shards.stacks", "shards.stacks lists example, this file's own stack"),
    c("shard-pin-elsewhere", "Pulumi.example.yaml", "  tms-stack:partOf: tms-stack\n",
      "  tms-stack:partOf: tms-stack\n  tms-stack:shards:\n    stacks: [example-b]\n"
      "    pins: {shared-t4-pool: example-z}\n", 7, "shards.pins",
      "pin shared-t4-pool: example-z is not a stack of this fleet: use one of example, example-b"),
    c("shard-too-big", "Pulumi.example.yaml", "  tms-stack:partOf: tms-stack\n",
      "  tms-stack:partOf: tms-stack\n  tms-stack:shards:\n    stacks: [example-b]\n    maxLeases: 1\n", 6,
      "shards.size", "more than maxLeases 1", severity=Severity.WARNING, exit_code=0),
    c("pooled-lease-node-class", CS, "pool: {name: shared-t4-pool, quota: 2}",
      "pool: {name: shared-t4-pool, quota: 2, nodeClass: a100}", 15, "pool.node-class",
      "pool shared-t4-pool runs on node class no class, not a100"),
    c("gpu-metric-without-gpus", FD, "cpu: 4, gpu: 2", "cpu: 4, gpu: 0", 28, "autoscaling.gpu-metric",
      "gpuUtilization needs GPUs"),
    c("policy-node-class-bad-resource", LIM, "gpuResource: nvidia.com/mig-1g.10gb",
      "gpuResource: mig 1g", 65, "limits.schema", "not an extended resource name"),
    c("policy-node-class-bad-toleration", LIM, "      maxGpus: 8\n",
      "      maxGpus: 8\n      affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: "
      "{nodeSelectorTerms: [{matchExpressions: [{key: zone, operator: In}]}]}}}\n", 61, "limits.schema",
      "operator In needs at least one value"),
    c("allowlist-bad-image", ALLOW, "    - nvcr.io/nvidia/tritonserver:24.05-py3", "    - Not An Image", 10,
      "allowlist.schema", "not a container image reference"),
    # --- who may change what (issue 21; the attack table is tests/security/test_authority.py)
    c("codeowners-missing", LIM, OWNERS, f"{CODE_OWNERS}{OWNERS}", 0, "codeowners.stale",
      "missing: the policies declare codeOwners", at=".github/CODEOWNERS"),
    c("lease-outside-its-owner-folder", LIM, OWNERS, f"{CODE_OWNERS}  leaseLayout: by-owner\n{OWNERS}", 6,
      "lease.folder", "git mv leases/fraud-detector.yaml leases/team-risk/fraud-detector.yaml", at=FD),
    Case("lease-name-in-two-folders", ((LIM, OWNERS, f"{CODE_OWNERS}  leaseLayout: by-owner\n{OWNERS}"),
                                       ("leases/team-risk/fraud-detector.yaml", None, "kind: Lease\n")),
         "leases/team-risk/fraud-detector.yaml", 1, "lease.duplicate", "taken by leases/fraud-detector.yaml"),
]


def apply(repo: Path, case: Case) -> None:
    for file, old, new in case.edits:
        path = repo / file
        if old is None:
            if new is not None and new.startswith("@symlink:"):
                path.symlink_to(new.removeprefix("@symlink:"))
                continue
            if new is None:
                path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(new.encode("utf-8", "surrogateescape"))
            continue
        text = path.read_text()
        assert old in text, f"{case.id}: {old!r} not found in {file}"
        path.write_text(text.replace(old, new or "", 1))


def test_the_table_is_large_and_distinct() -> None:
    assert len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES)


def test_the_example_passes(example_repo: Path) -> None:
    result = run_check(example_repo, NOW)
    assert result.exit_code == 0, [d.location() + " " + d.message for d in result.all()]
    assert result.all() == []


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_invalid_input(example_repo: Path, case: Case) -> None:
    apply(example_repo, case)
    result = run_check(example_repo, NOW)
    found = [d for d in result.all() if d.rule == case.rule]
    where = [(d.file, d.line) for d in found]
    assert (case.file, case.line) in where, (
        f"expected {case.rule} at {case.file}:{case.line}; got:\n"
        + "\n".join(f"  {d.location()} [{d.rule}] {d.message}" for d in result.all()))
    diag = next(d for d in found if (d.file, d.line) == (case.file, case.line))
    assert case.message in diag.message
    assert diag.severity is case.severity
    assert diag.col >= 1 or (diag.line, diag.col) == (0, 0)  # 0:0 = the whole file (a missing lock)
    assert result.exit_code == case.exit_code
    if case.file.startswith("policies/") and (case.rule == "yaml" or case.rule.endswith(".schema")):
        # A broken policy is reported alone: leases are not judged against defaults it did not mean.
        assert {d.file for d in result.all()} == {case.file}


def test_every_rule_id_has_a_case() -> None:
    """A rule added to tms_stack/rules/ without a case here fails this test."""
    import re

    package = Path(__file__).resolve().parents[2] / "tms_stack"
    sources = [*sorted((package / "rules").glob("*.py")), package / "repo" / "loader.py"]
    ids: set[str] = set()
    for path in sources:
        text = path.read_text()
        ids |= set(re.findall(r'"([a-z]+\.[a-z]+(?:-[a-z]+)*)",', text))
    ids -= {"allowlist.yaml"}
    # lock.invalid is pool_lock's fallback for a lock error that carries no position; reading the
    # lock always gives one (placementlock.schema / yaml), so no input reaches it.
    ids -= {"lock.invalid"}
    # names.owner is the whole-render safety net behind the specific name rules (names.clash,
    # names.unique, names.reserved, pool.name-unique), which every input reaching it today trips
    # first; tests/security/test_attacks.py proves it fires on a render that repeats a name.
    ids -= {"names.owner"}
    # Findings about a lease a pull request adds or changes need a base to compare with, which this
    # table's plain check has not: tests/lifecycle/test_expired_on_arrival.py breaks each of them.
    ids -= {"lease.expired-on-arrival", "lease.short-lived"}
    # lock.derived and files.generated judge a pull request against its base, which this table
    # (plain `tms check`) has not: tests/security/test_authority_attacks.py holds their cases.
    ids -= {"lock.derived", "files.generated"}
    assert len(ids) > 30, ids
    missing = sorted(ids - {case.rule for case in CASES})
    assert missing == [], f"rule ids without an invalid-input case: {missing}"


# Edits that look suspicious but are allowed: no rule may fire on them (false positives are bugs too).
VALID_VARIANTS = [
    ("queue-time-far-above-minimum-with-no-maximum", FD, "threshold: 200ms}", "threshold: 1h30m15s}"),
    ("queue-time-in-microseconds", FD, "threshold: 200ms}", "threshold: 250000}"),
    ("cpu-millicores", FD, "cpu: 4, gpu: 2", "cpu: 1500m, gpu: 2"),
    ("cpu-fractional-cores", FD, "cpu: 4, gpu: 2", "cpu: 1.5, gpu: 2"),
    ("memory-in-ki", FD, "sharedMemory: 512Mi", "sharedMemory: 524288Ki"),
    ("http-zip-model", FD, "uri: https://models.example.com/private/fraud_xgb.zip",
     "uri: http://models.example.com/public/fraud_xgb.ZIP"),
    ("expires-with-an-offset", FD, "expires: 2027-06-30T18:00:00Z", "expires: 2027-06-30T20:00:00+02:00"),
    ("min-replicas-at-maximum-idle", FD, "minReplicas: 1", "minReplicas: 2"),
    ("gpus-exactly-at-the-budget", FD, "maxReplicas: 4", "maxReplicas: 8"),
    ("gpu-threshold-at-100", FD, "threshold: 80}", "threshold: 100}"),
    ("quota-fills-an-instance", CS, "quota: 2}", "quota: 6}"),
    ("yaml-comments-and-anchors", IC, "kind: Lease\n", "kind: Lease  # a comment\n"),
]


def test_a_disabled_metric_may_name_one_the_admin_does_not_allow(example_repo: Path) -> None:
    apply(example_repo, Case("x", (
        (LIM, "      cpuUtilization:\n        allowed: true", "      cpuUtilization:\n        allowed: false"),
        ("leases/text-ensemble.yaml", "cpuUtilization: {enabled: true, threshold: 75}",
         "cpuUtilization: {enabled: false}")), LIM, 0, ""))
    assert run_check(example_repo, NOW).all() == []


@pytest.mark.parametrize("case", VALID_VARIANTS, ids=[v[0] for v in VALID_VARIANTS])
def test_allowed_variants_stay_clean(example_repo: Path, case: tuple[str, str, str, str]) -> None:
    _id, file, old, new = case
    apply(example_repo, Case(_id, ((file, old, new),), file, 0, ""))
    result = run_check(example_repo, NOW)
    assert result.all() == [] or all(d.rule == "lock.stale" for d in result.all()), [
        f"{d.location()} [{d.rule}] {d.message}" for d in result.all()]
