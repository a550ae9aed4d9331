""".github/CODEOWNERS makes the admins own every path the plan calls admin-owned, and every lease file
of this repository (flat layout: CODEOWNERS cannot see a lease's owner, docs/security.md); only the
placement lock, which review re-derives, needs nobody.

GitHub's rule: the last matching line wins; a line without owners leaves the path without a code
owner. The matcher below implements the pattern forms the file uses (and refuses any other, so a
new form cannot silently match nothing here)."""

from __future__ import annotations

import fnmatch

import pytest

from tests.conftest import ROOT
from tms_stack.commands.admin_changes import is_admin_path

CODEOWNERS = ROOT / ".github" / "CODEOWNERS"
ADMINS = "@your-org/tms-admins"


def rules() -> list[tuple[str, list[str]]]:
    out = []
    for raw in CODEOWNERS.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            pattern, *owners = line.split()
            out.append((pattern, owners))
    return out


def matches(pattern: str, path: str) -> bool:
    if pattern == "*":
        return True
    assert pattern.startswith("/"), f"unanchored pattern {pattern!r}: add a matcher for it"
    body = pattern[1:]
    if body.endswith("/"):
        return path.startswith(body)
    if "*" in body:
        assert "/" not in body and "**" not in body, f"pattern form {pattern!r} not handled"
        return "/" not in path and fnmatch.fnmatchcase(path, body)
    return path == body or path.startswith(body + "/")


def owners_of(path: str) -> list[str]:
    found: list[str] = []
    for pattern, owners in rules():
        if matches(pattern, path):
            found = owners
    return found


ADMIN_PATHS = ["policies/limits.yaml", "policies/new.yaml", "pools/shared-t4-pool.yaml", "pools/new-pool.yaml",
               "Pulumi.yaml", "Pulumi.prod.yaml", "Pulumi.example.yaml", ".github/workflows/review.yml",
               ".github/CODEOWNERS", "tms_stack/rules/resources.py", "tms_stack/commands/templates/plan.md.j2",
               "scripts/trusted-review.sh", "scripts/deps.d/10-x.sh", "pyproject.toml", ".gitattributes",
               "Makefile", "docker/agent/Dockerfile", "docs/security.md", "README.md", "newfile"]
LEASE_PATHS = ["leases/fraud-detector.yaml", "leases/new-lease.yaml", "leases/team-risk/fraud-detector.yaml"]
USER_PATHS = ["pools/placement.lock.yaml"]


@pytest.mark.parametrize("path", ADMIN_PATHS)
def test_admins_own_the_gate(path: str) -> None:
    assert owners_of(path) == [ADMINS]
    assert is_admin_path(path)      # the plan lists a change to it under "Admin-owned changes"


@pytest.mark.parametrize("path", LEASE_PATHS)
def test_flat_lease_files_need_an_admin(path: str) -> None:
    """No owner folder has approvers here (leaseLayout flat): a lease change needs the admins, never
    nobody (issue 21: any one approval merged another team's lease). The plan still shows it as a
    lease change, not an admin-owned one."""
    assert owners_of(path) == [ADMINS]
    assert not is_admin_path(path)


@pytest.mark.parametrize("path", USER_PATHS)
def test_the_lock_needs_nobody(path: str) -> None:
    assert owners_of(path) == []
    assert not is_admin_path(path)


def test_every_line_names_the_placeholder_team_or_nobody() -> None:
    assert rules(), "CODEOWNERS is empty"
    for pattern, owners in rules():
        assert owners in ([], [ADMINS]), pattern
