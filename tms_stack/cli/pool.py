"""`tms pool ...`: placement (lock, status, rebalance) and tmsctl's pool verbs (create, delete,
list, status) as edits of pools/<name>.yaml. Pool names are case-insensitive, as in TMS."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from tms_stack import API_VERSION
from tms_stack.cli.common import (
    EXIT_CONFLICT,
    OutputOpt,
    WaitOpt,
    resolve_root,
)
from tms_stack.cli.common import (
    PorcelainOpt as Porcelain,
)
from tms_stack.cli.common import (
    RootOpt as Root,
)
from tms_stack.cli.complete import PoolArg
from tms_stack.cli.tmsctl import (
    EXIT_REFUSED,
    Target,
    commit_hint,
    edit,
    edit_root,
    emit,
    fail,
    load,
    no_target,
    porcelain_word,
    repo_config,
    table,
)
from tms_stack.commands.edits import node_class_option, parse_resources
from tms_stack.logic.pool_lock import compute
from tms_stack.models.diagnostics import TmsError
from tms_stack.repo.loader import member_path
from tms_stack.repo.lockfile import lock_at, read_lock, write_lock
from tms_stack.rules.context import BASE_REF

pool_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Pools: shared Tritons with quota-based placement.")


def register(app: typer.Typer) -> None:
    app.add_typer(pool_app, name="pool")


@pool_app.command("lock")
def lock_cmd(
    root: Root = None,
    learn: Annotated[bool, typer.Option("--learn/--no-learn",
                                        help="read config.pbtxt of models with unknown backends (network)")] = True,
    base: Annotated[str | None, typer.Option(
        "--base", metavar="REF", help="derive the lock from the lock at git REF, as the review does (no network: "
        "only declared backends and those REF's lock knows)")] = None,
    porcelain: Porcelain = False, output: OutputOpt = "text", wait: WaitOpt = None,
) -> None:
    """(Re)compute pools/placement.lock.yaml. Existing placements stay put.

    With --base REF the previous placement is REF's lock (the pull request's base), which is what
    the review recomputes: run it when check reports lock.derived."""

    root = edit_root(root, wait)
    repo = load(root)
    try:
        previous = read_lock(root)
    except TmsError as exc:
        if any(d.rule == "lock.conflict" for d in exc.diagnostics):
            raise  # its own fix: pick a side first (docs/pools.md, "Lock conflicts")
        # An empty or broken lock (an older tms killed mid-write, a bad hand edit): its placements
        # are unknown, so every pooled lease is placed afresh, as check's message promises.
        typer.echo(f"warning: {' '.join(str(exc).split())}: placing every pooled lease afresh", err=True)
        previous = None
    learned: dict[str, list[str]] = {}
    if base is not None:
        if not BASE_REF.fullmatch(base):
            fail(f"--base {base!r} is not a git ref (letters, digits and . _ / @ ^ ~ -)")
        try:
            previous = lock_at(root, base)
        except TmsError as exc:
            fail(str(exc))
    elif learn:
        learned = _learn(repo, previous)
    result = compute(repo, previous, learned)
    if result.unplaced:
        for _pool, lease, reason in result.unplaced:
            typer.echo(f"error: lease {lease} cannot be placed: {reason}", err=True)
        raise typer.Exit(EXIT_REFUSED)
    changed = write_lock(root, result.lock)
    moved = sorted({m for r in result.results.values() for m in r.moved})

    def text() -> list[str]:
        out = [("wrote" if changed else "unchanged:") + " pools/placement.lock.yaml"
               + (f"; moved: {', '.join(moved)}" if moved else "")]
        return out + (["commit it: git add pools/placement.lock.yaml"] if changed else [])

    emit(output, porcelain, text,
         lambda: [f"lock:{'changed' if changed else 'unchanged'}", *(porcelain_word("moved", m) for m in moved)],
         lambda: {"changed": changed, "moved": moved})


def _learn(repo, previous):  # type: ignore[no-untyped-def]
    """Backends of pooled models neither declared nor cached, from their config.pbtxt."""

    cached = previous.backends if previous else {}
    wanted = sorted({m.uri for l in repo.all_leases() if l.spec.pool is not None for m in l.spec.models
                     if m.backends is None and m.uri not in cached})
    if not wanted:
        return {}
    typer.echo(f"learning backends of {len(wanted)} model(s) from their config.pbtxt ...", err=True)
    def progress(done: int, total: int, uri: str, outcome: str) -> None:
        typer.echo(f"  [{done}/{total}] {uri}: {outcome}", err=True)

    # Imported here: it brings requests (~0.1 s), which no other command of a `tms check` run needs.
    from tms_stack.outside.backends import learn_backends

    learned, errors = learn_backends(wanted, repo.repositories.spec, progress)
    for uri, err in errors.items():
        users = [f"lease {l.name} model {m.name}" for l in repo.all_leases() if l.spec.pool is not None
                 for m in l.spec.models if m.uri == uri]
        typer.echo(f"warning: could not learn the backends of {', '.join(users)} ({uri}): {err}; the backend stays "
                   "unknown, so the lease gets an instance of its own. Declaring `backends:` on the model "
                   "avoids this fetch", err=True)
    return learned


@pool_app.command("status")
def status_cmd(name: PoolArg, root: Root = None, porcelain: Porcelain = False, output: OutputOpt = "text",
               target: Target = None,
               verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                                     help="also each lease's owner, expiry and models")] = False,
               ) -> None:
    """Instances of a pool, their leases, used/free quota and backends (from the lock)."""

    no_target(target)
    root = resolve_root(root)
    repo = load(root)
    pool = _find_pool(repo, name)
    lock = read_lock(root)
    placement = lock.pools.get(pool.name) if lock else None
    if placement is None:
        fail(f"pool {pool.name} has no placement yet: run `tms pool lock`", EXIT_REFUSED)
    quotas = {l.name: l.spec.pool.quota for l in repo.all_leases() if l.spec.pool is not None}
    by_name = {l.name: l for l in repo.all_leases()}
    rows = []
    for inst in placement.instances:
        used = sum(quotas.get(n, 0) for n in inst.leases)
        row: dict[str, Any] = {"instance": pool.instance_name(inst.index), "leases": inst.leases, "used": used,
                               "free": pool.spec.instanceQuota - used, "backends": inst.backends}
        if verbose:
            row["details"] = [{"lease": n, "quota": quotas.get(n), "owner": by_name[n].metadata.owner,
                               "expires": by_name[n].spec.expires.isoformat(),
                               "models": [m.name for m in by_name[n].spec.models]}
                              for n in inst.leases if n in by_name]
        rows.append(row)

    def text() -> list[str]:
        out = [f"Pool {pool.name}", f"Instance quota: {pool.spec.instanceQuota}",
               f"Instances: {len(rows)} (min {pool.spec.instances.min}, max {pool.spec.instances.max})",
               f"Backend uniqueness: {'enabled' if pool.spec.backendUniqueness else 'disabled'}",
               "Instance Used Free Backends Leases"]
        for r in rows:
            out.append(f"{r['instance']} {r['used']} {r['free']} {','.join(r['backends']) or '-'} "
                       + (", ".join(f"{n}({quotas.get(n, '?')})" for n in r["leases"]) or "-"))
            for d in r.get("details", []):
                out.append(f"  {d['lease']} quota {d['quota']} owner {d['owner']} expires {d['expires']} "
                           f"models {','.join(d['models'])}")
        return out

    def lines() -> list[str]:
        out = [" ".join([porcelain_word("pool", pool.name), porcelain_word("quota", pool.spec.instanceQuota),
                         porcelain_word("instances", len(rows))])]
        for r in rows:
            out.append(" ".join([porcelain_word("instance", r["instance"]), porcelain_word("used", r["used"]),
                                 porcelain_word("free", r["free"]),
                                 porcelain_word("backends", ",".join(r["backends"]) or "-")]))
            out += [f"{porcelain_word('instance', r['instance'])} {porcelain_word('lease', n)}" for n in r["leases"]]
        return out

    emit(output, porcelain, text, lines,
         lambda: {"pool": pool.name, "instanceQuota": pool.spec.instanceQuota, "instances": rows})


@pool_app.command("rebalance")
def rebalance_cmd(
    root: Root = None,
    write: Annotated[bool, typer.Option("--write", help="write the compacted lock")] = False,
    porcelain: Porcelain = False, output: OutputOpt = "text", wait: WaitOpt = None,
) -> None:
    """Compute a compacted placement; shows how many leases would move (writes with --write)."""

    root = edit_root(root, wait) if write else resolve_root(root)
    repo = load(root)
    previous = read_lock(root)
    current = compute(repo, previous)
    compact = compute(repo, previous, compact=True)
    summary: dict[str, dict[str, Any]] = {}
    for pool, result in compact.results.items():
        before = len(current.lock.pools[pool].instances)
        summary[pool] = {"instances_before": before, "instances_after": len(result.placement.instances),
                         "moved": list(result.moved)}
    if write:
        write_lock(root, compact.lock)

    def text() -> list[str]:
        out = [f"{pool}: {s['instances_before']} -> {s['instances_after']} instances, "
               f"{len(s['moved'])} lease(s) would move" + (f": {', '.join(s['moved'])}" if s["moved"] else "")
               for pool, s in summary.items()]
        if write:
            out.append("wrote pools/placement.lock.yaml; moved leases' models load on their new instance. Commit it.")
        return out

    emit(output, porcelain, text,
         lambda: [" ".join([porcelain_word("pool", p), porcelain_word("before", s["instances_before"]),
                            porcelain_word("after", s["instances_after"]), porcelain_word("moved", ",".join(s["moved"]))])
                  for p, s in summary.items()],
         lambda: summary)


@pool_app.command("list")
def list_cmd(root: Root = None, porcelain: Porcelain = False, output: OutputOpt = "text",
             target: Target = None,
             verbose: Annotated[bool, typer.Option("--verbose", "-v", help="also backend uniqueness and the "
                                                   "leases' names")] = False) -> None:
    """Pools defined in pools/."""
    no_target(target)
    repo = load(resolve_root(root))
    rows = [{"name": p.name, "instanceQuota": p.spec.instanceQuota, "min": p.spec.instances.min,
             "max": p.spec.instances.max, "backendUniqueness": p.spec.backendUniqueness,
             "leases": sorted(l.name for l in repo.all_leases() if l.spec.pool and l.spec.pool.name == p.name)}
            for p in sorted(repo.all_pools(), key=lambda p: p.name.lower())]

    def text() -> list[str]:
        header = ["Pool", "Quota", "Instances", "Leases"] + (["BackendUniqueness", "LeaseNames"] if verbose else [])
        body = [[r["name"], str(r["instanceQuota"]), f"{r['min']}..{r['max']}", str(len(r["leases"]))]
                + ([str(r["backendUniqueness"]).lower(), ",".join(r["leases"]) or "-"] if verbose else [])
                for r in rows]
        return [*table(header, body), f"Count: {len(rows)}"]

    emit(output, porcelain, text,
         lambda: [" ".join([porcelain_word("pool", r["name"]), porcelain_word("quota", r["instanceQuota"]),
                            porcelain_word("instances", f"{r['min']},{r['max']}"),
                            porcelain_word("leases", len(r["leases"]))]) for r in rows],
         lambda: rows)


@pool_app.command("create")
def create_cmd(
    name: str,
    instance_quota: Annotated[int, typer.Option("--instance-quota", "-q", min=1)],
    instances: Annotated[str | None, typer.Option("--instances", "-c", help="<min>,<max>; * = default")] = None,
    disable_backend_uniqueness: Annotated[bool, typer.Option(
        "--disable-backend-uniqueness", help="let one instance hold models of different backends")] = False,
    triton_container: Annotated[str | None, typer.Option("--triton-container", metavar="IMAGE",
                                                         help="Triton image, on the allowlist")] = None,
    triton_resources: Annotated[str | None, typer.Option("--triton-resources",
                                help="cpu=N;gpu=N;system-memory=4Gi;shared-memory=256Mi;repository-size=2Gi")] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="who the pool's GPUs count against "
                                              "(default: TMS_OWNER or `owner:` in .tms.yaml)")] = None,
    node_class: Annotated[str | None, typer.Option("--node-class", metavar="CLASS",
                                                   help="a node class of the policies; default: the stack's")] = None,
    root: Root = None, porcelain: Porcelain = False, output: OutputOpt = "text", target: Target = None,
    wait: WaitOpt = None,
) -> None:
    """Write pools/<name>.yaml (checked before it is written)."""

    no_target(target)
    root = edit_root(root, wait)
    repo = load(root)
    same = next((p.name for p in repo.all_pools() if p.name.lower() == name.lower()), None)
    if same is not None:
        fail(f"a pool named {same!r} exists already: pool names are case-insensitive (TMS rule)", EXIT_CONFLICT)
    try:
        node_class = node_class_option(repo.limits.spec.nodeClasses, node_class)
    except TmsError as exc:
        fail(str(exc))
    # TMS: "*" or no --instances takes the server default; ours is min 0, max = the admin's
    # policies limits.pools.maxInstances.
    lo, hi = 0, repo.limits.spec.pools.maxInstances
    if instances:
        parts = [p.strip() for p in instances.split(",")]
        if len(parts) != 2 or not all(p == "*" or p.isdigit() for p in parts):
            fail(f"--instances {instances!r}: use <minimum>,<maximum> with whole numbers or * for the default "
                 "(e.g. 1,4 or 0,*)")
        lo = lo if parts[0] == "*" else int(parts[0])
        hi = hi if parts[1] == "*" else int(parts[1])
    spec: dict = {"instanceQuota": instance_quota, "instances": {"min": lo, "max": hi},
                  "backendUniqueness": not disable_backend_uniqueness}
    triton: dict = {}
    if triton_container:
        triton["image"] = triton_container
    if triton_resources:
        try:
            triton["resources"] = parse_resources(triton_resources)
        except TmsError as exc:
            fail(str(exc))
    if node_class:
        triton["nodeClass"] = node_class
    if triton:
        spec["triton"] = triton
    # Ours: a pool's GPUs count against its owner's budget (policies Limits spec.owners).
    owner = owner or os.environ.get("TMS_OWNER") or repo_config(root).get("owner")
    meta = {"name": name, **({"owner": owner} if owner else {})}
    doc = {"apiVersion": API_VERSION, "kind": "Pool", "metadata": meta, "spec": spec}

    try:
        path = member_path(root, "pools", name)  # validates the name before any file is touched
    except TmsError as exc:
        fail(f"refused: {exc}", EXIT_REFUSED)
    if path.exists():
        fail(f"{path} already exists", EXIT_CONFLICT)
    written = edit(root, {path: doc})
    emit(output, porcelain,
         lambda: [f"Pool {name}", f"Instance quota: {instance_quota}", f"Instances: {lo}..{hi}",
                  commit_hint(root, written)],
         lambda: [f"{porcelain_word('pool', name)} state:Created"],
         lambda: {"pool": name, "ok": True, "written": [str(p) for p in written]})


@pool_app.command("delete")
def delete_cmd(name: PoolArg, root: Root = None, porcelain: Porcelain = False, output: OutputOpt = "text",
               target: Target = None, wait: WaitOpt = None) -> None:
    """Delete pools/<name>.yaml; refused while leases still use the pool."""
    no_target(target)
    root = edit_root(root, wait)
    repo = load(root)
    pool = _find_pool(repo, name)
    users = sorted(l.name for l in repo.all_leases() if l.spec.pool and l.spec.pool.name == pool.name)
    if users:
        fail(f"pool {pool.name} is used by {', '.join(users)}: release those leases first", EXIT_REFUSED)
    path = root / repo.pools[_stem(repo, pool.name)].file
    written = edit(root, {path: None})
    emit(output, porcelain, lambda: [f"Deleted pool {pool.name}", commit_hint(root, written)],
         lambda: [f"{porcelain_word('pool', pool.name)} state:Deleted"],
         lambda: {"pool": pool.name, "deleted": True, "written": [str(p) for p in written]})


def _stem(repo, name):  # type: ignore[no-untyped-def]
    return next(stem for stem, loaded in repo.pools.items() if loaded.model.name == name)


def _find_pool(repo, name: str):  # type: ignore[no-untyped-def]
    for pool in repo.all_pools():
        if pool.name.lower() == name.lower():
            return pool
    fail(f"no pool named {name!r} (pools: {', '.join(p.name for p in repo.all_pools()) or 'none'})", EXIT_REFUSED)
