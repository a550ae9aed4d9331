"""Prune never breaks main (issue 21) and keeps time right (issue 22):

- `tms check` accepts `expires` only as a plain or quoted timestamp: the shapes that prune's in-place
  rewrite would turn into broken YAML (block `|-`, folded `>-`, an anchor, an alias) and tags are
  `lease.expires-form` errors at the key's line, with the fix;
- a lease already on main in such a shape is not rewritten: reported, deleted once past its grace,
  while the other leases are still renewed; prune writes nothing that adds a check error;
- `--now` with a UTC offset is the same instant (renewals are written in UTC);
- a lease is judged only once one scrape interval (+1 min) has passed since `expires`.

The activity source is the real `tms prune` against a real HTTP endpoint (tests/support/oddprom.py)
where the command runs; in-process tests use a recording source."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.support.oddprom import OddPrometheus
from tms_stack.cli.app import parse_now
from tms_stack.commands.check import run_check
from tms_stack.commands.prune import PruneResult, Renewal, decide
from tms_stack.commands.prune_apply import apply
from tms_stack.models import Lease
from tms_stack.repo.loader import load_repository

TMS = str(ROOT / ".venv" / "bin" / "tms")
NOW = datetime(2026, 11, 30, 8, tzinfo=UTC)

LEASE = """apiVersion: tms-stack/v1
kind: Lease
metadata:
  name: {name}
  owner: team-search
spec:
  models:
    - name: {name}_m
      uri: model://shared-nfs/m1
  expires: {expires}
  autoRenew: {{renewalDuration: 4h}}
"""
# An alias needs an anchor earlier in the file on a value the schema takes as it is: the queueTime
# threshold in microseconds has no upper bound in the example policies, and `expires` takes unix seconds.
ALIASED = """apiVersion: tms-stack/v1
kind: Lease
metadata:
  name: {name}
  owner: team-search
spec:
  models:
    - name: {name}_m
      uri: model://shared-nfs/m1
  triton:
    autoscaling:
      minReplicas: 1
      maxReplicas: 2
      metrics:
        queueTime: {{enabled: true, threshold: &when {seconds}}}
  expires: *when
  autoRenew: {{renewalDuration: 4h}}
