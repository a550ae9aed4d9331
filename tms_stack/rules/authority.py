"""Who may change what: a lease lives in its owner's folder (leaseLayout by-owner), and
.github/CODEOWNERS says what the policies say (docs/security.md, "Who may change what").

GitHub enforces the approvals; these rules make sure it is asked the right question: a lease in
another owner's folder would be approved by the wrong team, and a stale CODEOWNERS by nobody."""

from __future__ import annotations

from collections.abc import Iterator

from tms_stack.logic.codeowners import COMMAND, PATH, first_difference, generate
from tms_stack.models import Lease
from tms_stack.models.diagnostics import Diagnostic
from tms_stack.repo.leasefiles import lease_owner_folder
from tms_stack.rules.context import Ctx


def authority_rules(ctx: Ctx) -> Iterator[Diagnostic]:
    yield from _folders(ctx)
    yield from _codeowners(ctx)


def _folders(ctx: Ctx) -> Iterator[Diagnostic]:
    if ctx.repo.lease_layout != "by-owner":
        return
    ref = ctx.policy_ref("Limits", ("spec", "leaseLayout"))
    for loaded in ctx.repo.leases.values():
        lease: Lease = loaded.model  # type: ignore[assignment]
        owner, name = lease.metadata.owner, loaded.file.rsplit("/", 1)[-1]
        folder = lease_owner_folder(loaded.file)
        if folder == owner:
            continue
        where = f"leases/{owner}/{name}"
        if folder is None:
            yield ctx.at(loaded, ("metadata", "owner"), "lease.folder",
                         f"leaseLayout is by-owner ({ref}): a lease lives in its owner's folder, so CODEOWNERS "
                         f"asks its team; move it: git mv {loaded.file} {where} (all of them: tms lease migrate)")
        else:
            yield ctx.at(loaded, ("metadata", "owner"), "lease.folder",
                         f"owner {owner!r} does not match the folder leases/{folder}/: CODEOWNERS would ask "
                         f"{folder}'s team to approve {owner}'s lease. Put the lease in its owner's folder "
                         f"(git mv {loaded.file} {where}); changing a lease's owner is that move, and needs "
                         "both teams' approval")


def _codeowners(ctx: Ctx) -> Iterator[Diagnostic]:
    spec = ctx.repo.limits.spec
    if spec.codeOwners is None:
        return
    ref = ctx.policy_ref("Limits", ("spec", "codeOwners"))
    fix = f"run `{COMMAND}` and commit {PATH}"
    for other in ctx.repo.codeowners_elsewhere:
        # GitHub reads .github/CODEOWNERS first, then CODEOWNERS, then docs/CODEOWNERS: a second
        # file is dead while the first exists, and takes over the day it is removed.
        yield Diagnostic(other, 0, 0, "codeowners.stale",
                         f"a second CODEOWNERS file: GitHub reads {PATH} first and this one only without it; "
                         f"remove it (the rules are generated into {PATH})")
    if ctx.repo.codeowners_link:
        yield Diagnostic(PATH, 0, 0, "codeowners.stale",
                         f"{PATH} (or .github/) is a symbolic link: GitHub would not read what review checks; "
                         f"commit the file itself ({fix})")
        return
    if ctx.repo.codeowners is None:
        yield Diagnostic(PATH, 0, 0, "codeowners.stale",
                         f"missing: the policies declare codeOwners ({ref}), so GitHub must be told who approves "
                         f"what; {fix}")
        return
    expected = generate(spec)
    if ctx.repo.codeowners == expected:
        return
    line, want, have = first_difference(expected, ctx.repo.codeowners)
    detail = (f"line {line} should be `{want}`, is `{have}`" if want or have
              else "it differs in line endings or the final newline")
    yield Diagnostic(PATH, line, 1, "codeowners.stale",
                     f"out of step with the policies ({ref}): {detail}. The file is generated from the "
                     f"policies, never edited by hand: {fix}")
