"""The files of a base revision (`tms check --base REF`, `tms plan --base REF`, `tms plan --targets`,
`tms shard moves`), written by git itself without touching the repository's index or work tree.

Two ways, with the same files:

- **kept** (the default, docs/review.md): one checkout per repository in `<git-common-dir>/tms-stack/`
  (`base/` and its own index `base.index`), moved to the next base with `git read-tree --reset -u`,
  which rewrites only the files that differ, and whatever git's index says may have been touched
  (size, times, inode). A review of a one-lease pull request in a 10,000-lease repository used to
  write all 10,000 files into a scratch folder, twice (check, then plan): 4-8 s of the review on a
  slow disk, against ~0.1 s to move the kept one (bench/review_scale.py).
- **scratch**: a temporary folder, written in full (`TMS_CACHE=off` or `memory`, `--no-cache`: nothing
  outlives the command), and whenever the kept checkout cannot be used: another command holds it
  (two reviews at once in one repository), `.git` is read-only, or updating it failed.

Why the kept checkout never changes an answer: it lives inside `.git`, which only someone who could
already change the repository can write; a file git did not write (a leftover of a killed run, or
one put there by hand) is removed before the update, and a failed update throws the
checkout away and uses a scratch one. `rm -rf .git/tms-stack` drops it; nothing else refers to it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

# What the loader reads from a base (repo/loader.py, rules/stack.py, rules/codeowners): a scratch
# checkout writes only these; the kept one holds the whole tree (git updates it file by file).
DATA_FOLDERS = (b"leases/", b"pools/", b"policies/")
STORE = "tms-stack"


def _git(root: Path, *args: str, env: dict[str, str] | None = None, data: bytes | None = None) -> bytes:
    return subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True,
                          input=data).stdout


def checkout_scratch(root: Path, ref: str, dest: Path) -> None:
    """The base tree's leases/, pools/, policies/, Pulumi.*.yaml and .github/CODEOWNERS (checked
    against the policies: rule codeowners.stale) written into `dest`.

    From a scratch index (`read-tree`, `checkout-index`): links are written as links, as git
    stores them: the loader refuses them by name (files.layout) and reads none."""
    with tempfile.TemporaryDirectory(prefix="tms-index-") as scratch:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(scratch) / "index")}
        _git(root, "read-tree", f"{ref}^{{tree}}", env=env)
        listed = _git(root, "ls-files", "-z", env=env)
        paths = [p for p in listed.split(b"\0") if p.startswith(DATA_FOLDERS) or p == b".github/CODEOWNERS"
                 or (b"/" not in p and p.startswith(b"Pulumi."))]
        dest.mkdir(parents=True, exist_ok=True)
        _git(root, "checkout-index", "--force", f"--prefix={dest.resolve()}/", "-z", "--stdin", env=env,
             data=b"\0".join(paths))


def _store(root: Path) -> Path:
    common = _git(root, "rev-parse", "--git-common-dir").decode().strip()
    return (root / common).resolve() / STORE


def _remove_untracked(root: Path, tree: Path, env: dict[str, str]) -> None:
    """Delete every file in the kept checkout that its index does not list (and the folders that
    leaves empty): git never removes those, and the loader would read them."""
    listed = _git(root, f"--work-tree={tree}", "ls-files", "-z", "--others", env=env)
    for rel in filter(None, listed.split(b"\0")):
        path = tree / os.fsdecode(rel)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        for parent in path.parents:
            if parent == tree or not parent.is_relative_to(tree):
                break
            try:
                parent.rmdir()
            except OSError:
                break


def _update_kept(root: Path, ref: str, store: Path) -> Path:
    tree, index = store / "base", store / "base.index"
    env = {**os.environ, "GIT_INDEX_FILE": str(index)}
    env.pop("GIT_WORK_TREE", None)
    if not index.exists():
        shutil.rmtree(tree, ignore_errors=True)  # files no index describes: start again
    tree.mkdir(exist_ok=True)
    # The user's sparse-checkout patterns are for their work tree; the base is read whole.
    # (and its fsmonitor watches their work tree, not this one).
    sparse_off = ("-c", "core.sparseCheckout=false", "-c", "core.fsmonitor=false")
    # First: git refuses to overwrite a file its index does not list, and never deletes one.
    _remove_untracked(root, tree, env)
    _git(root, *sparse_off, f"--work-tree={tree}", "read-tree", "--reset", "-u", ref, env=env)
    return tree


@contextlib.contextmanager
def base_tree(root: Path, ref: str, keep: bool = True) -> Iterator[Path]:
    """The files of `ref` (a commit of the repository at `root`) in a folder, while the block runs.
    `keep`: use (and update) the repository's kept checkout when it is free; else, and whenever it
    cannot be used, a scratch one."""
    # A ref that names no commit fails here, before anything is written or thrown away, with the
    # message git gives for it when reading the tree (what the user saw before: "Not a valid
    # object name REF^{tree}").
    found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{tree}}"], cwd=root,
                           capture_output=True)
    if found.returncode != 0:
        with tempfile.TemporaryDirectory(prefix="tms-base-") as scratch:
            checkout_scratch(root, ref, Path(scratch))   # raises git's own error
    ref = found.stdout.decode().strip()
    if keep:
        lock_fd = -1
        try:
            store = _store(root)
            store.mkdir(exist_ok=True)
            lock_fd = os.open(store / "base.lock", os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (OSError, subprocess.CalledProcessError):
            if lock_fd >= 0:
                os.close(lock_fd)
            lock_fd = -1   # held by another command, or .git not writable: a scratch checkout
        if lock_fd >= 0:
            try:
                try:
                    tree = _update_kept(root, ref, store)
                except (OSError, subprocess.CalledProcessError):
                    # Half-updated: throw it away, so the next command starts from nothing.
                    with contextlib.suppress(OSError):
                        (store / "base.index").unlink()
                    shutil.rmtree(store / "base", ignore_errors=True)
                else:
                    yield tree
                    return
            finally:
                os.close(lock_fd)
    with tempfile.TemporaryDirectory(prefix="tms-base-") as scratch:
        checkout_scratch(root, ref, Path(scratch))
        yield Path(scratch)
