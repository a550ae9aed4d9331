"""The real Pulumi engine at fleet scale: `pulumi preview` / `pulumi up` of generated stacks of
N leases against a real API server (etcd, kube-apiserver, controllers, scheduler, kwok fake nodes:
the e2e fixtures of tests/e2e/conftest.py), local file backend, and the time one changed lease
takes to reach the API server. Peak RSS is the sum over the `pulumi` process tree (engine,
language host, Python program, provider), sampled from /proc every 0.25 s.

Usage: .venv/bin/python bench/engine_scale.py [--leases 10 100 1000] [--modes full targeted]
       [--parallel P] [--json FILE]

Per N, in one namespace and one stack: preview (empty stack), up (create all), a no-change
preview, then for each mode one lease's models are edited (a ConfigMap change, what most lease
edits are) and deployed:
  full      `pulumi up` of the whole stack (what deploy.yml ran before issue 12)
  targeted  `pulumi up --target <urn>...` of the groups `tms plan --targets` names; the program
            registers only the targeted groups (tms_stack/render/urns.py)
  targeted-all  the same command with TMS_REGISTER_ALL=1: the program registers every group, as it
            did before it learnt to narrow (the "before" of that change, measured side by side)
"seen" is when the edited ConfigMap holds the new model on the API server (polled every 0.25 s),
counted from the start of the command. Runs are sequential; `uptime` is printed with each line.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from copy import deepcopy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from generate import generate  # noqa: E402

from tests.e2e.conftest import ADMIN_TOKEN, ControlPlane, build_tools  # noqa: E402
from tests.e2e.example import create_admin_prerequisites  # noqa: E402
from tests.e2e.kubeapi import Kube  # noqa: E402

TMS = str(ROOT / ".venv" / "bin" / "tms")
STACK = "bench"
EXAMPLE = ROOT / "tests" / "fixtures" / "example"
# big enough for 10,000 leases' pods on a few nodes (kwok heartbeats per node, so fewer is cheaper)
NODE_CAPACITY = {"cpu": "100000", "memory": "800Ti", "pods": "6000", "nvidia.com/gpu": "6000",
                 "ephemeral-storage": "100Ti"}


# Imported by every interpreter that has the bench's site directory on PYTHONPATH; acts only in
# the program (the language host's exec script): a cProfile from its start to its exit, and/or
# the SDK's debug messages dropped (pulumi.log.debug is a blocking gRPC call to the engine, about
# four per resource registration).
SITECUSTOMIZE = """import os, sys
if any("pulumi-language-python-exec" in a for a in sys.argv[:1]):
    if os.environ.get("TMS_BENCH_NO_SDK_DEBUG"):
        import pulumi.log
        pulumi.log.debug = lambda *args, **kwargs: None
    _prefix = os.environ.get("TMS_BENCH_PYPROFILE")
    if _prefix:
        import atexit, cProfile
        _prof = cProfile.Profile()
        _prof.enable()

        def _dump():
            _prof.disable()
            _prof.dump_stats(f"{_prefix}.{os.getpid()}.pyprof")

        atexit.register(_dump)
"""


def load() -> str:
    """The 1- and 5-minute load averages (the machine is shared: read the times against it)."""
    return "/".join(Path("/proc/loadavg").read_text().split(" ")[:2])


# ---------------------------------------------------------------------------------------------
# peak RSS of a process tree, from /proc

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int | str) -> tuple[int, float] | None:
    """(parent pid, CPU seconds user+system) of one process from /proc/<pid>/stat; None once gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # fields[k - 3] is field k of proc(5)
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK


