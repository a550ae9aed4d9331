"""`tms plan --base REF`: what merging this branch would change, as markdown for the PR comment."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from tms_stack.check import CheckResult, run_check
from tms_stack.diagnostics import Severity
from tms_stack.loader import Repository
from tms_stack.resolve import effective_lease

MARKER = "<!-- tms-stack-plan -->"
MAX_ROWS = 50


@dataclass
class LeaseRow:
    name: str
    owner: str
    models: str
    triton: str
    gpus: int
    expires: str
    change: str = ""


@dataclass
class Plan:
    base: str
    head_sha: str
    added: list[LeaseRow] = field(default_factory=list)
    changed: list[LeaseRow] = field(default_factory=list)
    removed: list[LeaseRow] = field(default_factory=list)
    expiring: list[LeaseRow] = field(default_factory=list)
    # Expired for longer than the grace: render and the program leave them out (tms_stack/expiry.py).
    left_out: list[str] = field(default_factory=list)
    grace: str = ""
    moves: list[tuple[str, str, str]] = field(default_factory=list)       # lease, from, to
    owners: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    objects: dict[str, list[str]] = field(default_factory=lambda: {"create": [], "update": [], "delete": []})
    objects_note: str = ""
    objects_failed: bool = False


def _git(root: Path, *args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True).stdout


def checkout_base(root: Path, ref: str, dest: Path) -> None:
    """The base tree's leases/, pools/, policies/ and Pulumi.*.yaml, without touching the work tree."""
    data = _git(root, "archive", "--format=tar", ref)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = [m for m in tar.getmembers()
                   if m.name.split("/", 1)[0] in ("leases", "pools", "policies") or m.name.startswith("Pulumi.")]
        tar.extractall(dest, members=members, filter="data")


def _row(repo: Repository, name: str) -> LeaseRow:
    lease = repo.lease(name)
    pools = {p.name: p for p in repo.all_pools()}
    eff = effective_lease(lease, repo.limits, repo.allowlist, pools)
    if lease.spec.pool:
        triton = f"pool {lease.spec.pool.name} (quota {lease.spec.pool.quota})"
    else:
        auto = eff.autoscaling
        replicas = f"{auto.min_replicas}-{auto.max_replicas} replicas" if auto else "1 replica"
        triton = f"{eff.image.rsplit('/', 1)[-1]}, {eff.resources.cpu} CPU, {eff.resources.gpu} GPU, {replicas}"
    return LeaseRow(name, lease.metadata.owner, ", ".join(m.name for m in lease.spec.models), triton,
                    eff.gpus_reserved, f"{lease.spec.expires:%Y-%m-%d %H:%M}Z")


def _where(root: Path, sha: str, file: str, line: int) -> str:
    server, repo = os.environ.get("GITHUB_SERVER_URL"), os.environ.get("GITHUB_REPOSITORY")
    if server and repo and sha:
        return f"[{file}:{line}]({server}/{repo}/blob/{sha}/{file}#L{line})"
    return f"`{file}:{line}`"


def _placement(repo: Repository) -> dict[str, str]:
    from tms_stack.lockfile import read_lock

    lock = read_lock(repo.root)
    if lock is None:
        return {}
    pools = {p.name: p for p in repo.all_pools()}
    out = {}
    for pool_name, placement in lock.pools.items():
        for inst in placement.instances:
            for lease in inst.leases:
                out[lease] = pools[pool_name].instance_name(inst.index) if pool_name in pools else f"{pool_name}-{inst.index}"
    return out


def _objects(root: Path, stack: str | None, now: datetime | None) -> dict[str, str]:
    from tms_stack.render import all_objects, object_key
    from tms_stack.render.pipeline import render_root

    return {object_key(o): hashlib.sha256(json.dumps(o, sort_keys=True).encode()).hexdigest()
            for o in all_objects(render_root(root, stack, now))}


