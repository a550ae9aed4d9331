"""`tms doctor`: is this machine, this repository and this cluster ready for the first deploy?

Each check is a `Check` (area, name, status, detail, fix). `fix` is what to run or do, written so an
admin can paste it. Local checks (tools, layout, stack files, `tms check`) are in `local.py`; the
cluster checks (reachability, namespace, API kinds, RBAC, Secrets, claims, prometheus-adapter,
images) in `cluster.py`; Prometheus reachability in `prometheus.py`. The checklist they follow is
docs/admin-setup.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Status = Literal["ok", "warn", "fail", "skip"]


@dataclass(frozen=True)
class Check:
    area: str  # tools, repository, stack, cluster, prometheus, github
    name: str
    status: Status
    detail: str
    fix: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summary(checks: list[Check]) -> dict[str, int]:
    counts = {"ok": 0, "warn": 0, "fail": 0, "skip": 0}
    for check in checks:
        counts[check.status] += 1
    return counts


def format_text(checks: list[Check]) -> str:
    """A table with a header (STATUS AREA CHECK DETAIL), then each fix indented under its line."""
    rows = [("STATUS", "AREA", "CHECK", "DETAIL")]
    rows += [(c.status.upper(), c.area, c.name, c.detail) for c in checks]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines: list[str] = []
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row[:3])) + "  " + row[3])
        if i and checks[i - 1].fix and checks[i - 1].status in ("warn", "fail"):
            lines.append(" " * (widths[0] + 2) + f"fix: {checks[i - 1].fix}")
    counts = summary(checks)
    lines.append(f"{counts['fail']} failed, {counts['warn']} warnings, {counts['ok']} ok, {counts['skip']} skipped")
    return "\n".join(lines)