def _tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        st = _stat(d)
        if st is not None:
            children.setdefault(st[0], []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _rss(pid: int) -> tuple[str, int]:
    """(command name, RSS in KiB) of one process; ("", 0) once it is gone."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                      if ":" in line)
    except OSError:
        return "", 0
    return fields.get("Name", "").strip(), int(fields.get("VmRSS", "0 kB").split()[0])


def cpu_of(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of named processes (the control plane's), to subtract before from after."""
    out = {}
    for name, pid in pids.items():
        st = _stat(pid)
        out[name] = st[1] if st else 0.0
    return out


class Run:
    """One CLI command: wall time, CPU seconds of its whole process tree (``wait4``'s rusage: every
    descendant its parent waited for) and per command name (sampled from /proc: the last value seen
    of each process, so a process's final < 0.25 s may be missing), peak tree RSS (total and per
    command name), the control plane's CPU seconds during the command, and optionally when
    ``seen()`` first held."""

    # processes outside the tree whose CPU the command causes (name -> pid), set by main()
    watched: dict[str, int] = {}

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], seen: Callable[[], bool] | None = None):
        self.argv, self.cwd, self.env, self.seen = argv, cwd, env, seen
        self.peak_kib = 0
        self.peak_by_name: dict[str, int] = {}
        self.cpu_by_pid: dict[int, tuple[str, float]] = {}
        self.seen_s: float | None = None
        self.load_before = load()

    def _check_seen(self, start: float) -> None:
        if self.seen is not None and self.seen_s is None:
            try:
                if self.seen():
                    self.seen_s = time.monotonic() - start
            except Exception:  # noqa: BLE001 - the API server may be busy; poll again
                pass

    def _sample(self, pid: int, start: float, done: threading.Event) -> None:
        # not proc.poll(): the main thread reaps the child with wait4 for its rusage
        while not done.is_set():
            by_name: dict[str, int] = {}
            for p in _tree(pid):
                name, kib = _rss(p)
                if name:
                    by_name[name] = by_name.get(name, 0) + kib
                    st = _stat(p)
                    if st is not None:
                        self.cpu_by_pid[p] = (name, st[1])
            self.peak_kib = max(self.peak_kib, sum(by_name.values()))
            for n, kib in by_name.items():
                self.peak_by_name[n] = max(self.peak_by_name.get(n, 0), kib)
            self._check_seen(start)
            done.wait(0.25)

    def __call__(self) -> Run:
        cp_before = cpu_of(self.watched)
        start = time.monotonic()
        with tempfile.TemporaryFile("w+") as out:
            proc = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                    text=True)
            done = threading.Event()
            sampler = threading.Thread(target=self._sample, args=(proc.pid, start, done), daemon=True)
            sampler.start()
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            except BaseException:  # interrupted: leave no engine behind holding the state lock
                proc.kill()
                raise
            self.seconds = time.monotonic() - start
            done.set()
            sampler.join()
            rc = proc.returncode = os.waitstatus_to_exitcode(status)
            self.cpu_s = usage.ru_utime + usage.ru_stime
            out.seek(0)
            self.output = out.read()
        self.cp_cpu = {k: round(v - cp_before.get(k, 0.0), 1) for k, v in cpu_of(self.watched).items()}
        self._check_seen(start)  # the object may have arrived in the last quarter second
        if rc != 0:
            raise SystemExit(f"`{' '.join(self.argv)}` exited {rc}:\n{self.output[-4000:]}")
        return self

    def row(self) -> dict[str, Any]:
        cpu_by_name: dict[str, float] = {}
        for name, cpu in self.cpu_by_pid.values():
            cpu_by_name[name] = cpu_by_name.get(name, 0.0) + cpu
        return {"seconds": round(self.seconds, 1), "seen_s": None if self.seen_s is None else round(self.seen_s, 1),
                "cpu_s": round(self.cpu_s, 1),
                "cpu_s_by_process": {k: round(v, 1) for k, v in sorted(cpu_by_name.items())},
                "control_plane_cpu_s": self.cp_cpu,
                "peak_rss_mib": round(self.peak_kib / 1024),
                "peak_rss_mib_by_process": {k: round(v / 1024) for k, v in sorted(self.peak_by_name.items())},
                "load_before": self.load_before, "load": load()}


# ---------------------------------------------------------------------------------------------
# the stack under test

