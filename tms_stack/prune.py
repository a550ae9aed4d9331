"""`tms prune`: expiry as a commit. Deletes expired lease files, renews active auto-renew leases.

Decisions are pure (`decide`); edits touch only what they must: a renewal rewrites the one
`expires:` line of the file (every other byte stays), a deletion removes the file (and so the
lease's aliases). An auto-renew lease whose activity cannot be known is left alone (fail safe).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import yaml

from tms_stack import units
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
    # Unknown for longer than the grace: deleted all the same (fail closed), and said so loudly.
    expired_unknown: list[tuple[str, str, str]] = field(default_factory=list)  # (lease, file, why)

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
        if self.expired_unknown:
            lines.append("WARNING: expired with activity still unknown after the grace (fail closed):")
            lines += [f"- {name} ({file}): {why}" for name, file, why in self.expired_unknown]
        if self.renewed:
            lines.append("Renewed (served requests in their activity window):")
            lines += [f"- {r.lease} ({r.file}): {r.old:%Y-%m-%dT%H:%M:%SZ} -> {r.new:%Y-%m-%dT%H:%M:%SZ}"
                      for r in self.renewed]
        if self.unknown:
            lines.append("Left alone (activity unknown, fail safe):")
            lines += [f"- {name} ({file}): {why}" for name, file, why in self.unknown]
        return "\n".join(lines).rstrip() + "\n"


def telemetry_source(root: Path, prometheus_url: str | None, triton_url: str | None,
                     namespace: str = "default", stack: str | None = None) -> ActivitySource | None:
    """The job's environment (URL options) first, then the stack's `tms-stack:telemetry`. None
    when neither names a reachable source: every auto-renew decision is then unknown (and bounded
    by the grace)."""
    from tms_stack.activity import PrometheusActivity, TritonActivity
    from tms_stack.diagnostics import TmsError
    from tms_stack.stack import load_stack_settings

    if prometheus_url:
        return PrometheusActivity(prometheus_url)
    if triton_url:
        return TritonActivity(triton_url, namespace)
    try:
        telemetry = load_stack_settings(root, stack).telemetry
    except TmsError:
        return None  # unreadable or ambiguous stack settings: unknown, bounded by the grace
    if telemetry is None:
        return None
    if telemetry.source == "prometheus" and telemetry.prometheusUrl:
        return PrometheusActivity(telemetry.prometheusUrl)
    if telemetry.source == "triton" and telemetry.tritonUrlTemplate:
        return TritonActivity(telemetry.tritonUrlTemplate, namespace)
    return None


def decide(repo: Repository, now: datetime, source: ActivitySource | None) -> PruneResult:
    result = PruneResult()
    grace = units.parse_duration(repo.limits.spec.autoRenew.unknownGrace)
    longest = units.parse_duration(repo.limits.spec.leases.duration.maximum)

    def unknown(lease: Lease, file: str, why: str) -> None:
        if now - lease.spec.expires > grace:
            result.expired.append((lease.name, file, lease.spec.expires))
            result.expired_unknown.append((lease.name, file, f"{why} (grace {repo.limits.spec.autoRenew.unknownGrace} over)"))
        else:
            result.unknown.append((lease.name, file, why))

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
            unknown(lease, loaded.file, "no telemetry source configured")
            continue
        # Requests in the last moments before expiry reach Prometheus with the next scrape: look a
        # little past `expires` (never past now) so they count.
        try:
            active = source.active(lease, expires - renew.activity_window, min(now, expires + SCRAPE_GRACE))
        except TelemetryError as exc:
            unknown(lease, loaded.file, str(exc))
            continue
        if not active:
            result.expired.append((lease.name, loaded.file, expires))
            continue
        new = expires + renew.renewal_duration
        if new <= now:  # the job ran late: the renewal counts from now
            new = now + renew.renewal_duration
        # Never past the admin maximum lease duration, counted from now: the renewed file must pass check.
        new = min(new, now + longest).replace(microsecond=0)
        result.renewed.append(Renewal(lease.name, loaded.file, expires, new, renew.activity_window))
    return result


def rewrite_expires(text: str, new: datetime) -> str:
    """Replace the value of `spec.expires` and nothing else, whatever form check accepted: plain,
    quoted, tagged (`!!timestamp`), with a space before the time, in block or flow style, or on the
    next line. The span comes from the YAML parser's own marks, so no form is guessed at; the new
    value is a plain ISO timestamp, valid in block and flow context alike."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    node = _child(_child(root, "spec"), "expires")
    if node is None or not isinstance(node, yaml.ScalarNode):
        raise ValueError("no scalar spec.expires to rewrite")
    a, b = node.start_mark.index, node.end_mark.index
    return text[:a] + new.strftime("%Y-%m-%dT%H:%M:%SZ") + text[b:]


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return v
    return None


def apply(root: Path, repo: Repository, result: PruneResult) -> list[Path]:
    """Write the decisions; returns the paths touched (lease files and, if pools changed, the lock)."""
    touched: list[Path] = []
    for renewal in result.renewed:
        path = root / renewal.file
        path.write_text(rewrite_expires(path.read_text(encoding="utf-8"), renewal.new), encoding="utf-8")
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
