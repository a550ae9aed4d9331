"""`tms lease create/list/status/renew/release` (and `tms leases`): tmsctl's lease verbs as edits of
leases/<name>.yaml, with tmsctl's flags, implications and refusals (docs/tmsctl.md).

Every edit is tried on a scratch copy and checked first (edits.checked_write); comments and
formatting of edited files are kept. `lease name ...` is in leasename.py, `allowlist` in
allowlist.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from tms_stack import API_VERSION
from tms_stack.cli.app import parse_now
from tms_stack.cli.common import (
    EXIT_CONFLICT,
    EXIT_USAGE,
    OutputOpt,
    StackOpt,
    WaitOpt,
    require_stack,
    resolve_root,
    wants_json,
)
from tms_stack.cli.common import (
    PorcelainOpt as Porcelain,
)
from tms_stack.cli.common import (
    RootOpt as Root,
)
from tms_stack.cli.complete import LeaseArg
from tms_stack.cli.leasestatus import show
from tms_stack.cli.tmsctl import (
    EXIT_REFUSED,
    Target,
    commit_hint,
    default_owner,
    edit,
    edit_root,
    emit,
    fail,
    lease_path,
    load,
    namespace_of,
    no_target,
    porcelain_word,
    table,
    unreadable_message,
    valid_lease,
)
from tms_stack.commands.edits import dump_yaml, node_class_option, parse_resources
from tms_stack.commands.lease import timestamp, triton_host
from tms_stack.commands.prune_apply import rewrite_expires
from tms_stack.logic.resolve import pool_node_class
from tms_stack.models import units
from tms_stack.models.diagnostics import TmsError
from tms_stack.outside.status import ClusterUnreachable, ClusterView, assess, read_deployments
from tms_stack.render import instance_of
from tms_stack.repo.leasefiles import new_lease_path
from tms_stack.repo.lockfile import read_lock
from tms_stack.repo.stack import load_stack_settings

lease_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Leases: models on a Triton, until they expire.")


def register(app: typer.Typer) -> None:
    app.add_typer(lease_app, name="lease")
    # tmsctl: `tmsctl leases` is `tmsctl lease list`.
    app.command("leases", help="Same as `tms lease list`.")(list_)


class MetricState(str, Enum):
    enable = "enable"
    disable = "disable"
    server_default = "server-default"


METRICS = {"cpu-utilization": "cpuUtilization", "gpu-utilization": "gpuUtilization",
           "queue-time": "queueTime", "queue-time-percentage": "queueTimePercentage"}
MODEL_KEYS = ("name", "uri", "count", "backend")


def parse_model(text: str) -> dict[str, Any]:
    """tmsctl's `-m name=<model>,uri=<uri>[,count=<n>]` (ours: `backend=<b>`, repeatable)."""
    out: dict[str, Any] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in MODEL_KEYS:
            fail(f"-m {text!r}: {part.strip()!r} is not a model field: use name=<model>,uri=<uri>[,count=<n>]"
                 "[,backend=<backend>]")
        if key == "count":
            if not value.isdigit():
                fail(f"-m {text!r}: count must be a whole number (0: the model's own config)")
            out["count"] = int(value)
        elif key == "backend":
            out.setdefault("backends", []).append(value)
        else:
            out[key] = value
    if "name" not in out or "uri" not in out:
        fail(f"-m {text!r}: name= and uri= are required (tmsctl: name and uri are required)")
    return out


def generated_name(model_name: str, taken: set[str]) -> str:
    """A lease name from the first model's name (TMS generated ids; ours must be a DNS label)."""
    base = re.sub(r"[^a-z0-9-]+", "-", model_name.lower()).strip("-")
    if not base or not base[0].isalpha():
        base = f"lease-{base}".rstrip("-")
    base = base[:56].rstrip("-")
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


