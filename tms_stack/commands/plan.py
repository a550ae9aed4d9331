"""`tms plan --base REF`: what merging this branch would change, as markdown for the PR comment."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

from markupsafe import Markup

from tms_stack.commands import markdown
from tms_stack.commands.admin_changes import (
    AdminChanges,
    admin_changes,
    changed_files_between,
    changed_files_git,
)
from tms_stack.commands.approvals import approvals
from tms_stack.commands.check import CheckResult, ParseCache, check_loaded, gc_paused, parse_cache, run_check
from tms_stack.commands.narrow import narrow
from tms_stack.logic.expiry import live_leases
from tms_stack.logic.memo import shared_answers
from tms_stack.logic.resolve import effective_lease
from tms_stack.models.diagnostics import Severity
from tms_stack.models.nodeclass import WHOLE_GPU
from tms_stack.render import RenderGroup, all_objects, object_key, render_repository
from tms_stack.repo.answers import answers_for
from tms_stack.repo.basetree import base_tree
from tms_stack.repo.loader import Repository, load_repository
from tms_stack.repo.lockfile import read_lock, shared_reads
from tms_stack.repo.parsecache import persistent
from tms_stack.repo.stack import load_stack_settings, stack_names
from tms_stack.rules import Base, LeaseRuleMemo
from tms_stack.rules.budgets import fmt_gpus, lease_gpus, owner_totals
from tms_stack.rules.context import BASE_REF

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
    gpus: str       # as the budget counts them (a pooled lease: its share of an instance)
    expires: str
    change: str = ""


@dataclass
class Plan:
    base: str
    head_sha: str
    # The commit `base` names (what the plan compares with); "" when only a base checkout is given.
    base_sha: str = ""
    added: list[LeaseRow] = field(default_factory=list)
    changed: list[LeaseRow] = field(default_factory=list)
    removed: list[LeaseRow] = field(default_factory=list)
    expiring: list[LeaseRow] = field(default_factory=list)
    # Expired for longer than the grace: render and the program leave them out (tms_stack/logic/expiry.py).
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
    # Whose approval GitHub must require (commands/approvals.py): owner, who it asks, why.
    approvals: list[Any] = field(default_factory=list)


def _git(root: Path, *args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True).stdout


def _base_sha(root: Path, base: str) -> str:
    """The commit the base ref names (the plan's heading used to show HEAD's)."""
    try:
        return _git(root, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}").decode().strip()
    except subprocess.CalledProcessError:
        return ""


def _row(repo: Repository, name: str) -> LeaseRow:
    lease = repo.lease(name)
    pools = {p.name: p for p in repo.all_pools()}
    eff = effective_lease(lease, repo.limits, repo.allowlist, pools)
    if lease.spec.pool:
        triton = f"pool {lease.spec.pool.name} (quota {lease.spec.pool.quota})"
    else:
        auto = eff.autoscaling
        replicas = f"{auto.min_replicas}-{auto.max_replicas} replicas" if auto else "1 replica"
        gpu = "GPU" if eff.resources.gpu_resource == WHOLE_GPU else eff.resources.gpu_resource
        on = f" on {eff.node_class}" if eff.node_class else ""
        triton = f"{eff.image.rsplit('/', 1)[-1]}, {eff.resources.cpu} CPU, {eff.resources.gpu} {gpu}, {replicas}{on}"
    return LeaseRow(name, lease.metadata.owner, ", ".join(m.name for m in lease.spec.models), triton,
                    fmt_gpus(lease_gpus(lease, pools, repo.limits, repo.allowlist)),
                    f"{lease.spec.expires:%Y-%m-%d %H:%M}Z")


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


def _digests(groups: list[RenderGroup]) -> dict[str, tuple[str, str]]:
    """object key -> (hash of the object, hash of its pod template or "")."""

    def digest(value: Any) -> str:
        return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()

    return {object_key(o): (digest(o), digest(o["spec"]["template"]) if o["kind"] == "Deployment" else "")
            for o in all_objects(groups)}


def build_plan(root: Path, base: str, stack: str | None = None, now: datetime | None = None,
               base_dir: Path | None = None, cache: bool = True) -> Plan:
    """`base_dir`: the base revision's data is read from this checkout instead of from git at `base`.

    The trusted review (scripts/trusted-review.sh) uses it: no git command runs in the PR's
    checkout (its .git is not ours to trust), `base` is then only the label shown.

    Each tree is loaded and checked once; the objects are rendered from those results. `cache`
    (docs/review.md): files are read through the parse cache, the head shares the base's answers
    for unchanged files, and only the groups the change can touch are rendered. Without it every
    file is parsed and every group rendered: the answer is the same (tests/unit/test_review_incremental.py)."""
    reader = parse_cache(cache)
    # Both trees' leases share their effective values and shapes (logic/memo.py).
    with shared_reads() if reader else contextlib.nullcontext(), shared_answers():
        return _build(root, base, stack, now, base_dir, reader)


def _build(root: Path, base: str, stack: str | None, now: datetime | None, base_dir: Path | None,
           reader: ParseCache | None) -> Plan:
    now = now or datetime.now(UTC)
    root = root.resolve()
    head_sha = ""
    if base_dir is None:
        try:
            head_sha = _git(root, "rev-parse", "HEAD").decode().strip()
        except subprocess.CalledProcessError:
            head_sha = ""
    plan = Plan(base=base, head_sha=head_sha, base_sha=_base_sha(root, base) if base_dir is None else "")
    with (base_tree(root, base, keep=reader is not None and persistent()) if base_dir is None
          else contextlib.nullcontext(base_dir.resolve())) as base_root:
        read = reader.read if reader else None
        with gc_paused():
            base_repo = load_repository(base_root, read=read)
        files = (changed_files_git(root, base) if base_dir is None
                 else changed_files_between(base_root, root))
        # The head is judged against the base, as the trusted review's check judges it: a lease
        # this change adds or edits is an error expired, a warning short-lived.
        label = base if BASE_REF.fullmatch(base) else "origin/main"
        memo = LeaseRuleMemo() if reader else None
        answers = answers_for(reader)
        head: CheckResult = run_check(root, now, base=Base(base_repo, label, tuple(files)), read=read, memo=memo,
                                      answers=answers)
        if reader:
            reader.save()
        for d in head.all():
            entry = {"where": _where(root, head_sha, d.file, d.line), "rule": d.rule, "message": d.message}
            (plan.warnings if d.severity is Severity.WARNING else plan.errors).append(entry)
        old, new = base_repo, head.repo
        plan.admin = admin_changes(old, new, files)
        old_names, new_names = set(old.leases), set(new.leases)
        for name in sorted(new_names - old_names):
            plan.added.append(_row(new, name))
        for name in sorted(old_names - new_names):
            plan.removed.append(_row(old, name))
        for name in sorted(old_names & new_names):
            if old.leases[name] is new.leases[name]:
                continue  # one object for both trees: the parse cache saw the same bytes at the same path
            a, b = old.lease(name).model_dump(mode="json"), new.lease(name).model_dump(mode="json")
            if a != b:
                row = _row(new, name)
                row.change = ", ".join(sorted(_changed_keys(a["spec"], b["spec"]) | (
                    {"owner"} if a["metadata"] != b["metadata"] else set())))
                plan.changed.append(row)
        soon = now + timedelta(hours=24)
        plan.expiring = [_row(new, n) for n in sorted(new_names)
                         if new.lease(n).spec.expires <= soon]

        plan.left_out = sorted(lease.name for lease in live_leases(list(new.all_leases()), new.limits, now)[1])
        plan.grace = str(new.limits.spec.autoRenew.unknownGrace)
        before_place, after_place = _placement(old), _placement(new)
        plan.moves = sorted((lease, before_place[lease], after_place[lease]) for lease in after_place
                            if lease in before_place and before_place[lease] != after_place[lease])
        plan.owners = _owners(old, new)
        plan.approvals, owner_changes = approvals(old, new)
        plan.warnings += [{"where": _where(root, head_sha, d.file, d.line), "rule": d.rule, "message": d.message}
                          for d in owner_changes]
        if head.exit_code == 0:
            # Whether the base passes decides only what the objects are compared with: checked
            # here, never when the pull request fails its own check.
            before = check_loaded(base_repo, now, memo=memo, answers=answers)
            try:
                # Every stack (or the one asked for): a second stack file used to empty the diff.
                stacks: list[str | None] = [stack] if stack else list(stack_names(root)) or [None]
                after_objs, before_objs = {}, {}
                # Rendered from the repositories the checks above loaded (both passed, or the base
                # is not rendered): never loaded and checked again. Read in the order a rendering
                # of each tree reads them (settings, then lock), so a broken file is named the same.
                locks: dict[Path, Any] = {}

                def lock_of(tree: Path) -> Any:
                    if tree not in locks:
                        locks[tree] = read_lock(tree)
                    return locks[tree]

                for s in stacks:
                    prefix = f"{s}/" if len(stacks) > 1 else ""
                    settings = load_stack_settings(root, s)
                    base_has = s is None or (base_root / f"Pulumi.{s}.yaml").exists()
                    old_settings, old_error = None, None
                    if before.exit_code == 0 and base_has:
                        try:
                            old_settings = load_stack_settings(base_root, s)
                        except Exception as exc:  # noqa: BLE001 - raised after the head renders, as before
                            old_error = exc
                    new_lock = lock_of(root)
                    only = None
                    if reader and old_settings is not None:
                        try:
                            only = narrow(old, new, old_settings, settings, lock_of(base_root), new_lock)
                        except Exception:  # noqa: BLE001 - the base's rendering below says what is wrong
                            only = None
                    after_objs.update({prefix + k: v for k, v in
                                       _digests(render_repository(new, settings, new_lock, now, only)).items()})
                    if old_error is not None:
                        raise old_error
                    if old_settings is not None:
                        before_objs.update({prefix + k: v for k, v in _digests(
                            render_repository(old, old_settings, lock_of(base_root), now, only)).items()})
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
    """Owners whose totals change or who are over budget, counted as `budget.gpus` counts them
    (bespoke leases at max replicas, pooled leases by their share, pools at instances.max)."""
    zero = (Fraction(0), 0)
    a, b = owner_totals(old), owner_totals(new)
    rows = []
    for owner in sorted(set(a) | set(b)):
        budget = new.limits.spec.budgets.for_owner(owner)
        (g0, n0), (g1, n1) = a.get(owner, zero), b.get(owner, zero)
        rows.append({"owner": owner, "gpus_before": fmt_gpus(g0), "gpus_after": fmt_gpus(g1),
                     "gpu_budget": budget.gpus if budget.gpus is not None else "-",
                     "leases_before": n0, "leases_after": n1,
                     "lease_budget": budget.leases if budget.leases is not None else "-",
                     "changed": (g0, n0) != (g1, n1),
                     "over": (budget.gpus is not None and g1 > budget.gpus)
                     or (budget.leases is not None and n1 > budget.leases)})
    return [r for r in rows if r["changed"] or r["over"]]


def render_markdown(plan: Plan, limit: int = COMMENT_LIMIT) -> str:
    """The comment, at most `limit` characters: fewer rows per table first, then only the
    admin-owned changes and the counts, saying what was cut (never a silently truncated table)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined  # only a plan's comment needs it (~40 ms)

    # autoescape: a value that reaches the template without a filter is at least HTML-escaped;
    # user values go through `code`/`cell`/`text` (tms_stack/commands/markdown.py) for markdown too.
    env = Environment(loader=PackageLoader("tms_stack.commands", "templates"), undefined=StrictUndefined,
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
