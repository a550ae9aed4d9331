"""The attack table of issue 21 (budgets that count everything, files the review trusts, reserved
names), one row each: the input, the rule that must stop it and the file:line it must point at.

Each row is judged as the trusted review judges a pull request: `tms check` of a pull-request copy
of the example against a base copy (`--base-dir`). `base_ops` shape both copies (what main already
holds), `ops` only the pull request. With `derive_lock` the attacker is assumed to have run
`tms pool lock --base` honestly, so a row is blocked by the rule it names and not by a stale lock.
`not_at` lists places the finding must not go (an unchanged file of the same team).
`AUTHORITY_ATTACK_COUNT` is what the issue's closing note reports.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import NOW, ROOT, copy_example
from tests.security.test_attacks import CS, IC, LIM, Op, P, apply_ops, lease
from tms_stack.commands.check import load_base, run_check
from tms_stack.logic.pool_lock import compute
from tms_stack.repo.loader import load_repository
from tms_stack.repo.lockfile import read_lock, write_lock
from tms_stack.rules.lock import base_lock

LOCK = "pools/placement.lock.yaml"


@dataclass(frozen=True)
class Attack:
    id: str
    ops: tuple[Op, ...]
    rule: str
    file: str
    line: int
    message: str = ""
    base_ops: tuple[Op, ...] = ()
    derive_lock: bool = True
    not_at: tuple[tuple[str, int], ...] = ()
    exit_code: int = 1


def pooled(name: str, owner: str = "team-vision", quota: int = 1, pool: str = "shared-t4-pool",
           backends: str | None = "[python]", count: int | None = None, uri: str | None = None) -> str:
    model = f"    - name: {name.replace('-', '_')}\n      uri: {uri or f'model://s3-models/{name}/m'}\n"
    if backends is not None:
        model += f"      backends: {backends}\n"
    if count is not None:
        model += f"      count: {count}\n"
    return lease(name, owner=owner, models=model, extra=f"  pool: {{name: {pool}, quota: {quota}}}\n")


def write(path: str, text: str) -> Op:
    return ("write", path, text)


def bespoke(name: str, owner: str = "team-vision", gpu: int = 1, replicas: int | None = None) -> Op:
    auto = f"\n    autoscaling: {{maxReplicas: {replicas}}}" if replicas else ""
    return write(f"leases/{name}.yaml", lease(name, owner=owner, extra=f"  triton:\n    resources: {{gpu: {gpu}}}{auto}\n"))


def replace(file: str, old: str, new: str) -> Op:
    return ("replace", file, old, new)


def gpu_pool(name: str, gpu: int, maximum: int = 4) -> Op:
    return write(f"pools/{name}.yaml",
                 f"apiVersion: tms-stack/v1\nkind: Pool\nmetadata:\n  name: {name}\n  owner: team-platform\n"
                 f"spec:\n  instanceQuota: 8\n  instances: {{min: 0, max: {maximum}}}\n  triton:\n"
                 f"    resources: {{cpu: 8, gpu: {gpu}, systemMemory: 32Gi}}\n")


# team-vision (default budget: 8 GPUs) at its budget on main: image-classifier at 4 GPUs x 2 replicas.
AT_BUDGET = (replace(IC, "  expires: 2027-01-15T12:00:00Z\n",
                     "  expires: 2027-01-15T12:00:00Z\n  triton:\n    resources: {gpu: 4}\n"
                     "    autoscaling: {maxReplicas: 2}\n"),)
VISION_10 = (replace(LIM, "      team-risk: {gpus: 16, leases: 50}",
                     "      team-risk: {gpus: 16, leases: 50}\n      team-vision: {gpus: 10, leases: 20}"),)
RESERVED = (replace(LIM, "  owners: [team-assist,", "  reservedNames: [vault-*, corp-proxy]\n  owners: [team-assist,"),)


def hand_lock(pools: str, backends: str = "{}") -> Op:
    return write(LOCK, f"apiVersion: tms-stack/v1\nkind: PlacementLock\nmetadata: {{name: placement}}\n"
                       f"pools:\n{pools}backends: {backends}\n")


CPU_POOL_LOCK = ("  cpu_inference_pool:\n    instances:\n    - index: 0\n      leases: [ranker]\n"
                 "      backends: [onnxruntime]\n      quotas: {ranker: 1}\n")


def t4(*instances: tuple[int, str, str, str]) -> str:
    body = "".join(f"    - index: {i}\n      leases: [{leases}]\n      backends: [{backends}]\n      quotas: {{{quotas}}}\n"
                   for i, leases, backends, quotas in instances)
    return CPU_POOL_LOCK + "  shared-t4-pool:\n    instances:\n" + body


BUDGETS = [
    Attack("three-whole-pool-instances-at-the-budget",
           tuple(write(f"leases/p{i}.yaml", pooled(f"p{i}", quota=8)) for i in (1, 2, 3)),
           "budget.gpus", "leases/p1.yaml", 5, "owner team-vision would hold 11 GPUs", base_ops=AT_BUDGET,
           not_at=((IC, 6),)),
    Attack("every-share-is-blamed-not-only-the-first",
           tuple(write(f"leases/p{i}.yaml", pooled(f"p{i}", quota=8)) for i in (1, 2, 3)),
           "budget.gpus", "leases/p3.yaml", 5, "p3 [this change] 1 (share of pool shared-t4-pool: quota 8 of 8)",
           base_ops=AT_BUDGET),
    Attack("one-eighth-of-a-gpu-over-the-budget", (write("leases/sliver.yaml", pooled("sliver", quota=1)),),
           "budget.gpus", "leases/sliver.yaml", 5, "would hold 8.13 GPUs", base_ops=AT_BUDGET),
    Attack("shares-of-a-four-gpu-pool", (gpu_pool("gpu-farm", 4),) + tuple(
        write(f"leases/farm{i}.yaml", pooled(f"farm{i}", quota=8, pool="gpu-farm")) for i in (1, 2)),
           "budget.gpus", "leases/farm1.yaml", 5, "would hold 9 GPUs"),
    Attack("many-small-shares-add-up", tuple(
        write(f"leases/crumb{i}.yaml", pooled(f"crumb{i}", quota=4, backends=f"[b{i}]")) for i in range(4)),
           "budget.gpus", "leases/crumb0.yaml", 5, "would hold 10 GPUs", base_ops=(
               replace(IC, "  expires: 2027-01-15T12:00:00Z\n",
                       "  expires: 2027-01-15T12:00:00Z\n  triton:\n    resources: {gpu: 4}\n"
                       "    autoscaling: {maxReplicas: 2}\n"),
               replace(P, "instances: {min: 1, max: 4}", "instances: {min: 1, max: 8}"))),
    Attack("quota-1-share-asks-for-64-instances", (write("leases/greedy.yaml", pooled("greedy", count=64)),),
           "pool.count", "leases/greedy.yaml", 11, "count 64 of model 'greedy' exceeds this lease's quota 1"),
    Attack("count-one-over-the-quota", (replace(CS, "      backends: [python]\n",
                                                "      backends: [python]\n      count: 3\n"),),
           "pool.count", CS, 12, "exceeds this lease's quota 2"),
    Attack("count-on-the-second-model", (write("leases/pair.yaml", pooled("pair", quota=2).replace(
        "  expires:", "    - name: second\n      uri: model://s3-models/pair/second\n      backends: [python]\n"
                      "      count: 9\n  expires:")),),
           "pool.count", "leases/pair.yaml", 14, "count 9 of model 'second'"),
    Attack("count-on-a-cpu-pool", (write("leases/cpuhog.yaml", pooled("cpuhog", pool="cpu_inference_pool",
                                                                       backends="[onnxruntime]", count=16)),),
           "pool.count", "leases/cpuhog.yaml", 11, "instanceQuota 4"),
    Attack("budget-blames-the-new-lease-not-the-first-by-name", (bespoke("zz-new", gpu=4),),
           "budget.gpus", "leases/zz-new.yaml", 5, "zz-new [this change] 4", base_ops=(bespoke("aa-vision", gpu=4),),
           derive_lock=False, not_at=(("leases/aa-vision.yaml", 5), (IC, 6))),
    Attack("budget-blames-the-changed-lease-not-the-largest",
           (replace(IC, "  expires: 2027-01-15T12:00:00Z\n",
                    "  expires: 2027-01-15T12:00:00Z\n  triton:\n    resources: {gpu: 3}\n"),),
           "budget.gpus", IC, 6, "image-classifier [this change] 3",
           base_ops=VISION_10 + (bespoke("big-vision", gpu=4, replicas=2),), derive_lock=False,
           not_at=(("leases/big-vision.yaml", 5),)),
    Attack("budget-blames-a-lease-moved-to-another-owner",
           (replace("leases/fraud-detector.yaml", "owner: team-risk", "owner: team-vision"),),
           "budget.gpus", "leases/fraud-detector.yaml", 6, "image-classifier 1", derive_lock=False,
           not_at=((IC, 6),)),
    Attack("budget-lists-every-lease-of-the-owner", (bespoke("v1", gpu=4), bespoke("v2", gpu=4)),
           "budget.gpus", "leases/v2.yaml", 5, "v1 [this change] 4, v2 [this change] 4, image-classifier 1",
           derive_lock=False),
    Attack("lease-count-blames-the-added-lease", (write("leases/zzz-extra.yaml", lease("zzz-extra")),),
           "budget.leases", "leases/zzz-extra.yaml", 5, "leases: image-classifier, v-a, zzz-extra",
           base_ops=(replace(LIM, "default: {gpus: 8, leases: 20}", "default: {gpus: 8, leases: 2}"),
                     write("leases/v-a.yaml", lease("v-a"))), derive_lock=False, not_at=(("leases/v-a.yaml", 5),)),
]

LOCKS = [
    Attack("hand-written-stable-lock-puts-a-lease-on-another-teams-instance",
           (write("leases/intruder.yaml", pooled("intruder", backends="[onnxruntime]")),
            hand_lock(t4((0, "chat-embed, chat-small, intruder", "onnxruntime, python",
                          "chat-embed: 5, chat-small: 2, intruder: 1")))),
           "lock.derived", LOCK, 11, "lease intruder is on shared-t4-pool-0, derived shared-t4-pool-1",
           derive_lock=False),
    Attack("invented-backends-in-the-cache",
           (write("leases/liar.yaml", pooled("liar", backends=None, uri="model://s3-models/liar/pytorch-model")),
            hand_lock(t4((0, "chat-embed, chat-small, liar", "python", "chat-embed: 5, chat-small: 2, liar: 1")),
                      "{'model://s3-models/liar/pytorch-model': [python]}")),
           "lock.derived", LOCK, 11, "are not in the base's lock", derive_lock=False),
    Attack("another-teams-lease-moved-by-hand",
           (hand_lock(t4((0, "chat-embed", "python", "chat-embed: 5"), (1, "chat-small", "python", "chat-small: 2"))),),
           "lock.derived", LOCK, 11, "lease chat-small is on shared-t4-pool-1, derived shared-t4-pool-0",
           derive_lock=False),
    Attack("empty-instance-reserved-for-a-backend",
           (hand_lock(t4((0, "chat-embed, chat-small", "python", "chat-embed: 5, chat-small: 2"),
                         (3, "", "pytorch", ""))),),
           "lock.derived", LOCK, 11, "instance shared-t4-pool-3 is extra", derive_lock=False),
    Attack("instance-backends-widened-by-hand",
           (hand_lock(t4((0, "chat-embed, chat-small", "python, tensorrt", "chat-embed: 5, chat-small: 2"))),),
           "lock.derived", LOCK, 11, "lists backends [python, tensorrt], derived [python]", derive_lock=False),
    Attack("lock-left-out", (("remove", LOCK),), "lock.missing", LOCK, 0, "tms pool lock --base origin/main",
           derive_lock=False),
    Attack("lock-of-the-pr-alone-is-not-the-derived-one",
           (write("leases/fresh.yaml", pooled("fresh", backends=None, uri="model://s3-models/fresh/x")),
            hand_lock(t4((0, "chat-embed, chat-small", "python", "chat-embed: 5, chat-small: 2"),
                         (1, "fresh", "python", "fresh: 1")), "{'model://s3-models/fresh/x': [python]}")),
           "lock.derived", LOCK, 11, "tms pool lock --base origin/main", derive_lock=False),
]

GENERATED = [
    Attack("pyc-in-pycache", (("mkdirs", "tms_stack/__pycache__"),
                              write("tms_stack/__pycache__/check.cpython-311.pyc", "\x00")),
           "files.generated", "tms_stack/__pycache__", 0, "is compiled Python"),
    Attack("sourceless-pyc", (("mkdirs", "tms_stack/rules"), write("tms_stack/rules/budgets.pyc", "\x00")),
           "files.generated", "tms_stack/rules/budgets.pyc", 0, "Python would run it instead of the reviewed source"),
    Attack("pyo", (("mkdirs", "scripts"), write("scripts/helper.pyo", "\x00")), "files.generated",
           "scripts/helper.pyo", 0),
    Attack("extension-module-shadowing-a-py", (("mkdirs", "tms_stack/rules"),
                                               write("tms_stack/rules/budgets.cpython-311-x86_64-linux-gnu.so", "\x7fELF")),
           "files.generated", "tms_stack/rules/budgets.cpython-311-x86_64-linux-gnu.so", 0, "compiled code"),
    Attack("dot-venv", (("mkdirs", ".venv/lib/python3.11/site-packages"), write(".venv/pyvenv.cfg", "home = /usr\n"),
                        write(".venv/lib/python3.11/site-packages/evil.pth", "import os\n")),
           "files.generated", ".venv", 0, ".venv/ (2 files) is a virtual environment"),
    Attack("venv", (("mkdirs", "venv/bin"), write("venv/bin/activate", "x\n")), "files.generated", "venv", 0,
           "virtual environment"),
    Attack("venv-under-another-name", (("mkdirs", "tools/env/lib"), write("tools/env/pyvenv.cfg", "home = /usr\n"),
                                       write("tools/env/lib/x.py", "x = 1\n")),
           "files.generated", "tools/env", 0, "tools/env/ (2 files) is a virtual environment"),
    Attack("site-packages-at-any-depth", (("mkdirs", "a/b/c/site-packages/tms_stack"),
                                          write("a/b/c/site-packages/tms_stack/__init__.py", "x = 1\n")),
           "files.generated", "a/b/c/site-packages", 0),
    Attack("node-modules", (("mkdirs", "node_modules/left-pad"), write("node_modules/left-pad/index.js", "x\n")),
           "files.generated", "node_modules", 0, "node_modules"),
    Attack("deep-pycache", (("mkdirs", "a/b/c/d/__pycache__"), write("a/b/c/d/__pycache__/x.cpython-311.pyc", "\x00")),
           "files.generated", "a/b/c/d/__pycache__", 0),
    Attack("pycache-as-a-link-to-outside", (("mkdirs", "tms_stack"), ("symlink", "tms_stack/__pycache__", "/tmp")),
           "files.generated", "tms_stack/__pycache__", 0, "compiled Python"),
    Attack("venv-as-a-link", (("symlink", ".venv", "/usr"),), "files.generated", ".venv", 0, "virtual environment"),
    Attack("pyc-changed-where-main-had-one",
           (write("tms_stack/old.pyc", "\x01"),), "files.generated", "tms_stack/old.pyc", 0,
           base_ops=(("mkdirs", "tms_stack"), write("tms_stack/old.pyc", "\x00"))),
]

NAMES = [
    Attack("lease-named-istio-ca-root-cert", (write("leases/istio-ca-root-cert.yaml", lease("istio-ca-root-cert")),),
           "names.reserved", "leases/istio-ca-root-cert.yaml", 4, "objects Istio creates"),
    Attack("lease-named-istio-anything", (write("leases/istio-sidecar.yaml", lease("istio-sidecar")),),
           "names.reserved", "leases/istio-sidecar.yaml", 4, "Istio"),
    Attack("lease-named-builder", (write("leases/builder.yaml", lease("builder")),), "names.reserved",
           "leases/builder.yaml", 4, "objects OpenShift creates"),
    Attack("lease-named-deployer", (write("leases/deployer.yaml", lease("deployer")),), "names.reserved",
           "leases/deployer.yaml", 4, "OpenShift"),
    Attack("lease-named-pipeline", (write("leases/pipeline.yaml", lease("pipeline")),), "names.reserved",
           "leases/pipeline.yaml", 4, "OpenShift"),
    Attack("lease-named-like-a-dockercfg-secret", (write("leases/builder-dockercfg-x7k2p.yaml",
                                                         lease("builder-dockercfg-x7k2p")),),
           "names.reserved", "leases/builder-dockercfg-x7k2p.yaml", 4, "OpenShift"),
    Attack("alias-like-the-default-dockercfg-secret", (replace(CS, "names: [chat]", "names: [default-dockercfg-x7k2p]"),),
           "names.reserved", CS, 14, "OpenShift"),
    Attack("alias-like-a-token-secret", (replace(CS, "names: [chat]", "names: [deployer-token-abcde]"),),
           "names.reserved", CS, 14, "OpenShift"),
    Attack("lease-named-openshift-service-ca", (write("leases/openshift-service-ca.yaml", lease("openshift-service-ca")),),
           "names.reserved", "leases/openshift-service-ca.yaml", 4, "OpenShift"),
    Attack("alias-prometheus-operated", (replace(CS, "names: [chat]", "names: [prometheus-operated]"),),
           "names.reserved", CS, 14, "the Prometheus operator"),
    Attack("lease-named-alertmanager-operated", (write("leases/alertmanager-operated.yaml",
                                                       lease("alertmanager-operated")),),
           "names.reserved", "leases/alertmanager-operated.yaml", 4, "Prometheus operator"),
    Attack("lease-named-like-a-pool-instance-past-max", (write("leases/shared-t4-pool-4.yaml", lease("shared-t4-pool-4")),),
           "names.reserved", "leases/shared-t4-pool-4.yaml", 4, "for any index"),
    Attack("lease-named-like-pool-instance-9999", (write("leases/shared-t4-pool-9999.yaml",
                                                         lease("shared-t4-pool-9999")),),
           "names.reserved", "leases/shared-t4-pool-9999.yaml", 4, "instance of pool pools/shared-t4-pool.yaml"),
    Attack("lease-named-like-cpu-pool-instance-17", (write("leases/cpu-inference-pool-17.yaml",
                                                           lease("cpu-inference-pool-17")),),
           "names.reserved", "leases/cpu-inference-pool-17.yaml", 4, "pools/cpu_inference_pool.yaml"),
    Attack("alias-like-a-pool-instance-past-max", (replace(CS, "names: [chat]", "names: [shared-t4-pool-4]"),),
           "names.clash", CS, 14, "Service of pool"),
    Attack("alias-with-a-leading-zero-index", (replace(CS, "names: [chat]", "names: [shared-t4-pool-01]"),),
           "names.clash", CS, 14, "Service of pool"),
    Attack("lease-named-by-an-admin-prefix", (write("leases/vault-agent.yaml", lease("vault-agent")),),
           "names.reserved", "leases/vault-agent.yaml", 4, "reserved by the admin (Limits spec.reservedNames, "
           "policies/limits.yaml:52)", base_ops=RESERVED),
    Attack("alias-is-an-admin-reserved-name", (replace(CS, "names: [chat]", "names: [corp-proxy]"),),
           "names.reserved", CS, 14, "reserved by the admin", base_ops=RESERVED),
    Attack("pool-whose-instances-istio-owns", (gpu_pool("istio-gateway", 0),), "names.reserved",
           "pools/istio-gateway.yaml", 4, "would name its instances 'istio-gateway-0'"),
]

ATTACKS = BUDGETS + LOCKS + GENERATED + NAMES


def _apply(repo: Path, ops: tuple[Op, ...]) -> None:
    rest: list[Op] = []
    for op in ops:
        if op[0] == "mkdirs":
            (repo / op[1]).mkdir(parents=True, exist_ok=True)
        elif op[0] == "remove":
            (repo / op[1]).unlink()
        else:
            rest.append(op)
    apply_ops(repo, tuple(rest))


def _pair(tmp_path: Path, attack: Attack) -> tuple[Path, Path]:
    base = copy_example(tmp_path / "base")
    _apply(base, attack.base_ops)
    if attack.base_ops:  # main itself holds a lock that matches its leases
        write_lock(base, compute(load_repository(base), read_lock(base)).lock)
    pr = tmp_path / "pr"
    shutil.copytree(base, pr, symlinks=True)
    _apply(pr, attack.ops)
    if attack.derive_lock:  # what `tms pool lock --base` writes
        base_repo = load_repository(base)
        from tms_stack.rules.context import Base

        write_lock(pr, compute(load_repository(pr), base_lock(Base(base_repo, "origin/main"))).lock)
    return base, pr


def test_the_table_is_distinct() -> None:
    assert len({a.id for a in ATTACKS}) == len(ATTACKS)
    from tests.security.test_attacks import ATTACKS as EARLIER

    assert not {a.id for a in ATTACKS} & {a.id for a in EARLIER}


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.id for a in ATTACKS])
def test_attack_is_blocked(tmp_path: Path, attack: Attack) -> None:
    base, pr = _pair(tmp_path, attack)
    result = run_check(pr, NOW, base=load_base(pr, base, "origin/main"))
    found = [(d.file, d.line, d.message) for d in result.all() if d.rule == attack.rule]
    shown = "\n".join(f"  {d.location()} [{d.rule}] {d.message[:300]}" for d in result.all())
    assert any((f, line) == (attack.file, attack.line) and attack.message in m for f, line, m in found), (
        f"{attack.id}: expected [{attack.rule}] at {attack.file}:{attack.line} ~ {attack.message!r}; got:\n{shown}")
    for file, line in attack.not_at:
        assert (file, line) not in {(f, ln) for f, ln, _ in found}, f"{attack.id}: blamed {file}:{line}\n{shown}"
    assert result.exit_code == attack.exit_code


def test_the_base_itself_passes(tmp_path: Path) -> None:
    """Every row's base passes check against itself: what blocks a row is its own change."""
    for attack in ATTACKS:
        if not attack.base_ops:
            continue
        base, _pr = _pair(tmp_path / attack.id, attack)
        result = run_check(base, NOW, base=load_base(base, base, "origin/main"))
        assert result.exit_code == 0, (attack.id, [f"{d.location()} [{d.rule}] {d.message}" for d in result.all()])


