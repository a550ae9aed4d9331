"""`tms lease status` and the lease view that `create` and `status` print (tmsctl's layout:
Lease, State, Expires, Triton, image, Readied, Models, Events)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from tms_stack.cli.app import parse_now
from tms_stack.cli.common import (
    EXIT_USAGE,
    OutputOpt,
    resolve_root,
)
from tms_stack.cli.common import (
    OutputFormat as Output,
)
from tms_stack.cli.common import (
    PorcelainOpt as Porcelain,
)
from tms_stack.cli.common import (
    RootOpt as Root,
)
from tms_stack.cli.complete import LeaseArg
from tms_stack.cli.tmsctl import (
    EXIT_REFUSED,
    Target,
    commit_hint,
    emit,
    fail,
    lease_path,
    load,
    namespace_of,
    no_target,
    porcelain_word,
    valid_lease,
)
from tms_stack.commands.lease import timestamp, triton_host
from tms_stack.commands.prune import removed_for_expiry
from tms_stack.logic.resolve import effective_lease
from tms_stack.models.diagnostics import TmsError
from tms_stack.outside.neterrors import network_reason
from tms_stack.outside.status import ClusterUnreachable, ClusterView, assess, read_cluster, removal
from tms_stack.render import instance_of
from tms_stack.repo.lockfile import read_lock
from tms_stack.repo.stack import load_stack_settings


def register(lease_app: typer.Typer) -> None:
    lease_app.command("status")(status)


def show(root: Path, name: str, state: str, *, written: list[Path] | None = None, porcelain: bool,
          output: Output | str, status: Any = None, namespace: str | None = None) -> None:

    repo = load(root)
    lease = repo.lease(name)
    eff = effective_lease(lease, repo.limits, repo.allowlist, {p.name: p for p in repo.all_pools()})
    host = triton_host(name, namespace or namespace_of(root))
    model_state = {"Valid": "Ready", "Expired": "Unloaded", "Unknown": "Unknown"}.get(state, "Pending")
    live = (status.get("live") or {}) if isinstance(status, dict) else {}
    models = [{"name": m.name, "uri": m.uri, "status": ("Ready" if live.get(m.name) else "NotReady")
               if m.name in live else model_state} for m in lease.spec.models]
    data: dict[str, Any] = {"lease": name, "owner": lease.metadata.owner, "state": state,
                            "expires": timestamp(lease.spec.expires), "triton": host, "image": eff.image,
                            "pool": lease.spec.pool.name if lease.spec.pool else None,
                            "names": list(lease.spec.names), "models": models}
    if isinstance(status, dict):
        data.update({k: v for k, v in status.items() if k != "live"})
    if written:
        data["written"] = [str(p) for p in written]

    def text() -> list[str]:
        out = [f"Lease {name}", f"State: {state}", f"Expires: {data['expires']}", f"Triton: {host}", f"<{eff.image}>"]
        if data.get("readied"):
            out.append(f"Readied: {data['readied']}")
        out += ["Models:", "Name Url Status", *(f"{m['name']} {m['uri']} {m['status']}" for m in models)]
        if "events" in data:
            out += ["Events:", "Type Source Time Object Message",
                    *(f"{e['type']} {e['source'] or '-'} {e['time'] or '-'} {e['object']} {e['message']}"
                      for e in data["events"])]
        if data.get("note"):
            out.append(f"Note: {data['note']}")
        if written:
            out.append(commit_hint(root, written))
        return out

    def lines() -> list[str]:
        out = [" ".join([porcelain_word("lease", name), porcelain_word("state", state),
                         porcelain_word("expires", data["expires"]), porcelain_word("triton", host),
                         porcelain_word("image", eff.image)])]
        out += [" ".join([porcelain_word("model", m["name"]), porcelain_word("uri", m["uri"]),
                          porcelain_word("status", m["status"])]) for m in models]
        return out

    emit(output, porcelain, text, lines, lambda: data)



def status(name: LeaseArg, root: Root = None, porcelain: Porcelain = False, output: OutputOpt = "text",
           target: Target = None,
           kubeconfig: Annotated[str | None, typer.Option(envvar="KUBECONFIG", help="default: ~/.kube/config "
                                                          "or in-cluster")] = None,
           context: Annotated[str | None, typer.Option(help="kubeconfig context")] = None,
           stack: Annotated[str | None, typer.Option("--stack", help="Pulumi.<stack>.yaml (namespace)")] = None,
           triton_url: Annotated[str | None, typer.Option(envvar="TMS_TRITON_URL_TEMPLATE",
                                 help="e.g. http://{service}.{namespace}.svc:8000; per-model readiness")] = None,
           now: Annotated[str | None, typer.Option(hidden=True)] = None) -> None:
    """State (Pending, Valid, Invalid, Expired, Released), readiness and events from the cluster."""

    no_target(target)
    root = resolve_root(root)
    moment = parse_now(now) or datetime.now(UTC)

    if not lease_path(root, name).exists():
        found = removal(root, name)
        if found is None:
            fail(f"no lease {name!r}: leases/{name}.yaml does not exist and git history has no such lease",
                 EXIT_REFUSED)
        when, message = found
        # Git history says why the file went: prune's commit for expiry, else a person's release.
        gone, key = ("Expired", "removed") if removed_for_expiry(message, name) else ("Released", "released")
        label = key.capitalize()
        data = {"lease": name, "state": gone, key: timestamp(when)}
        emit(output, porcelain, lambda: [f"Lease {name}", f"State: {gone}", f"{label}: {timestamp(when)}"],
             lambda: [f"{porcelain_word('lease', name)} state:{gone} {porcelain_word(key, timestamp(when))}"],
             lambda: data)
        return
    repo = load(root)
    lease = valid_lease(repo, name)
    try:
        namespace = load_stack_settings(root, stack).namespace
    except TmsError as exc:
        fail(str(exc), EXIT_USAGE)
    deployment = name
    if lease.spec.pool is not None:
        pool = next((p for p in repo.all_pools() if p.name == lease.spec.pool.name), None)
        index = instance_of(read_lock(root), lease.spec.pool.name, name)
        deployment = pool.instance_name(index) if pool is not None and index is not None else ""
    view: ClusterView | None = None
    note = None
    if moment < lease.spec.expires:
        try:
            view = read_cluster(deployment, namespace, kubeconfig, context, name) if deployment else ClusterView(None)
        except ClusterUnreachable as exc:
            note = f"{exc}: State from the files only"
    state, readied, why = assess(lease.spec.expires, moment, view)
    extra: dict[str, Any] = {"readied": timestamp(readied), "note": note or why, "deployment": deployment or None,
                             "events": [{"type": e.type, "source": e.source, "time": timestamp(e.when), "object": e.object,
                                         "message": e.message} for e in (view.events if view else [])]}
    if view is not None and view.models:
        extra["live"] = view.models  # per model, from the agent
    if triton_url:
        import requests

        base = triton_url.format(lease=name, service=name, namespace=namespace).rstrip("/")
        try:
            extra["live"] = {m.name: requests.get(f"{base}/v2/models/{m.name}/ready", timeout=5).status_code == 200
                             for m in lease.spec.models}
        except requests.RequestException as exc:
            extra["note"] = f"{extra['note'] + '; ' if extra['note'] else ''}Triton at {base} unreachable " \
                            f"({network_reason(exc)})"
    show(root, name, state, porcelain=porcelain, output=output, status=extra, namespace=namespace)
