"""Who may change what (issue 21): the attack table for the authority model.

A pull-request author of one team tries to change what belongs to another team. Two tables:

- CHECK_ATTACKS: `tms check` must refuse the pull request's tree, with the rule and file:line.
- APPROVAL_ATTACKS: the tree passes the folder rules (the author put the files where they belong),
  so what stops it is GitHub: required code-owner review with the CODEOWNERS that `tms codeowners`
  generated. Each row asserts that `tms plan` lists every owner whose approval is needed and that
  the files the pull request touches make CODEOWNERS ask exactly those owners' teams.

The repository is the example fixture with approvers declared and migrated by `tms lease migrate`
(tests/fixtures/example itself stays flat). `AUTHORITY_ATTACK_COUNT` is what the closing note reports.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import NOW, ROOT, copy_example
from tests.security.test_codeowners import matches
from tms_stack.commands.authority import migrate
from tms_stack.commands.check import run_check
from tms_stack.commands.plan import build_plan, render_markdown

APPROVERS = {"team-assist": ["@acme/assist"], "team-nlp": ["@acme/nlp", "@alice"], "team-platform": [],
             "team-risk": ["@acme/risk"], "team-search": ["@acme/search"], "team-vision": ["@acme/vision"]}
ADMINS = "@acme/tms-admins"
OWNERS_BLOCK = "  owners:\n" + "".join(f"    {o}: [{', '.join(repr(a) for a in t)}]\n" for o, t in APPROVERS.items()) \
    + f"  codeOwners:\n    admins: ['{ADMINS}']\n"
FLAT_OWNERS = "  owners: [team-assist, team-nlp, team-platform, team-risk, team-search, team-vision]\n"
LIM, CO = "policies/limits.yaml", ".github/CODEOWNERS"
FD, IC, CS = ("leases/team-risk/fraud-detector.yaml", "leases/team-vision/image-classifier.yaml",
              "leases/team-assist/chat-small.yaml")


def git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True, env=env).stdout


def declare_approvers(root: Path) -> None:
    limits = root / LIM
    text = limits.read_text()
    assert FLAT_OWNERS in text
    limits.write_text(text.replace(FLAT_OWNERS, OWNERS_BLOCK))


def make_by_owner(dest: Path) -> Path:
    """The example, approvers declared, committed, then `tms lease migrate`d and committed."""
    repo = copy_example(dest)
    declare_approvers(repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "flat")
    migrate(repo)
    git(repo, "commit", "-qm", "leases in owner folders")
    return repo


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_by_owner(tmp_path_factory.mktemp("by-owner") / "repo")


@pytest.fixture
def repo(template: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "repo"
    shutil.copytree(template, dest, symlinks=True)
    return dest


def lease(name: str, owner: str, extra: str = "") -> str:
    return (f"apiVersion: tms-stack/v1\nkind: Lease\nmetadata:\n  name: {name}\n  owner: {owner}\n"
            "spec:\n  models:\n    - name: resnet50\n      uri: model://aws-models/vision/resnet50\n"
            f"  expires: 2027-01-15T12:00:00Z\n{extra}")


# Ops: ("write", path, text) | ("replace", path, old, new) | ("delete", path) | ("mv", src, dst)
# | ("symlink", path, target) | ("crlf", path)
def apply(root: Path, ops: tuple[tuple[str, ...], ...]) -> None:
    for op in ops:
        kind, path = op[0], root / op[1]
        if kind == "write":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(op[2])
        elif kind == "replace":
            text = path.read_text()
            assert op[2] in text, (op[1], op[2])
            path.write_text(text.replace(op[2], op[3], 1))
        elif kind == "delete":
            path.unlink()
        elif kind == "mv":
            (root / op[2]).parent.mkdir(parents=True, exist_ok=True)
            git(root, "mv", op[1], op[2])
        elif kind == "symlink":
            if path.exists():
                path.unlink()
            path.symlink_to(op[2])
        elif kind == "crlf":
            path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
        else:
            raise AssertionError(kind)


@dataclass(frozen=True)
class Attack:
    id: str
    ops: tuple[tuple[str, ...], ...]
    rule: str
    file: str
    line: int
    message: str = ""
    exit_code: int = 1


CODEOWNERS_RISK = f"{'/leases/team-risk/'.ljust(30)} @acme/risk"
CHECK_ATTACKS = [
    # --- a lease outside its owner's folder: the wrong team (or the admins) would approve it ---
    Attack("lease-under-another-owners-folder", (("write", "leases/team-risk/mine.yaml", lease("mine", "team-vision")),),
           "lease.folder", "leases/team-risk/mine.yaml", 5, "does not match the folder leases/team-risk/"),
    Attack("owner-edited-in-place", (("replace", FD, "owner: team-risk", "owner: team-vision"),),
           "lease.folder", FD, 6, "git mv leases/team-risk/fraud-detector.yaml leases/team-vision/fraud-detector.yaml"),
    Attack("owner-changed-to-the-folder-of-an-unrelated-team", (("mv", FD, "leases/team-nlp/fraud-detector.yaml"),),
           "lease.folder", "leases/team-nlp/fraud-detector.yaml", 6, "owner 'team-risk'"),
    Attack("flat-lease-file-in-a-by-owner-repository", (("write", "leases/mine.yaml", lease("mine", "team-vision")),),
           "lease.folder", "leases/mine.yaml", 5, "git mv leases/mine.yaml leases/team-vision/mine.yaml"),
    Attack("lease-in-an-undeclared-owners-folder", (("write", "leases/team-evil/mine.yaml", lease("mine", "team-evil")),),
           "owner.unknown", "leases/team-evil/mine.yaml", 5, "not declared"),
    Attack("owner-folder-with-capitals", (("write", "leases/Team-Risk/mine.yaml", lease("mine", "team-risk")),),
           "files.layout", "leases/Team-Risk", 0, "an owner folder is named after an owner"),
    Attack("nested-folder-in-an-owner-folder", (("write", "leases/team-risk/x/mine.yaml", lease("mine", "team-risk")),),
           "files.layout", "leases/team-risk/x", 0, "no subfolders"),
    Attack("owner-folder-is-a-symlink", (("symlink", "leases/team-evil", "team-risk"),),
           "files.layout", "leases/team-evil", 0, "symbolic link"),
    Attack("lease-file-in-owner-folder-is-a-symlink", (("symlink", "leases/team-vision/fraud.yaml", "../team-risk/fraud-detector.yaml"),),
           "files.layout", "leases/team-vision/fraud.yaml", 0, "symbolic link"),
    Attack("same-lease-name-in-two-folders", (("write", "leases/team-vision/fraud-detector.yaml",
                                               lease("fraud-detector", "team-vision")),),
           "lease.duplicate", "leases/team-vision/fraud-detector.yaml", 1, "taken by leases/team-risk/fraud-detector.yaml"),
    Attack("same-lease-name-flat-and-in-a-folder", (("write", "leases/fraud-detector.yaml", lease("fraud-detector", "team-risk")),),
           "lease.duplicate", "leases/team-risk/fraud-detector.yaml", 1, "taken by leases/fraud-detector.yaml"),
    # --- CODEOWNERS out of step with the policies ---
    Attack("codeowners-edited-by-hand", (("replace", CO, CODEOWNERS_RISK, CODEOWNERS_RISK.replace("@acme/risk", "@acme/vision")),),
           "codeowners.stale", CO, 22, f"should be `{CODEOWNERS_RISK}`"),
    Attack("codeowners-line-appended", (("replace", CO, "/pools/placement.lock.yaml\n",
                                         "/pools/placement.lock.yaml\n/leases/ @mallory\n"),),
           "codeowners.stale", CO, 28, "should be `<end of file>`, is `/leases/ @mallory`"),
    Attack("codeowners-owner-line-removed", (("replace", CO, CODEOWNERS_RISK + "\n", ""),),
           "codeowners.stale", CO, 22, "tms codeowners"),
    Attack("codeowners-stale-after-policy-change", (("replace", LIM, "team-risk: ['@acme/risk']",
                                                     "team-risk: ['@acme/risk', '@acme/risk-oncall']"),),
           "codeowners.stale", CO, 22, f"should be `{CODEOWNERS_RISK} @acme/risk-oncall`"),
    Attack("codeowners-deleted", (("delete", CO),), "codeowners.stale", CO, 0, "missing"),
    Attack("codeowners-is-a-symlink", (("symlink", CO, "../policies/limits.yaml"),), "codeowners.stale", CO, 0,
           "symbolic link"),
    Attack("second-codeowners-at-the-root", (("write", "CODEOWNERS", "* @mallory\n"),), "codeowners.stale",
           "CODEOWNERS", 0, "a second CODEOWNERS file"),
    Attack("second-codeowners-in-docs", (("write", "docs/CODEOWNERS", "* @mallory\n"),), "codeowners.stale",
           "docs/CODEOWNERS", 0, "a second CODEOWNERS file"),
    Attack("codeowners-crlf", (("crlf", CO),), "codeowners.stale", CO, 1, "line endings"),
    Attack("codeowners-stale-after-new-owner", (("replace", LIM, "    team-vision: ['@acme/vision']\n",
                                                 "    team-vision: ['@acme/vision']\n    team-new: ['@acme/new']\n"),),
           "codeowners.stale", CO, 21, "/leases/team-new/"),
    # --- the policies that generate it: approvers are validated where they enter ---
    Attack("approver-without-at", (("replace", LIM, "['@acme/risk']", "['acme/risk']"),),
           "limits.schema", LIM, 56, "is not a GitHub team or user"),
    Attack("approver-email", (("replace", LIM, "['@acme/risk']", "['risk@acme.com']"),),
           "limits.schema", LIM, 56, "is not a GitHub team or user"),
    Attack("approver-smuggles-a-second-codeowners-line", (("replace", LIM, "['@acme/risk']",
                                                          "['@acme/risk /policies/ @mallory']"),),
           "limits.schema", LIM, 56, "is not a GitHub team or user"),
    Attack("approver-with-newline", (("replace", LIM, "['@acme/risk']", '["@acme/risk\\n/policies/ @mallory"]'),),
           "limits.schema", LIM, 56, "is not a GitHub team or user"),
    Attack("admin-path-with-negation", (("replace", LIM, "  codeOwners:\n", "  codeOwners:\n    adminPaths: ['!/leases/']\n"),),
           "limits.schema", LIM, 61, "is not a CODEOWNERS path"),
    Attack("by-owner-without-codeowners", (("replace", LIM, "  codeOwners:\n    admins: ['@acme/tms-admins']\n", ""),),
           "limits.schema", LIM, 7, "leaseLayout by-owner needs codeOwners.admins"),
    Attack("admins-empty", (("replace", LIM, "admins: ['@acme/tms-admins']", "admins: []"),),
           "limits.schema", LIM, 61, "at least 1 item"),
]


@pytest.mark.parametrize("attack", CHECK_ATTACKS, ids=lambda a: a.id)
def test_check_refuses(repo: Path, attack: Attack) -> None:
    apply(repo, attack.ops)
    result = run_check(repo, NOW)
    assert result.exit_code == attack.exit_code, [(d.location(), d.rule, d.message) for d in result.all()]
    found = [d for d in result.all() if d.rule == attack.rule and d.file == attack.file]
    assert found, f"{attack.id}: no {attack.rule} at {attack.file}: {[(d.location(), d.rule, d.message) for d in result.all()]}"
    assert any(d.line == attack.line for d in found), [(d.location(), d.rule, d.message) for d in found]
    assert any(attack.message in d.message for d in found), [d.message for d in found]


def test_the_migrated_template_passes(template: Path) -> None:
    result = run_check(template, NOW)
    assert result.exit_code == 0, [(d.location(), d.rule, d.message) for d in result.all()]
    assert (template / FD).is_file() and not (template / "leases" / "fraud-detector.yaml").exists()


def test_flat_layout_is_unchanged(tmp_path: Path) -> None:
    """The flat layout stays valid and behaves as before: a subfolder is still an error there."""
    flat = copy_example(tmp_path / "flat")
    assert run_check(flat, NOW).exit_code == 0
    (flat / "leases" / "team-risk").mkdir()
    (flat / "leases" / "team-risk" / "mine.yaml").write_text(lease("mine", "team-risk"))
    result = run_check(flat, NOW)
    assert [(d.file, d.rule) for d in result.errors] == [("leases/team-risk", "files.layout")]
    assert "no subfolders" in result.errors[0].message


# --- attacks GitHub stops: the plan names the owners, CODEOWNERS asks their teams --------------


@dataclass(frozen=True)
class Approval:
    id: str
    ops: tuple[tuple[str, ...], ...]
    owners: frozenset[str]                 # whose approval the plan must list
    reason: str = ""                       # in one of the plan's reasons
    warning: tuple[str, int] | None = None  # (file, line) of a lease.owner-change warning


APPROVAL_ATTACKS = [
    Approval("add-a-lease-in-another-teams-folder", (("write", "leases/team-risk/mine.yaml", lease("mine", "team-risk")),),
             frozenset({"team-risk"}), "lease mine added"),
    Approval("change-another-teams-model-uri", (("replace", FD, "https://models.example.com/private/fraud_xgb.zip",
                                                 "https://evil.example.net/fraud_xgb.zip"),),
             frozenset({"team-risk"}), "lease fraud-detector changed"),
    Approval("delete-another-teams-lease", (("delete", FD),), frozenset({"team-risk"}), "lease fraud-detector deleted"),
    Approval("move-a-name-from-another-teams-lease", (("replace", FD, "  names: [fraud]\n", ""),
                                                      ("replace", IC, "spec:\n", "spec:\n  names: [fraud]\n")),
             frozenset({"team-risk", "team-vision"}),
             "name fraud moves from lease fraud-detector (team-risk) to lease image-classifier (team-vision)"),
    Approval("delete-another-teams-name", (("replace", FD, "  names: [fraud]\n", ""),),
             frozenset({"team-risk"}), "name fraud deleted from lease fraud-detector"),
    Approval("create-a-name", (("replace", IC, "spec:\n", "spec:\n  names: [vision]\n"),),
             frozenset({"team-vision"}), "name vision created on lease image-classifier"),
    Approval("take-the-name-of-a-deleted-lease", (("delete", FD),
                                                  ("write", "leases/team-vision/mine.yaml",
                                                   lease("mine", "team-vision", "  names: [fraud]\n"))),
             frozenset({"team-risk", "team-vision"}), "name fraud moves from lease fraud-detector (team-risk) to lease mine"),
    Approval("alias-a-deleted-leases-own-name", (("delete", FD),
                                                 ("replace", IC, "spec:\n", "spec:\n  names: [fraud-detector]\n")),
             frozenset({"team-risk", "team-vision"}), "name fraud-detector moves from lease fraud-detector"),
    Approval("change-a-leases-owner", (("mv", CS, "leases/team-nlp/chat-small.yaml"),
                                       ("replace", "leases/team-nlp/chat-small.yaml", "owner: team-assist", "owner: team-nlp")),
             frozenset({"team-assist", "team-nlp"}), "lease chat-small changes owner from team-assist to team-nlp",
             ("leases/team-nlp/chat-small.yaml", 6)),
    Approval("take-over-a-lease-and-its-name", (("mv", FD, "leases/team-vision/fraud-detector.yaml"),
                                                ("replace", "leases/team-vision/fraud-detector.yaml",
                                                 "owner: team-risk", "owner: team-vision")),
             frozenset({"team-risk", "team-vision"}), "changes owner from team-risk to team-vision",
             ("leases/team-vision/fraud-detector.yaml", 6)),
]


def codeowners_rules(root: Path) -> list[tuple[str, list[str]]]:
    out = []
    for raw in (root / CO).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            pattern, *owners = line.split()
            out.append((pattern, owners))
    return out


def required_teams(root: Path, base: str) -> set[str]:
    """Who GitHub asks: for every file the pull request touches, the owners of the base's CODEOWNERS
    line that matches it last (one approval from each such line)."""
    rules = codeowners_rules(root)
    touched = set(git(root, "diff", "--name-only", "--no-renames", base).split())
    touched |= set(git(root, "ls-files", "--others", "--exclude-standard").split())
    teams: set[str] = set()
    for path in touched:
        owners: list[str] = []
        for pattern, who in rules:
            if matches(pattern, path):
                owners = who
        teams.add(" ".join(owners))
    return teams


@pytest.mark.parametrize("attack", APPROVAL_ATTACKS, ids=lambda a: a.id)
def test_plan_lists_the_owners_github_asks(repo: Path, attack: Approval) -> None:
    apply(repo, attack.ops)
    plan = build_plan(repo, "HEAD", now=NOW)
    assert plan.errors == [] or attack.id == "take-over-a-lease-and-its-name", plan.errors  # budget
    assert "base does not pass" not in plan.objects_note   # the base's CODEOWNERS is read too
    listed = {a.owner: a for a in plan.approvals}
    assert set(listed) == attack.owners
    assert any(attack.reason in why for a in plan.approvals for why in a.reasons), plan.approvals
    for owner in attack.owners:
        teams = " or ".join(APPROVERS[owner])
        assert listed[owner].asks == teams
    # GitHub's side: the files touched put every listed owner's teams (and nobody else's) in front.
    asked = required_teams(repo, "HEAD")
    assert asked == {" ".join(APPROVERS[o]) for o in attack.owners}, asked
    warnings = [w for w in plan.warnings if w["rule"] == "lease.owner-change"]
    if attack.warning:
        assert [str(w["where"]) for w in warnings] == [f"`{attack.warning[0]}:{attack.warning[1]}`"]
    else:
        assert warnings == []
    md = render_markdown(plan)
    assert "### Approvals GitHub requires" in md
    for owner in attack.owners:
        assert f"| `{owner}` |" in md


def test_flat_base_asks_the_admins(tmp_path: Path) -> None:
    """Before the migration, every lease file is the admins' (CODEOWNERS `/leases/`)."""
    flat = copy_example(tmp_path / "flat")
    declare_approvers(flat)
    from tms_stack.commands.authority import write_codeowners

    write_codeowners(flat)
    git(flat, "init", "-q", "-b", "main")
    git(flat, "add", "-A")
    git(flat, "commit", "-qm", "flat")
    apply(flat, (("replace", "leases/fraud-detector.yaml", "  names: [fraud]\n", ""),))
    plan = build_plan(flat, "HEAD", now=NOW)
    assert [(a.owner, a.asks) for a in plan.approvals] == [
        ("team-risk", f"{ADMINS} (leaseLayout flat: every lease file is the admins')")]
    assert required_teams(flat, "HEAD") == {ADMINS}


AUTHORITY_ATTACK_COUNT = len(CHECK_ATTACKS) + len(APPROVAL_ATTACKS)


def test_the_count_reported() -> None:
    assert AUTHORITY_ATTACK_COUNT == 38
    assert ROOT.is_dir()


def test_the_migration_pull_request_asks_the_admins(tmp_path: Path) -> None:
    """The pull request that migrates: its base is flat, so every lease move is the admins' to approve."""
    flat = copy_example(tmp_path / "flat")
    declare_approvers(flat)
    git(flat, "init", "-q", "-b", "main")
    git(flat, "add", "-A")
    git(flat, "commit", "-qm", "flat")
    migrate(flat)
    plan = build_plan(flat, "HEAD", now=NOW)
    assert plan.errors == []
    fraud = next(a for a in plan.approvals if a.owner == "team-risk")
    assert fraud.reasons == ["lease fraud-detector moved from leases/fraud-detector.yaml to "
                             "leases/team-risk/fraud-detector.yaml"]
    assert fraud.asks.startswith(ADMINS)