def prepare_repo(dest: Path, leases: int, namespace: str) -> Path:
    # one pool per 20 leases, at most the 50 of bench/check_scale.py's 10,000-lease repository
    # (generate.py's team-platform budget holds 100 pools at instances.max 1000)
    generate(dest, leases, pools=max(1, min(50, leases // 20)))
    subprocess.run([TMS, "pool", "lock", "--no-learn"], cwd=dest, check=True, capture_output=True)
    project = (EXAMPLE / "Pulumi.yaml").read_text()
    (dest / "Pulumi.yaml").write_text(project.replace("virtualenv: .venv", f"virtualenv: {ROOT / '.venv'}"))
    assert str(ROOT / ".venv") in (dest / "Pulumi.yaml").read_text(), "Pulumi.yaml of the example changed shape"
    stack = (EXAMPLE / "Pulumi.example.yaml").read_text().replace("tms-stack:namespace: triton",
                                                                   f"tms-stack:namespace: {namespace}")
    assert namespace in stack
    # kwok makes pods Ready in seconds; a stuck one should fail the run in minutes
    (dest / f"Pulumi.{STACK}.yaml").write_text(stack + "  tms-stack:deployTimeout: 5m\n")
    (dest / "tms_stack").symlink_to(ROOT / "tms_stack", target_is_directory=True)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "base"],
                   cwd=dest, check=True)
    return dest


def program_alone(repo: Path) -> dict[str, Any]:
    """The Python side of a deploy without the engine: `render_root` of the stack, then the program
    registering every resource under Pulumi's mocks (the SDK serialises each object's inputs as it
    does for the engine; the mock answers at once). Run in a fresh interpreter (`--program-only`)."""
    import pulumi

    from tms_stack.commands.render import render_root
    from tms_stack.deploy import program

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
            return f"{args.name}-id", args.inputs

        def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
            return {}, None

    pulumi.runtime.set_mocks(Mocks(), project="tms-stack", stack=STACK, preview=True)
    t0, c0 = time.monotonic(), time.process_time()
    groups = render_root(repo, STACK)
    t1, c1 = time.monotonic(), time.process_time()

    @pulumi.runtime.test
    def register() -> Any:
        built = program.build(groups)
        return pulumi.Output.all(*[c.urn for g in built.values() for c in g.objects.values()])

    register()
    t2, c2 = time.monotonic(), time.process_time()
    objects = sum(len(g.objects) for g in groups)
    return {"groups": len(groups), "objects": objects, "render_s": round(t1 - t0, 1), "render_cpu_s": round(c1 - c0, 1),
            "register_s": round(t2 - t1, 1), "register_cpu_s": round(c2 - c1, 1), "load": load()}


def _rename(urn: str, group: str, new: str) -> str:
    head, sep, name = urn.rpartition("::")
    if name == group:
        return f"{head}{sep}{new}"
    if name.startswith(group + ":"):
        return f"{head}{sep}{new}{name[len(group):]}"
    return urn


def scale_state(doc: dict[str, Any], factor: int, keep: set[str]) -> dict[str, Any]:
    """The exported state with every Lease and Pool group except `keep` copied `factor - 1` more
    times under new group names (`<group>-c<k>`): a state the size of a fleet `factor` times bigger,
    for measuring what a targeted up costs the engine at that size. The copies' objects do not exist
    on the API server; a targeted up never asks about a group it does not target."""
    import re

    from tms_stack.render.urns import group_of

    refs = [(res, group_of(res["urn"], STACK, "tms-stack")) for res in doc["deployment"]["resources"]]
    # copies from an earlier scale_state of the same stack go: the new ones replace them
    refs = [(res, ref) for res, ref in refs if ref is None or not re.search(r"-c\d+$", ref.name)]
    copies: list[dict[str, Any]] = []
    for k in range(2, factor + 1):
        for res, ref in refs:
            if ref is None or ref.kind not in ("Lease", "Pool") or ref.key in keep:
                continue
            new = f"{ref.name}-c{k}"
            copy = deepcopy(res)
            copy["urn"] = _rename(copy["urn"], ref.name, new)
            if copy.get("parent"):
                copy["parent"] = _rename(copy["parent"], ref.name, new)
            copy["dependencies"] = [_rename(u, ref.name, new) for u in copy.get("dependencies") or []]
            copy["propertyDependencies"] = {key: [_rename(u, ref.name, new) for u in urns]
                                            for key, urns in (copy.get("propertyDependencies") or {}).items()}
            copies.append(copy)
    doc["deployment"]["resources"] = [res for res, _ in refs] + copies
    return doc


def edit_one_lease(repo: Path, name: str, model: str) -> None:
    """Add a model to a lease: its desired-models ConfigMap changes, nothing else of it."""
    f = repo / "leases" / f"{name}.yaml"
    text = f.read_text()
    extra = f"    - name: {model}\n      uri: model://s3-models/bench/extra/{model}\n      backends: [python]\n"
    f.write_text(text.replace("  expires:", extra + "  expires:", 1))


def targets(repo: Path) -> list[str]:
    p = subprocess.run([TMS, "plan", "--base", "HEAD", "--stack", STACK, "--targets"], cwd=repo,
                       capture_output=True, text=True, check=True)
    return [line for line in p.stdout.splitlines() if line.strip()]


def configmap_has(kube: Kube, namespace: str, lease: str, text: str) -> Callable[[], bool]:
    def check() -> bool:
        cms = kube.list("v1", "ConfigMap", namespace, f"tms-stack.dev/lease={lease}")
        return any(text in json.dumps(cm.get("data") or {}) for cm in cms)
    return check


def bench_size(n: int, modes: list[str], parallel: int | None, tmp: Path, kube: Kube, env: dict[str, str],
               report: Callable[[str, dict[str, Any]], None], fast_create: int | None = None,
               empty_preview: bool = True, profile: Path | None = None, final_preview: bool = True,
               state_factor: int = 1) -> None:
    namespace = f"bench-{n}"
    kube.ensure_namespace(namespace)
    repo = prepare_repo(tmp / f"repo-{n}", n, namespace)
    create_admin_prerequisites(kube, SimpleNamespace(path=repo, namespace=namespace,
                                                     stack_file=repo / f"Pulumi.{STACK}.yaml"))
    state = tmp / f"state-{n}"
    state.mkdir()
    env = {**env, "PULUMI_BACKEND_URL": f"file://{state}"}
    par = [f"--parallel={parallel}"] if parallel else []

    def pulumi(*args: str, seen: Callable[[], bool] | None = None, label: str = "",
               extra_env: dict[str, str] | None = None) -> Run:
        run_env, prof = {**env, **(extra_env or {})}, []
        if profile and label:
            # the engine's own Go profiles (`--profiling`: <prefix>.<pid>.cpu/.mem/.trace) and a
            # cProfile of the program (SITECUSTOMIZE, written when the interpreter exits)
            prefix = profile / f"{n}-{label}"
            prof = [f"--profiling={prefix}"]
            run_env = {**run_env, "TMS_BENCH_PYPROFILE": str(prefix)}
        return Run(["pulumi", *args, *prof, "--non-interactive"], repo, run_env, seen)()

    alone = subprocess.run([sys.executable, __file__, "--program-only", str(repo)], capture_output=True, text=True,
                           check=True)
    report(f"{n} program alone (render + register under mocks)", json.loads(alone.stdout.splitlines()[-1]))
    pulumi("stack", "init", STACK)
    if empty_preview:
        report(f"{n} preview (empty stack)", pulumi("preview", *par).row())
    if fast_create:
        # setup only: no intermediate checkpoints (the file backend rewrites the whole state after
        # every step, quadratic in the stack size) and more parallel operations
        env_fast = {**env, "PULUMI_SKIP_CHECKPOINTS": "true"}
        run = Run(["pulumi", "up", "--yes", "--skip-preview", f"--parallel={fast_create}", "--non-interactive"],
                  repo, env_fast)()
        report(f"{n} up (create all, PULUMI_SKIP_CHECKPOINTS, --parallel={fast_create})", run.row())
    else:
        report(f"{n} up (create all)", pulumi("up", "--yes", "--skip-preview", *par).row())
    report(f"{n} preview (no change)", pulumi("preview", *par, label="preview-no-change").row())
    for i, mode in enumerate(modes):
        # bespoke leases (generate.py: i % 3 == 0) from the middle of the fleet: the program
        # registers leases in name order, so an early one would reach the server sooner than most
        lease = f"lease-{(n // 6 * 3 + 3 * i) % n:05d}"
        model = f"extra_{mode}"
        edit_one_lease(repo, lease, model)
        extra: list[str] = []
        mode_env = {"TMS_REGISTER_ALL": "1"} if mode == "targeted-all" else {}
        if mode.startswith("targeted"):
            start = time.monotonic()
            urns = targets(repo)
            report(f"{n} tms plan --targets", {"seconds": round(time.monotonic() - start, 1), "targets": urns,
                                               "load": load()})
            extra = [f"--target={u}" for u in urns]
        seen = configmap_has(kube, namespace, lease, model)
        report(f"{n} one lease changed, up ({mode})",
               pulumi("up", "--yes", "--skip-preview", *par, *extra, seen=seen, label=f"up-{mode}",
                      extra_env=mode_env).row())
        subprocess.run(["git", "commit", "-qam", f"edit {lease}"], cwd=repo, check=True)
    if final_preview:
        report(f"{n} preview (no change, after the edits)", pulumi("preview", "--expect-no-changes", *par).row())
    if state_factor > 1:
        lease = f"lease-{(n // 6 * 3 + 3 * len(modes)) % n:05d}"
        scaled_up(n, state_factor, lease, repo, tmp, kube, namespace, report, pulumi, par)


def scaled_up(n: int, factor: int, lease: str, repo: Path, tmp: Path, kube: Kube, namespace: str,
              report: Callable[[str, dict[str, Any]], None], pulumi: Callable[..., Run], par: list[str]) -> None:
    """The engine's side of a targeted up at `factor` times the fleet: the same program and
    repository, a state with every other group copied (scale_state)."""
    exported, scaled = tmp / f"state-{n}.json", tmp / f"state-{n}-x{factor}.json"
    report(f"{n} stack export", pulumi("stack", "export", "--file", str(exported)).row())
    doc = scale_state(json.loads(exported.read_text()), factor, {f"Lease/{lease}"})
    scaled.write_text(json.dumps(doc))
    count = len(doc["deployment"]["resources"])
    del doc
    report(f"{n} stack import of the state x{factor}",
           {**pulumi("stack", "import", "--file", str(scaled)).row(), "resources": count,
            "state_mib": round(scaled.stat().st_size / 2**20)})
    model = f"extra_x{factor}"
    edit_one_lease(repo, lease, model)
    urns = targets(repo)
    report(f"{n} one lease changed, state x{factor} ({count} resources), up (targeted)",
           {**pulumi("up", "--yes", "--skip-preview", *par, *[f"--target={u}" for u in urns],
                     seen=configmap_has(kube, namespace, lease, model), label=f"up-x{factor}").row(),
            "resources": count})
    subprocess.run(["git", "commit", "-qam", f"edit {lease}"], cwd=repo, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--leases", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--modes", nargs="+", default=["full", "targeted"], choices=["full", "targeted", "targeted-all"])
    ap.add_argument("--parallel", type=int, default=None, help="pulumi --parallel (default: the CLI's own, 8)")
    ap.add_argument("--fast-create", type=int, metavar="P", default=None,
                    help="create the stack with PULUMI_SKIP_CHECKPOINTS=true and --parallel=P (setup only)")
    ap.add_argument("--no-empty-preview", action="store_true", help="skip the preview of the empty stack")
    ap.add_argument("--no-sdk-debug", action="store_true",
                    help="drop the Python SDK's debug messages in the program (each a blocking call to the engine)")
    ap.add_argument("--no-engine-log", action="store_true",
                    help="keep the CLI from writing its automatic debug log ($PULUMI_HOME/logs)")
    ap.add_argument("--no-final-preview", action="store_true", help="skip the last no-change preview")
    ap.add_argument("--profile", type=Path, metavar="DIR",
                    help="profile the no-change preview and the one-lease ups: the engine's Go CPU/memory "
                         "profiles (pulumi --profiling) and a cProfile of the Python program, into DIR")
    ap.add_argument("--json", type=Path, help="append one JSON line per measurement here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (repos, state, logs)")
    ap.add_argument("--scale-state", type=int, metavar="K", default=1,
                    help="after the runs of the last size, copy its state K times over (a fleet K times "
                         "bigger as far as the engine's state goes) and time one targeted up in it")
    ap.add_argument("--hold", action="store_true",
                    help="after the measurements keep the control plane running and print the environment "
                         "for running pulumi by hand in the last stack; stop with Ctrl-C")
    ap.add_argument("--program-only", type=Path, metavar="REPO", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.program_only:
        print(json.dumps(program_alone(args.program_only)))
        return

    tools = build_tools.build(["kube-apiserver", "etcd", "kwok", "crds", "pulumi"])
    errors = {k: v["error"] for k, v in tools.items() if "error" in v}
    if errors:
        raise SystemExit("could not build the tools: " + "; ".join(f"{k}: {v}" for k, v in errors.items()))
    tmp = Path(tempfile.mkdtemp(prefix="tms-engine-scale-"))
    cp = ControlPlane(tmp / "control-plane", tools)
    (tmp / "control-plane").mkdir()

    def report(what: str, row: dict[str, Any]) -> None:
        print(f"{what}: {json.dumps(row)}", flush=True)
        if args.json:
            with args.json.open("a") as fh:
                fh.write(json.dumps({"what": what, **row}) + "\n")

    try:
        cp.start()
        kube = Kube(cp.server, ADMIN_TOKEN, str(cp.workdir / "pki" / "ca.crt"))
        import yaml as pyyaml

        crds = [d for f in tools["crds"]["files"] for d in pyyaml.safe_load_all(Path(f).read_text()) if d]
        kube.install_crds(crds)
        cp.add_fake_nodes(kube, count=2, capacity=NODE_CAPACITY)
        Run.watched = {name: proc.pid for name, proc in cp.procs}
        home = tmp / "pulumi-home"
        home.mkdir()
        if args.no_engine_log:
            # The CLI (3.260) writes every V(1)-V(10) log line, resource properties included, gzipped
            # into $PULUMI_HOME/logs/ on every command, with no switch to turn it off; a file in
            # place of that directory makes its MkdirAll fail, and the CLI carries on without it.
            (home / "logs").write_text("automatic engine logs disabled by bench/engine_scale.py\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "KUBE"))}
        env.update(
            PATH=os.pathsep.join([*tools["pulumi"]["bin_dirs"], str(ROOT / ".venv" / "bin"), env.get("PATH", "")]),
            PULUMI_HOME=str(home), PULUMI_CONFIG_PASSPHRASE="tms-bench", PULUMI_SKIP_UPDATE_CHECK="true",
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true", KUBECONFIG=str(cp.kubeconfig), NO_COLOR="1",
            PYTHONPATH=str(tmp / "site"),
        )
        if args.no_sdk_debug:
            env["TMS_BENCH_NO_SDK_DEBUG"] = "1"
        profile = args.profile.resolve() if args.profile else None
        if profile:
            profile.mkdir(parents=True, exist_ok=True)
        (tmp / "site").mkdir()
        (tmp / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
        print(f"control plane up; load {load()}; work dir {tmp}", flush=True)
        for n in args.leases:
            bench_size(n, args.modes, args.parallel, tmp, kube, env, report, args.fast_create,
                       not args.no_empty_preview, profile, not args.no_final_preview,
                       args.scale_state if n == args.leases[-1] else 1)
        if args.hold:
            n = args.leases[-1]
            held = {**env, "PULUMI_BACKEND_URL": f"file://{tmp / f'state-{n}'}"}
            (tmp / "env.sh").write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(held.items())))
            print(f"holding: the stack of {n} leases is in {tmp / f'repo-{n}'}; `. {tmp / 'env.sh'}` there "
                  "to run pulumi by hand; Ctrl-C to stop", flush=True)
            threading.Event().wait()
    finally:
        try:
            cp.stop()
        finally:  # a second Ctrl-C during the stop must not leave the state (hundreds of MB) behind
            if not args.keep:
                shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
