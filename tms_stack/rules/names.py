"""Rules on names that reach Kubernetes and must have one owner: Services and aliases."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator

from tms_stack.models import Lease, Pool
from tms_stack.models.diagnostics import Diagnostic
from tms_stack.models.pool import k8s_pool_name
from tms_stack.repo.loader import Repository
from tms_stack.rules.context import Ctx


def service_names(repo: Repository) -> dict[str, str]:
    """Kubernetes Service names of the leases themselves -> what owns them (pool instances: see
    `pool_instance_owner`, which does not enumerate up to instances.max)."""
    return {loaded.model.name: f"lease {loaded.file}" for loaded in repo.leases.values()}  # type: ignore[attr-defined]


def pool_instance_owner(repo: Repository) -> Callable[[str], str | None]:
    """`name -> "pool <file>"` when `name` is the Service of a pool instance (`<pool>-<n>`), else
    None. Every n is reserved, not only those below today's instances.max: a pool may grow, and
    an instance must never find its name taken by a lease (nor `<pool>-01` pass for one)."""
    by_prefix: dict[str, list[str]] = defaultdict(list)
    for loaded in repo.pools.values():
        pool: Pool = loaded.model  # type: ignore[assignment]
        by_prefix[k8s_pool_name(pool.name)].append(loaded.file)

    def owner(name: str) -> str | None:
        prefix, _, index = name.rpartition("-")
        if not index.isdigit() or not index.isascii():
            return None
        return next((f"pool {file}" for file in by_prefix.get(prefix, ())), None)

    return owner


def alias_rules(ctx: Ctx) -> Iterator[Diagnostic]:
    reserved = service_names(ctx.repo)
    pool_owner = pool_instance_owner(ctx.repo)
    owners: dict[str, str] = {}
    for loaded in ctx.repo.leases.values():
        lease: Lease = loaded.model  # type: ignore[assignment]
        for i, alias in enumerate(lease.spec.names):
            path = ("spec", "names", i)
            taken_by = reserved.get(alias) or pool_owner(alias)
            if taken_by:
                yield ctx.at(loaded, path, "names.clash",
                             f"name {alias!r} is already the Service of {taken_by}: pick another name")
            elif owners.get(alias) == loaded.file:
                yield ctx.at(loaded, path, "names.unique", f"name {alias!r} appears twice in spec.names")
            elif alias in owners:
                yield ctx.at(loaded, path, "names.unique",
                             f"name {alias!r} is already taken by {owners[alias]}: names are unique across leases "
                             "(move it with `tms lease name move`)")
            else:
                owners[alias] = loaded.file
