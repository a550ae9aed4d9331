"""A content-addressed cache of parsed and validated files, for reviews that read the same 10,000
leases again and again (issue 27; docs/review.md).

An entry is what `loader.load_file` answers for one file (the parsed document with positions and
the validated model, or the findings that stop it), keyed by what that answer depends on: the
file's git blob id (its bytes), the path shown in findings and the kinds its folder may hold. The
pull request's unchanged files have the base's blob ids, so a review reads the base's answers for
them and parses only what the pull request changed; in one process the head shares the base's
objects outright.

A cache must never change an answer, so nothing is trusted that could be wrong:
- the pack carries a stamp of everything the answer depends on besides the file (tms-stack's
  version and the source of the models and the loader, pydantic, PyYAML, Python): a pack written
  by other code is foreign and ignored;
- the pack is authenticated with HMAC-SHA256 under a key that never travels with it (a file
  beside it, created 0600, or TMS_CACHE_KEY): a pack copied from elsewhere, edited, truncated or
  corrupted fails the check and is ignored, and nothing is unpickled before the check passes;
- an entry is stored only when the file's bytes were the same before and after it was read;
- it lives in the user's cache folder (TMS_CACHE_DIR, else $XDG_CACHE_HOME/tms-stack/parse-cache,
  else ~/.cache/tms-stack/parse-cache), never in the repository, and is written atomically.
Any problem with the cache (unreadable, foreign, a key that others may read) means no cache: the
files are parsed as if it were not there. TMS_CACHE=off (or `--no-cache`) turns it off.
"""

from __future__ import annotations

import contextlib
import copyreg
import functools
import gc
import hashlib
import hmac
import io
import os
import pickle
import secrets
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tms_stack import __version__
from tms_stack.repo.atomic import WriteFailed, write_atomic
from tms_stack.repo.loader import load_file
from tms_stack.repo.yamlio import Pos

MAGIC = b"tms-stack parse cache 1\n"
PACK = "entries.pack"
KEY_FILE = "key"
# A run whose misses are at most this share of the files it read keeps the pack as it is: a
# review of a small change must not pay for rewriting 10,000 entries it did not change.
REWRITE_SHARE = 0.1
MAX_PACK = 4 << 30   # ~2 KB a file: far above any fleet's pack

Entry = tuple[Any, list[Any], list[Any]]       # (Loaded | None, unreadable, invalid), as load_file
EntryKey = tuple[str, str, tuple[str, ...]]     # (blob id, display path, kinds the folder holds)
ReadFn = Callable[[Path, str, tuple[str, ...]], Entry]


def enabled() -> bool:
    return os.environ.get("TMS_CACHE", "").strip().lower() not in ("off", "0", "false", "no")