def _metric_options(states: dict[str, MetricState | None], thresholds: dict[str, str | None]) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    for flag, key in METRICS.items():
        entry: dict[str, Any] = {}
        state = states[flag]
        if state is MetricState.enable:
            entry["enabled"] = True
        elif state is MetricState.disable:
            entry["enabled"] = False
        threshold = thresholds[flag]
        if threshold is not None:
            if key == "queueTime":
                entry["threshold"] = int(threshold) if threshold.isdigit() else threshold
            else:
                try:
                    value = float(threshold)
                except ValueError:
                    fail(f"--autoscaling-metric-{flag}-threshold {threshold!r}: a number in (0, 100]")
                if not 0 < value <= 100:
                    fail(f"--autoscaling-metric-{flag}-threshold {threshold}: must be above 0 and at most 100")
                if not value.is_integer():
                    fail(f"--autoscaling-metric-{flag}-threshold {threshold}: whole percentages only "
                         "(policies hold integer thresholds)")
                entry["threshold"] = int(value)
        if entry:
            metrics[key] = entry
    return metrics


@lease_app.command("create")
def create(
    name: Annotated[str | None, typer.Argument(help="lease name (DNS label); default: from the first model")] = None,
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="name=<model>,uri=<uri>[,count=N]; "
                                                    "repeat, in load order")] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="accountable team; default: TMS_OWNER or "
                                              ".tms.yaml `owner`")] = None,
    duration: Annotated[str | None, typer.Option("--duration", help="e.g. 8h; default: the admin default")] = None,
    renewal_duration: Annotated[str | None, typer.Option("--renewal-duration",
                                help="how long each renewal extends (needs --auto-renew)")] = None,
    auto_renew: Annotated[bool, typer.Option("--auto-renew", help="renew while in use")] = False,
    activity_window: Annotated[str | None, typer.Option("--auto-renew-activity-window", "--activity-window",
                               help="use within this long before expiry renews (needs --auto-renew)")] = None,
    enable_autoscaling: Annotated[bool, typer.Option(
        "--enable-autoscaling", help="an HPA scales the lease (implied by every --autoscaling-* option)")] = False,
    min_replicas: Annotated[int | None, typer.Option("--autoscaling-min-replicas", min=0, metavar="N",
                                                     help="fewest replicas; default: the admin's")] = None,
    max_replicas: Annotated[int | None, typer.Option("--autoscaling-max-replicas", min=1, metavar="N",
                                                     help="most replicas; default: the admin's")] = None,
    cpu: Annotated[MetricState | None, typer.Option("--autoscaling-metric-cpu-utilization",
                                                    help="scale on CPU utilization (server-default: "
                                                    "as the admin enabled it)")] = None,
    cpu_t: Annotated[str | None, typer.Option("--autoscaling-metric-cpu-utilization-threshold", metavar="PERCENT",
                                              help="target, in (0, 100]")] = None,
    gpu: Annotated[MetricState | None, typer.Option("--autoscaling-metric-gpu-utilization",
                                                    help="scale on GPU utilization")] = None,
    gpu_t: Annotated[str | None, typer.Option("--autoscaling-metric-gpu-utilization-threshold", metavar="PERCENT",
                                              help="target, in (0, 100]")] = None,
    qt: Annotated[MetricState | None, typer.Option("--autoscaling-metric-queue-time",
                                                   help="scale on the time requests wait in Triton's queue")] = None,
    qt_t: Annotated[str | None, typer.Option("--autoscaling-metric-queue-time-threshold", metavar="DURATION",
                                             help="e.g. 200ms, 1m30s, or microseconds")] = None,
    qtp: Annotated[MetricState | None, typer.Option("--autoscaling-metric-queue-time-percentage",
                                                    help="scale on the share of inference time spent "
                                                    "queued")] = None,
    qtp_t: Annotated[str | None, typer.Option("--autoscaling-metric-queue-time-percentage-threshold",
                                              metavar="PERCENT", help="target, in (0, 100]")] = None,
    triton_image: Annotated[str | None, typer.Option("--triton-image", "-i", metavar="IMAGE",
                                                     help="Triton image, on the allowlist; default: "
                                                     "the allowlist's default")] = None,
    triton_resources: Annotated[str | None, typer.Option("--triton-resources",
                                help="cpu=N;gpu=N;system-memory=..;shared-memory=..;repository-size=..")] = None,
    triton_pool: Annotated[str | None, typer.Option("--triton-pool", "-p", help="share a pool (needs --quota)")] = None,
    quota: Annotated[int | None, typer.Option("--quota", help="quota taken on one pool instance (needs -p)")] = None,
    node_class: Annotated[str | None, typer.Option("--node-class", metavar="CLASS",
                                                   help="a node class of the policies (e.g. a100, a MIG profile); "
                                                   "with -p: the class the pool must run on; default: the "
                                                   "stack's")] = None,
    alias: Annotated[list[str] | None, typer.Option("--alias", help="a lease name (DNS alias); repeatable")] = None,
    root: Root = None, porcelain: Porcelain = False, output: OutputOpt = "text", target: Target = None,
    now: Annotated[str | None, typer.Option(hidden=True)] = None, wait: WaitOpt = None,
) -> None:
    """Write leases/<name>.yaml (checked before it is written); prints the lease as tmsctl does."""
    from ruamel.yaml.scalarstring import PlainScalarString


    no_target(target)
    if not model:
        fail("at least one -m/--model name=<model>,uri=<uri> is required (tmsctl: --model is required)")
    models = [parse_model(m) for m in model]
    root = edit_root(root, wait)
    repo = load(root)
    states = {"cpu-utilization": cpu, "gpu-utilization": gpu, "queue-time": qt, "queue-time-percentage": qtp}
    thresholds = {"cpu-utilization": cpu_t, "gpu-utilization": gpu_t, "queue-time": qt_t,
                  "queue-time-percentage": qtp_t}
    # tmsctl: --enable-autoscaling "is automatically turned on if any of the other options related
    # to autoscaling are set".
    autoscaling_flags = [f for f, v in (("--autoscaling-min-replicas", min_replicas),
                                        ("--autoscaling-max-replicas", max_replicas)) if v is not None]
    autoscaling_flags += [f"--autoscaling-metric-{k}" for k, v in states.items() if v is not None]
    autoscaling_flags += [f"--autoscaling-metric-{k}-threshold" for k, v in thresholds.items() if v is not None]
    autoscaling = enable_autoscaling or bool(autoscaling_flags)
    if quota is not None and not triton_pool:
        fail("--quota needs -p/--triton-pool: the quota is taken on an instance of that pool (tmsctl rule)")
    if triton_pool:
        clash = [f for f, v in (("--triton-image", triton_image), ("--triton-resources", triton_resources)) if v]
        clash += (["--enable-autoscaling"] if enable_autoscaling else []) + autoscaling_flags
        if clash:
            fail(f"-p/--triton-pool cannot go with {', '.join(clash)}: a pooled lease shares the pool's Triton "
                 "(tmsctl: pool options are exclusive with autoscaling and Triton options)")
        if quota is None:
            fail("-p/--triton-pool needs --quota <n>: how much of one pool instance the lease takes (tmsctl rule)")
    if not auto_renew:
        given = [f for f, v in (("--renewal-duration", renewal_duration),
                                ("--auto-renew-activity-window", activity_window)) if v]
        if given:
            fail(f"{' and '.join(given)} without --auto-renew: these set how auto-renewal works, which this "
                 "lease would not have. Add --auto-renew (to renew by hand: tms lease renew --duration)")
    try:
        node_class = node_class_option(repo.limits.spec.nodeClasses, node_class)
    except TmsError as exc:
        fail(str(exc))
    moment = parse_now(now) or datetime.now(UTC)
    try:
        length = units.parse_duration(duration or repo.limits.spec.leases.duration.default)
    except ValueError as exc:
        fail(f"--duration {duration}: {exc}")
    expires = (moment + length).replace(microsecond=0)
    # Every file stem counts, broken files too: a generated name must never overwrite one.
    taken = {p.stem for p in (*(root / "leases").glob("*"), *(root / "leases").glob("*/*"))} | set(repo.leases)
    taken |= {a for lease in repo.all_leases() for a in lease.spec.names}
    if name is None:
        name = generated_name(models[0]["name"], taken)
    elif (existing := lease_path(root, name)).exists():
        fail(f"lease {name!r} exists already ({existing.relative_to(root).as_posix()}): renew it with "
             f"`tms lease renew {name}`", EXIT_CONFLICT)
    lease_owner = default_owner(root, owner)
    try:
        # In the by-owner layout the file goes into leases/<owner>/, where CODEOWNERS asks its team.
        target_path = new_lease_path(root, name, lease_owner, repo.limits.spec.leaseLayout)
    except TmsError as exc:
        fail(f"refused: {exc}", EXIT_REFUSED)
    spec: dict[str, Any] = {"models": models, "expires": PlainScalarString(timestamp(expires) or "")}
    if auto_renew:
        renew: dict[str, Any] = {}
        if activity_window:
            renew["activityWindow"] = activity_window
        if renewal_duration:
            renew["renewalDuration"] = renewal_duration
        spec["autoRenew"] = renew
    if alias:
        spec["names"] = list(alias)
    bespoke_flags = bool(triton_image or triton_resources or autoscaling)
    if not triton_pool and not bespoke_flags:
        # TMS `shareTriton.byDefault`, applied here where the lease is made and written into its file:
        # turning it on later never moves a lease that exists (docs/tmsctl.md).
        triton_pool, quota = _shared_by_default(root, repo, node_class)
    if triton_pool:
        # Pool names are case-insensitive (TMS): write the pool's own spelling.
        canonical = next((p.name for p in repo.all_pools() if p.name.lower() == triton_pool.lower()), triton_pool)
        spec["pool"] = {"name": canonical, "quota": quota}
        if node_class:
            spec["pool"]["nodeClass"] = node_class
    else:
        triton: dict[str, Any] = {}
        if triton_image:
            triton["image"] = triton_image
        if triton_resources:
            try:
                triton["resources"] = parse_resources(triton_resources)
            except TmsError as exc:
                fail(str(exc))
        if autoscaling:
            auto: dict[str, Any] = {}
            if min_replicas is not None:
                auto["minReplicas"] = min_replicas
            if max_replicas is not None:
                auto["maxReplicas"] = max_replicas
            metrics = _metric_options(states, thresholds)
            if metrics:
                auto["metrics"] = metrics
            triton["autoscaling"] = auto
        if node_class:
            triton["nodeClass"] = node_class
        if triton:
            spec["triton"] = triton
    doc = {"apiVersion": API_VERSION, "kind": "Lease", "metadata": {"name": name, "owner": lease_owner},
           "spec": spec}
    # ruamel quotes a string that looks like a timestamp; unquoted, YAML reads it as one (as intended).
    text = re.sub(r"^(\s*expires: )'([0-9TZ:-]+)'$", r"\1\2", dump_yaml(doc), flags=re.M)
    written = edit(root, {target_path: text})

    show(root, name, "Pending", written=written, porcelain=porcelain, output=output)


