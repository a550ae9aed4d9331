"""CLI conventions of issue 14: refusals visible on stdout with -z, exit 3 for "already exists",
aligned tables with a header, and `-o` as the output format everywhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import copy_example
from tms_stack.cli import app

EXIT_CONFLICT = 3
M = "name=m,uri=model://s3-models/m"


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = copy_example(tmp_path / "fleet")
    monkeypatch.chdir(repo)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    return repo


def tms(*args: str) -> object:
    return CliRunner().invoke(app, list(args))


def test_a_refused_porcelain_command_says_so_on_stdout(fleet: Path) -> None:
    """tmsctl scripts read stdout: a refusal must not print nothing there."""
    result = tms("lease", "create", "ranker", "--owner", "me", "-m", M, "-z")
    assert result.exit_code == EXIT_CONFLICT
    assert result.stdout.startswith("state:Refused exit:3 error:lease_'ranker'_exists_already"), result.stdout
    assert len(result.stdout.splitlines()) == 1 and " " not in result.stdout.split("error:", 1)[1].strip()
    assert result.stderr.startswith("error: lease 'ranker' exists already")


@pytest.mark.parametrize("args", [
    ["lease", "create", "ranker", "--owner", "me", "-m", M],
    ["lease", "name", "create", "fraud", "ranker"],
    ["pool", "create", "Shared-T4-Pool", "-q", "4"],
])
def test_already_exists_is_exit_3(fleet: Path, args: list[str]) -> None:
    result = tms(*args)
    assert result.exit_code == EXIT_CONFLICT, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(("args", "header"), [
    (["lease", "list"], ["Lease", "State", "Expires", "Triton"]),
    (["lease", "list", "-v"], ["Lease", "State", "Expires", "Triton", "Owner", "Pool", "Models"]),
    (["pool", "list"], ["Pool", "Quota", "Instances", "Leases"]),
    (["lease", "name", "list"], ["Name", "Lease"]),
])
def test_tables_have_a_header_and_aligned_columns(fleet: Path, args: list[str], header: list[str]) -> None:
    result = tms(*args)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == header and lines[-1].startswith("Count: ")
    rows = lines[1:-1]
    assert rows, result.stdout
    # Every column starts where its header starts (the last column may hold spaces: Models).
    starts = [lines[0].index(h) for h in header]
    for row in rows:
        for start in starts[1:]:
            assert row[start - 1] == " " and row[start] != " ", (row, lines[0])


def test_render_o_is_the_format_and_out_the_directory(fleet: Path, tmp_path: Path) -> None:
    refused = tms("render", "-o", str(tmp_path / "out"))
    assert refused.exit_code == 2 and "--out" in refused.stderr and not (tmp_path / "out").exists()
    done = tms("render", "--out", str(tmp_path / "out"), "-o", "json", "--now", "2026-11-22T00:00:00Z")
    assert done.exit_code == 0, done.stderr
    import json

    data = json.loads(done.stdout)
    assert data["objects"] == len(data["files"]) > 0 and (tmp_path / "out" / data["files"][0]).is_file()


def test_lease_list_and_status_read_the_namespace_of_the_chosen_stack(fleet: Path) -> None:
    """Issue 14: with two stack files, `lease list` dropped the namespace silently and had no
    --stack; `lease status --stack` still printed the host without the stack's namespace."""
    stack = (fleet / "Pulumi.example.yaml").read_text()
    assert "tms-stack:namespace: triton" in stack
    (fleet / "Pulumi.second.yaml").write_text(stack.replace("namespace: triton", "namespace: other"))
    both = tms("lease", "list")
    assert both.exit_code == 0 and "choose one with --stack" in both.stderr
    chosen = tms("lease", "list", "--stack", "second")
    assert chosen.exit_code == 0 and "ranker.other.svc.cluster.local" in chosen.stdout, chosen.stdout
    status = tms("lease", "status", "ranker", "--stack", "second")
    assert "Triton: ranker.other.svc.cluster.local" in status.stdout, status.stdout
    unknown = tms("lease", "list", "--stack", "nope")
    assert unknown.exit_code == 2 and "Pulumi.nope.yaml" in unknown.stderr


def test_a_plan_with_errors_claims_no_object_counts(fleet: Path) -> None:
    """Issue 14: after a policy error the plan said "0 to create, 0 to update, 0 to delete"."""
    import subprocess

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=fleet, check=True)
    subprocess.run(["git", "add", "-A"], cwd=fleet, check=True)
    subprocess.run([*git, "commit", "-qm", "example"], cwd=fleet, check=True)
    lease = fleet / "leases" / "ranker.yaml"
    lease.write_text(lease.read_text().replace("owner: team-search", "owner: team-nobody"))
    assert "team-nobody" in lease.read_text()
    result = tms("plan", "--base", "HEAD", "--now", "2026-11-22T00:00:00Z")
    assert result.exit_code == 0 and "violation" in result.stdout, result.stdout
    assert "fix the errors above" in result.stdout and "to create" not in result.stdout, result.stdout


