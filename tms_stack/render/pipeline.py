"""Files to objects in one call: load, check (refusing on errors), read stack settings and the
lock, render. The adapters (`tms render`, the Pulumi program) call only this."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from tms_stack.check import format_text, run_check
from tms_stack.diagnostics import TmsError
from tms_stack.lockfile import read_lock
from tms_stack.render import RenderGroup, render_repository
from tms_stack.stack import load_stack_settings


def render_root(root: Path, stack: str | None = None, now: datetime | None = None) -> list[RenderGroup]:
    result = run_check(root, now)
    if result.exit_code != 0:
        kind = "unreadable input" if result.unreadable else "policy violations"
        raise TmsError(f"refusing to render: {kind}\n{format_text(result)}", result.all())
    settings = load_stack_settings(root, stack)
    return render_repository(result.repo, settings, read_lock(root), now)