def _shared_by_default(root: Path, repo: Any, node_class: str | None) -> tuple[str | None, int | None]:
    """(pool, quota) when the admin shares Tritons by default (TMS `shareTriton.byDefault`) and the
    default pool runs on the class asked for (any, when none is asked for); else (None, None)."""
    pools = repo.limits.spec.pools
    if not pools.byDefault or not pools.defaultPool:
        return None, None
    pool = next((p for p in repo.all_pools() if p.name == pools.defaultPool), None)
    default_class = None
    if node_class and pool is not None:
        try:
            default_class = load_stack_settings(root).defaultNodeClass
        except TmsError:
            default_class = None  # several or broken stack files: the pool's own class decides
    if node_class and (pool is None or pool_node_class(pool, default_class) != node_class):
        return None, None  # the default pool is not on that class: a Triton of its own
    return pools.defaultPool, pools.defaultQuota


@lease_app.command("list")
def list_(root: Root = None, porcelain: Porcelain = False, output: OutputOpt = "text", target: Target = None,
          owner: Annotated[str | None, typer.Option(help="only this owner's leases")] = None,
          verbose: Annotated[bool, typer.Option("--verbose", "-v", help="also owner, pool and models")] = False,
          kubeconfig: Annotated[str | None, typer.Option(envvar="KUBECONFIG", metavar="FILE",
                                                         help="for State; default: ~/.kube/config or "
                                                         "in-cluster")] = None,
          context: Annotated[str | None, typer.Option(help="kubeconfig context")] = None,
          stack: StackOpt = None,
          now: Annotated[str | None, typer.Option(hidden=True)] = None) -> None:
    """Leases in leases/, soonest expiry first, with their State (one cluster read for all)."""

    no_target(target)
    root = resolve_root(root)
    # Unreadable files do not hide the readable leases, and are never skipped silently: the list,
    # then one `error:` line naming the file, exit 2 (docs/cli.md).
    repo = load(root, tolerate=True)
    moment = parse_now(now) or datetime.now(UTC)
    require_stack(root, stack)
    if stack is not None:
        try:
            namespace: str | None = load_stack_settings(root, stack).namespace
        except TmsError as exc:
            fail(str(exc), EXIT_USAGE)
    else:
        namespace = namespace_of(root, strict=True)
        if namespace is None:  # several stack files: which cluster namespace is unknown; say so
            typer.echo("note: several stack files: State from the files only (Expired, else Unknown); "
                       "choose one with --stack to read its namespace", err=True)
    leases = [lease for lease in repo.all_leases() if owner is None or lease.metadata.owner == owner]
    deployments: dict[str, Any] | None = None
    if namespace and any(moment < lease.spec.expires for lease in leases):
        try:
            deployments = read_deployments(namespace, kubeconfig, context)
        except ClusterUnreachable as exc:
            typer.echo(f"note: {exc}: State from the files only (Expired, else Unknown)", err=True)
    lock = read_lock(root) if deployments is not None else None
    pools = {p.name: p for p in repo.all_pools()}

    def state(lease: Any) -> str:
        if deployments is None:
            return "Expired" if moment >= lease.spec.expires else "Unknown"
        name = lease.name
        if lease.spec.pool is not None:
            index = instance_of(lock, lease.spec.pool.name, lease.name)
            pool = pools.get(lease.spec.pool.name)
            name = pool.instance_name(index) if pool is not None and index is not None else ""
        return assess(lease.spec.expires, moment, ClusterView(deployments.get(name)))[0]

    rows = sorted(({"lease": lease.name, "state": state(lease),
                    "expires": timestamp(lease.spec.expires), "triton": triton_host(lease.name, namespace),
                    "owner": lease.metadata.owner, "pool": lease.spec.pool.name if lease.spec.pool else None,
                    "models": [m.name for m in lease.spec.models], "names": list(lease.spec.names)}
                   for lease in leases), key=lambda r: (r["expires"], r["lease"]))

    def text() -> list[str]:
        header = ["Lease", "State", "Expires", "Triton"] + (["Owner", "Pool", "Models"] if verbose else [])
        body = [[r["lease"], r["state"], r["expires"], r["triton"]]
                + ([r["owner"], r["pool"] or "-", ",".join(r["models"])] if verbose else []) for r in rows]
        return [*table(header, body), f"Count: {len(rows)}"]

    def lines() -> list[str]:
        return [" ".join(porcelain_word(k, r[k]) for k in ("lease", "state", "expires", "triton")) for r in rows]

    if repo.unreadable:
        unreadable = [{"file": d.location(), "message": d.message} for d in repo.unreadable]
        if wants_json():
            fail(unreadable_message(repo), EXIT_USAGE, leases=rows, unreadable=unreadable)
        emit(output, porcelain, text, lines, lambda: rows)
        fail(unreadable_message(repo), EXIT_USAGE)
    emit(output, porcelain, text, lines, lambda: rows)


