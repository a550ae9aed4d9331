"""Files to objects in one call: load, check (refusing on errors), read stack settings and the
lock, render. The adapters (`tms render`, the Pulumi program) call only this."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tms_stack.commands.check import format_text, gc_paused, run_check
from tms_stack.logic.memo import shared_answers
from tms_stack.models.diagnostics import PolicyFindings, UnreadableInput
from tms_stack.render import Only, RenderGroup, render_repository
from tms_stack.render.shards import Assignment, assign_models
from tms_stack.repo.answers import Answers, answers_for
from tms_stack.repo.loader import Repository
from tms_stack.repo.lockfile import read_lock
from tms_stack.repo.parsecache import ReadFn, reader
from tms_stack.repo.stack import StackRef, load_stack_settings, resolve_stack
from tms_stack.rules import LeaseRuleMemo


def checked(root: Path, now: datetime | None, read: ReadFn | None = None, memo: LeaseRuleMemo | None = None,
            answers: Answers | None = None) -> Repository:
    """The repository at `root`, loaded and checked; PolicyFindings/UnreadableInput when it fails
    (a rendering never starts from files `tms check` refuses). `read`, `memo`, `answers`: as run_check's."""
    result = run_check(root, now, read=read, memo=memo, answers=answers)
    if result.exit_code != 0:
        error = UnreadableInput if result.unreadable else PolicyFindings
        kind = "unreadable input" if result.unreadable else "policy violations"
        raise error(f"refusing to render: {kind}\n{format_text(result)}", result.all())
    return result.repo


def checked_cached(root: Path, now: datetime | None) -> Repository:
    """`checked` through the parse cache and the kept answers, as `tms check` reads (docs/review.md):
    a rendering of files a check or an earlier rendering read parses and checks nothing again."""
    cache = reader()
    try:
        return checked(root, now, cache.read if cache else None, answers=answers_for(cache))
    finally:
        if cache:
            cache.save()  # a refused rendering too: the run after the fix parses only what changed


def render_root(root: Path, stack: str | None = None, now: datetime | None = None) -> list[RenderGroup]:
    # The collector off for the render too: it allocates ~80 objects' worth of dicts per lease and
    # frees none of them before the caller is done (issue 27; commands/check.py gc_paused).
    with gc_paused(), shared_answers():   # the check's effective values serve the render too
        repo = checked_cached(root, now)
        settings = load_stack_settings(root, stack)
        return render_repository(repo, settings, read_lock(root), now)


@dataclass
class Fleet:
    """Every group of a fleet and the stack of each (one stack unless `tms-stack:shards`)."""

    stack: StackRef
    groups: list[RenderGroup]
    assignment: Assignment

    def of(self, stack: str) -> list[RenderGroup]:
        """The groups the stack `stack` holds."""
        return [g for g in self.groups if self.assignment.where(g.key) == stack]


def render_fleet(root: Path, stack: str | None = None, now: datetime | None = None,
                 only: str | None = None) -> Fleet:
    """Render the fleet `stack` belongs to (its home's settings for a shard stack) and assign its
    groups to the fleet's stacks (render/shards.py). `only`: a shard stack (not the home one)
    whose groups alone are rendered, for its program (at 10,000 leases in 10 shards, a tenth of
    the rendering); `groups` then holds those only."""
    with gc_paused(), shared_answers():
        return fleet_of(checked_cached(root, now), root, resolve_stack(root, stack), now, shard=only)


def fleet_of(repo: Repository, root: Path, ref: StackRef, now: datetime | None = None,
             shard: str | None = None, only: Only | None = None) -> Fleet:
    """`render_fleet` of a repository already loaded and checked (`tms plan --targets` checks both
    trees through one parse cache). `only`: the groups a partial rendering makes (render/__init__.py);
    the assignment is always the whole fleet's."""
    assignment = assign_models(ref.home, ref.settings.shards, repo.all_leases(), repo.all_pools())
    keep = None
    if shard is not None and ref.sharded and shard != ref.home:
        def keep(key: str) -> bool:
            return assignment.where(key) == shard
    groups = render_repository(repo, ref.settings, read_lock(root), now, only=only, keep=keep)
    return Fleet(ref, groups, assignment)