def test_without_a_base_the_hand_written_lock_passes_as_the_issue_found(tmp_path: Path) -> None:
    """Why the review passes the base: plain `tms check` compares the lock with itself."""
    attack = next(a for a in LOCKS if a.id == "hand-written-stable-lock-puts-a-lease-on-another-teams-instance")
    _base, pr = _pair(tmp_path, attack)
    assert [d.rule for d in run_check(pr, NOW).all()] == []


# --- budget findings without a base: deterministic, the largest holding, every lease listed ---------

def test_budget_without_a_base_blames_the_largest_lease_and_lists_all(example_repo: Path) -> None:
    _apply(example_repo, (bespoke("aa-vision", gpu=1), bespoke("mid-vision", gpu=4),
                          bespoke("zz-vision", gpu=3)))
    found = [d for d in run_check(example_repo, NOW).all() if d.rule == "budget.gpus"]
    assert [(d.file, d.line) for d in found] == [("leases/mid-vision.yaml", 5)]
    assert "would hold 9 GPUs" in found[0].message
    assert "GPUs by lease: mid-vision 4, zz-vision 3, aa-vision 1, image-classifier 1" in found[0].message


def test_pooled_share_is_shown_rounded_up(example_repo: Path) -> None:
    _apply(example_repo, (replace(LIM, "default: {gpus: 8, leases: 20}", "default: {gpus: 0, leases: 20}"),))
    found = {d.file: d.message for d in run_check(example_repo, NOW).all() if d.rule == "budget.gpus"}
    assert "owner team-assist would hold 0.88 GPUs" in found["leases/chat-embed.yaml"]
    assert "chat-embed 0.63 (share of pool shared-t4-pool: quota 5 of 8), chat-small 0.25" in found[
        "leases/chat-embed.yaml"]


