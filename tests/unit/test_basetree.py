"""The base revision's files (repo/basetree.py): the checkout kept in `.git/tms-stack` between
commands holds exactly what a scratch checkout of the same commit holds, whatever happened to it
in between (files planted or edited in it, a half-finished update, a command running beside it),
and the repository's own index and work tree are never touched."""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import copy_example
from tms_stack.commands.plan import build_plan, render_markdown
from tms_stack.repo.basetree import base_tree, checkout_scratch

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout


def files(folder: Path) -> dict[str, bytes | str]:
    """Every data file under `folder` (what the loader may read), links as their targets."""
    out: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if not rel.startswith(("leases/", "pools/", "policies/", ".github/CODEOWNERS", "Pulumi.")):
            continue
        if path.is_symlink():
            out[rel] = f"-> {os.readlink(path)}"
        elif path.is_file():
            out[rel] = path.read_bytes()
        elif path.is_dir():
            out[rel + "/"] = b""
    return out


def scratch_of(repo: Path, ref: str, tmp: Path) -> dict[str, bytes | str]:
    dest = tmp / f"scratch-{ref}"
    checkout_scratch(repo, ref, dest)
    return files(dest)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = copy_example(tmp_path / "repo")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "one")
    return root


def commit_changes(repo: Path) -> None:
    """A second commit that adds, removes, edits, links and turns a file into a folder."""
    (repo / "leases" / "ranker.yaml").unlink()
    text = (repo / "leases" / "fraud-detector.yaml").read_text()
    (repo / "leases" / "fraud-detector.yaml").write_text(text.replace("gpu: 2,", "gpu: 3,"))
    (repo / "leases" / "new-one.yaml").write_text(text.replace("fraud-detector", "new-one"))
    (repo / "leases" / "linked.yaml").symlink_to("new-one.yaml")
    (repo / "pools" / "README").write_text("notes\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "two")


def test_the_kept_checkout_follows_the_base_and_holds_what_a_scratch_one_holds(repo: Path, tmp_path: Path) -> None:
    first = git(repo, "rev-parse", "HEAD").strip()
    with base_tree(repo, "main") as tree:
        kept = tree
        assert tree.is_relative_to(repo / ".git" / "tms-stack")
        assert files(tree) == scratch_of(repo, first, tmp_path)
    commit_changes(repo)
    with base_tree(repo, "main") as tree:
        assert tree == kept
        assert files(tree) == scratch_of(repo, "main", tmp_path)
        assert (tree / "leases" / "linked.yaml").is_symlink()
        assert not (tree / "leases" / "ranker.yaml").exists()
    with base_tree(repo, first) as tree:   # and back: the removed lease returns, the new one goes
        assert files(tree) == scratch_of(repo, first, tmp_path)
    # The repository's own index and work tree: untouched.
    assert git(repo, "status", "--porcelain") == ""


def test_files_planted_or_edited_in_the_kept_checkout_are_not_read(repo: Path, tmp_path: Path) -> None:
    with base_tree(repo, "main") as tree:
        pass
    # Between two commands: a lease planted, one edited in place (same size), one deleted, a folder.
    (tree / "leases" / "planted.yaml").write_text("apiVersion: x\n")
    (tree / "leases" / "deep" / "er").mkdir(parents=True)
    (tree / "leases" / "deep" / "er" / "more.yaml").write_text("kind: Lease\n")
    edited = tree / "leases" / "fraud-detector.yaml"
    data = edited.read_bytes()
    edited.write_bytes(data.replace(b"gpu: 2,", b"gpu: 9,"))
    (tree / "leases" / "ranker.yaml").unlink()
    with base_tree(repo, "main") as again:
        assert again == tree
        assert files(again) == scratch_of(repo, "main", tmp_path)
        assert not (again / "leases" / "deep").exists()


def test_a_broken_kept_checkout_is_thrown_away_and_the_command_still_gets_the_base(repo: Path, tmp_path: Path) -> None:
    with base_tree(repo, "main") as tree:
        pass
    index = repo / ".git" / "tms-stack" / "base.index"
    index.write_bytes(b"DIRC garbage, as a killed update might leave")
    with base_tree(repo, "main") as got:
        assert files(got) == scratch_of(repo, "main", tmp_path)
        assert not got.is_relative_to(repo / ".git")     # this once: a scratch checkout
    assert not index.exists() and not tree.exists()      # thrown away...
    with base_tree(repo, "main") as got:                 # ...and built again by the next command
        assert got == tree
        assert files(got) == scratch_of(repo, "main", tmp_path)


def test_a_command_running_beside_another_gets_its_own_scratch_checkout(repo: Path, tmp_path: Path) -> None:
    with base_tree(repo, "main") as tree:
        pass
    commit_changes(repo)
    lock = os.open(repo / ".git" / "tms-stack" / "base.lock", os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)      # another review holds the kept checkout
        with base_tree(repo, "main") as got:
            assert got != tree and not got.is_relative_to(repo / ".git")
            assert files(got) == scratch_of(repo, "main", tmp_path)
        assert (tree / "leases" / "ranker.yaml").exists(), "the held checkout was changed under its user"
    finally:
        os.close(lock)


def test_two_commands_at_once_never_share_the_kept_checkout(repo: Path, tmp_path: Path) -> None:
    first = git(repo, "rev-parse", "HEAD").strip()
    commit_changes(repo)
    with base_tree(repo, "main") as outer:
        with base_tree(repo, first) as inner:
            assert inner != outer
            assert files(inner) == scratch_of(repo, first, tmp_path)
        assert files(outer) == scratch_of(repo, "main", tmp_path)


def test_without_keeping_nothing_is_written_into_git(repo: Path, tmp_path: Path) -> None:
    with base_tree(repo, "main", keep=False) as got:
        assert files(got) == scratch_of(repo, "main", tmp_path)
    assert not (repo / ".git" / "tms-stack").exists()


def test_a_ref_that_names_no_commit_fails_before_anything_is_thrown_away(repo: Path) -> None:
    with base_tree(repo, "main") as tree:
        pass
    with pytest.raises(subprocess.CalledProcessError), base_tree(repo, "no-such-branch"):
        pass
    assert (tree / "leases" / "fraud-detector.yaml").exists()


def test_the_users_sparse_checkout_does_not_thin_the_base(repo: Path, tmp_path: Path) -> None:
    git(repo, "sparse-checkout", "set", "--no-cone", "/policies/")
    with base_tree(repo, "main") as tree:
        assert files(tree) == scratch_of(repo, "main", tmp_path)
        assert (tree / "leases" / "fraud-detector.yaml").exists()


def test_the_plan_through_the_kept_checkout_is_the_full_runs(repo: Path, monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    """After the base moved under the kept checkout, the plan is the one a run that keeps nothing
    (TMS_CACHE=off: scratch checkout, every file parsed, every group rendered) gives."""
    monkeypatch.setenv("TMS_CACHE_DIR", str(tmp_path / "cache"))
    build_plan(repo, "main")   # the kept checkout at the first commit
    commit_changes(repo)
    git(repo, "checkout", "-qb", "pr")
    text = (repo / "leases" / "new-one.yaml").read_text()
    (repo / "leases" / "new-one.yaml").write_text(text.replace("gpu: 3,", "gpu: 1,"))
    (repo / "leases" / "chat-small.yaml").unlink()
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "pr")
    kept = render_markdown(build_plan(repo, "main"))
    monkeypatch.setenv("TMS_CACHE", "off")
    full = render_markdown(build_plan(repo, "main"))
    assert kept == full
    assert "new-one" in kept and "chat-small" in kept
