"""`tms codeowners` and `tms lease migrate`: who may change what (docs/security.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from tms_stack.cli.common import EXIT_FINDINGS, OutputOpt, RootOpt, emit, fail, resolve_root
from tms_stack.commands.authority import migrate as run_migrate
from tms_stack.commands.authority import write_codeowners
from tms_stack.commands.check import run_check
from tms_stack.logic.codeowners import PATH
from tms_stack.models.diagnostics import TmsError


def register(app: typer.Typer) -> None:
    app.command("codeowners")(codeowners)


def register_lease(lease_app: typer.Typer) -> None:
    lease_app.command("migrate")(migrate)


def codeowners(
    root: RootOpt = None,
    check: Annotated[bool, typer.Option("--check", help="write nothing; exit 1 when the file is out of step")] = False,
    output: OutputOpt = "text",
) -> None:
    """Write .github/CODEOWNERS from the policies (spec.codeOwners, spec.owners, spec.leaseLayout):
    the admin-owned lines, `/leases/` for the admins, one line per owner folder with the teams that
    act for that owner. `tms check` fails when the file is out of step (rule codeowners.stale).

    Example: tms codeowners && git add .github/CODEOWNERS"""
    where = resolve_root(root)
    if check:
        result = run_check(where, only=[PATH])
        if result.repo.limits.spec.codeOwners is None and not result.repo.invalid_policies:
            fail("no spec.codeOwners in the policies: nothing to compare .github/CODEOWNERS with (docs/security.md)")
        stale = [d for d in result.diagnostics if d.rule == "codeowners.stale"]
        emit(output, {"path": PATH, "changed": False, "inStep": not stale, "findings": [d.message for d in stale]},
             "\n".join(f"{d.location()}: {d.message}" for d in stale) or f"{PATH} is in step with the policies")
        if stale:
            raise typer.Exit(EXIT_FINDINGS)
        return
    try:
        _, changed = write_codeowners(where)
    except TmsError as exc:
        fail(str(exc), exc.exit_code)
    emit(output, {"path": PATH, "changed": changed, "inStep": True, "findings": []},
         f"wrote {PATH}; commit it: git add {PATH} && git commit" if changed else f"{PATH} is up to date")


def migrate(root: RootOpt = None, output: OutputOpt = "text") -> None:
    """Move every lease into its owner's folder (leases/<owner>/<name>.yaml) with `git mv`
    (content and comments unchanged), set spec.leaseLayout: by-owner in policies/limits.yaml and
    regenerate .github/CODEOWNERS; all staged, ready for one commit. Refuses a work tree with
    uncommitted changes (exit 3) and an unreadable or invalid lease or policy (exit 2).

    Example: tms lease migrate && git commit -m 'leases by owner'"""
    where = resolve_root(root)
    try:
        result = run_migrate(where)
    except TmsError as exc:
        fail(str(exc), exc.exit_code)
    lines = [f"moved {a} -> {b}" for a, b in result.moves]
    if result.policy:
        lines.append(f"set spec.leaseLayout: by-owner in {result.policy}")
    lines.append("regenerated .github/CODEOWNERS" if result.codeowners_changed else ".github/CODEOWNERS is up to date")
    lines.append("staged; review with `git status` and commit: git commit -m 'leases in owner folders'")
    emit(output, {"moves": [{"from": a, "to": b} for a, b in result.moves], "policy": result.policy or None,
                  "codeownersChanged": result.codeowners_changed}, "\n".join(lines))
