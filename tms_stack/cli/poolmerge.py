"""`tms pool merge-driver BASE OURS THEIRS PATH`: the git merge driver for the placement lock.

Set up once per clone (docs/pools.md, "Lock conflicts"); `.gitattributes` names the driver:

    git config merge.tms-lock.driver "tms pool merge-driver %O %A %B %P"

The decisions are in `tms_stack.logic.lock_merge`; this module is the git edge: it finds the commit being
merged, reads both sides' lease files from git (the work tree still holds ours while git merges) and
writes the merged lock over OURS, as git expects. Exit 0: merged; exit 2: a textual conflict is left
(git's own markers) with one line on stderr saying what to run (git treats any non-zero exit as a
conflict; 2 is the code `tms check` gives the conflicted lock, docs/cli.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import Annotated, NoReturn

import typer

from tms_stack.cli.pool import pool_app
from tms_stack.logic.lock_merge import merge_names, pool_files, pooled_files, previous_for_merge
from tms_stack.logic.pool_lock import compute
from tms_stack.models.diagnostics import TmsError
from tms_stack.models.lock import PlacementLock
from tms_stack.repo.atomic import write_atomic
from tms_stack.repo.loader import load_repository
from tms_stack.repo.lockfile import dump_lock
from tms_stack.repo.yamlio import parse

FIX = ("git checkout --ours {path} && tms pool lock && git add {path}")


def register(app: typer.Typer) -> None:
    pool_app.command("merge-driver")(merge_driver)


def merge_driver(
    base: Annotated[Path, typer.Argument(metavar="BASE", help="%O: the common ancestor's lock")],
    ours: Annotated[Path, typer.Argument(metavar="OURS", help="%A: our lock; the result is written here")],
    theirs: Annotated[Path, typer.Argument(metavar="THEIRS", help="%B: the other side's lock")],
    path: Annotated[str, typer.Argument(metavar="PATH", help="%P: the lock's path in the repository")],
) -> None:
    """Merge pools/placement.lock.yaml by recomputing placement from the merged leases (git runs it).

    Setup: git config merge.tms-lock.driver "tms pool merge-driver %O %A %B %P"
    and in .gitattributes: pools/placement.lock.yaml merge=tms-lock"""

    def give_up(why: str) -> NoReturn:
        _text_conflict(base, ours, theirs, path, why)

    try:
        locks = [_read(p, path) for p in (base, ours, theirs)]
    except TmsError as exc:
        give_up(f"a side's lock does not parse ({str(exc).splitlines()[0]})")
    previous, conflicts = previous_for_merge(*locks)
    if conflicts:
        _move_conflict(base, ours, theirs, path, "; ".join(c.describe() for c in conflicts))
    commit = _their_commit(theirs, path)
    if commit is None:
        give_up("cannot tell which commit is being merged (none of MERGE_HEAD, the commit being picked, "
                "the stashes or the recent commits that changed the lock has this lock)")
    rel = PurePosixPath(path).parent.parent
    names = merge_names(*locks)
    with tempfile.TemporaryDirectory(prefix="tms-lock-merge-") as tmp:
        ours_top, theirs_top = Path(tmp, "ours"), Path(tmp, "theirs")
        _extract("HEAD", rel, ours_top)
        _extract(commit, rel, theirs_top)
        _overlay_untracked(commit, rel, theirs_top)
        merged_root, theirs_root = ours_top / rel, theirs_top / rel
        ours_repo, theirs_repo = load_repository(merged_root), load_repository(theirs_root)
        ours_files, theirs_files = pooled_files(ours_repo), pooled_files(theirs_repo)
        for name in sorted(names.touched):
            if name in ours_files:
                (merged_root / ours_files[name]).unlink(missing_ok=True)
            if name in names.from_theirs:
                if name not in theirs_files:
                    give_up(f"lease {name} is in the other side's lock but its file is not in {commit[:12]}")
                target = merged_root / theirs_files[name]
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(theirs_root / theirs_files[name], target)
        ours_pools = pool_files(ours_repo)
        for pool, file in pool_files(theirs_repo).items():
            if pool not in ours_pools:  # a pool theirs added: its leases need its shape
                (merged_root / file).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(theirs_root / file, merged_root / file)
        merged = load_repository(merged_root)
        if merged.unreadable:
            give_up(f"a merged file does not parse ({merged.unreadable[0].location()})")
        result = compute(merged, previous)
    if result.unplaced:
        _pool, lease, reason = result.unplaced[0]
        give_up(f"after the merge lease {lease} cannot be placed: {reason}")
    write_atomic(ours, dump_lock(result.lock))
    moved = sorted({m for r in result.results.values() for m in r.moved})
    typer.echo(f"tms: merged {path} from the merged leases"
               + (f"; moved: {', '.join(moved)}" if moved else ""), err=True)


def _read(file: Path, display: str):  # type: ignore[no-untyped-def]
    """A side's lock; None when that side has none (git passes an empty file)."""
    from pydantic import ValidationError


    raw = file.read_bytes()
    if not raw.strip():
        return None
    doc = parse(raw, display)
    try:
        return PlacementLock.model_validate(doc.data)
    except ValidationError as exc:
        raise TmsError(f"{display}: not a placement lock: {exc.errors()[0]['msg']}") from None


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout.strip()


