"""Where a lease file is, for the verbs: `leases/<name>.yaml` (flat) or `leases/<owner>/<name>.yaml`
(the policy `leaseLayout: by-owner`, so that CODEOWNERS can ask each owner's team); how the
loader reads either layout is loader.scan_leases (docs/security.md, "Who may change what")."""

from __future__ import annotations

from pathlib import Path

from tms_stack.models.common import DNS1123
from tms_stack.models.diagnostics import TmsError
from tms_stack.repo.loader import member_path


def lease_owner_folder(file: str) -> str | None:
    """`team-a` for leases/team-a/x.yaml, None for a flat leases/x.yaml."""
    parts = file.split("/")
    return parts[1] if len(parts) == 3 and parts[0] == "leases" else None


def find_lease_file(root: Path, name: str) -> Path | None:
    """Where lease `name` is, in either layout: leases/<name>.yaml or leases/<owner>/<name>.yaml
    (None when neither exists). Refuses an invalid name (member_path) and a name found in more than
    one place (the repository must be fixed first: rule lease.duplicate)."""
    flat = member_path(root, "leases", name)
    found = [flat] if flat.exists() or flat.is_symlink() else []
    base = root / "leases"
    if base.is_dir() and not base.is_symlink():
        for folder in sorted(base.iterdir()):
            candidate = folder / f"{name}.yaml"
            if folder.is_dir() and not folder.is_symlink() and (candidate.exists() or candidate.is_symlink()):
                found.append(candidate)
    if len(found) > 1:
        raise TmsError(f"lease {name!r} is in {len(found)} files ("
                       + ", ".join(p.relative_to(root).as_posix() for p in found)
                       + "): names are unique across owner folders; remove all but one")
    for path in found:
        if path.is_symlink() or path.parent.is_symlink():
            raise TmsError(f"{path} is a symbolic link: refusing to follow it")
    return found[0] if found else None


def new_lease_path(root: Path, name: str, owner: str, layout: str) -> Path:
    """Where a new lease goes: leases/<name>.yaml (flat) or leases/<owner>/<name>.yaml (by-owner)."""
    flat = member_path(root, "leases", name)
    if layout != "by-owner":
        return flat
    if not DNS1123.fullmatch(owner):
        raise TmsError(f"owner {owner!r} is not an owner name: use lowercase letters, digits and '-'")
    folder = root / "leases" / owner
    if folder.is_symlink():
        raise TmsError(f"{folder} is a symbolic link: refusing to follow it")
    return folder / f"{name}.yaml"
