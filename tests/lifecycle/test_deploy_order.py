"""Deploy never goes backwards, and finishes what a failed deploy left half done (issue 22).

deploy.yml's `pulumi up` step runs as GitHub runs it (bash -eo pipefail) on real git repositories:
a bare `origin`, prune's clone pushing with prune.yml's own push step, another clone merging, and
each deploy in a fresh clone checked out at its commit (as actions/checkout does, with
`refs/remotes/origin/main` as fetched when the job starts). `pulumi` is the recording stand-in of
test_workflow_steps.py (its stack tags are a file): what the engine does with `--target` is tested
against a real API server in tests/e2e/test_pulumi_engine.py; here the question is which commit
and which URNs each deploy hands it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, copy_example
from tests.lifecycle.test_workflow_steps import FAKE_PULUMI, Deploy, git, lease, run_step, ups, workflow_step

NEWER = "--target=urn:pulumi:example::tms-stack::tms:index:Lease::newer"


class Fleet:
    """origin + prune's clone + a teammate's clone; deploys run in fresh clones, one tag store."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.origin = tmp / "origin.git"
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(self.origin)], check=True)
        seed = copy_example(tmp / "seed")
        (seed / ".gitignore").write_text(".venv\n")
        (seed / "leases" / "old.yaml").write_text(lease("old", "m_old"))
        git(seed, "init", "-q", "-b", "main")
        git(seed, "add", "-A")
        git(seed, "commit", "-q", "-m", "seed")
        git(seed, "push", "-q", str(self.origin), "main")
        self.prune, self.teammate = tmp / "prune", tmp / "teammate"
        for clone in (self.prune, self.teammate):
            subprocess.run(["git", "clone", "-q", str(self.origin), str(clone)], check=True, capture_output=True)
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        (bin_dir / "pulumi").write_text(FAKE_PULUMI)
        (bin_dir / "pulumi").chmod(0o755)
        self.path = f"{bin_dir}:/usr/bin:/bin"
        self.tags, self.log = tmp / "tags", tmp / "pulumi.log"
        self.runs = 0

    def main(self) -> str:
        return git(self.prune, "--git-dir", str(self.origin), "rev-parse", "main")

    def deploy(self, sha: str, targeted: bool = True, up_rc: int = 0) -> tuple[subprocess.CompletedProcess[str],
                                                                             list[list[str]]]:
        """A deploy job for `sha` that starts now: a fresh checkout, then the pulumi up step."""
        self.runs += 1
        work = self.tmp / f"deploy-{self.runs}"
        subprocess.run(["git", "clone", "-q", str(self.origin), str(work)], check=True, capture_output=True)
        git(work, "checkout", "-q", "--detach", sha)
        (work / ".venv").symlink_to(ROOT / ".venv", target_is_directory=True)
        temp, home = self.tmp / f"temp-{self.runs}", self.tmp / f"home-{self.runs}"
        temp.mkdir()
        (home / "logs").mkdir(parents=True)
        self.log.write_text("")
        proc = run_step(workflow_step("deploy.yml", "up", "pulumi up"), work, {
            "PATH": self.path, "STACK": "example", "TARGETED": str(targeted).lower(), "RUNNER_TEMP": str(temp),
            "PULUMI_LOG": str(self.log), "PULUMI_TAGS": str(self.tags), "PULUMI_UP_RC": str(up_rc),
            "NO_COLOR": "1", "PULUMI_HOME": str(home)})
        calls = [c.splitlines() for c in self.log.read_text().split("\n\n") if c.strip()]
        return proc, calls

    def tag(self, name: str) -> str | None:
        lines = self.tags.read_text().splitlines() if self.tags.exists() else []
        values = [line.split("=", 1)[1] for line in lines if line.startswith(name + "=")]
        return values[-1] if values else None

    def prune_pushes(self) -> str:
        """What prune.yml does: `tms prune` deleted a lease; its push step commits and pushes."""
        git(self.prune, "pull", "-q", "--rebase", "origin", "main")
        (self.prune / "leases" / "old.yaml").unlink()
        temp = self.tmp / "prune-temp"
        temp.mkdir(exist_ok=True)
        (temp / "message.txt").write_text("tms prune: remove 1 expired lease\n")
        output = temp / "output"
        proc = run_step(workflow_step("prune.yml", "prune", "Commit and push to main"), self.prune,
                        {"PATH": "/usr/bin:/bin", "RUNNER_TEMP": str(temp), "GITHUB_OUTPUT": str(output)})
        assert proc.returncode == 0, proc.stderr
        return dict(line.split("=", 1) for line in output.read_text().splitlines())["sha"]

    def teammate_merges(self) -> str:
        git(self.teammate, "pull", "-q", "--rebase", "origin", "main")
        (self.teammate / "leases" / "newer.yaml").write_text(lease("newer", "m_new"))
        git(self.teammate, "add", "-A")
        git(self.teammate, "commit", "-q", "-m", "add newer")
        git(self.teammate, "push", "-q", "origin", "main")
        return git(self.teammate, "rev-parse", "HEAD")


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    f = Fleet(tmp_path)
    proc, _ = f.deploy(f.main())
    assert proc.returncode == 0, proc.stderr
    return f


