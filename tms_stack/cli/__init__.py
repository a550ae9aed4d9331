"""The `tms` command line: a thin edge over the core. One module per command group."""

from __future__ import annotations

from tms_stack.cli import (
    agent,
    allowlist,
    authority,
    doctor,
    drift,
    examples,
    helpfmt,
    init,
    lease,
    leasename,
    leasestatus,
    lifecycle,
    pool,
    poolmerge,
    render,
    shard,
)
from tms_stack.cli.app import app

# The whole command tree, assembled here and only here (no command module registers another).
# `tms lease name ...` and `tms lease status` hang under `tms lease`, before it joins the root.
leasename.register(lease.lease_app)
leasestatus.register(lease.lease_app)
authority.register_lease(lease.lease_app)
for _group in (render, pool, poolmerge, lease, allowlist, lifecycle, drift, agent, doctor, init, authority, shard):
    _group.register(app)
helpfmt.install()
examples.attach(app)  # after registration: every command's --help ends with examples


def main() -> None:
    app()


__all__ = ["app", "main"]