def _their_commit(theirs: Path, path: str) -> str | None:
    """The commit git is merging in: the first candidate whose lock blob is exactly THEIRS.

    git tells a merge driver nothing about the commit, so the candidates are where each command
    leaves it: `git merge` (MERGE_HEAD, GITHEAD_*), `git rebase` (the last line of
    rebase-merge/done), `git cherry-pick`/`git revert` of a range (sequencer/todo), `git stash
    pop/apply` (the stash reflog), and, for a single `git cherry-pick` (which records nothing
    while it merges), the recent commits that changed the lock: the picked commit changed it, or
    git would not have needed the driver."""
    blob = _git("hash-object", "--", str(theirs))
    candidates = [key.removeprefix("GITHEAD_") for key in os.environ if key.startswith("GITHEAD_")]
    candidates += ["MERGE_HEAD", "CHERRY_PICK_HEAD", "REBASE_HEAD", "REVERT_HEAD"]
    for state, column in (("rebase-merge/done", -1), ("sequencer/todo", 0)):
        found = Path(_git("rev-parse", "--git-path", state))
        if found.is_file():
            lines = [line.split() for line in found.read_text(errors="replace").splitlines()
                     if line.strip() and not line.startswith("#")]
            if lines and len(lines[column]) >= 2:
                candidates.append(lines[column][1])
    candidates += _lines("reflog", "show", "--format=%H", "refs/stash", "--")
    candidates += _lines("log", "--all", "--reflog", "--format=%H", "-n", "300", "--", path)
    # One git process checks every candidate's lock blob.
    query = "".join(f"{c}:{path}\n" for c in candidates)
    answers = subprocess.run(["git", "cat-file", "--batch-check"], input=query, capture_output=True,
                             text=True).stdout.splitlines()
    for candidate, answer in zip(candidates, answers, strict=False):
        if answer.split(" ")[0] == blob:
            return _git("rev-parse", "--verify", f"{candidate}^{{commit}}")
    return None


def _lines(*args: str) -> list[str]:
    out = subprocess.run(["git", *args], capture_output=True, text=True)
    return out.stdout.split() if out.returncode == 0 else []


def _overlay_untracked(commit: str, rel: PurePosixPath, dest: Path) -> None:
    """A stash made with `-u` keeps untracked files (a new lease not yet added) in its third
    parent: they belong to that side too."""
    parents = _git("rev-list", "--parents", "-n", "1", commit).split()
    if len(parents) == 4 and _git("log", "-1", "--format=%s", parents[3]).startswith("untracked files on"):
        _extract(parents[3], rel, dest, fresh=False)


def _extract(commit: str, rel: PurePosixPath, dest: Path, fresh: bool = True) -> None:
    """The leases/, pools/ and policies/ folders of `commit` (under `rel`) into `dest`."""
    dest.mkdir(parents=True, exist_ok=not fresh)
    wanted = [str(rel / sub) if str(rel) != "." else sub for sub in ("leases", "pools", "policies")]
    present = _git("ls-tree", "-d", "--name-only", commit, "--", *wanted).splitlines()
    if not present:
        return
    archive = subprocess.run(["git", "archive", "--format=tar", commit, "--", *present],
                             check=True, capture_output=True).stdout
    tar_path = dest / ".tree.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(dest, filter="data")
    tar_path.unlink()


def _text_conflict(base: Path, ours: Path, theirs: Path, path: str, why: str) -> NoReturn:
    """Leave git's own textual merge (markers on conflict) and say what to run."""
    code = subprocess.run(["git", "merge-file", "-L", "ours", "-L", "base", "-L", "theirs",
                           str(ours), str(base), str(theirs)], capture_output=True).returncode
    fix = FIX.format(path=path) if code else f"tms pool lock && git add {path}"
    typer.echo(f"tms: {path}: {why}; after the merge run: {fix}", err=True)
    raise typer.Exit(0 if code == 0 else 2)


def _move_conflict(base: Path, ours: Path, theirs: Path, path: str, why: str) -> NoReturn:
    """Both sides moved a lease differently: a conflict git shows (markers in the file, the path
    unmerged), whatever a text merge would have made of it, and exit 2."""
    merged = subprocess.run(["git", "merge-file", "-p", "-L", "ours", "-L", "base", "-L", "theirs",
                             str(ours), str(base), str(theirs)], capture_output=True, text=True)
    text = merged.stdout
    if merged.returncode == 0:  # the text merged cleanly, yet the placement did not: say so in the file
        text = ("<<<<<<< ours\n" + ours.read_text(encoding="utf-8") + "=======\n"
                + theirs.read_text(encoding="utf-8") + ">>>>>>> theirs\n")
    write_atomic(ours, text)
    typer.echo(f"tms: {path}: {why}: choose one side's placement, then run: git checkout --ours {path} "
               f"(or --theirs) && tms pool lock && git add {path}", err=True)
    raise typer.Exit(2)
