"""`tms check`: load, apply every rule, report in text, GitHub annotations or JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tms_stack.diagnostics import Diagnostic, Severity
from tms_stack.loader import Repository, load_repository

EXIT_OK, EXIT_VIOLATIONS, EXIT_UNREADABLE = 0, 1, 2
GITHUB_MAX_PER_SEVERITY = 10  # GitHub shows 10 errors + 10 warnings per step
JSON_SCHEMA_VERSION = 1

# Later pieces (placement, lock) contribute rules here without check.py knowing them.
ExtraRule = Callable[[Repository, datetime | None], list[Diagnostic]]
EXTRA_RULES: list[ExtraRule] = []


@dataclass
class CheckResult:
    repo: Repository
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def unreadable(self) -> list[Diagnostic]:
        return self.repo.unreadable

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity is Severity.WARNING]

    @property
    def exit_code(self) -> int:
        if self.unreadable:
            return EXIT_UNREADABLE
        return EXIT_VIOLATIONS if self.errors else EXIT_OK

    def all(self) -> list[Diagnostic]:
        return sorted(self.unreadable + self.diagnostics)


def run_check(root: Path, now: datetime | None = None, only: list[str] | None = None,
              progress: Callable[[int, int], None] | None = None) -> CheckResult:
    """Check the repository at `root`. `only` limits the report to those files (rules still see all)."""
    from tms_stack.rules import check_repository

    repo = load_repository(root, progress=progress)
    diags = check_repository(repo, now)
    for rule in EXTRA_RULES:
        diags.extend(rule(repo, now))
    diags = sorted(set(diags))
    # Path() already drops "./"; "." (the whole repository) means no filter.
    wanted = {Path(p).as_posix().rstrip("/") for p in only or ()} - {"."}
    if wanted:
        keep = lambda d: any(d.file == w or d.file.startswith(w + "/") for w in wanted)
        diags = [d for d in diags if keep(d)]
        repo.unreadable = [d for d in repo.unreadable if keep(d)]
    return CheckResult(repo, diags)


def format_text(result: CheckResult, excerpts: bool = False) -> str:
    """One line per finding; with `excerpts`, the offending source line and a caret under it."""
    lines = []
    sources: dict[str, list[str]] = {}
    for d in result.all():
        kind = "warning" if d.severity is Severity.WARNING else "error"
        lines.append(f"{d.location()}: {kind}: {d.message} [{d.rule}]")
        if excerpts and d.line >= 1:
            lines.extend(_excerpt(result.repo.root, d, sources))
    n_leases, n_pools = len(result.repo.leases), len(result.repo.pools)
    summary = (f"{len(result.errors) + len(result.unreadable)} error(s), {len(result.warnings)} warning(s) "
               f"in {n_leases} lease(s), {n_pools} pool(s)")
    lines.append(("OK: " if result.exit_code == EXIT_OK else "FAILED: ") + summary)
    return "\n".join(lines)


EXCERPT_WIDTH = 100


def _excerpt(root: Path, d: Diagnostic, cache: dict[str, list[str]]) -> list[str]:
    if d.file not in cache:
        try:
            cache[d.file] = (root / d.file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            cache[d.file] = []
    source = cache[d.file]
    if d.line > len(source):
        return []
    text, col = source[d.line - 1].rstrip(), max(d.col, 1)
    # Long lines (flow mappings) are cut to a window around the column, so the caret stays visible.
    start = max(0, min(col - 1 - EXCERPT_WIDTH // 2, len(text) - EXCERPT_WIDTH))
    lead = "..." if start else ""
    shown = lead + text[start:start + EXCERPT_WIDTH] + ("..." if len(text) > start + EXCERPT_WIDTH else "")
    # Tabs before the column are copied so the caret lines up however the terminal expands them.
    pad = "".join("\t" if ch == "\t" else " " for ch in shown[:len(lead) + col - 1 - start])
    gutter = f"{d.line:>5} | "
    return [gutter + shown, " " * (len(gutter) - 2) + "| " + pad + "^"]


def _gh_escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_escape_prop(text: str) -> str:
    return _gh_escape_data(text).replace(":", "%3A").replace(",", "%2C")


def format_github(result: CheckResult, max_per_severity: int = GITHUB_MAX_PER_SEVERITY) -> str:
    lines = []
    shown = {"error": 0, "warning": 0}
    hidden = {"error": 0, "warning": 0}
    for d in result.all():
        kind = "warning" if d.severity is Severity.WARNING else "error"
        if shown[kind] >= max_per_severity:
            hidden[kind] += 1
            continue
        shown[kind] += 1
        props = [f"file={_gh_escape_prop(d.file)}"]
        if d.line:
            props += [f"line={d.line}", f"col={d.col}"]
        props.append(f"title={_gh_escape_prop(d.rule)}")
        lines.append(f"::{kind} {','.join(props)}::{_gh_escape_data(d.message)}")
    for kind, count in hidden.items():
        if count:
            lines.append(f"::{kind}::{count} more {kind}(s) not shown as annotations; run `tms check` for all")
    lines.append(format_text(result).splitlines()[-1])
    return "\n".join(lines)


def format_json(result: CheckResult) -> str:
    """Stable, documented in docs/check-json.md. Keys never disappear; new keys may be added."""
    payload = {
        "version": JSON_SCHEMA_VERSION,
        "ok": result.exit_code == EXIT_OK,
        "exitCode": result.exit_code,
        "summary": {
            "errors": len(result.errors) + len(result.unreadable),
            "warnings": len(result.warnings),
            "leases": len(result.repo.leases),
            "pools": len(result.repo.pools),
        },
        "diagnostics": [d.to_json() for d in result.all()],
    }
    return json.dumps(payload, indent=2, sort_keys=True)


def format_text_with_excerpts(result: CheckResult) -> str:
    return format_text(result, excerpts=True)


FORMATTERS = {"text": format_text_with_excerpts, "github": format_github, "json": format_json}


def _register_builtin_rules() -> None:
    from tms_stack.pool_lock import lock_rules
    from tms_stack.stack import stack_rules

    EXTRA_RULES.append(lock_rules)
    EXTRA_RULES.append(stack_rules)


_register_builtin_rules()
