"""The `tms` command line: a thin edge over the core. One module per command group."""

from __future__ import annotations

from tms_stack.cli import agent, doctor, examples, init, lease, lifecycle, pool, poolmerge, render
from tms_stack.cli.app import app

for _group in (render, pool, poolmerge, lease, lifecycle, agent, doctor, init):
    _group.register(app)
examples.attach(app)  # after registration: every command's --help ends with examples


def main() -> None:
    app()


__all__ = ["app", "main"]