def test_lease_status_porcelain_has_every_key_of_lease_list_porcelain(fleet: Path) -> None:
    """Issue 14: `lease status -z` lacked keys that `lease list -z` has; a script switching from one
    to the other must find the same words."""
    def keys(line: str) -> list[str]:
        return [word.split(":", 1)[0] for word in line.split()]

    listed = tms("lease", "list", "-z", "--now", "2026-11-22T00:00:00Z")
    status = tms("lease", "status", "ranker", "-z", "--now", "2026-11-22T00:00:00Z")
    assert listed.exit_code == 0 and status.exit_code == 0, (listed.stderr, status.stderr)
    row = next(line for line in listed.stdout.splitlines() if line.startswith("lease:ranker "))
    first = status.stdout.splitlines()[0]
    assert keys(first)[:len(keys(row))] == keys(row), (row, first)
    # The values of the shared keys agree too (no cluster: both say so the same way).
    assert first.startswith(row), (row, first)


@pytest.mark.parametrize("args", [
    ["lease", "renew", "ranker", "--duration", "30"],
    ["lease", "create", "x-new", "--owner", "me", "-m", M, "--triton-resources", "gpus=1"],
    ["plan", "--base", "nope"],
], ids=" ".join)
def test_the_issues_tracebacks_are_one_line_errors(fleet: Path, args: list[str]) -> None:
    """Issue 14's "Tracebacks on ordinary mistakes", each as the issue wrote it (the conflicted lock
    is tests/placement/test_lock_merge.py): exit 2, one `error:` line, git's own words for git."""
    import subprocess

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=fleet, check=True)
    subprocess.run(["git", "add", "-A"], cwd=fleet, check=True)
    subprocess.run([*git, "commit", "-qm", "example"], cwd=fleet, check=True)
    result = tms(*args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, lines
    word = {"renew": "'30' is not a duration", "create": "gpus=1", "plan": "fatal: Not a valid object name nope"}
    assert word[next(w for w in args if w in word)] in lines[0], lines[0]


def test_prune_asks_about_the_stacks_namespace(fleet: Path) -> None:
    """Issue 14: `prune` defaulted to namespace `default`; the stack's namespace is where the leases
    run (here seen in the Triton URL it asks about an auto-renew lease; nothing listens there)."""
    import json

    template = "http://127.0.0.1:9/{namespace}/{service}"
    at = "2027-06-30T18:10:00Z"  # fraud-detector (auto-renew) expired 10 min ago: renew or delete?
    stack = (fleet / "Pulumi.example.yaml").read_text()
    (fleet / "Pulumi.second.yaml").write_text(stack.replace("namespace: triton", "namespace: other"))
    for chosen, namespace in (("example", "triton"), ("second", "other")):
        result = tms("prune", "--dry-run", "-o", "json", "--now", at, "--triton-url", template, "--stack", chosen)
        assert result.exit_code == 0, result.stderr
        unknown = json.loads(result.stdout)["unknown"]
        assert [u["lease"] for u in unknown] == ["fraud-detector"], unknown
        assert f"/{namespace}/fraud-detector" in unknown[0]["why"], unknown
    explicit = tms("prune", "--dry-run", "-o", "json", "--now", at, "--triton-url", template, "--stack", "second",
                   "--namespace", "mine")
    assert "/mine/fraud-detector" in json.loads(explicit.stdout)["unknown"][0]["why"]


def test_version_is_a_command_and_an_option() -> None:
    import tms_stack

    for args in (["version"], ["--version"]):
        result = tms(*args)
        assert result.exit_code == 0 and result.stdout == f"tms {tms_stack.__version__}\n", result.stdout


def _complete(cwd: Path, line: str) -> list[str]:
    """What bash completion offers for `line` (the last word being typed), through the real
    entry point as `tms --install-completion` wires it."""
    import os
    import subprocess

    from tests.conftest import ROOT

    words = line.split(" ")
    env = {**os.environ, "_TMS_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)}
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "tms")], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_completion_offers_lease_pool_and_stack_names(fleet: Path) -> None:
    leases = sorted(p.stem for p in (fleet / "leases").glob("*.yaml"))
    assert _complete(fleet, "tms lease status ") == leases
    assert _complete(fleet / "leases", "tms lease renew fr") == [n for n in leases if n.startswith("fr")] != []
    assert _complete(fleet, "tms pool status ") == sorted(
        p.stem for p in (fleet / "pools").glob("*.yaml") if p.name != "placement.lock.yaml")
    (fleet / "Pulumi.staging.yaml").write_text((fleet / "Pulumi.example.yaml").read_text())
    assert _complete(fleet, "tms render --stack ") == ["example", "staging"]
    assert _complete(fleet, "tms plan --stack st") == ["staging"]
