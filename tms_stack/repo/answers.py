"""A whole check's answer kept between commands, keyed by everything it depends on (issue 27;
docs/review.md, "Kept answers").

A review asks the same question more than once: `tms check --base main` checks the pull request's
tree against the base, then `tms plan --base main` checks that same tree against the same base
again, and checks the base itself to know whether it passes, which every review of that base asks
too. The rules are a pure function of the code, the files they read, the base and the time
(rules/__init__.py), so their answer is kept under a digest of the first three, with the window of
time in which it holds:

- the code: every file of the tms_stack package (and the versions of Python, pydantic, PyYAML);
- the files: the blob id of every lease, pool and policy the check loaded (the parse cache hashed
  them while reading, repo/parsecache.py), what the loader found about the others (unreadable,
  invalid, duplicates, the layout), CODEOWNERS, and the bytes of the files rules read from the root
  themselves: every `Pulumi.*.yaml` and the placement lock (tests/unit/test_answers.py watches a
  check's every `open` and fails when a rule reads a file this list does not name);
- the base: the same of its tree, how messages name it and the paths that differ;
- the time: only `lease_rules` reads it, through three comparisons per lease
  (rules/leases.py `expiry_instants`); an answer is kept with the nearest instants before and after
  the time it was computed at, and used only strictly between them (so never across an instant,
  nor on one).

As with the parse cache, nothing is trusted that could be wrong: each answer is a file in the parse
cache's folder, authenticated with the same key (HMAC-SHA256 over its name and content), and
anything foreign, edited or unreadable is ignored and computed again. Only with a persistent parse
cache (not TMS_CACHE=memory or off, not --no-cache): the workflows never read answers a pull
request's code could have written. The newest KEEP answers are kept.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import hashlib
import hmac
import os
import pickle
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from tms_stack.models.diagnostics import Diagnostic
from tms_stack.repo.atomic import WriteFailed, write_atomic
from tms_stack.repo.loader import Repository
from tms_stack.repo.lockfile import lock_path
from tms_stack.repo.parsecache import ParseCache, read_regular, stamp

MAGIC = b"tms-stack check answer 1\n"
FOLDER = "answers"
KEEP = 64
MAX_BYTES = 64 << 20   # an answer is ~100 bytes a finding: a million findings is not an answer
_NAME = re.compile(r"[0-9a-f]{64}")


@functools.cache
def code_stamp() -> bytes:
    """Every file of the package that could change an answer, on top of the pack's stamp (the
    versions it runs on, and the models and loader an entry depends on)."""
    h = hashlib.sha256(stamp())
    package = Path(__file__).resolve().parents[1]
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
            h.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.digest()


def root_inputs(root: Path) -> list[Path]:
    """The files rules read from a tree by themselves (not through the loader): every stack file
    and the placement lock."""
    return [*sorted(root.glob("Pulumi.*.yaml")), lock_path(root)]


def _root_file(path: Path) -> bytes:
    """A file a rule reads from the root by itself, as what tells its versions apart."""
    try:
        if path.is_symlink():
            return b"link:" + os.readlink(path).encode()
        if path.is_dir():
            return b"folder"
        return b"file:" + path.read_bytes()
    except FileNotFoundError:
        return b"missing"
    except OSError as exc:
        return f"unreadable:{exc.errno}".encode()


class Answers:
    """The kept answers of one command, next to its parse cache (whose key and blob ids it uses)."""

    def __init__(self, cache: ParseCache):
        self.cache = cache
        self.folder = cache.folder / FOLDER
        self.hits = 0
        self.misses = 0

    def _tree(self, repo: Repository, h: Any) -> bool:
        """Feed `repo`'s inputs into `h`; False when one of them has no blob id (not read through
        this cache, or changed while it was read): then nothing is kept."""
        h.update(str(repo.root).encode() + b"\0")
        prefix = f"{repo.root}{os.sep}"
        for table in (repo.policy_files, repo.pools, repo.leases):
            for stem, loaded in sorted(table.items()):
                blob = self.cache.blobs.get(prefix + loaded.file)
                if not blob:
                    return False
                h.update(f"{stem}\0{loaded.file}\0{blob}\0".encode())
            h.update(b"\1")
        h.update(repr((sorted(repo.diagnostics), sorted(repo.unreadable), sorted(repo.invalid_leases),
                       sorted(repo.invalid_policies), sorted(repo.invalid_pools), repo.lease_layout,
                       repo.codeowners, repo.codeowners_link, repo.codeowners_elsewhere)).encode())
        for path in root_inputs(repo.root):
            h.update(b"\0" + path.name.encode() + b"\0" + _root_file(path))
        return True

    def key(self, repo: Repository, base: Any = None) -> str | None:
        """The digest an answer for `repo` judged against `base` (rules.Base) is kept under."""
        if self.cache.key is None:
            return None
        h = hashlib.sha256(code_stamp())
        if not self._tree(repo, h):
            return None
        if base is not None:
            h.update(b"\2base\0" + repr((base.label, base.changed)).encode())
            if not self._tree(base.repo, h):
                return None
        return h.hexdigest()

    def _mac(self, name: str, payload: bytes) -> bytes:
        assert self.cache.key is not None
        return hmac.new(self.cache.key, MAGIC + name.encode() + payload, hashlib.sha256).digest()

    def get(self, key: str | None, now: datetime) -> list[Diagnostic] | None:
        """The answer kept under `key` when it holds at `now`, else None."""
        if key is None:
            return None
        data = read_regular(self.folder / key, MAX_BYTES)
        found = self._decode(key, data, now) if data else None
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def _decode(self, key: str, data: bytes, now: datetime) -> list[Diagnostic] | None:
        head = len(MAGIC)
        mac, payload = data[head:head + 32], data[head + 32:]
        if data[:head] != MAGIC or len(mac) != 32 or not hmac.compare_digest(mac, self._mac(key, payload)):
            return None
        try:
            after, before, found = pickle.loads(payload)
        except Exception:  # noqa: BLE001 - authenticated yet unreadable: still never trusted
            return None
        if not (isinstance(found, list) and all(isinstance(t, datetime | None) for t in (after, before))):
            return None
        if (after is not None and now <= after) or (before is not None and now >= before):
            return None  # the clock crossed an expiry, a minimum or a maximum since: it may differ
        return found

    def put(self, key: str | None, now: datetime, instants: list[datetime] | None,
            found: list[Diagnostic]) -> None:
        """Keep `found`, computed at `now`, for the times strictly between the nearest instants
        before and after `now` (`instants` sorted). Never fails a command: an answer not kept is
        computed again."""
        if key is None or instants is None:
            return
        i = bisect.bisect_left(instants, now)
        if i < len(instants) and instants[i] == now:
            return  # on an instant: it holds at no other time
        window = (instants[i - 1] if i else None, instants[i] if i < len(instants) else None)
        payload = pickle.dumps((*window, found), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_atomic(self.folder / key, MAGIC + self._mac(key, payload) + payload)
        except (WriteFailed, OSError):
            return
        self._prune()

    def _prune(self) -> None:
        with contextlib.suppress(OSError):
            kept = []
            for entry in os.scandir(self.folder):
                if _NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                    kept.append((entry.stat(follow_symlinks=False).st_mtime, entry.path))
            for _, path in sorted(kept, reverse=True)[KEEP:]:
                with contextlib.suppress(OSError):
                    os.unlink(path)


def answers_for(cache: ParseCache | None) -> Answers | None:
    """Kept answers for a command whose parse cache persists (docs/review.md), else None."""
    return Answers(cache) if cache is not None and cache.key is not None else None
