"""Help text conventions (issue 26, after issue 14): one placeholder style everywhere (`NAME`,
`[NAME]`, `ARGS...`, `INTEGER`: click's, where typer printed `{name}`, `[name]`, `INT RANGE`),
and command lists that show each summary whole, wrapped, where click cut it at the terminal's
width ("Write every Kubernetes object as YAML: usable by kubectl,...")."""

from __future__ import annotations

from typing import Any


def _argument_name(param: Any) -> str:
    raw = param.metavar if param.metavar is not None else param.name
    return str(raw).upper().replace("-", "_")


def install() -> None:
    from typer import core

    def usage_name(self: Any) -> str:
        name = _argument_name(self)
        name = name if self.required else f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")

    def help_name(self: Any) -> str:
        return _argument_name(self) + ("..." if self.nargs != 1 else "")

    typed = core.TyperArgument.display_type_rich

    def argument_type(self: Any, ctx: Any) -> str | None:
        shown = typed(self, ctx)
        # NAME says what it is: TEXT adds nothing, and `PATH PATH` names it twice.
        return None if shown in ("TEXT", "TEXT...") or shown == _argument_name(self) else shown

    core.TyperArgument.display_type_rich = argument_type  # type: ignore[method-assign]
    core.TyperArgument._usage_display_name = usage_name  # type: ignore[method-assign]
    core.TyperArgument._rich_display_name = help_name  # type: ignore[method-assign]

    def format_commands(self: Any, ctx: Any, formatter: Any) -> None:
        rows = []
        for sub in self.list_commands(ctx):
            cmd = self.get_command(ctx, sub)
            if cmd is None or cmd.hidden:
                continue
            # The first sentence whole: write_dl wraps it under its column.
            rows.append((sub, cmd.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    core.TyperGroup.format_commands = format_commands  # type: ignore[method-assign]
