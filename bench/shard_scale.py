"""A sharded fleet (`tms-stack:shards`) with the real Pulumi engine against the kube-apiserver + kwok
control plane of tests/e2e: the deploy of one changed lease, and the whole reconcile of each stack.

Usage: .venv/bin/python bench/shard_scale.py [--leases 10000] [--shards 10] [--deploy K]
       [--edits 2] [--reconcile [--refresh-too]] [--json FILE] [--no-engine]

Steps (each printed as one JSON line, with the machine's load):
  1. generate the fleet (bench/generate.py: 1/3 bespoke, 1/3 autoscaled, 1/3 in 50 pools, every
     lease with an alias), `tms pool lock`, a stack file declaring `--shards` shard stacks;
     `tms shard list` (the assignment and each stack's size);
  2. create the first K shard stacks (`--deploy`, default all) with `PULUMI_SKIP_CHECKPOINTS=true
     --parallel=64` (setup, as bench/engine_scale.py creates its stacks), and the home stack (the
     alias Services and monitoring) when every shard is deployed (its alias Services wait for their
     leases' pods);
  3. `--edits` times, what deploy.yml runs for a push that edits one lease (its models: the
     ConfigMap changes): `tms shard moves --run --if-changed-since HEAD` (the assignment did not
     change: no state is read),
     `tms plan --base HEAD --targets`, and `pulumi up --stack <its shard> --config-file ...
     --target ...`; "seen" is when the edited ConfigMap holds the new model on the API server;
  4. `tms shard moves --run` reading every stack's state (what the reconcile runs first), and with
     `--reconcile` the hourly whole reconcile as deploy.yml runs it per stack, after one Deployment
     of each was changed by hand: `pulumi stack export`, `tms drift --state`, `pulumi refresh
     --target` of what drifted, `pulumi up`; `--refresh-too` also times `pulumi up --refresh` (the
     reconcile before `tms drift`).
`--no-engine`: steps 1 and a `tms plan --targets` of one edit only (no control plane, no engine):
what the test suite runs at a tiny size (tests/unit/test_bench_scripts.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from generate import generate  # noqa: E402

TMS = [sys.executable, "-c", "from tms_stack.cli import main; main()"]  # this tree's CLI, as the other benches
HOME = "bench"
EXAMPLE = ROOT / "tests" / "fixtures" / "example"


def load() -> str:
    return "/".join(Path("/proc/loadavg").read_text().split(" ")[:2])


def shard_names(count: int) -> list[str]:
    return [f"{HOME}-{i:02d}" for i in range(1, count + 1)]


def prepare(dest: Path, leases: int, shards: int, namespace: str) -> Path:
    generate(dest, leases, pools=max(1, min(50, leases // 20)))
    subprocess.run([*TMS, "pool", "lock", "--no-learn"], cwd=dest, check=True, capture_output=True)
    project = (EXAMPLE / "Pulumi.yaml").read_text()
    (dest / "Pulumi.yaml").write_text(project.replace("virtualenv: .venv", f"virtualenv: {ROOT / '.venv'}"))
    stack = (EXAMPLE / "Pulumi.example.yaml").read_text().replace("tms-stack:namespace: triton",
                                                                   f"tms-stack:namespace: {namespace}")
    assert namespace in stack, "Pulumi.example.yaml of the example changed shape"
    stack += "  tms-stack:deployTimeout: 5m\n"
    stack += f"  tms-stack:shards:\n    stacks: [{', '.join(shard_names(shards))}]\n    maxLeases: 1100\n"
    (dest / f"Pulumi.{HOME}.yaml").write_text(stack)
    (dest / "tms_stack").symlink_to(ROOT / "tms_stack", target_is_directory=True)
    for argv in (["git", "init", "-q"], ["git", "add", "-A"],
                 ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "base"]):
        subprocess.run(argv, cwd=dest, check=True)
    return dest


def timed(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, str]:
    start = time.monotonic()
    p = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"`{' '.join(argv[:6])} ...` exited {p.returncode}:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return round(time.monotonic() - start, 1), p.stdout


def assignment(repo: Path) -> dict[str, str]:
    from tms_stack.commands.shards import fleet_assignment

    return dict(fleet_assignment(repo, HOME)[1].stack_of)


def bespoke_in(stack_of: dict[str, str], stack: str, k: int) -> str:
    """The k-th bespoke, not autoscaled lease of `stack` (generate.py: i % 3 == 0), from the middle."""
    names = sorted(key.split("/", 1)[1] for key, s in stack_of.items()
                   if s == stack and key.startswith("Lease/") and int(key.rsplit("-", 1)[1]) % 3 == 0)
    return names[(len(names) // 2 + k) % len(names)]


def no_engine(args: argparse.Namespace, tmp: Path, report: Any) -> None:
    repo = prepare(tmp / "repo", args.leases, args.shards, "bench")
    seconds, out = timed([*TMS, "shard", "list", "--stack", HOME, "-o", "json"], repo)
    report("tms shard list", {"seconds": seconds, **json.loads(out)})
    stack_of = assignment(repo)
    lease = bespoke_in(stack_of, shard_names(args.shards)[0], 0)
    from engine_scale import edit_one_lease

    edit_one_lease(repo, lease, "extra_0")
    # as deploy.yml runs them (TMS_CACHE=memory), then with both trees rendered whole (--no-cache)
    env = {**os.environ, "TMS_CACHE": "memory"}
    moves_s, _ = timed([*TMS, "shard", "moves", "--stack", HOME, "--if-changed-since", "HEAD", "--run"], repo, env)
    seconds, out = timed([*TMS, "plan", "--base", "HEAD", "--stack", HOME, "--targets"], repo, env)
    full_s, full = timed([*TMS, "plan", "--base", "HEAD", "--stack", HOME, "--targets", "--no-cache"], repo, env)
    urns = out.split()
    assert urns and all(u.startswith(f"urn:pulumi:{stack_of['Lease/' + lease]}::") for u in urns), urns
    assert full.split() == urns, "the narrowed targets differ from the full ones"
    report(f"{args.leases} tms plan --targets (one lease of {stack_of['Lease/' + lease]})",
           {"seconds": seconds, "whole_renderings_s": full_s, "moves_s": moves_s, "targets": len(urns),
            "load": load()})


def with_engine(args: argparse.Namespace, tmp: Path, report: Any) -> None:
    from engine_scale import NODE_CAPACITY, Run, configmap_has, edit_one_lease

    from tests.e2e.conftest import ADMIN_TOKEN, ControlPlane, build_tools
    from tests.e2e.example import create_admin_prerequisites
    from tests.e2e.kubeapi import Kube

    tools = build_tools.build(["kube-apiserver", "etcd", "kwok", "crds", "pulumi"])
    errors = {k: v["error"] for k, v in tools.items() if "error" in v}
    if errors:
        raise SystemExit("could not build the tools: " + "; ".join(f"{k}: {v}" for k, v in errors.items()))
    cp = ControlPlane(tmp / "control-plane", tools)
    (tmp / "control-plane").mkdir()
    try:
        cp.start()
        kube = Kube(cp.server, ADMIN_TOKEN, str(cp.workdir / "pki" / "ca.crt"))
        import yaml as pyyaml

        kube.install_crds([d for f in tools["crds"]["files"] for d in pyyaml.safe_load_all(Path(f).read_text()) if d])
        cp.add_fake_nodes(kube, count=2, capacity=NODE_CAPACITY)
        Run.watched = {name: proc.pid for name, proc in cp.procs}
        namespace = f"shards-{args.leases}"
        kube.ensure_namespace(namespace)
        repo = prepare(tmp / "repo", args.leases, args.shards, namespace)
        create_admin_prerequisites(kube, SimpleNamespace(path=repo, namespace=namespace,
                                                         stack_file=repo / f"Pulumi.{HOME}.yaml"))
        home = tmp / "pulumi-home"
        home.mkdir()
        (home / "logs").write_text("the CLI's automatic debug log off (docs/real-engine.md)\n")
        state = tmp / "state"
        state.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "KUBE"))}
        env.update(PATH=os.pathsep.join([*tools["pulumi"]["bin_dirs"], str(ROOT / ".venv" / "bin"), env["PATH"]]),
                   PULUMI_HOME=str(home), PULUMI_CONFIG_PASSPHRASE="tms-bench", PULUMI_SKIP_UPDATE_CHECK="true",
                   PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true", KUBECONFIG=str(cp.kubeconfig),
                   NO_COLOR="1", PULUMI_BACKEND_URL=f"file://{state}", TMS_CACHE="memory")  # as deploy.yml
        config = ["--config-file", f"Pulumi.{HOME}.yaml"]

        def pulumi(*argv: str, seen: Any = None, extra_env: dict[str, str] | None = None) -> Run:
            return Run(["pulumi", *argv, "--non-interactive"], repo, {**env, **(extra_env or {})}, seen)()

        seconds, out = timed([*TMS, "shard", "list", "--stack", HOME, "-o", "json"], repo, env)
        sizes = json.loads(out)
        report(f"{args.leases} tms shard list", {"seconds": seconds, **sizes, "load": load()})
        shards = shard_names(args.shards)
        deploy = shards[:args.deploy] if args.deploy is not None else shards
        for s in [HOME, *shards]:
            pulumi("stack", "init", s)
        fast = {"PULUMI_SKIP_CHECKPOINTS": "true"}
        for s in deploy:
            leases = next(r["leases"] for r in sizes["stacks"] if r["stack"] == s)
            report(f"{args.leases} create {s} ({leases} leases; PULUMI_SKIP_CHECKPOINTS, --parallel=64)",
                   pulumi("up", "--stack", s, *config, "--yes", "--skip-preview", "--parallel=64",
                          extra_env=fast).row())
        deployed = list(deploy)
        if len(deploy) == len(shards):
            report(f"{args.leases} create {HOME} (alias Services, monitoring; PULUMI_SKIP_CHECKPOINTS, --parallel=64)",
                   pulumi("up", "--stack", HOME, *config, "--yes", "--skip-preview", "--parallel=64",
                          extra_env=fast).row())
            deployed.append(HOME)
        stack_of = assignment(repo)
        for k in range(args.edits):
            shard = deploy[k % len(deploy)]
            lease = bespoke_in(stack_of, shard, k)
            model = f"extra_{k}"
            edit_one_lease(repo, lease, model)
            # as deploy.yml runs it for a push: the deployed commit (HEAD) assigns as the work tree does
            moves_s, _ = timed([*TMS, "shard", "moves", "--stack", HOME, "--run", "--if-changed-since", "HEAD"],
                               repo, env)
            plan_s, out = timed([*TMS, "plan", "--base", "HEAD", "--stack", HOME, "--targets"], repo, env)
            urns = out.split()
            assert urns and all(u.startswith(f"urn:pulumi:{shard}::") for u in urns), urns
            up = pulumi("up", "--stack", shard, *config, "--yes", "--skip-preview", *[f"--target={u}" for u in urns],
                        seen=configmap_has(kube, namespace, lease, model)).row()
            report(f"{args.leases} one lease changed ({lease} in {shard}): moves + targets + up",
                   {"total_s": round(moves_s + plan_s + up["seconds"], 1), "moves_s": moves_s,
                    "targets_s": plan_s, "up": up, "targets": len(urns)})
            subprocess.run(["git", "commit", "-qam", f"edit {lease}"], cwd=repo, check=True)
        # what the reconcile runs first: every stack's state read (`pulumi stack export`), nothing to move
        seconds, _ = timed([*TMS, "shard", "moves", "--stack", HOME, "--run"], repo, env)
        report(f"{args.leases} tms shard moves --run (reads {len(shards) + 1} states)", {"seconds": seconds,
                                                                                         "load": load()})
        if args.reconcile:
            # What deploy.yml's whole-stack run does per stack (docs/lifecycle.md, "Drift"): its
            # state exported, `tms drift --state`, `pulumi refresh --target` of what drifted, `up`.
            # One Deployment of each stack is changed by hand first, so there is drift to repair.
            total = seconds
            for s in deployed:
                if s == HOME:   # no lease of its own: only the alias Services and monitoring
                    continue
                lease = bespoke_in(stack_of, s, 99)
                kube.request("PATCH", f"/apis/apps/v1/namespaces/{namespace}/deployments/{lease}",
                             params={"fieldManager": "kubectl-edit"},
                             data=json.dumps({"spec": {"template": {"spec": {"containers": [
                                 {"name": "triton", "image": "registry.example.com/hand-edited:1"}]}}}}),
                             headers={"Content-Type": "application/strategic-merge-patch+json"})
                exported = tmp / f"state-{s}.json"
                export = pulumi("stack", "export", "--stack", s, "--file", str(exported)).row()
                drift_s, out = timed([*TMS, "drift", "--stack", s, "--state", str(exported)], repo, env)
                drifted = out.split()
                assert any(u.endswith(f"::{lease}:Deployment:{lease}") for u in drifted), drifted
                refresh = pulumi("refresh", "--stack", s, *config, "--yes", "--skip-preview",
                                 *[f"--target={u}" for u in drifted]).row()
                up = pulumi("up", "--stack", s, *config, "--yes", "--skip-preview").row()
                after_s, after = timed([*TMS, "drift", "--stack", s], repo, env)
                assert after.split() == [], f"still drifted after the reconcile: {after}"
                step = export["seconds"] + drift_s + refresh["seconds"] + up["seconds"]
                total += step
                report(f"{args.leases} reconcile {s}: export + tms drift + refresh --target + up",
                       {"seconds": round(step, 1), "export_s": export["seconds"], "drift_s": drift_s,
                        "drifted": len(drifted), "refresh": refresh, "up": up, "drift_again_s": after_s,
                        "load": load()})
                if args.refresh_too:
                    report(f"{args.leases} reconcile {s} the old way (up --refresh)",
                           pulumi("up", "--stack", s, *config, "--yes", "--skip-preview", "--refresh").row())
            report(f"{args.leases} reconcile of {len(deployed)} stacks (moves + per stack)",
                   {"seconds": round(total, 1), "load": load()})
    finally:
        cp.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--leases", type=int, default=10_000)
    ap.add_argument("--shards", type=int, default=10)
    ap.add_argument("--deploy", type=int, default=None, metavar="K",
                    help="create only the first K shard stacks (default: all, then the home stack)")
    ap.add_argument("--edits", type=int, default=2, help="one-lease deploys to time")
    ap.add_argument("--reconcile", action="store_true",
                    help="time deploy.yml's whole-stack run of every deployed stack (tms drift, refresh --target, up)")
    ap.add_argument("--refresh-too", action="store_true",
                    help="with --reconcile, also time `pulumi up --refresh` of each stack (the reconcile before tms drift)")
    ap.add_argument("--no-engine", action="store_true", help="the file-side steps only (no control plane)")
    ap.add_argument("--json", type=Path, help="append one JSON line per measurement here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()

    def report(what: str, row: dict[str, Any]) -> None:
        print(f"{what}: {json.dumps(row)}", flush=True)
        if args.json:
            with args.json.open("a") as fh:
                fh.write(json.dumps({"what": what, **row}) + "\n")

    tmp = Path(tempfile.mkdtemp(prefix="tms-shard-scale-"))
    try:
        (no_engine if args.no_engine else with_engine)(args, tmp, report)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
