"""Fail closed, within bounds (issue 13 items 2 and 7): an auto-renew lease whose activity stays
unknown is kept at most `autoRenew.unknownGrace` past `expires`, then deleted loudly; render, the
program and the plan leave out leases expired for longer than the grace. Plus the soak: prune 100
times against an endpoint answering every odd shape."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from tests.conftest import ROOT
from tests.support.oddprom import ODD, OddPrometheus
from tms_stack.cli import app
from tms_stack.commands.check import run_check
from tms_stack.repo.loader import load_repository

TMS = str(ROOT / ".venv" / "bin" / "tms")
T0 = datetime(2026, 11, 22, tzinfo=UTC)

RENEWING = """apiVersion: tms-stack/v1
kind: Lease
metadata: {{name: {name}, owner: team-search}}
spec:
  models: [{{name: {name}_m, uri: "model://shared-nfs/{name}"}}]
  expires: {expires}
  autoRenew: {{activityWindow: 10m, renewalDuration: 4h}}
  triton: {{resources: {{gpu: 0}}}}   # CPU-only: ten of them stay within the owner's GPU budget
"""


def ts(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%SZ}"


def write(repo: Path, name: str, expires: datetime, form: str = "{}") -> None:
    (repo / "leases" / f"{name}.yaml").write_text(RENEWING.format(name=name, expires=form.format(ts(expires))))


def prune(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(repo)}
    return subprocess.run([TMS, "prune", *args], cwd=repo, capture_output=True, text=True, timeout=120, env=env)


def test_unknown_kept_within_grace_then_expired_loudly(example_repo: Path) -> None:
    write(example_repo, "young", T0 - timedelta(hours=23))
    write(example_repo, "old", T0 - timedelta(hours=25))
    out = prune(example_repo, "--now", ts(T0))  # stack says prometheus, no URL in the job: unknown
    assert out.returncode == 0, out.stderr
    assert (example_repo / "leases" / "young.yaml").exists()
    assert not (example_repo / "leases" / "old.yaml").exists()
    assert "WARNING: expired with activity still unknown after the grace (fail closed):" in out.stdout
    assert "- old (leases/old.yaml): no telemetry source configured (grace 24h over)" in out.stdout
    assert "Left alone (activity unknown, fail safe):\n- young (leases/young.yaml)" in out.stdout
    assert "warning: leases/old.yaml: lease old expired with activity unknown past the grace" in out.stderr
    assert run_check(example_repo, T0).exit_code == 0


def test_the_grace_is_an_admin_setting(example_repo: Path) -> None:
    limits = example_repo / "policies" / "limits.yaml"
    limits.write_text(limits.read_text().replace("  autoRenew:\n    enabled: true\n",
                                                 "  autoRenew:\n    enabled: true\n    unknownGrace: 1h\n"))
    write(example_repo, "two-hours", T0 - timedelta(hours=2))
    with OddPrometheus("nan") as srv:
        out = prune(example_repo, "--now", ts(T0), "--prometheus-url", srv.url)
    assert out.returncode == 0, out.stderr
    assert not (example_repo / "leases" / "two-hours.yaml").exists(), out.stdout
    assert "(grace 1h over)" in out.stdout and "is not a count" in out.stdout


def test_render_in_2030_renders_none_of_the_examples_leases(example_repo: Path, tmp_path: Path) -> None:
    leases = sorted(p.stem for p in (example_repo / "leases").glob("*.yaml"))
    for when, expected in (("2030-01-01T00:00:00Z", []), (ts(T0), leases)):
        out_dir = tmp_path / when[:4]
        out = subprocess.run([TMS, "render", "--out", str(out_dir), "--now", when], cwd=example_repo,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        rendered = sorted(p.name for p in (out_dir / "lease").iterdir()) if (out_dir / "lease").exists() else []
        assert rendered == expected, when
        # Nor anywhere else: no alias Service or pool model entry names a lease either.
        if not expected:
            text = "".join(p.read_text() for p in out_dir.rglob("*.yaml"))
            assert not [n for n in leases if f"lease: {n}" in text or f"lease: '{n}'" in text]


def test_render_keeps_a_lease_within_the_grace(example_repo: Path) -> None:
    from tms_stack.commands.render import render_root

    expires = load_repository(example_repo).lease("fraud-detector").spec.expires
    names = lambda now: {g.name for g in render_root(example_repo, None, now) if g.kind == "Lease"}  # noqa: E731
    assert "fraud-detector" in names(expires + timedelta(hours=23))
    assert "fraud-detector" not in names(expires + timedelta(hours=25))


def test_plan_says_which_leases_are_left_out(example_repo: Path) -> None:
    from tms_stack.commands.plan import build_plan, render_markdown

    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=example_repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "base", "--allow-empty"],
                   cwd=example_repo, check=True)
    subprocess.run(["git", "add", "."], cwd=example_repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "all"], cwd=example_repo,
                   check=True)
    text = render_markdown(build_plan(example_repo, "HEAD", None, datetime(2030, 1, 1, tzinfo=UTC)))
    line = next(ln for ln in text.splitlines() if ln.startswith("**Not deployed:**"))
    assert "`fraud-detector`" in line and "expired more than 24h ago" in line


# --- soak ---------------------------------------------------------------------------------------

FORMS = ["{}", "'{}'", '"{}"', "\n    {}"]  # a tag is refused by check (lease.expires-form)


def test_soak_prune_100_times_against_every_odd_shape(example_repo: Path) -> None:
    """Each run answers one shape (odd ones, and now and then a well-formed active/idle). After every
    run: no crash, no lease deleted while its activity was unknown and within the grace, and the
    repository passes check."""
    repo = example_repo
    names = [f"soak-{i}" for i in range(10)]
    for i, name in enumerate(names):
        form = FORMS[i % len(FORMS)]
        write(repo, name, T0 + timedelta(hours=i), form)
    assert run_check(repo, T0).exit_code == 0
    grace = timedelta(hours=24)
    runner = CliRunner()
    # One well-formed "active" early (some leases renew), then odd shapes only: every lease must
    # still be gone once the grace has passed, and not a run earlier.
    shapes = [ODD[run % len(ODD)] for run in range(100)]
    shapes[3] = "active"
    deleted_unknown_late = renewed = 0
    with OddPrometheus() as srv:
        for run in range(100):
            now = T0 + timedelta(minutes=40 * run)
            shape = shapes[run]
            srv.shape = shape
            before = {n: load_repository(repo).lease(n).spec.expires for n in names
                      if (repo / "leases" / f"{n}.yaml").exists()}
            result = runner.invoke(app, ["prune", "--root", str(repo), "--now", ts(now),
                                         "--prometheus-url", srv.url], env={"TMS_PROMETHEUS_URL": ""})
            assert result.exit_code == 0, (run, shape, result.output, result.exception)
            for name, expires in before.items():
                gone = not (repo / "leases" / f"{name}.yaml").exists()
                if gone and shape != "idle":
                    assert expires <= now and now - expires > grace, (run, shape, name, expires, now)
                    deleted_unknown_late += 1
                if not gone and shape not in ("active", "idle") and expires <= now:
                    assert now - expires <= grace, (run, shape, name)
                if not gone and load_repository(repo).lease(name).spec.expires != expires:
                    assert shape == "active", (run, shape, name)
                    renewed += 1
            check = run_check(repo, now)
            assert check.exit_code == 0, (run, shape, [f"{d.location()} {d.message}" for d in check.errors])
    # The soak exercised all three outcomes, not just "left alone".
    assert renewed > 0 and deleted_unknown_late == len(names), (deleted_unknown_late, renewed)
    assert set(ODD) <= set(shapes)  # every odd shape was served
