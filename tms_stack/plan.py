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
from markupsafe import Markup

from tms_stack import markdown
from tms_stack.admin_changes import AdminChanges, admin_changes, changed_files_between, changed_files_git
from tms_stack.check import CheckResult, run_check
from tms_stack.diagnostics import Severity
from tms_stack.loader import Repository
from tms_stack.resolve import effective_lease

MARKER = "<!-- tms-stack-plan -->"
MAX_ROWS = 50
# GitHub refuses issue comments longer than this many characters.
COMMENT_LIMIT = 65_536


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
    # Updated Deployments whose pod template changes: their pods restart (issue 11 #3: the plan
    # says so; a renewal or a lease added to a pool instance never lands here).
    restarts: list[str] = field(default_factory=list)
    admin: AdminChanges = field(default_factory=AdminChanges)


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


def _where(root: Path, sha: str, file: str, line: int) -> Markup:
    """file:line as a code span, linked to the file on GitHub when the run knows where that is."""
    from urllib.parse import quote

    shown = markdown.cell(f"{file}:{line}")
    server, repo = os.environ.get("GITHUB_SERVER_URL"), os.environ.get("GITHUB_REPOSITORY")
    if server and repo and sha:
        url = f"{server}/{repo}/blob/{quote(sha)}/{quote(file)}#L{line}"
        return Markup("[{}]({})").format(shown, Markup(quote(url, safe=":/#")))
    return shown


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


def _objects(root: Path, stack: str | None, now: datetime | None) -> dict[str, tuple[str, str]]:
    """object key -> (hash of the object, hash of its pod template or "")."""
    from tms_stack.render import all_objects, object_key
    from tms_stack.render.pipeline import render_root

    def digest(value: Any) -> str:
        return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()

    return {object_key(o): (digest(o), digest(o["spec"]["template"]) if o["kind"] == "Deployment" else "")
            for o in all_objects(render_root(root, stack, now))}


def build_plan(root: Path, base: str, stack: str | None = None, now: datetime | None = None,
               base_dir: Path | None = None) -> Plan:
    """`base_dir`: the base revision's data is read from this checkout instead of `git archive base`.

    The trusted review (scripts/trusted-review.sh) uses it: no git command runs in the PR's
    checkout (its .git is not ours to trust), `base` is then only the label shown."""
    now = now or datetime.now(UTC)
    root = root.resolve()
    head_sha = ""
    if base_dir is None:
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
        if base_dir is None:
            checkout_base(root, base, base_root)
        else:
            base_root = base_dir.resolve()
        before = run_check(base_root, now)
        old, new = before.repo, head.repo
        files = (changed_files_git(root, base) if base_dir is None
                 else changed_files_between(base_root, root))
        plan.admin = admin_changes(old, new, files)
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
                plan.restarts = [k for k in plan.objects["update"] if after_objs[k][1] != before_objs[k][1]]
            except Exception as exc:  # noqa: BLE001 - the plan still helps without the object diff
                # No "0 to create" under a render error: the counts would claim nothing changes.
                plan.objects_note = f"objects could not be rendered: {exc}"
                plan.objects_failed = True
        else:
            # Not rendered either: no "0 to create, 0 to update, 0 to delete" line (issue 14).
            plan.objects_note = "fix the errors above to see the objects that will change"
            plan.objects_failed = True
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


def render_markdown(plan: Plan, limit: int = COMMENT_LIMIT) -> str:
    """The comment, at most `limit` characters: fewer rows per table first, then only the
    admin-owned changes and the counts, saying what was cut (never a silently truncated table)."""
    # autoescape: a value that reaches the template without a filter is at least HTML-escaped;
    # user values go through `code`/`cell`/`text` (tms_stack/markdown.py) for markdown too.
    env = Environment(loader=PackageLoader("tms_stack", "templates"), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=True)
    env.filters.update(code=markdown.code, cell=markdown.cell, text=markdown.text)
    template = env.get_template("plan.md.j2")
    full = None
    for rows in (MAX_ROWS, 20, 5):
        out = template.render(plan=plan, marker=Markup(MARKER), max_rows=rows, shortened=rows != MAX_ROWS, limit=limit,
                              compact=False, full_size=full)
        if len(out) <= limit:
            return out
        full = full or len(out)
    out = template.render(plan=plan, marker=Markup(MARKER), max_rows=5, shortened=True, compact=True,
                          full_size=full, limit=limit)
    if len(out) <= limit:
        return out
    # Only an admin section of pathological size gets here (its lists are capped at 100 lines each).
    status = (f":x: **{len(plan.errors)} policy violation(s)**" if plan.errors else
              ":white_check_mark: `tms check` passes")
    note = (f"\n\n{status}; {len(plan.added)} lease(s) added, {len(plan.changed)} changed, {len(plan.removed)} "
            f"removed, {len(plan.expiring)} expiring within 24 hours.\n\n"
            f"_The rest of this plan was cut: GitHub comments are limited to {limit:,} characters._\n")
    return out[:out.rfind("\n", 0, limit - len(note))] + note
