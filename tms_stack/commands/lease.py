"""What the lease verbs share (create, list, status, renew, release, name ...): where a lease
file lives, how its times and its Triton host are written, which namespace it is served in."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from tms_stack.models import units
from tms_stack.repo.leasefiles import find_lease_file
from tms_stack.repo.loader import member_path
from tms_stack.repo.stack import load_stack_settings, stack_names


def lease_file(root: Path, name: str) -> Path:
    """Where lease `name` is: leases/<name>.yaml, or leases/<owner>/<name>.yaml in the by-owner
    layout (the flat path when there is none yet); the name is validated (member_path) before any
    file is touched. Raises TmsError for a name that is not a lease name, or one in two files."""
    return find_lease_file(root, name) or member_path(root, "leases", name)


def timestamp(t: datetime | None) -> str | None:
    """A lease time as written in files and output: UTC, seconds, `Z`."""
    return units.format_utc(t) if t else None


def stack_namespace(root: Path) -> str | None:
    """The only stack's namespace; None with several stack files (the host is then shown without
    one). Raises TmsError for an unreadable stack file."""
    if len(stack_names(root)) > 1:
        return None
    return load_stack_settings(root).namespace


def triton_host(name: str, namespace: str | None) -> str:
    return f"{name}.{namespace}.svc.cluster.local" if namespace else name
