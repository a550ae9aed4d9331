"""Shell completion of the names a user types most: leases and pools of the repository the shell
is in (stacks: `complete_stacks` in common.py, beside `--stack`); `tms --install-completion`
installs it (issue 26). Reads file names only: a completion runs on every TAB and must not parse
the repository."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tms_stack.cli.common import walk_up_to_root


def _root() -> Path | None:
    try:
        return walk_up_to_root(Path.cwd())
    except OSError:
        return None


def _stems(folder: str, incomplete: str) -> list[str]:
    root = _root()
    if root is None or not (root / folder).is_dir():
        return []
    return sorted(p.stem for p in (root / folder).glob("*.yaml")
                  if p.is_file() and p.stem.startswith(incomplete) and p.name != "placement.lock.yaml")


def complete_leases(incomplete: str) -> list[str]:
    return _stems("leases", incomplete)


def complete_pools(incomplete: str) -> list[str]:
    return _stems("pools", incomplete)


LeaseArg = Annotated[str, typer.Argument(metavar="NAME", help="the lease's name", show_default=False,
                                         autocompletion=complete_leases)]
PoolArg = Annotated[str, typer.Argument(metavar="NAME", help="the pool's name", show_default=False,
                                        autocompletion=complete_pools)]
