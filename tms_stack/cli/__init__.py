"""The `tms` command line: a thin edge over the core. One module per command group."""

from __future__ import annotations

from tms_stack.cli import agent, lease, lifecycle, pool, render
from tms_stack.cli.app import app

for _group in (render, pool, lease, lifecycle, agent):
    _group.register(app)


def main() -> None:
    app()


__all__ = ["app", "main"]