def test_a_merge_between_prunes_push_and_its_deploy_is_not_undone(fleet: Fleet) -> None:
    pruned = fleet.prune_pushes()
    merged = fleet.teammate_merges()            # lands after prune's push, before prune's deploy
    proc, calls = fleet.deploy(merged)          # the push event's deploy gets the group first
    assert proc.returncode == 0, proc.stderr
    assert NEWER in ups(calls)[0] and fleet.tag("tms:deployed") == merged
    proc, calls = fleet.deploy(pruned)          # then prune's call, for its own (older) commit
    assert proc.returncode == 0, proc.stderr
    assert ups(calls) == [], calls               # before: `up --target=...::newer` deleted the lease
    assert fleet.tag("tms:deployed") == merged   # before: moved back to the prune commit
    assert f"::notice title=deploy skipped::{pruned} is not a descendant of the deployed commit {merged}" in proc.stdout


def test_in_the_other_order_both_deploy(fleet: Fleet) -> None:
    pruned = fleet.prune_pushes()
    merged = fleet.teammate_merges()
    proc, calls = fleet.deploy(pruned)
    assert proc.returncode == 0 and "--target=urn:pulumi:example::tms-stack::tms:index:Lease::old" in ups(calls)[0]
    assert NEWER not in ups(calls)[0] and fleet.tag("tms:deployed") == pruned
    proc, calls = fleet.deploy(merged)
    assert proc.returncode == 0 and NEWER in ups(calls)[0] and fleet.tag("tms:deployed") == merged


def test_a_stale_scheduled_reconcile_does_not_deploy_an_older_commit(fleet: Fleet) -> None:
    before = fleet.main()
    merged = fleet.teammate_merges()
    fleet.deploy(merged)
    proc, calls = fleet.deploy(before, targeted=False)
    assert proc.returncode == 0 and ups(calls) == [] and fleet.tag("tms:deployed") == merged


def test_mains_rewritten_head_is_deployed(fleet: Fleet) -> None:
    merged = fleet.teammate_merges()
    fleet.deploy(merged)
    git(fleet.teammate, "reset", "-q", "--hard", "HEAD~1")        # an admin force-pushes main back
    git(fleet.teammate, "push", "-q", "--force", "origin", "main")
    head = fleet.main()
    proc, calls = fleet.deploy(head)
    assert proc.returncode == 0, proc.stderr
    assert "::notice title=main was rewritten::" in proc.stdout
    assert NEWER in ups(calls)[0] and fleet.tag("tms:deployed") == head


# --- a deploy that failed halfway -----------------------------------------------------------------

@pytest.fixture
def deploy(tmp_path: Path) -> Deploy:
    d = Deploy(tmp_path)
    proc, _ = d.run(targeted=True)
    assert proc.returncode == 0, proc.stderr
    return d


def test_a_failed_deploy_then_a_revert_is_finished_by_the_next_deploy(deploy: Deploy) -> None:
    first = deploy.deployed()
    (deploy.repo / "leases" / "half.yaml").write_text(lease("half", "m_half"))
    added = deploy.commit("add half")
    proc, calls = deploy.run(targeted=True, up_rc=1)         # pulumi up failed halfway
    assert proc.returncode != 0
    assert "--target=urn:pulumi:example::tms-stack::tms:index:Lease::half" in ups(calls)[0]
    assert deploy.deployed() == first and deploy.tag("tms:pending") == added
    (deploy.repo / "leases" / "half.yaml").unlink()
    reverted = deploy.commit("revert: add half")              # the same tree as the deployed commit
    proc, calls = deploy.run(targeted=True)
    assert proc.returncode == 0, proc.stderr
    # before: targets from the deployed commit only -> nothing changed -> no up, half-created objects stay
    [up] = ups(calls)
    assert "--target=urn:pulumi:example::tms-stack::tms:index:Lease::half" in up
    assert not [t for t in up if "::speech" in t or "::fraud-detector" in t]
    assert deploy.deployed() == reverted and deploy.tag("tms:pending") is None


def test_every_unfinished_attempt_is_carried_and_many_mean_the_whole_stack(deploy: Deploy) -> None:
    attempts = []
    for i in range(5):
        (deploy.repo / "leases" / f"l{i}.yaml").write_text(lease(f"l{i}", f"m{i}"))
        attempts.append(deploy.commit(f"add l{i}"))
        proc, calls = deploy.run(targeted=True, up_rc=1)
        assert proc.returncode != 0
        assert deploy.tag("tms:pending") == " ".join(attempts)
        # each attempt also targets what the earlier unfinished ones changed
        assert all(f"--target=urn:pulumi:example::tms-stack::tms:index:Lease::l{j}" in ups(calls)[0]
                   for j in range(i + 1))
    assert len(deploy.tag("tms:pending") or "") <= 256           # a stack tag value stays short
    deploy.commit("one more")
    proc, calls = deploy.run(targeted=True)
    assert proc.returncode == 0 and ups(calls) == [["up", "--yes", "--skip-preview", "--refresh"]]
    assert deploy.tag("tms:pending") is None and deploy.deployed() == git(deploy.repo, "rev-parse", "HEAD")


def test_a_retry_of_the_same_commit_is_recorded_once(deploy: Deploy) -> None:
    (deploy.repo / "leases" / "x.yaml").write_text(lease("x", "mx"))
    head = deploy.commit("add x")
    deploy.run(targeted=True, up_rc=1)
    deploy.run(targeted=True, up_rc=1)
    assert deploy.tag("tms:pending") == head
