"""`tms pool ...`: placement (lock, status, rebalance) and tmsctl-style pool file edits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from tms_stack.diagnostics import TmsError

pool_app = typer.Typer(no_args_is_help=True, help="Pools: shared Tritons with quota-based placement.")
Root = Annotated[Path, typer.Option("--root", help="repository root")]
Porcelain = Annotated[bool, typer.Option("--porcelain", "-z", help="machine-readable output (JSON)")]


def register(app: typer.Typer) -> None:
    app.add_typer(pool_app, name="pool")


def _load(root: Path):  # type: ignore[no-untyped-def]
    from tms_stack.loader import load_repository

    repo = load_repository(root)
    if repo.unreadable:
        raise typer.BadParameter("unreadable files: " + "; ".join(f"{d.location()}: {d.message}" for d in repo.unreadable))
    return repo


@pool_app.command("lock")
def lock_cmd(
    root: Root = Path("."),
    learn: Annotated[bool, typer.Option("--learn/--no-learn",
                                        help="read config.pbtxt of models with unknown backends (network)")] = True,
    porcelain: Porcelain = False,
) -> None:
    """(Re)compute pools/placement.lock.yaml. Existing placements stay put."""
    from tms_stack.lockfile import read_lock, write_lock
    from tms_stack.pool_lock import compute

    repo = _load(root)
    previous = read_lock(root)
    learned: dict[str, list[str]] = {}
    if learn:
        learned = _learn(repo, previous)
    result = compute(repo, previous, learned)
    if result.unplaced:
        for _pool, lease, reason in result.unplaced:
            typer.echo(f"error: lease {lease} cannot be placed: {reason}", err=True)
        raise typer.Exit(1)
    changed = write_lock(root, result.lock)
    moved = sorted({m for r in result.results.values() for m in r.moved})
    if porcelain:
        typer.echo(json.dumps({"changed": changed, "moved": moved}))
        return
    typer.echo(("wrote" if changed else "unchanged:") + " pools/placement.lock.yaml"
               + (f"; moved: {', '.join(moved)}" if moved else ""))
    if changed:
        typer.echo("commit it: git add pools/placement.lock.yaml")


def _learn(repo, previous):  # type: ignore[no-untyped-def]
    """Backends of pooled models neither declared nor cached, from their config.pbtxt."""
    from tms_stack.backends import learn_backends

    cached = previous.backends if previous else {}
    wanted = sorted({m.uri for l in repo.all_leases() if l.spec.pool is not None for m in l.spec.models
                     if m.backends is None and m.uri not in cached})
    if not wanted:
        return {}
    typer.echo(f"learning backends of {len(wanted)} model(s) from their config.pbtxt ...", err=True)
    def progress(done: int, total: int, uri: str, outcome: str) -> None:
        typer.echo(f"  [{done}/{total}] {uri}: {outcome}", err=True)

    learned, errors = learn_backends(wanted, repo.repositories.spec, progress)
    for uri, err in errors.items():
        typer.echo(f"warning: {uri}: {err} (backend stays unknown: the lease gets an instance of its own)", err=True)
    return learned


@pool_app.command("status")
def status_cmd(name: str, root: Root = Path("."), porcelain: Porcelain = False,
               verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                                     help="also each lease's owner, expiry and models")] = False,
               ) -> None:
    """Instances of a pool, their leases, used/free quota and backends (from the lock)."""
    from tms_stack.lockfile import read_lock

    repo = _load(root)
    pool = _find_pool(repo, name)
    lock = read_lock(root)
    placement = lock.pools.get(pool.name) if lock else None
    if placement is None:
        raise typer.BadParameter(f"pool {pool.name} has no placement yet: run `tms pool lock`")
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
    if porcelain:
        typer.echo(json.dumps({"pool": pool.name, "instanceQuota": pool.spec.instanceQuota,
                               "instances": rows}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"pool {pool.name}: instanceQuota {pool.spec.instanceQuota}, "
                        f"instances {len(rows)} (min {pool.spec.instances.min}, max {pool.spec.instances.max})")
    for col in ("instance", "leases", "used", "free", "backends"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["instance"], ", ".join(f"{n} ({quotas.get(n, '?')})" for n in r["leases"]) or "-",
                      str(r["used"]), str(r["free"]), ", ".join(r["backends"]) or "-")
    Console(width=140).print(table)
    if verbose:
        for r in rows:
            for d in r["details"]:
                typer.echo(f"{r['instance']}: {d['lease']} quota {d['quota']} owner {d['owner']} "
                           f"expires {d['expires']} models {', '.join(d['models'])}")


@pool_app.command("rebalance")
def rebalance_cmd(
    root: Root = Path("."),
    write: Annotated[bool, typer.Option("--write", help="write the compacted lock")] = False,
    porcelain: Porcelain = False,
) -> None:
    """Compute a compacted placement; shows how many leases would move (writes with --write)."""
    from tms_stack.lockfile import read_lock, write_lock
    from tms_stack.pool_lock import compute

    repo = _load(root)
    previous = read_lock(root)
    current = compute(repo, previous)
    compact = compute(repo, previous, compact=True)
    summary: dict[str, dict[str, Any]] = {}
    for pool, result in compact.results.items():
        before = len(current.lock.pools[pool].instances)
        summary[pool] = {"instances_before": before, "instances_after": len(result.placement.instances),
                         "moved": list(result.moved)}
    if porcelain:
        typer.echo(json.dumps(summary, indent=2))
    else:
        for pool, s in summary.items():
            typer.echo(f"{pool}: {s['instances_before']} -> {s['instances_after']} instances, "
                       f"{len(s['moved'])} lease(s) would move" + (f": {', '.join(s['moved'])}" if s["moved"] else ""))
    if write:
        write_lock(root, compact.lock)
        if not porcelain:
            typer.echo("wrote pools/placement.lock.yaml; moved leases' models load on their new instance. "
                       "Commit it.")


@pool_app.command("list")
def list_cmd(root: Root = Path("."), porcelain: Porcelain = False,
             verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    """Pools defined in pools/."""
    repo = _load(root)
    rows = [{"name": p.name, "instanceQuota": p.spec.instanceQuota, "min": p.spec.instances.min,
             "max": p.spec.instances.max, "backendUniqueness": p.spec.backendUniqueness,
             "leases": sorted(l.name for l in repo.all_leases() if l.spec.pool and l.spec.pool.name == p.name)}
            for p in sorted(repo.all_pools(), key=lambda p: p.name.lower())]
    if porcelain:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        line = f"{r['name']}  quota/instance={r['instanceQuota']}  instances={r['min']}..{r['max']}  leases={len(r['leases'])}"
        if verbose:
            line += f"  backendUniqueness={r['backendUniqueness']}  [{', '.join(r['leases'])}]"
        typer.echo(line)


@pool_app.command("create")
def create_cmd(
    name: str,
    instance_quota: Annotated[int, typer.Option("--instance-quota", "-q")],
    instances: Annotated[str | None, typer.Option("--instances", "-c", help="<min>,<max>; * = default")] = None,
    disable_backend_uniqueness: Annotated[bool, typer.Option("--disable-backend-uniqueness")] = False,
    triton_container: Annotated[str | None, typer.Option("--triton-container")] = None,
    triton_resources: Annotated[str | None, typer.Option("--triton-resources",
                                help="cpu=N;gpu=N;system-memory=4Gi;shared-memory=256Mi;repository-size=2Gi")] = None,
    root: Root = Path("."),
    porcelain: Porcelain = False,
) -> None:
    """Write pools/<name>.yaml (checked before it is written)."""
    from tms_stack.edits import checked_write, parse_resources

    # TMS: "*" or no --instances takes the server default; ours is min 0, max = the admin's
    # policies limits.pools.maxInstances.
    lo, hi = 0, _load(root).limits.spec.pools.maxInstances
    if instances:
        parts = [p.strip() for p in instances.split(",")]
        if len(parts) != 2 or not all(p == "*" or p.isdigit() for p in parts):
            raise typer.BadParameter(f"--instances {instances!r}: use <minimum>,<maximum> with whole numbers "
                                     "or * for the default (e.g. 1,4 or 0,*)")
        lo = lo if parts[0] == "*" else int(parts[0])
        hi = hi if parts[1] == "*" else int(parts[1])
    spec: dict = {"instanceQuota": instance_quota, "instances": {"min": lo, "max": hi},
                  "backendUniqueness": not disable_backend_uniqueness}
    triton: dict = {}
    if triton_container:
        triton["image"] = triton_container
    if triton_resources:
        triton["resources"] = parse_resources(triton_resources)
    if triton:
        spec["triton"] = triton
    doc = {"apiVersion": "tms-stack/v1", "kind": "Pool", "metadata": {"name": name}, "spec": spec}
    path = root / "pools" / f"{name}.yaml"
    if path.exists():
        raise typer.BadParameter(f"{path} already exists")
    _run_edit(lambda: checked_write(root, {path: doc}), porcelain, f"created {path}")


@pool_app.command("delete")
def delete_cmd(name: str, root: Root = Path("."), porcelain: Porcelain = False) -> None:
    """Delete pools/<name>.yaml; refused while leases still use the pool."""
    from tms_stack.edits import checked_write

    repo = _load(root)
    pool = _find_pool(repo, name)
    users = sorted(l.name for l in repo.all_leases() if l.spec.pool and l.spec.pool.name == pool.name)
    if users:
        raise typer.BadParameter(f"pool {pool.name} is used by {', '.join(users)}: release those leases first")
    path = root / repo.pools[_stem(repo, pool.name)].file
    _run_edit(lambda: checked_write(root, {path: None}), porcelain, f"deleted {path}")


def _stem(repo, name):  # type: ignore[no-untyped-def]
    return next(stem for stem, loaded in repo.pools.items() if loaded.model.name == name)


def _find_pool(repo, name: str):  # type: ignore[no-untyped-def]
    for pool in repo.all_pools():
        if pool.name.lower() == name.lower():
            return pool
    raise typer.BadParameter(f"no pool named {name!r} (pools: {', '.join(p.name for p in repo.all_pools()) or 'none'})")


def _run_edit(fn, porcelain: bool, message: str) -> None:  # type: ignore[no-untyped-def]
    try:
        written = [_rel(Path(p)) for p in fn()]
    except TmsError as exc:
        typer.echo(f"refused: {exc}", err=True)
        raise typer.Exit(1) from None
    lock_updated = any(Path(p).name == "placement.lock.yaml" for p in written)
    if porcelain:
        typer.echo(json.dumps({"ok": True, "message": message, "written": [str(p) for p in written]}))
    else:
        typer.echo(message + ("; pools/placement.lock.yaml updated" if lock_updated else "")
                   + ". Commit the change: git add " + " ".join(str(p) for p in written))


def _rel(path: Path) -> Path:
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path
