"""Typed models of every file kind."""

from pydantic import BaseModel

from tms_stack.models.lease import Lease
from tms_stack.models.policies import Allowlist, Limits, Repositories
from tms_stack.models.pool import Pool

KINDS: dict[str, type[BaseModel]] = {"Lease": Lease, "Pool": Pool, "Limits": Limits, "Allowlist": Allowlist, "Repositories": Repositories}

__all__ = ["KINDS", "Allowlist", "Lease", "Limits", "Pool", "Repositories"]
