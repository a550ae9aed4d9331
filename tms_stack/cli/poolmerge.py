"""`tms pool merge-driver BASE OURS THEIRS PATH`: the git merge driver for the placement lock.

Set up once per clone (docs/pools.md, "Lock conflicts"); `.gitattributes` names the driver:

    git config merge.tms-lock.driver "tms pool merge-driver %O %A %B %P"

The decisions are in `tms_stack.lock_merge`; this module is the git edge: it finds the commit being
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

FIX = ("git checkout --ours {path} && tms pool lock && git add {path}")


def register(app: typer.Typer) -> None:
    from tms_stack.cli.pool import pool_app

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
    from tms_stack.diagnostics import TmsError
    from tms_stack.loader import load_repository
    from tms_stack.lock_merge import merge_names, pool_files, pooled_files, previous_for_merge
    from tms_stack.lockfile import dump_lock
    from tms_stack.pool_lock import compute

    def give_up(why: str) -> NoReturn:
        _text_conflict(base, ours, theirs, path, why)

    try:
        locks = [_read(p, path) for p in (base, ours, theirs)]
    except TmsError as exc:
        give_up(f"a side's lock does not parse ({str(exc).splitlines()[0]})")
    commit = _their_commit(theirs, path)
    if commit is None:
        give_up("cannot tell which commit is being merged (only `git merge`, `git rebase` and "
                "`git cherry-pick` are recognised)")
    rel = PurePosixPath(path).parent.parent
    names = merge_names(*locks)
    with tempfile.TemporaryDirectory(prefix="tms-lock-merge-") as tmp:
        ours_top, theirs_top = Path(tmp, "ours"), Path(tmp, "theirs")
        _extract("HEAD", rel, ours_top)
        _extract(commit, rel, theirs_top)
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
        result = compute(merged, previous_for_merge(*locks))
    if result.unplaced:
        _pool, lease, reason = result.unplaced[0]
        give_up(f"after the merge lease {lease} cannot be placed: {reason}")
    ours.write_text(dump_lock(result.lock), encoding="utf-8")
    moved = sorted({m for r in result.results.values() for m in r.moved})
    typer.echo(f"tms: merged {path} from the merged leases"
               + (f"; moved: {', '.join(moved)}" if moved else ""), err=True)


def _read(file: Path, display: str):  # type: ignore[no-untyped-def]
    """A side's lock; None when that side has none (git passes an empty file)."""
    from pydantic import ValidationError

    from tms_stack.diagnostics import TmsError
    from tms_stack.models.lock import PlacementLock
    from tms_stack.yamlio import parse

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
    """The commit git is merging in: the candidate whose lock blob is exactly THEIRS."""
    blob = _git("hash-object", "--", str(theirs))
    candidates = [key.removeprefix("GITHEAD_") for key in os.environ if key.startswith("GITHEAD_")]
    candidates += ["MERGE_HEAD", "CHERRY_PICK_HEAD", "REBASE_HEAD", "REVERT_HEAD"]
    done = Path(_git("rev-parse", "--git-path", "rebase-merge/done"))
    if done.is_file():  # `git rebase`: the commit being picked is the last line done
        lines = [line.split() for line in done.read_text(errors="replace").splitlines() if line.strip()]
        if lines and len(lines[-1]) >= 2:
            candidates.append(lines[-1][1])
    for candidate in candidates:
        found = subprocess.run(["git", "rev-parse", "-q", "--verify", f"{candidate}:{path}"],
                               capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.strip() == blob:
            return _git("rev-parse", "--verify", f"{candidate}^{{commit}}")
    return None


def _extract(commit: str, rel: PurePosixPath, dest: Path) -> None:
    """The leases/, pools/ and policies/ folders of `commit` (under `rel`) into `dest`."""
    dest.mkdir(parents=True)
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
