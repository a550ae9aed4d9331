"""The attack table: what a pull-request author tried against the gate (issue 10), one row each,
with the input, the rule that must stop it and the file:line it must point at.

Every row runs `tms check` on a copy of the example repository with the attack applied and asserts
that the named rule fires at that place and that the exit code says "refused" (1: violations,
2: unreadable input), never 0 and never a crash. Attacks on the command line (verbs, prune) have a
table of their own below, and the agent's credential handling is in test_https_credentials.py.
`ATTACK_COUNT` is what the issue's closing note reports.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import NOW, ROOT
from tms_stack.commands.check import run_check

IC, CS, CE, FD = ("leases/image-classifier.yaml", "leases/chat-small.yaml", "leases/chat-embed.yaml",
                  "leases/fraud-detector.yaml")
P, CPU, LIM, ALLOW = ("pools/shared-t4-pool.yaml", "pools/cpu_inference_pool.yaml", "policies/limits.yaml",
                      "policies/allowlist.yaml")

# Ops on the repository copy: ("write", path, text) | ("replace", path, old, new) |
# ("symlink", path, target) | ("mkdir", path) | ("bytes", path, data).
Op = tuple


@dataclass(frozen=True)
class Attack:
    id: str
    ops: tuple[Op, ...]
    rule: str
    file: str
    line: int
    message: str = ""
    exit_code: int = 1


def lease(name: str, owner: str = "team-vision", extra: str = "", models: str | None = None) -> str:
    models = models or "    - name: resnet50\n      uri: model://aws-models/vision/resnet50\n"
    return (f"apiVersion: tms-stack/v1\nkind: Lease\nmetadata:\n  name: {name}\n  owner: {owner}\n"
            f"spec:\n  models:\n{models}  expires: 2027-01-15T12:00:00Z\n{extra}")


def new_lease(name: str, **kw: str) -> tuple[Op, ...]:
    return (("write", f"leases/{name}.yaml", lease(name, **kw)),)


def edit(file: str, old: str, new: str) -> tuple[Op, ...]:
    return (("replace", file, old, new),)


def nl(text: str) -> str:
    """`text` with a trailing newline, as a double-quoted YAML scalar."""
    return f'"{text}\\n"'


def pool(name: str, owner: str | None, minimum: int, maximum: int, gpu: int) -> str:
    meta = f"  name: {name}\n" + (f"  owner: {owner}\n" if owner else "")
    return (f"apiVersion: tms-stack/v1\nkind: Pool\nmetadata:\n{meta}spec:\n  instanceQuota: 8\n"
            f"  instances: {{min: {minimum}, max: {maximum}}}\n  triton:\n    resources: {{cpu: 4, gpu: {gpu}}}\n")


DEEP = "[" * 100_000 + "]" * 100_000
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join(['*' + p] * 10)}]\n" for p, n in zip("abcdef", "bcdefg", strict=True))

ATTACKS = [
    # --- names that collide with objects someone else owns (rendered in check, names.*) ---
    Attack("lease-named-like-a-pool-instance", new_lease("shared-t4-pool-0"), "names.reserved",
           "leases/shared-t4-pool-0.yaml", 4, "instance of pool pools/shared-t4-pool.yaml"),
    Attack("lease-named-like-the-last-pool-instance", new_lease("shared-t4-pool-3"), "names.reserved",
           "leases/shared-t4-pool-3.yaml", 4, "reserved up to its instances.max"),
    Attack("lease-named-like-an-unplaced-instance-of-a-pool-with-underscores", new_lease("cpu-inference-pool-2"),
           "names.reserved", "leases/cpu-inference-pool-2.yaml", 4, "pools/cpu_inference_pool.yaml"),
    Attack("lease-named-like-a-pool-instance-that-is-also-an-alias",
           new_lease("shared-t4-pool-2") + edit(CS, "names: [chat]", "names: [shared-t4-pool-2]"), "names.reserved",
           "leases/shared-t4-pool-2.yaml", 4, "instance of pool pools/shared-t4-pool.yaml"),
    Attack("lease-named-kubernetes", new_lease("kubernetes"), "names.reserved", "leases/kubernetes.yaml", 4,
           "reserved for Kubernetes itself"),
    Attack("lease-named-default", new_lease("default"), "names.reserved", "leases/default.yaml", 4,
           "it would render ServiceAccount 'default'"),
    Attack("lease-named-kube-system", new_lease("kube-system"), "names.reserved", "leases/kube-system.yaml", 4),
    Attack("lease-named-like-the-adapter-rules", new_lease("tms-prometheus-adapter-rules"), "names.reserved",
           "leases/tms-prometheus-adapter-rules.yaml", 4, "the stack's ConfigMap"),
    Attack("lease-named-like-the-podmonitor", new_lease("tms-triton"), "names.reserved", "leases/tms-triton.yaml", 4,
           "the stack's"),
    Attack("alias-kubernetes", edit(CS, "names: [chat]", "names: [kubernetes]"), "names.reserved", CS, 14),
    Attack("alias-default", edit(CS, "names: [chat]", "names: [default]"), "names.reserved", CS, 14),
    Attack("alias-kube-prefix", edit(CS, "names: [chat]", "names: [kube-dns]"), "names.reserved", CS, 14),
    Attack("alias-like-the-adapter-rules", edit(CS, "names: [chat]", "names: [tms-prometheus-adapter-rules]"),
           "names.reserved", CS, 14),
    Attack("alias-like-a-pool-instance", edit(CS, "names: [chat]", "names: [shared-t4-pool-1]"), "names.clash",
           CS, 14, "Service of pool"),
    Attack("alias-like-another-lease", edit(CS, "names: [chat]", "names: [image-classifier]"), "names.clash",
           CS, 14, "Service of lease leases/image-classifier.yaml"),
    Attack("alias-of-another-lease", edit(CS, "names: [chat]", "names: [fraud]"), "names.unique", FD, 19,
           "already taken by leases/chat-small.yaml"),
    Attack("pool-instances-named-kube", (("write", "pools/kube-system-pool.yaml",
                                          pool("kube-system-pool", "team-platform", 0, 1, 0)),),
           "names.reserved", "pools/kube-system-pool.yaml", 4, "kube-* prefix is reserved"),
    # --- strings that pass as names but break deploys (full match: no trailing newline) ---
    Attack("lease-name-newline", (("write", "leases/evil.yaml", lease(nl("evil"))),), "lease.schema",
           "leases/evil.yaml", 4, "DNS-1035"),
    Attack("alias-newline", edit(CS, "names: [chat]", f"names: [{nl('chat')}]"), "lease.schema", CS, 14, "DNS-1035"),
    Attack("owner-newline", edit(IC, "owner: team-vision", f"owner: {nl('team-vision')}"), "lease.schema", IC, 6,
           "DNS-1123"),
    Attack("model-name-newline", edit(IC, "- name: resnet50", f"- name: {nl('resnet50')}"), "lease.schema", IC, 9,
           "not a Triton model name"),
    Attack("uri-newline", edit(IC, "uri: model://aws-models/vision/resnet50",
                               f"uri: {nl('model://aws-models/vision/resnet50')}"), "lease.schema", IC, 10,
           "not a model URI"),
    Attack("uri-space", edit(IC, "uri: model://aws-models/vision/resnet50",
                             "uri: 'model://aws-models/vision/resnet50 --model-control-mode=none'"), "lease.schema",
           IC, 10, "not a model URI"),
    Attack("uri-quote", edit(FD, "uri: https://models.example.com/private/fraud_xgb.zip",
                             "uri: 'https://models.example.com/x.zip\"}]'"), "lease.schema", FD, 13),
    Attack("backend-newline", edit(CS, "backends: [python]", f"backends: [{nl('python')}]"), "lease.schema", CS, 11,
           "not a Triton backend name"),
    Attack("memory-newline", edit(FD, "systemMemory: 32Gi", f"systemMemory: {nl('32Gi')}"), "lease.schema", FD, 22,
           "remove the spaces or line breaks"),
    Attack("duration-newline", edit(FD, "activityWindow: 30m", f"activityWindow: {nl('30m')}"), "lease.schema",
           FD, 17, "remove the spaces or line breaks"),
    Attack("image-newline-in-allowlist", edit(ALLOW, "    - nvcr.io/nvidia/tritonserver:24.05-py3",
                                              f"    - {nl('nvcr.io/nvidia/tritonserver:24.05-py3')}"),
           "allowlist.schema", ALLOW, 10, "not a container image reference", exit_code=1),
    Attack("pool-name-newline", edit(P, "  name: shared-t4-pool", f"  name: {nl('shared-t4-pool')}"), "pool.schema",
           P, 5, "not a pool name"),
    Attack("expires-before-1970", edit(IC, "expires: 2027-01-15T12:00:00Z", "expires: 1969-12-31T00:00:00Z"),
           "lease.schema", IC, 11, "from 1970-01-01"),
    Attack("expires-absurdly-far", edit(IC, "expires: 2027-01-15T12:00:00Z", "expires: 9999-12-31T23:59:59Z"),
           "lease.schema", IC, 11, "before 3000-01-01"),
    # --- budgets that are easy to bypass ---
    Attack("owners-as-free-text", new_lease("vision-a", owner="team-vision-0") + new_lease("vision-b", owner="team-vision-1"),
           "owner.unknown", "leases/vision-a.yaml", 5, "known owners: team-assist"),
    Attack("pool-with-32-always-on-gpus", (("write", "pools/gpu-farm-pool.yaml",
                                            pool("gpu-farm-pool", "team-assist", 8, 8, 4)),),
           "budget.gpus", "pools/gpu-farm-pool.yaml", 5, "gpu-farm-pool 32 (32 always on)"),
    Attack("pool-without-an-owner", (("write", "pools/gpu-farm-pool.yaml", pool("gpu-farm-pool", None, 1, 1, 1)),),
           "owner.unknown", "pools/gpu-farm-pool.yaml", 3, "needs metadata.owner"),
    Attack("pool-with-an-undeclared-owner", (("write", "pools/gpu-farm-pool.yaml",
                                              pool("gpu-farm-pool", "nobody-in-particular", 1, 1, 1)),),
           "owner.unknown", "pools/gpu-farm-pool.yaml", 5, "is not declared"),
    Attack("budget-for-an-undeclared-owner", edit(LIM, "team-risk: {gpus: 16", "team-rogue: {gpus: 16"),
           "owner.unknown", LIM, 49, "who is not declared in spec.owners"),
    # --- credentials over plain HTTP ---
    Attack("http-uri-matching-a-credentialed-target",
           edit(FD, "uri: https://models.example.com/private/fraud_xgb.zip",
                "uri: http://models.example.com/private/fraud_xgb.zip"), "model.plain-http", FD, 13, "use https://"),
    Attack("http-uri-with-an-upper-case-host", edit(FD, "uri: https://models.example.com/private/fraud_xgb.zip",
                                                    "uri: http://MODELS.Example.COM/private/fraud_xgb.zip"),
           "model.plain-http", FD, 13),
    Attack("http-uri-on-a-subdomain-of-the-target", edit(FD, "uri: https://models.example.com/private/fraud_xgb.zip",
                                                         "uri: http://cdn.models.example.com/private/x"),
           "model.plain-http", FD, 13),
    Attack("upper-case-scheme", edit(FD, "uri: https://models.example.com/private/fraud_xgb.zip",
                                     "uri: HTTP://models.example.com/private/fraud_xgb.zip"), "lease.schema", FD, 13),
    # --- model URLs reaching internal addresses (issue 23 #6) ---
    Attack("model-uri-on-cloud-metadata", edit(FD, "uri: https://models.example.com/private/fraud_xgb.zip",
                                               "uri: http://169.254.169.254/latest/meta-data/iam/x"),
           "model.uri-internal", FD, 13, "link-local"),
    Attack("model-uri-on-loopback", edit(FD, "uri: https://models.example.com/private/fraud_xgb.zip",
                                         "uri: https://[::1]:8080/admin.zip"), "model.uri-internal", FD, 13, "loopback"),
    Attack("model-uri-on-a-cluster-service", edit(FD, "uri: https://models.example.com/private/fraud_xgb.zip",
                                                  "uri: http://kubernetes.default.svc/api"),
           "model.uri-internal", FD, 13, "cluster-internal"),
    # --- the same model name twice on one pool instance ---
    Attack("same-model-name-on-one-instance",
           edit(P, "instances: {min: 1, max: 4}", "instances: {min: 1, max: 1}")
           + edit(CE, "    - name: embedder", "    - name: chat_small") + edit(CE, "quota: 5", "quota: 1"),
           "pool.full", CE, 12, "no instance without a model named chat_small"),
    Attack("same-model-name-placed-together-by-a-stale-lock", edit(CE, "    - name: embedder", "    - name: chat_small"),
           "lock.stale", "pools/placement.lock.yaml", 1, "run `tms pool lock"),
    # --- files ---
    Attack("symlinked-lease-outside-the-repository", (("symlink", "leases/evil.yaml", "/etc/hostname"),),
           "files.layout", "leases/evil.yaml", 0, "symbolic link"),
    Attack("dangling-symlink", (("symlink", "leases/gone.yaml", "/nonexistent/x.yaml"),), "files.layout",
           "leases/gone.yaml", 0, "dangling symbolic link"),
    Attack("symlinked-policy", (("symlink", "policies/extra.yaml", "../leases/chat-small.yaml"),), "files.layout",
           "policies/extra.yaml", 0, "symbolic link"),
    Attack("symlinked-lock", (("symlink", "pools/evil.yaml", "placement.lock.yaml"),), "files.layout",
           "pools/evil.yaml", 0),
    Attack("symlinked-stack-file", (("symlink", "Pulumi.evil.yaml", "/etc/hostname"),), "files.layout",
           "Pulumi.evil.yaml", 0, "is a symbolic link: stack files must be regular files"),
    Attack("symlinked-lock-file", (("rename", "pools/placement.lock.yaml", "lock.yaml"),
                                   ("symlink", "pools/placement.lock.yaml", "../lock.yaml")),
           "files.layout", "pools/placement.lock.yaml", 0, "symbolic link", 2),
    Attack("policies-folder-is-a-symlink", (("rename", "policies", "real-policies"), ("symlink", "policies", "real-policies")),
           "files.layout", "policies", 0, "policies/ is a symbolic link"),
    Attack("upper-case-extension", (("write", "leases/sneaky.YAML", lease("sneaky")),), "files.layout",
           "leases/sneaky.YAML", 0, "only <name>.yaml files"),
    Attack("yml-shadowing-yaml", (("write", "leases/image-classifier.yml", lease("image-classifier", owner="team-x")),),
           "files.layout", "leases/image-classifier.yml", 0, "rename it to image-classifier.yaml"),
    Attack("subfolder", (("mkdir", "leases/more"), ("write", "leases/more/hidden.yaml", lease("hidden"))),
           "files.layout", "leases/more", 0, "no subfolders"),
    Attack("folder-named-yaml", (("mkdir", "pools/decoy.yaml"),), "files.layout", "pools/decoy.yaml", 0, "a folder"),
    Attack("backup-file", (("write", "policies/limits.yaml.bak", "x: 1\n"),), "files.layout",
           "policies/limits.yaml.bak", 0),
    # --- hostile YAML: exit 2 with a message, never a crash ---
    Attack("nested-100000-deep", (("write", IC, DEEP),), "yaml", IC, 1, "nesting deeper than 50 levels", 2),
    Attack("nested-100000-deep-block", (("write", IC, "- " * 100_000 + "x\n"),), "yaml", IC, 1,
           "nesting deeper than 50 levels", 2),
    Attack("nested-mappings", (("write", IC, "{a: " * 60_000 + "1" + "}" * 60_000),), "yaml", IC, 1,
           "nesting deeper than 50 levels", 2),
    Attack("nested-in-a-policy", (("write", LIM, DEEP),), "yaml", LIM, 1, "nesting deeper than 50 levels", 2),
    Attack("nested-in-the-lock", (("write", "pools/placement.lock.yaml", DEEP),), "yaml",
           "pools/placement.lock.yaml", 1, "nesting deeper than 50 levels", 2),
    Attack("billion-laughs", (("write", IC, LAUGHS),), "yaml", IC, 1, "alias expansion", 2),
    Attack("recursive-alias", (("write", IC, "a: &a [*a]\n"),), "yaml", IC, 1, "nesting deeper", 2),
    Attack("huge-file", (("write", IC, "# " + "x" * (5 * 1024 * 1024) + "\n"),), "yaml", IC, 1, "larger than 4 MiB", 2),
    Attack("not-utf8", (("bytes", IC, b"\xff\xfe\x00"),), "yaml", IC, 1, "not UTF-8", 2),
]


def apply_ops(repo: Path, ops: tuple[Op, ...]) -> None:
    for op in ops:
        path = repo / op[1]
        if op[0] == "write":
            path.write_text(op[2])
        elif op[0] == "bytes":
            path.write_bytes(op[2])
        elif op[0] == "replace":
            text = path.read_text()
            assert op[2] in text, f"{op[2]!r} not in {op[1]}"
            path.write_text(text.replace(op[2], op[3], 1))
        elif op[0] == "symlink":
            path.symlink_to(op[2])
        elif op[0] == "mkdir":
            path.mkdir()
        elif op[0] == "rename":
            path.rename(repo / op[2])
        else:  # pragma: no cover
            raise AssertionError(op)


def test_the_table_is_distinct() -> None:
    assert len({a.id for a in ATTACKS}) == len(ATTACKS)


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.id for a in ATTACKS])
def test_attack_is_blocked(example_repo: Path, attack: Attack) -> None:
    apply_ops(example_repo, attack.ops)
    result = run_check(example_repo, NOW)
    found = [(d.file, d.line, d.message) for d in result.all() if d.rule == attack.rule]
    assert any((f, line) == (attack.file, attack.line) and attack.message in m for f, line, m in found), (
        f"{attack.id}: expected [{attack.rule}] at {attack.file}:{attack.line} ~ {attack.message!r}; got:\n"
        + "\n".join(f"  {d.location()} [{d.rule}] {d.message[:200]}" for d in result.all()))
    assert result.exit_code == attack.exit_code


# --- the command line: verbs refuse bad names before touching a file; prune never crashes ---

TMS = [sys.executable, "-c", "from tms_stack.cli import main; main()"]


def tms(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "TMS_OWNER": "team-vision"}
    return subprocess.run([*TMS, *args], cwd=repo, capture_output=True, text=True, timeout=120, env=env)


CLI_ATTACKS = [
    ("release-the-allowlist", ("lease", "release", "../policies/allowlist"), "is not a lease name"),
    ("renew-the-limits", ("lease", "renew", "../policies/limits"), "is not a lease name"),
    ("status-outside", ("lease", "status", "../../etc/hostname"), "is not a lease name"),
    ("create-over-the-allowlist", ("lease", "create", "../policies/allowlist", "-m",
                                   "name=m,uri=model://shared-nfs/m"), "is not a lease name"),
    ("name-create-on-a-path", ("lease", "name", "create", "evil", "--lease", "../policies/allowlist"),
     "is not a lease name"),
    ("pool-create-over-a-policy", ("pool", "create", "../policies/limits", "-q", "2"), "is not a pool name"),
    ("pool-delete-a-path", ("pool", "delete", "../policies/limits"), "no pool named"),
    ("release-through-a-symlink", ("lease", "release", "linked"), "symbolic link"),
]


@pytest.mark.parametrize("attack", CLI_ATTACKS, ids=[a[0] for a in CLI_ATTACKS])
def test_verbs_refuse_names_that_are_paths(example_repo: Path, tmp_path: Path, attack: tuple) -> None:
    _id, args, message = attack
    outside = tmp_path / "outside.yaml"
    outside.write_text(lease("linked"))
    (example_repo / "leases" / "linked.yaml").symlink_to(outside)
    before = {p: p.read_bytes() for p in example_repo.rglob("*") if p.is_file() and not p.is_symlink()}
    out = tms(example_repo, *args)
    assert out.returncode in (1, 2), out.stdout + out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr, out.stderr
    after = {p: p.read_bytes() for p in example_repo.rglob("*") if p.is_file() and not p.is_symlink()}
    assert after == before, "a refused verb changed files"
    assert outside.read_text() == lease("linked")


PRUNE_ATTACKS = [
    ("prune-deep-yaml", ("write", "leases/deep.yaml", DEEP), 2, "nesting deeper than 50 levels"),
    ("prune-billion-laughs", ("write", "leases/laughs.yaml", LAUGHS), 2, "alias expansion"),
    ("prune-through-a-symlink", ("symlink", "leases/old.yaml", "OUTSIDE"), 0, ""),
]


@pytest.mark.parametrize("attack", PRUNE_ATTACKS, ids=[a[0] for a in PRUNE_ATTACKS])
def test_prune_survives_hostile_files(example_repo: Path, tmp_path: Path, attack: tuple) -> None:
    _id, op, code, message = attack
    outside = tmp_path / "outside.yaml"
    expired = lease("old", extra="  autoRenew: {}\n").replace("2027-01-15T12:00:00Z", "2026-01-01T00:00:00Z")
    outside.write_text(expired)
    if op[0] == "symlink":
        op = ("symlink", op[1], str(outside))
    apply_ops(example_repo, (op,))
    out = tms(example_repo, "prune", "--now", "2026-11-22T00:00:00Z")
    assert out.returncode == code, out.stdout + out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert outside.read_text() == expired  # a link's target is never rewritten


ATTACK_COUNT = len(ATTACKS) + len(CLI_ATTACKS) + len(PRUNE_ATTACKS)


def test_attack_count() -> None:
    """The number the issue's closing note reports (plus the agent's cases in test_https_credentials.py)."""
    assert ATTACK_COUNT >= 70, ATTACK_COUNT
