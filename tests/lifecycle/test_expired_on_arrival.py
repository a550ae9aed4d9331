"""A lease must not merge already expired (issue 25 #6): its expiry is fixed when the file is
written, so a pull request reviewed for longer than its duration used to merge an expired lease
with only a warning. Against a base, a lease the change adds or edits is refused expired (exit 1,
with the renew command) and warned about when it would live less than the admin's minimum
lifetime; leases the change does not touch stay a warning (prune's job, never someone else's
failed pull request)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import ROOT, copy_example

TMS = str(ROOT / ".venv" / "bin" / "tms")
NOW = "2026-11-22T00:00:00Z"
LEASE = ("apiVersion: tms-stack/v1\nkind: Lease\nmetadata: {{name: {name}, owner: team-nlp}}\nspec:\n"
         "  models: [{{name: m, uri: 'model://shared-nfs/m'}}]\n  expires: {expires}\n"
         "  triton: {{resources: {{gpu: 0}}}}\n")


def tms(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TMS, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def _two(tmp_path: Path) -> tuple[Path, Path]:
    base = copy_example(tmp_path / "base")
    # An old expired lease already on main: a warning for everyone, never an error.
    (base / "leases" / "stale.yaml").write_text(LEASE.format(name="stale", expires="2026-11-01T00:00:00Z"))
    pr = tmp_path / "pr"
    shutil.copytree(base, pr)
    return base, pr


def test_a_lease_added_expired_is_refused_with_the_renew_command(tmp_path: Path) -> None:
    base, pr = _two(tmp_path)
    (pr / "leases" / "late.yaml").write_text(LEASE.format(name="late", expires="2026-11-21T12:00:00Z"))
    out = tms("check", str(pr), "--base-dir", str(base), "--now", NOW, "-o", "json")
    assert out.returncode == 1, out.stdout + out.stderr
    found = {(d["file"], d["rule"], d["severity"]): d["message"] for d in json.loads(out.stdout)["diagnostics"]}
    message = found[("leases/late.yaml", "lease.expired-on-arrival", "error")]
    assert "renew it with `tms lease renew late` and push" in message
    assert ("leases/stale.yaml", "lease.expired", "warning") in found  # untouched: still a warning
    # Without a base (the merged main, the deploy): a warning, as before.
    plain = tms("check", str(pr), "--now", NOW)
    assert plain.returncode == 0 and "[lease.expired]" in plain.stdout
    # Renewed: passes.
    (pr / "leases" / "late.yaml").write_text(LEASE.format(name="late", expires="2026-11-22T08:00:00Z"))
    assert tms("check", str(pr), "--base-dir", str(base), "--now", NOW).returncode == 0


def test_editing_an_expired_lease_without_renewing_it_is_refused(tmp_path: Path) -> None:
    base, pr = _two(tmp_path)
    stale = pr / "leases" / "stale.yaml"
    stale.write_text(stale.read_text().replace("gpu: 0", "gpu: 0, cpu: 2"))
    out = tms("check", str(pr), "--base-dir", str(base), "--now", NOW)
    assert out.returncode == 1 and "leases/stale.yaml:6:12: error: lease expired at 2026-11-01" in out.stdout, out.stdout


def test_the_trusted_review_refuses_it(tmp_path: Path) -> None:
    """scripts/trusted-review.sh's module: the base's check judges the pull request's files."""
    base, pr = _two(tmp_path)
    (pr / "leases" / "late.yaml").write_text(LEASE.format(name="late", expires="2026-11-21T12:00:00Z"))
    out = tmp_path / "review"
    run = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-I", "-m", "tms_stack.commands.review",
                          str(base), str(pr), str(out)], capture_output=True, text=True, timeout=300,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    # The review's own clock is now: 2026-11-21 is in the past whenever this runs.
    assert run.returncode == 1, run.stderr
    assert "[lease.expired-on-arrival]" in (out / "check.txt").read_text()
    assert "lease.expired-on-arrival" in (out / "plan.md").read_text()


def test_a_short_lived_lease_gets_a_warning_in_the_plan(example_repo: Path) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x"}
    env = {k: v for k, v in env.items() if not k.startswith("GITHUB_")}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "base"]):
        subprocess.run(["git", *args], cwd=example_repo, check=True, capture_output=True, env=env)
    # 30 minutes left, under the default minimum lifetime of 1h.
    (example_repo / "leases" / "brief.yaml").write_text(LEASE.format(name="brief", expires="2026-11-22T00:30:00Z"))
    plan = subprocess.run([TMS, "plan", "--base", "main", "--now", NOW], cwd=example_repo, capture_output=True,
                          text=True, env=env, timeout=120)
    assert plan.returncode == 0, plan.stderr
    assert "### Warnings" in plan.stdout and "less than the admin minimum lifetime 1h" in plan.stdout
    check = tms("check", "--base", "main", "--now", NOW, cwd=example_repo)
    assert check.returncode == 0 and "warning: lease expires at 2026-11-22T00:30:00Z" in check.stdout, check.stdout
    # An unknown base is a usage error, not a silent pass.
    assert tms("check", "--base", "no-such-ref", "--now", NOW, cwd=example_repo).returncode == 2


def test_the_minimum_lifetime_never_exceeds_the_default_duration(tmp_path: Path) -> None:
    """An admin whose leases last 30 minutes by default is not warned about every new lease."""
    from datetime import UTC, datetime

    from tms_stack.commands.check import load_base, run_check

    base, pr = _two(tmp_path)
    for root in (base, pr):
        limits = root / "policies" / "limits.yaml"
        limits.write_text(limits.read_text().replace("duration: {default: 8h,", "duration: {default: 30m,"))
    (pr / "leases" / "brief.yaml").write_text(LEASE.format(name="brief", expires="2026-11-22T00:45:00Z"))
    now = datetime(2026, 11, 22, tzinfo=UTC)
    assert not [d for d in run_check(pr, now, base=load_base(pr, base, "origin/main")).all() if d.rule == "lease.short-lived"]
    (pr / "leases" / "brief.yaml").write_text(LEASE.format(name="brief", expires="2026-11-22T00:20:00Z"))
    found = [d for d in run_check(pr, now, base=load_base(pr, base, "origin/main")).all() if d.rule == "lease.short-lived"]
    assert len(found) == 1 and "less than the admin minimum lifetime 30m" in found[0].message
