"""`tms check` as users run it: the three formats and the exit codes 0/1/2."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import ROOT

TMS = str(ROOT / ".venv" / "bin" / "tms")
NOW = "2026-11-22T00:00:00Z"


def tms(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TMS, "check", *args, "--now", NOW], cwd=repo, capture_output=True, text=True, timeout=60)


def test_clean_example_exits_0(example_repo: Path) -> None:
    out = tms(example_repo)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == "OK: 0 error(s), 0 warning(s) in 6 lease(s), 2 pool(s)"


def _break(repo: Path) -> None:
    f = repo / "leases" / "fraud-detector.yaml"
    f.write_text(f.read_text().replace("cpu: 4, gpu: 2", "cpu: 40, gpu: 2"))


def test_violation_exits_1_with_file_line_text(example_repo: Path) -> None:
    _break(example_repo)
    out = tms(example_repo)
    assert out.returncode == 1
    assert out.stdout.splitlines() == [
        "leases/fraud-detector.yaml:22:22: error: cpu: 40 exceeds the admin maximum 16 "
        "(policies/limits.yaml:12) [resources.maximum]",
        "FAILED: 1 error(s), 0 warning(s) in 6 lease(s), 2 pool(s)"]


def test_github_annotations(example_repo: Path) -> None:
    _break(example_repo)
    out = tms(example_repo, "--format", "github")
    assert out.returncode == 1
    assert out.stdout.splitlines()[0] == (
        "::error file=leases/fraud-detector.yaml,line=22,col=22,title=resources.maximum::"
        "cpu: 40 exceeds the admin maximum 16 (policies/limits.yaml:12)")


def test_github_annotations_are_capped_and_escaped(example_repo: Path) -> None:
    for i in range(12):
        (example_repo / "leases" / f"bad-{i}.yaml").write_text(
            f"apiVersion: tms-stack/v1\nkind: Lease\nmetadata: {{name: bad-{i}, owner: x}}\n"
            "spec: {models: [{name: m, uri: 'model://nope/m'}], expires: 2027-01-01T00:00:00Z}\n")
    out = tms(example_repo, "--format", "github")
    errors = [line for line in out.stdout.splitlines() if line.startswith("::error file=")]
    assert len(errors) == 10
    total = int(out.stdout.splitlines()[-1].split()[1])
    assert total > 10
    assert f"::error::{total - 10} more error(s) not shown as annotations" in out.stdout


def test_json_is_stable(example_repo: Path) -> None:
    _break(example_repo)
    out = tms(example_repo, "--format", "json")
    data = json.loads(out.stdout)
    assert data["version"] == 1 and data["ok"] is False and data["exitCode"] == 1
    assert data["summary"] == {"errors": 1, "warnings": 0, "leases": 6, "pools": 2}
    assert data["diagnostics"] == [{
        "file": "leases/fraud-detector.yaml", "line": 22, "col": 22, "rule": "resources.maximum",
        "message": "cpu: 40 exceeds the admin maximum 16 (policies/limits.yaml:12)", "severity": "error"}]


def test_github_escaping() -> None:
    from tms_stack.check import _gh_escape_data, _gh_escape_prop

    assert _gh_escape_data("50% of a\nline") == "50%25 of a%0Aline"
    assert _gh_escape_prop("a:b,c") == "a%3Ab%2Cc"


def test_unreadable_exits_2(example_repo: Path) -> None:
    (example_repo / "leases" / "broken.yaml").write_text("apiVersion: tms-stack/v1\nkind: [Lease\n")
    out = tms(example_repo)
    assert out.returncode == 2
    assert "leases/broken.yaml:3:1: error: invalid YAML" in out.stdout


def test_paths_limit_the_report(example_repo: Path) -> None:
    _break(example_repo)
    ic = example_repo / "leases" / "image-classifier.yaml"
    ic.write_text(ic.read_text().replace("owner: team-vision", "owner: Team Vision"))
    only = tms(example_repo, "leases/image-classifier.yaml")
    assert only.returncode == 1
    assert "image-classifier.yaml:6" in only.stdout and "fraud-detector" not in only.stdout
    missing = tms(example_repo, "leases/nope.yaml")
    assert missing.returncode == 2 and "no such file" in missing.stderr