@lease_app.command("renew")
def renew(name: LeaseArg,
          duration: Annotated[str | None, typer.Option(help="from now; default: the lease's renewal duration")] = None,
          force: Annotated[bool, typer.Option("--force", help="allow moving the expiry earlier")] = False,
          root: Root = None, porcelain: Porcelain = False, output: OutputOpt = "text", target: Target = None,
          now: Annotated[str | None, typer.Option(hidden=True)] = None, wait: WaitOpt = None) -> None:
    """Extend `expires` by the lease's renewal duration (autoRenew.renewalDuration, else the
    admin default); only that line of the file changes. Never shortens without --force."""

    no_target(target)
    root = edit_root(root, wait)
    path = lease_path(root, name)
    if not path.exists():
        fail(f"no lease {name!r} (leases/{name}.yaml does not exist)", EXIT_REFUSED)
    repo = load(root)
    lease = valid_lease(repo, name)
    moment = parse_now(now) or datetime.now(UTC)
    own = lease.spec.autoRenew.renewalDuration if lease.spec.autoRenew else None
    length_text = duration or own or repo.limits.spec.autoRenew.renewalDuration.default
    try:
        new = (moment + units.parse_duration(length_text)).replace(microsecond=0)
    except ValueError as exc:
        fail(f"--duration {duration}: {exc}")
    if new < lease.spec.expires and not force:
        fail(f"renewing {name} by {length_text} from now ({timestamp(new)}) would move its expiry earlier than "
             f"{timestamp(lease.spec.expires)}: nothing to do (use --force to shorten it)", EXIT_REFUSED)
    try:
        text = rewrite_expires(path.read_text(encoding="utf-8"), new)
    except ValueError as exc:
        fail(f"leases/{name}.yaml: {exc}", EXIT_REFUSED)
    written = edit(root, {path: text})
    # No state: renewing edits a file. Whether the lease is Valid is known only once the change is
    # merged and deployed (`tms lease status`); tmsctl's "[Valid]" came from a server that knew.
    data = {"lease": name, "state": None, "expires": timestamp(new), "renewalDuration": str(length_text),
            "written": [str(p) for p in written]}
    emit(output, porcelain,
         lambda: [f"Renewed lease {name}", f"Expires: {timestamp(new)}",
                  f"State: see `tms lease status {name}` once the change is merged and deployed",
                  commit_hint(root, written)],
         lambda: [f"{porcelain_word('lease', name)} {porcelain_word('expires', timestamp(new))}"],
         lambda: data)


@lease_app.command("release")
def release(name: LeaseArg, root: Root = None, porcelain: Porcelain = False, output: OutputOpt = "text",
            target: Target = None, wait: WaitOpt = None) -> None:
    """Delete the lease file (its names go with it)."""
    no_target(target)
    root = edit_root(root, wait)
    path = lease_path(root, name)
    if not path.exists():
        fail(f"no lease {name!r} (leases/{name}.yaml does not exist)", EXIT_REFUSED)
    written = edit(root, {path: None})
    emit(output, porcelain, lambda: [f"Lease {name}", "State: Released", commit_hint(root, written)],
         lambda: [f"{porcelain_word('lease', name)} state:Released"],
         lambda: {"lease": name, "state": "Released", "written": [str(p) for p in written]})
