"""The tmsctl verbs as file edits: `tms lease ...`, `tms lease name ...`, `tms allowlist ...`.

Every edit is tried on a scratch copy and checked first (edits.checked_write); comments and
formatting of edited files are kept (ruamel.yaml round-trip, or a one-line rewrite)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from tms_stack.diagnostics import TmsError

lease_app = typer.Typer(no_args_is_help=True, help="Leases: models on a Triton, until they expire.")
name_app = typer.Typer(no_args_is_help=True, help="Lease names: stable DNS aliases that can move.")
allow_app = typer.Typer(no_args_is_help=True, help="The Triton image allowlist.")
lease_app.add_typer(name_app, name="name")
Root = Annotated[Path, typer.Option("--root", help="repository root")]
Porcelain = Annotated[bool, typer.Option("--porcelain", "-z", help="machine-readable output (JSON)")]


def register(app: typer.Typer) -> None:
    app.add_typer(lease_app, name="lease")
    app.add_typer(allow_app, name="allowlist")


def _done(porcelain: bool, message: str, **data: Any) -> None:
    if porcelain:
        typer.echo(json.dumps({"ok": True, "message": message, **data}))
    else:
        typer.echo(f"{message}. Commit the change (git add -A leases pools policies && git commit).")


def _edit(root: Path, changes: dict[Path, Any]) -> None:
    from tms_stack.edits import checked_write

    try:
        checked_write(root, changes)
    except TmsError as exc:
        typer.echo(f"refused: {exc}", err=True)
        raise typer.Exit(1) from None


def _repo(root: Path):  # type: ignore[no-untyped-def]
    from tms_stack.loader import load_repository

    return load_repository(root)


def _lease_file(root: Path, name: str) -> Path:
    path = root / "leases" / f"{name}.yaml"
    if not path.exists():
        raise typer.BadParameter(f"no lease {name!r} (leases/{name}.yaml does not exist)")
    return path


def _parse_model(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in ("name", "uri", "count", "backend"):
            raise typer.BadParameter(f"-m {text!r}: use name=<model>,uri=<uri>[,count=<n>][,backend=<b>]")
        key, value = key.strip(), value.strip()
        if key == "count":
            out["count"] = int(value)
        elif key == "backend":
            out.setdefault("backends", []).append(value)
        else:
            out[key] = value
    if "name" not in out or "uri" not in out:
        raise typer.BadParameter(f"-m {text!r}: name= and uri= are required")
    return out


@lease_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="lease name (DNS label); the file is leases/<name>.yaml")],
    model: Annotated[list[str], typer.Option("--model", "-m", help="name=<model>,uri=<uri>[,count=N]; repeat, in load order")],
    owner: Annotated[str, typer.Option("--owner", envvar="TMS_OWNER", help="accountable team")],
    duration: Annotated[str | None, typer.Option(help="e.g. 8h; default: the admin default")] = None,
    triton_image: Annotated[str | None, typer.Option("--triton-image")] = None,
    triton_resources: Annotated[str | None, typer.Option("--triton-resources",
                                help="cpu=N;gpu=N;system-memory=..;shared-memory=..;repository-size=..")] = None,
    enable_autoscaling: Annotated[bool, typer.Option("--enable-autoscaling")] = False,
    autoscaling_min_replicas: Annotated[int | None, typer.Option("--autoscaling-min-replicas")] = None,
    autoscaling_max_replicas: Annotated[int | None, typer.Option("--autoscaling-max-replicas")] = None,
    autoscaling_metric: Annotated[list[str] | None, typer.Option("--autoscaling-metric",
                                  help="metric=threshold, e.g. queueTime=200ms or gpuUtilization=80")] = None,
    triton_pool: Annotated[str | None, typer.Option("--triton-pool", "-p")] = None,
    quota: Annotated[int | None, typer.Option("--quota")] = None,
    auto_renew: Annotated[bool, typer.Option("--auto-renew")] = False,
    activity_window: Annotated[str | None, typer.Option("--activity-window")] = None,
    renewal_duration: Annotated[str | None, typer.Option("--renewal-duration")] = None,
    lease_name: Annotated[list[str] | None, typer.Option("--name", help="alias; repeatable")] = None,
    root: Root = Path("."),
    porcelain: Porcelain = False,
    now: Annotated[str | None, typer.Option(hidden=True)] = None,
) -> None:
    """Write leases/<name>.yaml (checked before it is written)."""
    from tms_stack import units
    from tms_stack.cli.app import parse_now
    from tms_stack.edits import parse_resources

    path = root / "leases" / f"{name}.yaml"
    if path.exists():
        raise typer.BadParameter(f"lease {name!r} exists already ({path}); use `tms lease renew`")
    repo = _repo(root)
    moment = parse_now(now) or datetime.now(UTC)
    length = units.parse_duration(duration or repo.limits.spec.leases.duration.default)
    from ruamel.yaml.scalarstring import PlainScalarString

    expires = (moment + length).replace(microsecond=0)
    # Written as people write it (2026-11-22T08:00:00Z), unquoted so YAML reads a timestamp.
    spec: dict[str, Any] = {"models": [_parse_model(m) for m in model],
                            "expires": PlainScalarString(f"{expires:%Y-%m-%dT%H:%M:%SZ}")}
    if auto_renew:
        renew: dict[str, Any] = {}
        if activity_window:
            renew["activityWindow"] = activity_window
        if renewal_duration:
            renew["renewalDuration"] = renewal_duration
        spec["autoRenew"] = renew
    if lease_name:
        spec["names"] = list(lease_name)
    if triton_pool:
        if triton_image or triton_resources or enable_autoscaling:
            raise typer.BadParameter("--triton-pool is exclusive with --triton-image/--triton-resources/--enable-autoscaling")
        if quota is None:
            raise typer.BadParameter("--triton-pool needs --quota")
        spec["pool"] = {"name": triton_pool, "quota": quota}
    else:
        triton: dict[str, Any] = {}
        if triton_image:
            triton["image"] = triton_image
        if triton_resources:
            triton["resources"] = parse_resources(triton_resources)
        if enable_autoscaling:
            auto: dict[str, Any] = {}
            if autoscaling_min_replicas is not None:
                auto["minReplicas"] = autoscaling_min_replicas
            if autoscaling_max_replicas is not None:
                auto["maxReplicas"] = autoscaling_max_replicas
            metrics: dict[str, Any] = {}
            for item in autoscaling_metric or []:
                key, _, value = item.partition("=")
                metrics[key.strip()] = {"enabled": True, **({"threshold": int(value) if value.isdigit() else value}
                                                            if value else {})}
            if metrics:
                auto["metrics"] = metrics
            triton["autoscaling"] = auto
        if triton:
            spec["triton"] = triton
    doc = {"apiVersion": "tms-stack/v1", "kind": "Lease", "metadata": {"name": name, "owner": owner}, "spec": spec}
    import re

    from tms_stack.edits import dump_yaml

    # ruamel quotes a string that looks like a timestamp; unquoted, YAML reads it as one (as intended).
    text = re.sub(r"^(\s*expires: )'([0-9TZ:-]+)'$", r"\1\2", dump_yaml(doc), flags=re.M)
    _edit(root, {path: text})
    _done(porcelain, f"created leases/{name}.yaml, expires {spec['expires']}", lease=name,
          expires=str(spec["expires"]))


@lease_app.command("list")
def list_(root: Root = Path("."), porcelain: Porcelain = False,
          owner: Annotated[str | None, typer.Option(help="only this owner's leases")] = None) -> None:
    """Leases in leases/, soonest expiry first."""
    repo = _repo(root)
    rows = sorted(({"name": l.name, "owner": l.metadata.owner, "expires": f"{l.spec.expires:%Y-%m-%dT%H:%M:%SZ}",
                    "pool": l.spec.pool.name if l.spec.pool else None, "models": [m.name for m in l.spec.models],
                    "names": list(l.spec.names)}
                   for l in repo.all_leases() if owner is None or l.metadata.owner == owner),
                  key=lambda r: (r["expires"], r["name"]))
    if porcelain:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        where = f"pool {r['pool']}" if r["pool"] else "bespoke"
        typer.echo(f"{r['name']:<24} {r['owner']:<16} {r['expires']}  {where:<28} {', '.join(r['models'])}")


@lease_app.command("status")
def status(name: str, root: Root = Path("."), porcelain: Porcelain = False,
           triton_url: Annotated[str | None, typer.Option(envvar="TMS_TRITON_URL_TEMPLATE",
                                 help="e.g. http://{service}.{namespace}.svc:8000; checks model readiness")] = None,
           namespace: Annotated[str, typer.Option(envvar="TMS_NAMESPACE")] = "default") -> None:
    """The lease as written, plus live model readiness from Triton when reachable."""
    import requests

    _lease_file(root, name)
    repo = _repo(root)
    lease = repo.lease(name)
    info: dict[str, Any] = {"name": name, "owner": lease.metadata.owner,
                            "expires": f"{lease.spec.expires:%Y-%m-%dT%H:%M:%SZ}",
                            "models": [m.name for m in lease.spec.models], "names": list(lease.spec.names),
                            "service": f"{name}.{namespace}.svc.cluster.local:8001"}
    live: dict[str, Any] = {}
    if triton_url:
        base = triton_url.format(lease=name, service=name, namespace=namespace).rstrip("/")
        try:
            live = {m: requests.get(f"{base}/v2/models/{m}/ready", timeout=5).status_code == 200
                    for m in info["models"]}
            info["live"] = {"triton": base, "ready": live}
        except requests.RequestException as exc:
            info["live"] = {"triton": base, "error": f"unreachable ({exc.__class__.__name__})"}
    else:
        info["live"] = {"error": "no Triton URL given (--triton-url): showing the file only"}
    if porcelain:
        typer.echo(json.dumps(info, indent=2))
        return
    for key in ("name", "owner", "expires", "service"):
        typer.echo(f"{key:<8} {info[key]}")
    typer.echo(f"models   {', '.join(info['models'])}")
    if info["names"]:
        typer.echo(f"names    {', '.join(info['names'])}")
    if "ready" in info["live"]:
        typer.echo("live     " + ", ".join(f"{m} {'READY' if ok else 'NOT READY'}" for m, ok in live.items()))
    else:
        typer.echo(f"live     {info['live']['error']}")


@lease_app.command("renew")
def renew(name: str, duration: Annotated[str | None, typer.Option(help="from now; default: admin default")] = None,
          root: Root = Path("."), porcelain: Porcelain = False,
          now: Annotated[str | None, typer.Option(hidden=True)] = None) -> None:
    """Move `expires` forward (only that line of the file changes)."""
    from tms_stack import units
    from tms_stack.cli.app import parse_now
    from tms_stack.prune import rewrite_expires

    path = _lease_file(root, name)
    repo = _repo(root)
    moment = parse_now(now) or datetime.now(UTC)
    new = (moment + units.parse_duration(duration or repo.limits.spec.leases.duration.default)).replace(microsecond=0)
    line = repo.leases[name].doc.key_pos(("spec", "expires")).line
    _edit(root, {path: rewrite_expires(path.read_text(), line, new)})
    _done(porcelain, f"renewed {name} until {new:%Y-%m-%dT%H:%M:%SZ}", lease=name, expires=f"{new:%Y-%m-%dT%H:%M:%SZ}")


@lease_app.command("release")
def release(name: str, root: Root = Path("."), porcelain: Porcelain = False) -> None:
    """Delete the lease file (its names go with it)."""
    path = _lease_file(root, name)
    _edit(root, {path: None})
    _done(porcelain, f"released {name} (deleted leases/{name}.yaml)", lease=name)


def _names_edit(root: Path, lease: str, add: str | None = None, remove: str | None = None) -> str:
    from tms_stack.yamlio import dump_rt, load_rt

    path = _lease_file(root, lease)
    data, rt = load_rt(path)
    names = data["spec"].get("names")
    if names is None:
        from ruamel.yaml.comments import CommentedSeq

        names = CommentedSeq()
        names.fa.set_flow_style()
        data["spec"].insert(list(data["spec"]).index("expires") + 1, "names", names)
    if add is not None:
        if add in names:
            raise typer.BadParameter(f"{lease} already has the name {add!r}")
        names.append(add)
    if remove is not None:
        if remove not in names:
            raise typer.BadParameter(f"{lease} has no name {remove!r}")
        names.remove(remove)
        if not names:
            del data["spec"]["names"]
    return dump_rt(data, rt)


def _owner_of_name(root: Path, alias: str) -> str | None:
    for lease in _repo(root).all_leases():
        if alias in lease.spec.names:
            return lease.name
    return None


@name_app.command("create")
def name_create(alias: str, lease: Annotated[str, typer.Option("--lease", "-l")], root: Root = Path("."),
                porcelain: Porcelain = False) -> None:
    """Give a lease a stable alias (a Service named like the alias)."""
    _edit(root, {_lease_file(root, lease): _names_edit(root, lease, add=alias)})
    _done(porcelain, f"{alias} now points to {lease}", name=alias, lease=lease)


@name_app.command("move")
def name_move(alias: str, lease: Annotated[str, typer.Option("--lease", "-l", help="the new lease")],
              root: Root = Path("."), porcelain: Porcelain = False) -> None:
    """Point an alias at another lease (one change: the Service's selector)."""
    current = _owner_of_name(root, alias)
    if current is None:
        raise typer.BadParameter(f"no lease has the name {alias!r}; use `tms lease name create`")
    if current == lease:
        raise typer.BadParameter(f"{alias} already points to {lease}")
    changes = {_lease_file(root, current): _names_edit(root, current, remove=alias),
               _lease_file(root, lease): _names_edit(root, lease, add=alias)}
    _edit(root, changes)
    _done(porcelain, f"{alias} moved from {current} to {lease}", name=alias, lease=lease, previous=current)


@name_app.command("delete")
def name_delete(alias: str, root: Root = Path("."), porcelain: Porcelain = False) -> None:
    current = _owner_of_name(root, alias)
    if current is None:
        raise typer.BadParameter(f"no lease has the name {alias!r}")
    _edit(root, {_lease_file(root, current): _names_edit(root, current, remove=alias)})
    _done(porcelain, f"deleted the name {alias} (was on {current})", name=alias)


@name_app.command("list")
def name_list(root: Root = Path("."), porcelain: Porcelain = False) -> None:
    rows = sorted((alias, l.name) for l in _repo(root).all_leases() for alias in l.spec.names)
    if porcelain:
        typer.echo(json.dumps([{"name": a, "lease": l} for a, l in rows], indent=2))
        return
    for alias, lease in rows:
        typer.echo(f"{alias:<24} -> {lease}")


def _allowlist(root: Path) -> Path:
    path = root / "policies" / "allowlist.yaml"
    if not path.exists():
        raise typer.BadParameter("policies/allowlist.yaml does not exist")
    return path


@allow_app.command("add")
def allow_add(image: str, root: Root = Path("."), porcelain: Porcelain = False) -> None:
    """Allow a Triton image for leases and pools."""
    from tms_stack.yamlio import dump_rt, load_rt

    path = _allowlist(root)
    data, rt = load_rt(path)
    images = data["spec"].setdefault("images", [])
    if image in images:
        raise typer.BadParameter(f"{image} is already allowed")
    images.append(image)
    _edit(root, {path: dump_rt(data, rt)})
    _done(porcelain, f"allowed {image}", image=image)


@allow_app.command("rm")
def allow_rm(image: str, root: Root = Path("."), porcelain: Porcelain = False) -> None:
    """Disallow an image; refused while a lease or pool uses it."""
    from tms_stack.yamlio import dump_rt, load_rt

    path = _allowlist(root)
    data, rt = load_rt(path)
    images = data["spec"].get("images", [])
    if image not in images:
        raise typer.BadParameter(f"{image} is not on the allowlist")
    images.remove(image)
    _edit(root, {path: dump_rt(data, rt)})
    _done(porcelain, f"removed {image} from the allowlist", image=image)


@allow_app.command("list")
def allow_list(root: Root = Path("."), porcelain: Porcelain = False) -> None:
    spec = _repo(root).allowlist.spec
    if porcelain:
        typer.echo(json.dumps({"default": spec.default, "images": spec.images}, indent=2))
        return
    for image in spec.images:
        typer.echo(image + ("  (default)" if image == spec.default else ""))
