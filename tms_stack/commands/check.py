"""`tms check`: load, apply every rule, report in text, GitHub annotations or JSON."""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from tms_stack.commands.admin_changes import changed_files_between
from tms_stack.logic.memo import shared_answers
from tms_stack.models.diagnostics import UNREADABLE_RULES, Diagnostic, ExitCode, Severity
from tms_stack.repo.answers import Answers
from tms_stack.repo.loader import Repository, load_repository
from tms_stack.repo.parsecache import ParseCache, ReadFn, reader
from tms_stack.rules import Base, LeaseRuleMemo, check_repository
from tms_stack.rules.leases import expiry_instants

GITHUB_MAX_PER_SEVERITY = 10  # GitHub shows 10 errors + 10 warnings per step
JSON_SCHEMA_VERSION = 1

@dataclass
class CheckResult:
    repo: Repository
    diagnostics: list[Diagnostic] = field(default_factory=list)
    # What could not be read: the loader's findings plus the rules' `yaml` findings.
    unreadable: list[Diagnostic] = field(default_factory=list)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity is Severity.WARNING]

    @property
    def exit_code(self) -> int:
        if self.unreadable:
            return ExitCode.USAGE
        return ExitCode.FINDINGS if self.errors else ExitCode.OK

    def all(self) -> list[Diagnostic]:
        return sorted(self.unreadable + self.diagnostics)


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a repository is loaded and checked: loading allocates
    a few objects per YAML node and frees almost none until the check ends, so the collector's
    passes find nothing to free and cost ~28 % of a 10,000-lease check (issue 27). Restored after;
    nested uses leave it as the outer one found it.

    Before it is turned back on, what is alive is frozen (gc.freeze): the first collection after
    would otherwise walk the million objects of a 10,000-lease repository to find nothing (0.3 CPU s;
    a check at 10,000 leases leaves no cyclic garbage behind, measured). Frozen objects are still
    freed by reference counting when dropped; only cycles among them would outlive their use."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.freeze()
            gc.enable()


def parse_cache(enabled: bool = True) -> ParseCache | None:
    """The parse cache of one `tms check`/`tms plan` run (docs/review.md), None when turned off."""
    return reader(enabled)


def load_base(root: Path, base_dir: Path, label: str,
              files: list[tuple[str, str]] | None = None, read: ReadFn | None = None) -> Base:
    """The base at `base_dir` (a checkout, or the files `repo/basetree.py` wrote) for judging `root`.
    `files`: the changed paths when the caller knows them (git); else the two trees are compared."""
    changed = files if files is not None else changed_files_between(base_dir, root)
    with gc_paused():
        return Base(load_repository(base_dir, read=read), label, tuple(changed))


def run_check(root: Path, now: datetime | None = None, only: list[str] | None = None,
              progress: Callable[[int, int], None] | None = None, base: Base | None = None,
              read: ReadFn | None = None, memo: LeaseRuleMemo | None = None,
              answers: Answers | None = None) -> CheckResult:
    """Check the repository at `root`. `only` limits the report to those files (rules still see all).
    `base`: the revision a pull request is judged against (rules/__init__.py says what changes).
    `read`: how one file is read (repo/parsecache.py: from the parse cache); `memo`: per-lease
    findings shared with another check of the same review (rules/__init__.py LeaseRuleMemo);
    `answers`: whole answers kept between commands (repo/answers.py; only with `read` its cache's)."""
    with gc_paused(), shared_answers():
        repo = load_repository(root, progress=progress, read=read)
        return check_loaded(repo, now, only, base, memo, answers)


def _rules(repo: Repository, now: datetime | None, base: Base | None, memo: LeaseRuleMemo | None,
           answers: Answers | None) -> list[Diagnostic]:
    """check_repository's answer, kept (repo/answers.py) when `answers` is given."""
    if answers is None:
        return check_repository(repo, now, base, memo)
    now = now or datetime.now(UTC)
    key = answers.key(repo, base)
    found = answers.get(key, now)
    if found is None:
        found = check_repository(repo, now, base, memo)
        try:
            # Invalid policies stop the check before any rule reads the time.
            instants = [] if repo.invalid_policies else expiry_instants(repo)
        except (ValueError, TypeError):
            instants = None  # a duration the rules could not read either: nothing kept
        answers.put(key, now, instants, found)
    return found


def check_loaded(repo: Repository, now: datetime | None = None, only: list[str] | None = None,
                 base: Base | None = None, memo: LeaseRuleMemo | None = None,
                 answers: Answers | None = None) -> CheckResult:
    """`run_check` of a repository already loaded (`tms plan` checks the base only when it needs
    to know whether the base passes)."""
    with gc_paused(), shared_answers():
        found = _rules(repo, now, base, memo, answers)
    loaded = set(repo.diagnostics)
    read_by_rules = {d for d in found if d.rule in UNREADABLE_RULES and d not in loaded}
    diags = [d for d in found if d not in read_by_rules]
    unreadable = sorted(set(repo.unreadable) | read_by_rules)
    # Path() already drops "./"; "." (the whole repository) means no filter.
    wanted = {Path(p).as_posix().rstrip("/") for p in only or ()} - {"."}
    if wanted:
        keep = lambda d: any(d.file == w or d.file.startswith(w + "/") for w in wanted)
        diags = [d for d in diags if keep(d)]
        unreadable = [d for d in unreadable if keep(d)]
    return CheckResult(repo, diags, unreadable)


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
    lines.append(("OK: " if result.exit_code == ExitCode.OK else "FAILED: ") + summary)
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
        "ok": result.exit_code == ExitCode.OK,
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
