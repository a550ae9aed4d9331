"""The bound on expiry that holds whatever fails: a lease expired for longer than the admin grace
(`autoRenew.unknownGrace`) is left out of every render and of the Pulumi program, even when prune
never ran or never committed. Prune deletes the file; this makes sure the cluster follows anyway.
One place, used by `tms render`, the program (both through render_repository) and `tms plan`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tms_stack.models import Lease, units
from tms_stack.models.policies import Limits


def grace(limits: Limits) -> timedelta:
    return units.parse_duration(limits.spec.autoRenew.unknownGrace)


def long_expired(lease: Lease, limits: Limits, now: datetime | None = None) -> bool:
    """Expired for longer than the grace: prune would have removed it (or will, fail closed)."""
    moment = now or datetime.now(UTC)
    return moment - lease.spec.expires > grace(limits)


def live_leases(leases: list[Lease], limits: Limits, now: datetime | None = None) -> tuple[list[Lease], list[Lease]]:
    """(kept, left out) with the same clock for every lease."""
    moment = now or datetime.now(UTC)
    kept = [lease for lease in leases if not long_expired(lease, limits, moment)]
    gone = [lease for lease in leases if long_expired(lease, limits, moment)]
    return kept, gone