def cache_dir() -> Path:
    explicit = os.environ.get("TMS_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tms-stack" / "parse-cache"


def blob_id(data: bytes) -> str:
    """git's object id of a file with these bytes (`git hash-object`)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@functools.cache
def stamp() -> bytes:
    """What an entry depends on besides the file: a pack with another stamp is foreign."""
    import pydantic
    import yaml

    h = hashlib.sha256()
    for part in (__version__, sys.version, pydantic.VERSION, yaml.__version__,
                 str(pickle.HIGHEST_PROTOCOL)):
        h.update(part.encode() + b"\0")
    package = Path(__file__).resolve().parents[1]
    for folder in ("models", "repo"):
        for source in sorted((package / folder).glob("*.py")):
            h.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    h.update((package / "__init__.py").read_bytes())
    return h.digest()


def _key(folder: Path) -> bytes | None:
    """The HMAC key: TMS_CACHE_KEY (CI: a secret), else a private file beside the pack, made on
    first use. A key file that others could read or replace is not a key: no cache."""
    given = os.environ.get("TMS_CACHE_KEY")
    if given:
        return hashlib.sha256(given.encode()).digest()
    path = folder / KEY_FILE
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077 or info.st_uid != os.getuid():
            return None
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return bytes.fromhex(text) if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else None


@functools.cache
def _pos(line: int, col: int) -> Pos:
    # Pos is frozen: equal positions may share one object (smaller packs, faster loads).
    return Pos(line, col)


class _Pickler(pickle.Pickler):
    dispatch_table = copyreg.dispatch_table.copy()
    dispatch_table[Pos] = lambda p: (_pos, (p.line, p.col))


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, MAGIC + stamp() + payload, hashlib.sha256).digest()


def encode(entries: dict[EntryKey, Entry], key: bytes) -> bytes:
    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(entries)
    payload = buf.getvalue()
    return MAGIC + stamp() + _mac(key, payload) + payload


def decode(data: bytes, key: bytes) -> dict[EntryKey, Entry] | None:
    """The entries of a pack, or None when it is not one this code wrote under this key."""
    head = len(MAGIC)
    if data[:head] != MAGIC or data[head:head + 32] != stamp():
        return None
    mac, payload = data[head + 32:head + 64], data[head + 64:]
    if len(mac) != 32 or not hmac.compare_digest(mac, _mac(key, payload)):
        return None
    was = gc.isenabled()
    gc.disable()  # ~10 objects per file and none to free: the collector's passes would cost ~half
    try:
        entries = pickle.loads(payload)
    except Exception:  # noqa: BLE001 - authenticated yet unreadable: still never trusted
        return None
    finally:
        if was:
            gc.enable()
    return entries if isinstance(entries, dict) else None


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes, never through a link (b"" otherwise): a
    FIFO, a device or a link to /dev/zero in the cache folder must not hang or exhaust a command."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return b""
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return b""
        return handle.read(limit + 1)


class ParseCache:
    """One command's view of the cache: `read` is the loader's reader (load_repository(read=...)),
    shared by the base and the head so that the head reuses the base's answers in memory."""

    def __init__(self, folder: Path | None = None, load: ReadFn | None = None, use_disk: bool = True):
        self.folder = folder or cache_dir()
        self._load = load or load_file
        self.key = _key(self.folder) if use_disk else None
        self.stored: dict[EntryKey, Entry] = {}
        if self.key is not None:
            data = read_regular(self.folder / PACK, MAX_PACK)
            self.stored = (decode(data, self.key) or {}) if data else {}
        self.used: dict[EntryKey, Entry] = {}
        # path -> the blob id of the bytes its answer came from ("" when they changed while read):
        # what repo/answers.py keys a whole check's answer by.
        self.blobs: dict[str, str] = {}
        self.hits = 0
        self.misses = 0

    def read(self, path: Path, display: str, kinds: tuple[str, ...]) -> Entry:
        try:
            if path.is_symlink():
                raise OSError("a link")     # load_file says what is wrong with it
            raw = path.read_bytes()
        except OSError:
            return self._load(path, display, kinds)
        key = (blob_id(raw), display, tuple(kinds))
        found = self.used.get(key) or self.stored.get(key)
        if found is not None:
            self.hits += 1
            self.used[key] = found
            self.blobs[str(path)] = key[0]
            return found
        self.misses += 1
        entry = self._load(path, display, kinds)
        try:
            same = path.read_bytes() == raw and not path.is_symlink()
        except OSError:
            same = False
        if same:  # changed while it was read: answer, but remember nothing about these bytes
            self.used[key] = entry
        self.blobs[str(path)] = key[0] if same else ""
        return entry

    def save(self) -> bool:
        """Write what this run read, when it parsed enough to be worth it. Never fails a command."""
        total = self.hits + self.misses
        if self.key is None or not self.used or self.misses <= REWRITE_SHARE * total:
            return False
        try:
            write_atomic(self.folder / PACK, encode(self.used, self.key))
        except (WriteFailed, OSError, pickle.PicklingError, TypeError, RecursionError):
            return False
        return True


def persistent() -> bool:
    """Whether commands may keep what they read between runs: the pack, and a base revision's
    checkout (repo/basetree.py). Not with TMS_CACHE=off or TMS_CACHE=memory."""
    return enabled() and os.environ.get("TMS_CACHE", "").strip().lower() != "memory"


def reader(cache: bool = True) -> ParseCache | None:
    """The cache for a command, or None when turned off (`--no-cache`, TMS_CACHE=off).
    TMS_CACHE=memory: one command's trees share their answers in memory, and nothing is read from
    or written to disk (deploy.yml: a fresh runner's pack would be written for nobody, and a pack on
    a runner shared with pull requests' code is not one a deploy should read)."""
    if not (cache and enabled()):
        return None
    return ParseCache(use_disk=persistent())