"""

SHAPES = {
    "literal": ("|-\n    {ts}", "is a block scalar"),
    "folded": (">-\n    {ts}", "is a block scalar"),
    "anchor": ("&when {ts}", "carries an anchor"),
    "alias": (None, "is an alias"),
    "tag": ("!!timestamp {ts}", "carries a tag"),
}


def lease_text(name: str, shape: str | None, when: datetime) -> str:
    ts = f"{when:%Y-%m-%dT%H:%M:%SZ}"
    if shape == "alias":
        return ALIASED.format(name=name, seconds=int(when.timestamp()))
    return LEASE.format(name=name, expires=ts if shape is None else SHAPES[shape][0].format(ts=ts))


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_check_refuses_expires_forms_prune_cannot_rewrite(example_repo: Path, shape: str) -> None:
    (example_repo / "leases" / "odd.yaml").write_text(lease_text("odd", shape, NOW + timedelta(days=1)))
    out = subprocess.run([TMS, "check", "--now", "2026-11-30T08:00:00Z"], cwd=example_repo, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1, out.stdout + out.stderr
    expires_line = next(i for i, line in enumerate(lease_text("odd", shape, NOW).splitlines(), 1)
                        if line.lstrip().startswith("expires:"))
    finding = next(line for line in out.stdout.splitlines() if "lease.expires-form" in line)
    assert f"leases/odd.yaml:{expires_line}:" in finding
    assert SHAPES[shape][1] in finding and "write it as a plain or quoted timestamp" in finding
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("value", ["{ts}", '"{ts}"', "'{ts}'", "\n    {ts}"])
def test_check_accepts_plain_and_quoted_expires(example_repo: Path, value: str) -> None:
    text = LEASE.format(name="fine", expires=value.format(ts="2026-12-01T00:00:00Z"))
    (example_repo / "leases" / "fine.yaml").write_text(text)
    assert run_check(example_repo, NOW).exit_code == 0


# --- prune with a lease it cannot rewrite -----------------------------------------------------------

def snapshot(repo: Path) -> dict[str, str]:
    return {p.relative_to(repo).as_posix(): p.read_text() for p in sorted(repo.rglob("*.yaml"))}


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("past_grace", [False, True])
def test_prune_reports_a_lease_it_cannot_rewrite_and_renews_the_others(example_repo: Path, shape: str,
                                                                       past_grace: bool) -> None:
    """The lease got onto main before the rule (or around it): the renewal is not written, the other
    auto-renew lease is still renewed, and the tree prune leaves adds no check error."""
    expired = NOW - (timedelta(days=2) if past_grace else timedelta(hours=1))
    (example_repo / "leases" / "odd.yaml").write_text(lease_text("odd", shape, expired))
    (example_repo / "leases" / "good.yaml").write_text(lease_text("good", None, expired))
    before = snapshot(example_repo)
    errors_before = {(d.file, d.rule) for d in run_check(example_repo, NOW).errors}
    with OddPrometheus("active") as srv:
        out = subprocess.run([TMS, "prune", "--now", "2026-11-30T08:00:00Z", "--prometheus-url", srv.url,
                              "-o", "json"], cwd=example_repo, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert [r["lease"] for r in report["renewed"]] == ["good"]
    [odd] = report["unrenewable"]
    assert odd["lease"] == "odd" and "cannot rewrite expires safely" in odd["why"] and SHAPES[shape][1] in odd["why"]
    after = snapshot(example_repo)
    if past_grace:
        assert "leases/odd.yaml" not in after and "deleted: grace 24h over" in odd["why"]
        assert [d["lease"] for d in report["deleted"]] == ["odd"]
    else:
        assert after["leases/odd.yaml"] == before["leases/odd.yaml"] and "left as it is" in odd["why"]
        assert report["deleted"] == []
    assert after["leases/good.yaml"] != before["leases/good.yaml"]
    assert "warning: leases/odd.yaml: lease odd is active but was not renewed" in out.stderr
    errors_after = {(d.file, d.rule) for d in run_check(example_repo, NOW).errors}
    assert errors_after <= errors_before
    assert not [e for e in errors_after if e[0] != "leases/odd.yaml"]


class Active:
    name = "test"
    timeout = 5.0

    def __init__(self) -> None:
        self.asked: list[tuple[str, datetime, datetime, str | None]] = []

    def active(self, lease: Lease, start: datetime, end: datetime, *, instance: str | None = None,
               deadline: float | None = None) -> bool:
        self.asked.append((lease.name, start, end, instance))
        return True


def test_a_renewal_that_would_fail_check_is_given_up_and_nothing_failing_is_written(example_repo: Path) -> None:
    """The gate itself: a renewal past the admin maximum (as a wrong decision would make) is caught by
    the whole `tms check` on the scratch copy; the good renewal and the deletion still happen."""
    expired = NOW - timedelta(hours=1)
    for name in ("good", "toolong"):
        (example_repo / "leases" / f"{name}.yaml").write_text(lease_text(name, None, expired))
    (example_repo / "leases" / "gone.yaml").write_text(lease_text("gone", None, expired).replace(
        "  autoRenew: {renewalDuration: 4h}\n", ""))
    repo = load_repository(example_repo)
    result = PruneResult(expired=[("gone", "leases/gone.yaml", expired)], renewed=[
        Renewal("good", "leases/good.yaml", expired, NOW + timedelta(hours=4), timedelta(minutes=5)),
        Renewal("toolong", "leases/toolong.yaml", expired, NOW + timedelta(days=400), timedelta(minutes=5))])
    before = (example_repo / "leases" / "toolong.yaml").read_text()
    files = snapshot(example_repo)
    dry = PruneResult(expired=list(result.expired), renewed=list(result.renewed))
    assert sorted(p.name for p in apply(example_repo, repo, dry, NOW, write=False)) == ["gone.yaml", "good.yaml"]
    assert snapshot(example_repo) == files and [u[0] for u in dry.unrenewable] == ["toolong"]   # --dry-run
    touched = apply(example_repo, repo, result, NOW)
    assert sorted(p.name for p in touched) == ["gone.yaml", "good.yaml"]
    assert (example_repo / "leases" / "toolong.yaml").read_text() == before
    assert [r.lease for r in result.renewed] == ["good"]
    [(name, _, why)] = result.unrenewable
    assert name == "toolong" and "lease.duration" in why and "left as it is" in why
    assert run_check(example_repo, NOW).exit_code == 0
    assert "WARNING: active, but not renewed" in result.commit_message()


# --- time ----------------------------------------------------------------------------------------

def test_now_with_an_offset_is_the_same_instant_in_utc() -> None:
    assert parse_now("2026-11-30T21:30:00+05:00") == datetime(2026, 11, 30, 16, 30, tzinfo=UTC)
    assert parse_now("2026-11-30T16:30:00-05:00") == datetime(2026, 11, 30, 21, 30, tzinfo=UTC)
    assert parse_now("2026-11-30T21:30:00") == datetime(2026, 11, 30, 21, 30, tzinfo=UTC)
    assert parse_now("2026-11-30T21:30:00+05:00").utcoffset() == timedelta(0)


def test_prune_with_an_offset_writes_the_renewal_in_utc(example_repo: Path) -> None:
    """Issue 22: 16:30-05:00 (21:30Z) + 4h was written as 20:30Z, already expired when written."""
    (example_repo / "leases" / "late.yaml").write_text(lease_text("late", None, datetime(2026, 11, 30, 10, tzinfo=UTC)))
    with OddPrometheus("active") as srv:
        out = subprocess.run([TMS, "prune", "--now", "2026-11-30T16:30:00-05:00", "--prometheus-url", srv.url],
                             cwd=example_repo, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "  expires: 2026-12-01T01:30:00Z\n" in (example_repo / "leases" / "late.yaml").read_text()
    assert "- late (leases/late.yaml): 2026-11-30T10:00:00Z -> 2026-12-01T01:30:00Z" in out.stdout


def test_a_lease_is_judged_only_after_the_last_scrape_can_have_landed(example_repo: Path) -> None:
    expires = NOW - timedelta(seconds=30)
    (example_repo / "leases" / "fresh.yaml").write_text(lease_text("fresh", None, expires))
    source = Active()
    early = decide(load_repository(example_repo), NOW, source, scrape_interval=timedelta(seconds=30))
    assert source.asked == [] and [w[0] for w in early.waiting] == ["fresh"] and not early.changed
    assert "Waiting for the last scrape (judged by the next run):" in early.commit_message()
    later = NOW + timedelta(seconds=61)                       # expires + 30 s scrape + 1 min
    done = decide(load_repository(example_repo), later, source, scrape_interval=timedelta(seconds=30))
    [(name, start, end, instance)] = source.asked
    assert name == "fresh" and end == expires + timedelta(seconds=90) and start == expires - timedelta(minutes=5)
    assert instance is None and [r.lease for r in done.renewed] == ["fresh"]


@pytest.mark.parametrize("shape", ["literal", "anchor"])
def test_lease_renew_refuses_a_form_it_cannot_rewrite(example_repo: Path, shape: str) -> None:
    (example_repo / "leases" / "odd.yaml").write_text(lease_text("odd", shape, NOW + timedelta(hours=1)))
    before = (example_repo / "leases" / "odd.yaml").read_text()
    out = subprocess.run([TMS, "lease", "renew", "odd", "--now", "2026-11-30T08:00:00Z"], cwd=example_repo,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "leases/odd.yaml: spec.expires" in out.stderr and "plain or quoted timestamp" in out.stderr
    assert (example_repo / "leases" / "odd.yaml").read_text() == before
