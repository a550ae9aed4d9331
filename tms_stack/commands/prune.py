"""`tms prune`: expiry as a commit. Deletes expired lease files, renews active auto-renew leases.

Decisions come from `decide` (telemetry asked concurrently, within one budget); edits touch only
what they must: a renewal rewrites the one `expires:` value of the file (every other byte stays), a
deletion removes the file (and so the lease's aliases). An auto-renew lease whose activity cannot
be known is left alone (fail safe) until the grace is over. `prune_apply` writes the edits only
when the result adds no `tms check` error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tms_stack.logic.resolve import EffectiveAutoRenew as RenewPolicy
from tms_stack.logic.resolve import effective_auto_renew
from tms_stack.models import Lease, units
from tms_stack.models.diagnostics import TmsError
from tms_stack.models.pool import k8s_pool_name
from tms_stack.outside.activity import (
    ActivitySource,
    PrometheusActivity,
    Question,
    TelemetryError,
    TritonActivity,
    ask_all,
)
from tms_stack.repo.loader import Repository
from tms_stack.repo.lockfile import read_lock
from tms_stack.repo.stack import load_stack_settings

SCRAPE_GRACE = timedelta(minutes=1)
DEFAULT_SCRAPE = timedelta(seconds=15)   # StackSettings.prometheus.scrapeInterval's default
DEFAULT_BUDGET = timedelta(minutes=3)    # all telemetry questions together (`--telemetry-budget`)
DEFAULT_WORKERS = 8                      # questions in flight at once (`--telemetry-concurrency`)


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
    # Expired less than one scrape interval (+1 min) ago: judged by the next run, once the last scrape landed.
    waiting: list[tuple[str, str, datetime]] = field(default_factory=list)   # (lease, file, expires)
    # Active, but `expires` could not be rewritten safely (or the result failed `tms check`): left
    # alone, or deleted (then also in `expired`) when past the grace.
    unrenewable: list[tuple[str, str, str]] = field(default_factory=list)    # (lease, file, why)

    @property
    def changed(self) -> bool:
        return bool(self.expired or self.renewed)

    def commit_message(self) -> str:
        if not self.changed:
            head = f"{PRUNE_SUBJECT} nothing to do"
        else:
            parts = []
            if self.expired:
                parts.append(f"remove {len(self.expired)} expired lease{'s' if len(self.expired) != 1 else ''}")
            if self.renewed:
                parts.append(f"renew {len(self.renewed)}")
            head = f"{PRUNE_SUBJECT} " + ", ".join(parts)
        lines = [head, ""]
        if self.expired:
            lines.append(EXPIRED_HEADING)
            lines += [f"- {name} ({file}), expired {units.format_utc(ts)}" for name, file, ts in self.expired]
        if self.expired_unknown:
            lines.append("WARNING: expired with activity still unknown after the grace (fail closed):")
            lines += [f"- {name} ({file}): {why}" for name, file, why in self.expired_unknown]
        if self.renewed:
            lines.append("Renewed (served requests in their activity window):")
            lines += [f"- {r.lease} ({r.file}): {units.format_utc(r.old)} -> {units.format_utc(r.new)}"
                      for r in self.renewed]
        if self.unrenewable:
            lines.append("WARNING: active, but not renewed (expires cannot be rewritten safely):")
            lines += [f"- {name} ({file}): {why}" for name, file, why in self.unrenewable]
        if self.unknown:
            lines.append("Left alone (activity unknown, fail safe):")
            lines += [f"- {name} ({file}): {why}" for name, file, why in self.unknown]
        if self.waiting:
            lines.append("Waiting for the last scrape (judged by the next run):")
            lines += [f"- {name} ({file}), expired {units.format_utc(ts)}" for name, file, ts in self.waiting]
        return "\n".join(lines).rstrip() + "\n"


PRUNE_SUBJECT = "tms prune:"
EXPIRED_HEADING = "Expired (deleted):"


def removed_for_expiry(message: str, name: str) -> bool:
    """Whether a commit message is prune's, listing `name` among the leases it deleted for expiry
    (commit_message above). Also read from a squash merge of prune's pull request, where GitHub
    quotes the commit message (indented or bulleted)."""
    if PRUNE_SUBJECT not in message or EXPIRED_HEADING not in message:
        return False
    section = message.split(EXPIRED_HEADING, 1)[1]
    for line in section.splitlines():
        text = line.strip().lstrip("*").strip()
        if text.startswith(f"- {name} (") and "), expired " in text:
            return True
        if text and not text.startswith("- "):
            break  # the next heading: the expired list is over
    return False


def telemetry_source(root: Path, prometheus_url: str | None, triton_url: str | None,
                     namespace: str = "default", stack: str | None = None) -> ActivitySource | None:
    """The job's environment (URL options) first, then the stack's `tms-stack:telemetry`. None
    when neither names a reachable source: every auto-renew decision is then unknown (and bounded
    by the grace)."""

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


def placements(repo: Repository) -> dict[str, str]:
    """Pooled lease -> the Kubernetes name of the instance that holds it, from the placement lock
    (what rendering deploys). A lock that cannot be read gives none: those leases are unknown."""
    try:
        lock = read_lock(repo.root)
    except TmsError:
        return {}
    out: dict[str, str] = {}
    for pool, placement in (lock.pools if lock else {}).items():
        for inst in placement.instances:
            for name in inst.leases:
                out[name] = f"{k8s_pool_name(pool)}-{inst.index}"
    return out


def decide(repo: Repository, now: datetime, source: ActivitySource | None, *,
           budget: float = DEFAULT_BUDGET.total_seconds(), workers: int = DEFAULT_WORKERS,
           scrape_interval: timedelta = DEFAULT_SCRAPE, progress: Callable[[int, int], None] | None = None,
           ) -> PruneResult:
    """What to delete and renew at `now`. Activity is asked of `source` for every expired
    auto-renew lease at once (`workers` at a time, all within `budget` seconds; a lease not asked
    in time is unknown, never idle)."""
    result = PruneResult()
    grace = units.parse_duration(repo.limits.spec.autoRenew.unknownGrace)
    longest = units.parse_duration(repo.limits.spec.leases.duration.maximum)
    # Requests in the last moments before `expires` reach Prometheus with the next scrape: the
    # window reaches one scrape interval (plus a minute for the sample to land) past `expires`, and
    # a lease is judged only once that moment has passed (issue 22).
    landing = scrape_interval + SCRAPE_GRACE

    def unknown(lease: Lease, file: str, why: str) -> None:
        if now - lease.spec.expires > grace:
            result.expired.append((lease.name, file, lease.spec.expires))
            result.expired_unknown.append((lease.name, file, f"{why} (grace {repo.limits.spec.autoRenew.unknownGrace} over)"))
        else:
            result.unknown.append((lease.name, file, why))

    asked: list[tuple[Lease, str, RenewPolicy]] = []
    questions: list[Question] = []
    instances = placements(repo) if source is not None else {}
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
        if now < expires + landing:
            result.waiting.append((lease.name, loaded.file, expires))
            continue
        asked.append((lease, loaded.file, renew))
        questions.append(Question(lease, expires - renew.activity_window, expires + landing,
                                  instances.get(lease.name)))
    answers = ask_all(source, questions, budget, workers, progress) if source is not None else []
    for (lease, file, renew), answer in zip(asked, answers, strict=True):
        expires = lease.spec.expires
        if isinstance(answer, TelemetryError):
            unknown(lease, file, str(answer))
            continue
        if not answer:
            result.expired.append((lease.name, file, expires))
            continue
        new = expires + renew.renewal_duration
        if new <= now:  # the job ran late: the renewal counts from now
            new = now + renew.renewal_duration
        # Never past the admin maximum lease duration, counted from now: the renewed file must pass check.
        new = min(new, now + longest).astimezone(UTC).replace(microsecond=0)
        result.renewed.append(Renewal(lease.name, file, expires, new, renew.activity_window))
    return result