def build_plan(root: Path, base: str, stack: str | None = None, now: datetime | None = None) -> Plan:
    now = now or datetime.now(UTC)
    root = root.resolve()
    try:
        head_sha = _git(root, "rev-parse", "HEAD").decode().strip()
    except subprocess.CalledProcessError:
        head_sha = ""
    head: CheckResult = run_check(root, now)
    plan = Plan(base=base, head_sha=head_sha)
    for d in head.all():
        entry = {"where": _where(root, head_sha, d.file, d.line), "rule": d.rule, "message": d.message}
        (plan.warnings if d.severity is Severity.WARNING else plan.errors).append(entry)
    with tempfile.TemporaryDirectory(prefix="tms-plan-") as tmp:
        base_root = Path(tmp)
        checkout_base(root, base, base_root)
        before = run_check(base_root, now)
        old, new = before.repo, head.repo
        old_names, new_names = set(old.leases), set(new.leases)
        for name in sorted(new_names - old_names):
            plan.added.append(_row(new, name))
        for name in sorted(old_names - new_names):
            plan.removed.append(_row(old, name))
        for name in sorted(old_names & new_names):
            a, b = old.lease(name).model_dump(mode="json"), new.lease(name).model_dump(mode="json")
            if a != b:
                row = _row(new, name)
                row.change = ", ".join(sorted(_changed_keys(a["spec"], b["spec"]) | (
                    {"owner"} if a["metadata"] != b["metadata"] else set())))
                plan.changed.append(row)
        soon = now + timedelta(hours=24)
        plan.expiring = [_row(new, n) for n in sorted(new_names)
                         if new.lease(n).spec.expires <= soon]
        from tms_stack.expiry import live_leases

        plan.left_out = sorted(lease.name for lease in live_leases(list(new.all_leases()), new.limits, now)[1])
        plan.grace = str(new.limits.spec.autoRenew.unknownGrace)
        before_place, after_place = _placement(old), _placement(new)
        plan.moves = sorted((lease, before_place[lease], after_place[lease]) for lease in after_place
                            if lease in before_place and before_place[lease] != after_place[lease])
        plan.owners = _owners(old, new)
        if head.exit_code == 0:
            try:
                from tms_stack.stack import _stacks

                # Every stack (or the one asked for): a second stack file used to empty the diff.
                stacks: list[str | None] = [stack] if stack else list(_stacks(root)) or [None]
                after_objs, before_objs = {}, {}
                for s in stacks:
                    prefix = f"{s}/" if len(stacks) > 1 else ""
                    after_objs.update({prefix + k: v for k, v in _objects(root, s, now).items()})
                    base_has = s is None or (base_root / f"Pulumi.{s}.yaml").exists()
                    if before.exit_code == 0 and base_has:
                        before_objs.update({prefix + k: v for k, v in _objects(base_root, s, now).items()})
                if before.exit_code != 0:
                    plan.objects_note = "the base does not pass `tms check`; every object is listed as new"
                plan.objects["create"] = sorted(set(after_objs) - set(before_objs))
                plan.objects["delete"] = sorted(set(before_objs) - set(after_objs))
                plan.objects["update"] = sorted(k for k in set(after_objs) & set(before_objs)
                                                if after_objs[k] != before_objs[k])
            except Exception as exc:  # noqa: BLE001 - the plan still helps without the object diff
                # No "0 to create" under a render error: the counts would claim nothing changes.
                plan.objects_note = f"objects could not be rendered: {exc}"
                plan.objects_failed = True
        else:
            plan.objects_note = "fix the errors above to see the objects that will change"
    return plan


def _changed_keys(a: dict[str, Any], b: dict[str, Any]) -> set[str]:
    return {k for k in set(a) | set(b) if a.get(k) != b.get(k)}


def _owners(old: Repository, new: Repository) -> list[dict[str, Any]]:
    def totals(repo: Repository) -> dict[str, tuple[int, int]]:
        pools = {p.name: p for p in repo.all_pools()}
        out: dict[str, tuple[int, int]] = {}
        for lease in repo.all_leases():
            gpus = effective_lease(lease, repo.limits, repo.allowlist, pools).gpus_reserved
            g, n = out.get(lease.metadata.owner, (0, 0))
            out[lease.metadata.owner] = (g + gpus, n + 1)
        return out

    a, b = totals(old), totals(new)
    rows = []
    for owner in sorted(set(a) | set(b)):
        budget = new.limits.spec.budgets.for_owner(owner)
        rows.append({"owner": owner, "gpus_before": a.get(owner, (0, 0))[0], "gpus_after": b.get(owner, (0, 0))[0],
                     "gpu_budget": budget.gpus if budget.gpus is not None else "-",
                     "leases_before": a.get(owner, (0, 0))[1], "leases_after": b.get(owner, (0, 0))[1],
                     "lease_budget": budget.leases if budget.leases is not None else "-",
                     "over": (budget.gpus is not None and b.get(owner, (0, 0))[0] > budget.gpus)
                     or (budget.leases is not None and b.get(owner, (0, 0))[1] > budget.leases)})
    return [r for r in rows if (r["gpus_before"], r["leases_before"]) != (r["gpus_after"], r["leases_after"])
            or r["over"]]


def render_markdown(plan: Plan) -> str:
    env = Environment(loader=PackageLoader("tms_stack", "templates"), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    return env.get_template("plan.md.j2").render(plan=plan, marker=MARKER, max_rows=MAX_ROWS)
