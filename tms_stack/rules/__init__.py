"""Policy and cross-file rules, one module per thing they guard. Pure: Repository + time in,
diagnostics out. Each rule has a stable id (the `rule` of a Diagnostic) documented in docs/rules.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tms_stack.models.diagnostics import Diagnostic
from tms_stack.repo.loader import Loaded, Repository
from tms_stack.rules.authority import authority_rules
from tms_stack.rules.budgets import budget_rules, owner_rules
from tms_stack.rules.context import Base, Ctx
from tms_stack.rules.generated import generated_rules
from tms_stack.rules.leases import lease_rules
from tms_stack.rules.lock import lock_rules
from tms_stack.rules.names import alias_rules, pool_instance_owner, service_names
from tms_stack.rules.nodeclasses import node_class_rules
from tms_stack.rules.ownership import ownership_rules
from tms_stack.rules.policies import policy_rules
from tms_stack.rules.pools import pool_name_rules, pool_rules
from tms_stack.rules.shards import shard_rules
from tms_stack.rules.stack import stack_rules
from tms_stack.rules.telemetry import telemetry_rules

__all__ = ["Base", "LeaseRuleMemo", "check_repository", "pool_instance_owner", "service_names"]


@dataclass
class LeaseRuleMemo:
    """The per-lease rules' findings of one check, offered to the next check of the same review
    (`tms plan` checks the head, then the base). A lease's findings depend on its file, its name,
    whether the pull request changed it, the time, and what the repository says around it: the
    policies and the pools (rules/leases.py reads nothing else). So they are reused only for the
    very object the parse cache gave both trees, not changed by the pull request, when the time,
    the policies and the pools are the same objects (or equal) in both checks."""

    context: tuple[Any, ...] | None = None
    answers: dict[int, tuple[Loaded, str, list[Diagnostic]]] = field(default_factory=dict)


def _context(repo: Repository, now: datetime) -> tuple[Any, ...]:
    return (now, repo.limits, repo.allowlist, repo.repositories, dict(repo.policy_files), dict(repo.pools),
            frozenset(repo.invalid_pools), frozenset(repo.invalid_policies))


def _same_context(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    (now_a, *models_a, files_a, pools_a, bad_pools_a, bad_policies_a) = a
    (now_b, *models_b, files_b, pools_b, bad_pools_b, bad_policies_b) = b
    return (now_a == now_b and all(x is y or x == y for x, y in zip(models_a, models_b, strict=True))
            and all(d.keys() == e.keys() and all(d[k] is e[k] for k in d)
                    for d, e in ((files_a, files_b), (pools_a, pools_b)))
            and bad_pools_a == bad_pools_b and bad_policies_a == bad_policies_b)


def check_repository(repo: Repository, now: datetime | None = None, base: Base | None = None,
                     memo: LeaseRuleMemo | None = None) -> list[Diagnostic]:
    """Every diagnostic for `repo`: load-time schema errors plus all rules. The one rule list:
    a rule never changes `repo`; unreadable input is a finding with rule `yaml` (exit 2).

    `base`: the revision a pull request is judged against, when known. Then budget findings go to
    what the pull request changed, the placement lock must be the one derived from the base's, and
    compiled files or environments among the changed paths are refused (rules/generated.py)."""
    now = now or datetime.now(UTC)
    ctx = Ctx(repo, base)
    found = list(repo.diagnostics)
    if repo.invalid_policies:
        # Judging leases against TMS defaults instead of the admin's broken policy would bury the
        # real error under a cascade of false ones: fix the policy first.
        found.extend(stack_rules(repo))
        return sorted(set(found))
    found.extend(policy_rules(ctx))
    for loaded in repo.pools.values():
        found.extend(pool_rules(ctx, loaded))
    found.extend(pool_name_rules(ctx))
    found.extend(node_class_rules(ctx))
    context = _context(repo, now) if memo is not None else ()
    reuse = memo is not None and memo.context is not None and _same_context(memo.context, context)
    if memo is not None and not reuse:
        memo.context, memo.answers = context, {}
    for stem, loaded in repo.leases.items():
        changed = ctx.base is not None and ctx.base.differs(loaded.model)
        if memo is not None and not changed:
            hit = memo.answers.get(id(loaded))
            if hit is not None and hit[0] is loaded and hit[1] == stem:
                found.extend(hit[2])
                continue
            answer = list(lease_rules(ctx, stem, loaded, now, False))
            memo.answers[id(loaded)] = (loaded, stem, answer)
            found.extend(answer)
            continue
        found.extend(lease_rules(ctx, stem, loaded, now, changed))
    found.extend(telemetry_rules(ctx))
    found.extend(alias_rules(ctx))
    found.extend(ownership_rules(ctx))
    found.extend(owner_rules(ctx))
    found.extend(authority_rules(ctx))
    found.extend(budget_rules(ctx))
    found.extend(lock_rules(repo, base))
    found.extend(generated_rules(base))
    found.extend(stack_rules(repo))
    found.extend(shard_rules(repo))
    return sorted(set(found))
