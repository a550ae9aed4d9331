"""`tms check` as users run it: the three formats and the exit codes 0/1/2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

# The CLI of this tree (not whatever an editable install points at), as a user runs it: a process.
TMS_CHECK = [sys.executable, "-c", "from tms_stack.cli import main; main()", "check"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
NOW = "2026-11-22T00:00:00Z"


def run_in(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TMS_CHECK, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=60)


def tms(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_in(repo, *args, "--now", NOW)


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
        "   22 |     resources: {cpu: 40, gpu: 2, systemMemory: 32Gi, sharedMemory: 512Mi, repositorySize: 4Gi}",
        "      |                      ^",
        "FAILED: 1 error(s), 0 warning(s) in 6 lease(s), 2 pool(s)"]


def test_text_excerpt_of_a_long_line_keeps_the_caret_on_the_column(example_repo: Path) -> None:
    f = example_repo / "leases" / "fraud-detector.yaml"
    f.write_text(f.read_text().replace("repositorySize: 4Gi}", "repositorySize: 4Gi" + ", x: 1" * 30 + ", bad: 1}"))
    out = tms(example_repo, "leases/fraud-detector.yaml")
    assert out.returncode == 2  # a duplicate key makes the file unreadable
    line, source, caret = out.stdout.splitlines()[:3]
    assert line.startswith("leases/fraud-detector.yaml:22:") and "duplicate key 'x'" in line
    col = int(line.split(":")[2])
    text = f.read_text().splitlines()[21]
    assert source.startswith("   22 | ...") and len(source) < 130
    # the caret points at the same character in the excerpt as the column in the file
    assert source[caret.index("^")] == text[col - 1] == "x"


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
    from tms_stack.commands.check import _gh_escape_data, _gh_escape_prop

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


def test_paths_work_from_a_subfolder_and_as_absolute_paths(example_repo: Path, tmp_path: Path) -> None:
    _break(example_repo)
    ic = example_repo / "leases" / "image-classifier.yaml"
    ic.write_text(ic.read_text().replace("owner: team-vision", "owner: Team Vision"))
    pool = example_repo / "pools" / "shared-t4-pool.yaml"
    pool.write_text(pool.read_text().replace("instanceQuota: 8", "instanceQuota: 500"))
    from_leases = run_in(example_repo / "leases", "fraud-detector.yaml", "--now", NOW)
    assert from_leases.returncode == 1 and "leases/fraud-detector.yaml:22:22" in from_leases.stdout
    assert "image-classifier" not in from_leases.stdout
    elsewhere = run_in(tmp_path, str(example_repo / "leases" / "chat-small.yaml"), "--now", NOW)
    assert elsewhere.returncode == 0, elsewhere.stdout + elsewhere.stderr
    folder = run_in(example_repo / "leases", ".", "--now", NOW)
    assert folder.returncode == 1 and "fraud-detector.yaml:22" in folder.stdout and "pools/" not in folder.stdout
    whole = run_in(example_repo / "leases", "--now", NOW)  # no PATHS: the whole repository, wherever you are
    assert whole.returncode == 1 and "pools/shared-t4-pool.yaml:8" in whole.stdout


def test_outside_a_repository_is_an_error_not_an_empty_pass(tmp_path: Path) -> None:
    out = run_in(tmp_path, "--now", NOW)
    assert out.returncode == 2 and "no leases/, pools/ or policies/ folder" in out.stderr


def test_now_decides_expiry(example_repo: Path) -> None:
    later = run_in(example_repo, "--now", "2027-01-20T00:00:00Z")
    assert later.returncode == 0  # expired leases warn; they never fail a PR
    assert "leases/image-classifier.yaml:11:12: warning: lease expired at 2027-01-15T12:00:00Z" in later.stdout
    bad = run_in(example_repo, "--now", "next week")
    assert bad.returncode == 2 and "is not a time" in bad.stderr


def test_an_invalid_pool_does_not_also_make_its_leases_unknown(example_repo: Path) -> None:
    pool = example_repo / "pools" / "shared-t4-pool.yaml"
    pool.write_text(pool.read_text().replace("  instanceQuota: 8\n", ""))
    out = tms(example_repo, "--format", "json")
    rules = [(d["file"], d["rule"]) for d in json.loads(out.stdout)["diagnostics"]]
    assert rules == [("pools/shared-t4-pool.yaml", "pool.schema")]
