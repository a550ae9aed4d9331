"""`tms prune`: expiry as a commit. Deletes expired lease files, renews active auto-renew leases.

Decisions are pure (`decide`); edits touch only what they must: a renewal rewrites the one
`expires:` line of the file (every other byte stays), a deletion removes the file (and so the
lease's aliases). An auto-renew lease whose activity cannot be known is left alone (fail safe).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from tms_stack.activity import ActivitySource, TelemetryError
from tms_stack.loader import Repository, load_repository
from tms_stack.models import Lease
from tms_stack.resolve import effective_auto_renew

SCRAPE_GRACE = timedelta(minutes=1)


@dataclass(frozen=True)
class Renewal:
    lease: str
    file: str
    old: datetime
    new: datetime
    window: timedelta


@dataclass
class PruneResult:
    expired: list[tuple[str, str, datetime]] = field(default_factory=list)   # (lease, file, expires)
    renewed: list[Renewal] = field(default_factory=list)
    unknown: list[tuple[str, str, str]] = field(default_factory=list)        # (lease, file, why)

    @property
    def changed(self) -> bool:
        return bool(self.expired or self.renewed)

    def commit_message(self) -> str:
        if not self.changed:
            head = "tms prune: nothing to do"
        else:
            parts = []
            if self.expired:
                parts.append(f"remove {len(self.expired)} expired lease{'s' if len(self.expired) != 1 else ''}")
            if self.renewed:
                parts.append(f"renew {len(self.renewed)}")
            head = "tms prune: " + ", ".join(parts)
        lines = [head, ""]
        if self.expired:
            lines.append("Expired (deleted):")
            lines += [f"- {name} ({file}), expired {ts:%Y-%m-%dT%H:%M:%SZ}" for name, file, ts in self.expired]
        if self.renewed:
            lines.append("Renewed (served requests in their activity window):")
            lines += [f"- {r.lease} ({r.file}): {r.old:%Y-%m-%dT%H:%M:%SZ} -> {r.new:%Y-%m-%dT%H:%M:%SZ}"
                      for r in self.renewed]
        if self.unknown:
            lines.append("Left alone (activity unknown, fail safe):")
            lines += [f"- {name} ({file}): {why}" for name, file, why in self.unknown]
        return "\n".join(lines).rstrip() + "\n"


def decide(repo: Repository, now: datetime, source: ActivitySource | None) -> PruneResult:
    result = PruneResult()
    for _stem, loaded in sorted(repo.leases.items()):
        lease: Lease = loaded.model  # type: ignore[assignment]
        expires = lease.spec.expires
        if expires > now:
            continue
        renew = effective_auto_renew(lease, repo.limits) if repo.limits.spec.autoRenew.enabled else None
        if renew is None:
            result.expired.append((lease.name, loaded.file, expires))
            continue
        if source is None:
            result.unknown.append((lease.name, loaded.file, "no telemetry source configured"))
            continue
        # Requests in the last moments before expiry reach Prometheus with the next scrape: look a
        # little past `expires` (never past now) so they count.
        try:
            active = source.active(lease, expires - renew.activity_window, min(now, expires + SCRAPE_GRACE))
        except TelemetryError as exc:
            result.unknown.append((lease.name, loaded.file, str(exc)))
            continue
        if not active:
            result.expired.append((lease.name, loaded.file, expires))
            continue
        new = expires + renew.renewal_duration
        if new <= now:  # the job ran late: the renewal counts from now
            new = now + renew.renewal_duration
        result.renewed.append(Renewal(lease.name, loaded.file, expires, new, renew.activity_window))
    return result


_EXPIRES = re.compile(r"^(?P<head>\s*expires:\s*)(?P<quote>['\"]?)(?P<value>[^'\"#\s]+)(?P=quote)(?P<tail>.*)$")


def rewrite_expires(text: str, line: int, new: datetime) -> str:
    """Replace the timestamp on 1-based `line` (the `expires:` line) and nothing else."""
    lines = text.splitlines(keepends=True)
    current = lines[line - 1]
    body = current.rstrip("\r\n")
    ending = current[len(body):]
    match = _EXPIRES.match(body)
    if not match:
        raise ValueError(f"line {line} is not an `expires:` line: {body!r}")
    stamp = new.strftime("%Y-%m-%dT%H:%M:%SZ")
    lines[line - 1] = f"{match['head']}{match['quote']}{stamp}{match['quote']}{match['tail']}{ending}"
    return "".join(lines)


def apply(root: Path, repo: Repository, result: PruneResult) -> list[Path]:
    """Write the decisions; returns the paths touched (lease files and, if pools changed, the lock)."""
    touched: list[Path] = []
    for renewal in result.renewed:
        path = root / renewal.file
        loaded = repo.leases[Path(renewal.file).stem]
        line = loaded.doc.key_pos(("spec", "expires")).line
        path.write_text(rewrite_expires(path.read_text(encoding="utf-8"), line, renewal.new), encoding="utf-8")
        touched.append(path)
    pooled_gone = False
    for _name, file, _ in result.expired:
        path = root / file
        lease: Lease = repo.leases[Path(file).stem].model  # type: ignore[assignment]
        pooled_gone |= lease.spec.pool is not None
        path.unlink()
        touched.append(path)
    if pooled_gone:
        from tms_stack.lockfile import lock_path, read_lock, write_lock
        from tms_stack.pool_lock import compute

        after = load_repository(root)
        if write_lock(root, compute(after, read_lock(root)).lock):
            touched.append(lock_path(root))
    return touched
