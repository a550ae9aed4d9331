"""Whose approval a pull request needs: the owner of every lease it adds, changes or deletes, both
owners when a lease changes owner, and for each lease name (alias) that is created, moved or
deleted, the owner of every lease the name leaves or reaches (docs/security.md, "Who may change
what").

The plan lists them, with the GitHub teams that CODEOWNERS asks. GitHub enforces it because each
of these events changes a file in every owner's folder involved: a lease file is in its owner's
folder (rule lease.folder), an owner change moves the file between folders, and a name lives in
the `names` of exactly one lease (rule names.unique), so moving or deleting it edits (or deletes)
that lease's file, and creating it edits (or adds) the file of the lease that takes it. GitHub
reads CODEOWNERS from the pull request's base, so the teams shown are the base's."""

from __future__ import annotations

from dataclasses import dataclass, field

from tms_stack.models import Lease
from tms_stack.models.diagnostics import Diagnostic, Severity
from tms_stack.repo.loader import Repository


@dataclass
class Approval:
    owner: str
    asks: str                      # who GitHub asks, from the base's policies
    reasons: list[str] = field(default_factory=list)


def _holders(repo: Repository) -> dict[str, Lease]:
    """Every lease name and alias -> the lease that has it."""
    out: dict[str, Lease] = {}
    for lease in repo.all_leases():
        out.setdefault(lease.name, lease)
        for alias in lease.spec.names:
            out.setdefault(alias, lease)
    return out


def _asks(base: Repository, owner: str) -> str:
    spec = base.limits.spec
    if spec.codeOwners is None:
        return "not generated: the base's policies declare no codeOwners (docs/security.md)"
    admins = " or ".join(spec.codeOwners.admins)
    if spec.leaseLayout != "by-owner":
        return f"{admins} (leaseLayout flat: every lease file is the admins')"
    teams = spec.approvers(owner)
    return " or ".join(teams) if teams else f"{admins} (no approvers declared for {owner})"


def approvals(base: Repository, head: Repository) -> tuple[list[Approval], list[Diagnostic]]:
    """(approvals by owner, a warning per owner change) for the change from `base` to `head`."""
    reasons: dict[str, list[str]] = {}
    warnings: list[Diagnostic] = []

    def need(owner: str, why: str) -> None:
        reasons.setdefault(owner, [])
        if why not in reasons[owner]:
            reasons[owner].append(why)

    old, new = set(base.leases), set(head.leases)
    for name in sorted(new - old):
        need(head.lease(name).metadata.owner, f"lease {name} added")
    for name in sorted(old - new):
        need(base.lease(name).metadata.owner, f"lease {name} deleted")
    for name in sorted(old & new):
        before, after = base.lease(name), head.lease(name)
        same = before.model_dump(mode="json") == after.model_dump(mode="json")
        was_at, now_at = base.leases[name].file, head.leases[name].file
        if same and was_at == now_at:
            continue
        a, b = before.metadata.owner, after.metadata.owner
        if a == b:
            need(a, f"lease {name} changed" if not same else f"lease {name} moved from {was_at} to {now_at}")
            continue
        why = f"lease {name} changes owner from {a} to {b}"
        need(a, why)
        need(b, why)
        loaded = head.leases[name]
        pos = loaded.doc.pos(("metadata", "owner"))
        warnings.append(Diagnostic(loaded.file, pos.line, pos.col, "lease.owner-change",
                                   f"{why}: the file moves from leases/{a}/ to leases/{b}/, so both owners' teams "
                                   "must approve (CODEOWNERS); the lease's names, budget and history go with it",
                                   Severity.WARNING))
    was, now = _holders(base), _holders(head)
    for alias in sorted(set(was) | set(now)):
        left, reached = was.get(alias), now.get(alias)
        if left is not None and reached is not None and left.name == reached.name:
            continue
        if alias in (getattr(left, "name", None), getattr(reached, "name", None)) and (left is None or reached is None):
            continue  # a lease's own name, added or deleted with it: said above
        if left is not None and reached is not None:
            why = (f"name {alias} moves from lease {left.name} ({left.metadata.owner}) to lease {reached.name} "
                   f"({reached.metadata.owner})")
        elif reached is not None:
            why = f"name {alias} created on lease {reached.name}"
        else:
            assert left is not None
            why = f"name {alias} deleted from lease {left.name}"
        for lease in (left, reached):
            if lease is not None:
                need(lease.metadata.owner, why)
    out = [Approval(owner, _asks(base, owner), whys) for owner, whys in sorted(reasons.items())]
    return out, warnings