# --- the command line: tms check --base-dir, tms pool lock --base ----------------------------------

TMS = [sys.executable, "-c", "from tms_stack.cli import main; main()"]


def tms(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run([*TMS, *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"})


def test_check_base_dir_refuses_the_hand_written_lock_and_pool_lock_base_fixes_it(tmp_path: Path) -> None:
    attack = next(a for a in LOCKS if a.id == "hand-written-stable-lock-puts-a-lease-on-another-teams-instance")
    base, pr = _pair(tmp_path, attack)
    out = tms(pr, "check", ".", "--base-dir", str(base), "--base", "origin/main", "--now", "2026-11-22T00:00:00Z")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "pools/placement.lock.yaml:11:3: error: the lock is not the one derived from the base's lock" in out.stdout
    assert "tms pool lock --base origin/main" in out.stdout
    # The author's repository: main is the base, the branch holds the pull request.
    repo = tmp_path / "author"
    shutil.copytree(base, repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    for part in ("leases", "pools"):
        shutil.rmtree(repo / part)
        shutil.copytree(pr / part, repo / part)
    fixed = tms(repo, "pool", "lock", "--base", "main")
    assert fixed.returncode == 0, fixed.stderr
    again = tms(repo, "check", ".", "--base-dir", str(base), "--now", "2026-11-22T00:00:00Z")
    assert again.returncode == 0, again.stdout
    assert "intruder" in (repo / LOCK).read_text().split("index: 1")[1]


def test_pool_lock_base_refuses_an_unknown_ref_and_shell_syntax(tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "repo")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    before = (repo / LOCK).read_text()
    missing = tms(repo, "pool", "lock", "--base", "origin/nope")
    assert missing.returncode == 2 and "git does not know 'origin/nope'" in missing.stderr, missing.stderr
    evil = tms(repo, "pool", "lock", "--base", "main;touch x")
    assert evil.returncode == 2 and "is not a git ref" in evil.stderr
    assert (repo / LOCK).read_text() == before and not (repo / "x").exists()
    bad = tms(repo, "check", ".", "--base-dir", str(repo), "--base", "$(id)")
    assert bad.returncode == 2 and "is not a git ref" in bad.stderr and "Traceback" not in bad.stderr


def test_plain_check_ignores_a_local_venv(example_repo: Path) -> None:
    """Compiled files and environments are judged only as changes against a base."""
    _apply(example_repo, (("mkdirs", ".venv/bin"), write(".venv/pyvenv.cfg", "home = /usr\n")))
    assert run_check(example_repo, NOW).exit_code == 0


# The table; the three command-line refusals above (unknown ref, shell syntax in `tms pool lock
# --base` and in `tms check --base`); the hand-swapped lock of the rebalance test.
AUTHORITY_ATTACK_COUNT = len(ATTACKS) + 4


def test_attack_count() -> None:
    assert AUTHORITY_ATTACK_COUNT >= 50, AUTHORITY_ATTACK_COUNT


def test_a_rebalance_of_the_base_is_derived_too(tmp_path: Path) -> None:
    """`tms pool rebalance --write` in a pull request: the compacted placement is recomputed from the
    base's lock too, so it passes; moving the same lease anywhere else does not."""
    base = copy_example(tmp_path / "base")
    _apply(base, (hand_lock(t4((0, "chat-embed", "python", "chat-embed: 5"), (1, "chat-small", "python", "chat-small: 2"))),))
    assert run_check(base, NOW).exit_code == 0  # main's own (stable) placement
    pr = tmp_path / "pr"
    shutil.copytree(base, pr)
    out = tms(pr, "pool", "rebalance", "--write")
    assert out.returncode == 0, out.stderr
    assert "leases: [chat-embed, chat-small]" in (pr / LOCK).read_text()
    assert run_check(pr, NOW, base=load_base(pr, base, "origin/main")).exit_code == 0
    _apply(pr, (hand_lock(t4((0, "chat-small", "python", "chat-small: 2"), (1, "chat-embed", "python", "chat-embed: 5"))),))
    assert run_check(pr, NOW).exit_code == 0  # stable, so plain check passes it
    found = run_check(pr, NOW, base=load_base(pr, base, "origin/main")).all()
    assert [d.rule for d in found] == ["lock.derived"]
