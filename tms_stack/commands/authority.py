"""`tms codeowners` (write .github/CODEOWNERS from the policies) and `tms lease migrate` (move every
lease into its owner's folder, switch the policy on, regenerate CODEOWNERS). docs/security.md,
"Who may change what"."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml.comments import CommentedMap

from tms_stack.logic.codeowners import PATH, generate
from tms_stack.models import Lease
from tms_stack.models.diagnostics import Conflict, UnreadableInput
from tms_stack.repo.leasefiles import lease_owner_folder
from tms_stack.repo.loader import Repository, load_repository
from tms_stack.repo.yamlio import dump_rt, load_rt

LIMITS_HINT = ("declare who approves what in policies/limits.yaml first: spec.codeOwners.admins (the admins' "
               "team) and, per owner, spec.owners: {team-a: [\"@org/team-a\"]} (docs/security.md)")


def _repository(root: Path) -> Repository:
    repo = load_repository(root)
    broken = sorted({d.location() + f": {d.message}" for d in repo.unreadable}
                    | {d.location() + f": {d.message}" for d in repo.diagnostics
                       if d.file.startswith(("policies/", "leases/")) and d.rule.endswith(".schema")})
    if broken or repo.invalid_policies:
        raise UnreadableInput("fix these files first (tms check):\n" + "\n".join(f"  {b}" for b in broken
                                                                             or sorted(repo.invalid_policies)))
    return repo


def write_codeowners(root: Path, repo: Repository | None = None) -> tuple[Path, bool]:
    """Write .github/CODEOWNERS from the policies: (path, whether it changed)."""
    repo = repo or _repository(root)
    if repo.limits.spec.codeOwners is None:
        raise UnreadableInput(f"no spec.codeOwners in the policies: {LIMITS_HINT}")
    target = root / PATH
    if target.is_symlink() or target.parent.is_symlink():
        raise Conflict(f"{target} is a symbolic link: refusing to write through it")
    text = generate(repo.limits.spec)
    if target.is_file() and target.read_text(encoding="utf-8") == text:
        return target, False
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target, True


@dataclass
class Migration:
    moves: list[tuple[str, str]] = field(default_factory=list)   # (from, to), root-relative
    policy: str = ""          # the policy file switched to by-owner ("" when it already was)
    codeowners_changed: bool = False


def _git(root: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if out.returncode != 0:
        raise Conflict(f"git {' '.join(args)} failed: {(out.stderr or out.stdout).strip()}")
    return out.stdout


def migrate(root: Path) -> Migration:
    """Move every lease into leases/<owner>/ with `git mv` (content unchanged), set
    spec.leaseLayout: by-owner in the Limits policy (comments kept) and regenerate CODEOWNERS;
    everything is staged, nothing committed. Refuses a dirty tree (Conflict) and an unreadable or
    invalid lease or policy (UnreadableInput) before anything changes."""
    root = root.resolve()
    probe = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True, text=True)
    if probe.returncode != 0:
        raise Conflict(f"{root} is not in a git work tree: tms lease migrate moves the files with git mv")
    dirty = _git(root, "status", "--porcelain", "--untracked-files=all", "--", ".").strip()
    if dirty:
        first = dirty.splitlines()[:5]
        raise Conflict("the work tree has uncommitted changes; commit or stash them first, so the migration is "
                       "one reviewable commit:\n" + "\n".join(f"  {line}" for line in first))
    repo = _repository(root)
    spec = repo.limits.spec
    if spec.codeOwners is None:
        raise UnreadableInput(f"no spec.codeOwners in the policies: {LIMITS_HINT}")
    limits = repo.policy_files.get("Limits")
    if limits is None:
        raise UnreadableInput(f"no Limits policy in policies/: {LIMITS_HINT}")
    plan: list[tuple[Path, Path]] = []
    for loaded in sorted(repo.leases.values(), key=lambda entry: entry.file):
        lease: Lease = loaded.model  # type: ignore[assignment]
        if lease_owner_folder(loaded.file) == lease.metadata.owner:
            continue
        source = root / loaded.file
        target = root / "leases" / lease.metadata.owner / source.name
        if target.exists() or target.is_symlink():
            raise Conflict(f"{target.relative_to(root)} exists already: cannot move {loaded.file} there")
        plan.append((source, target))
    result = Migration()
    for source, target in plan:
        target.parent.mkdir(parents=True, exist_ok=True)
        _git(root, "mv", "--", str(source.relative_to(root)), str(target.relative_to(root)))
        result.moves.append((source.relative_to(root).as_posix(), target.relative_to(root).as_posix()))
    if spec.leaseLayout != "by-owner":
        _switch_layout(root / limits.file)
        _git(root, "add", "--", limits.file)
        result.policy = limits.file
    _, result.codeowners_changed = write_codeowners(root)
    _git(root, "add", "--", PATH)
    return result


def _switch_layout(path: Path) -> None:
    """`spec.leaseLayout: by-owner` in the Limits file; every comment and other line kept."""
    try:
        data, rt = load_rt(path)
    except UnreadableInput as exc:
        raise UnreadableInput(str(exc)) from None
    spec = data.get("spec")
    if spec is None:
        spec = CommentedMap()
        data["spec"] = spec
    if "leaseLayout" in spec:
        spec["leaseLayout"] = "by-owner"
    else:
        after = list(spec).index("owners") + 1 if "owners" in spec else len(spec)
        spec.insert(after, "leaseLayout", "by-owner",
                    comment="leases/<owner>/<name>.yaml: CODEOWNERS asks each owner's team (tms lease migrate)")
    path.write_text(dump_rt(data, rt), encoding="utf-8")
