"""What every model source shares: the error a person can act on (with a coarse kind), progress
reports, reading a mounted Secret, and the context every fetch runs under: an overall deadline, a
per-read timeout, a cancel switch (shutdown, deadline) that also aborts a blocked read by shutting
its socket down, and a space `Budget` every byte written is charged to (the archive *and* its
unpacked copy)."""

from __future__ import annotations

import errno
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tms_stack.models.diagnostics import OutsideError


class FetchError(OutsideError):
    """A model could not be fetched from its source. `kind` is a coarse category safe to show
    anyone (no URI, no file content); the message is for the agent's log."""

    def __init__(self, message: str, kind: str = "fetch failed"):
        super().__init__(message)
        self.kind = kind


Progress = Callable[[int, int | None], None]  # (bytes so far, total bytes or None)
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class Budget:
    """Bytes the agent may still write under the model directory, shared by concurrent fetches.

    `base` is what finished models use on disk (re-measured when a fetch starts); every fetch in
    flight charges what it writes (archive and unpacked files alike), so two concurrent fetches can
    never together exceed the limit."""

    def __init__(self, limit: int | None, measure: Callable[[], int]):
        self.limit = limit
        self._measure = measure
        self._lock = threading.Lock()
        self._base = 0
        self._inflight = 0

    def refresh(self) -> None:
        with self._lock:
            self._base = self._measure()

    def available(self) -> int | None:
        with self._lock:
            return None if self.limit is None else max(self.limit - self._base - self._inflight, 0)

    def charge(self, n: int, what: str) -> None:
        with self._lock:
            if self.limit is not None and self._base + self._inflight + n > self.limit:
                raise FetchError(f"{what}: over the repositorySize limit of {self.limit} bytes "
                                 f"({self._base} used by loaded models, {self._inflight} by downloads in progress)",
                                 kind="over the repository size")
            self._inflight += n

    def release(self, n: int, kept: int = 0) -> None:
        """A fetch ended: its `n` charged bytes leave the in-flight count; `kept` of them stay on disk."""
        with self._lock:
            self._inflight -= n
            self._base += kept


@dataclass(eq=False)  # hashable by identity: the agent keeps a set of fetches in flight
class FetchContext:
    deadline: float                    # time.monotonic() by which the whole fetch must be done
    read_timeout: float = 30.0         # seconds one read (or connect) may wait for data
    budget: Budget = field(default_factory=lambda: Budget(None, lambda: 0))
    cancel: threading.Event = field(default_factory=threading.Event)
    allow_internal: bool = False       # a repository in the policies names this host
    charged: int = 0                   # bytes this fetch charged to the budget
    _aborts: list[Callable[[], None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self) -> None:
        if self.cancel.is_set():
            raise FetchError("the fetch was cancelled (the agent is stopping, or its deadline passed)",
                             kind="fetch cancelled")
        if time.monotonic() > self.deadline:
            raise FetchError("the fetch did not finish before its deadline (the pod's startupTimeout)",
                             kind="fetch deadline exceeded")

    def remaining(self) -> float:
        return max(self.deadline - time.monotonic(), 0.0)

    def read_wait(self) -> float:
        """How long the next read may block: the per-read timeout, never past the deadline."""
        return max(min(self.read_timeout, self.remaining()), 0.5)

    def charge(self, n: int, what: str) -> None:
        self.budget.charge(n, what)
        self.charged += n

    def on_abort(self, fn: Callable[[], None]) -> None:
        with self._lock:
            self._aborts.append(fn)
        if self.cancel.is_set():
            fn()

    def abort(self) -> None:
        """Cancel: wake any read blocked in this fetch (its socket is shut down)."""
        self.cancel.set()
        with self._lock:
            aborts = list(self._aborts)
        for fn in aborts:
            try:
                fn()
            except Exception:  # noqa: BLE001, S110 - best effort: the read timeout still bounds it
                pass


def abort_response(raw: object) -> Callable[[], None]:
    """A callable that shuts down the socket under a urllib3 response (a blocked read returns)."""
    def abort() -> None:
        conn = getattr(raw, "_connection", None) or getattr(raw, "connection", None)
        sock = getattr(conn, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        close = getattr(raw, "close", None)
        if close is not None:
            close()
    return abort


def read_some(raw: object, size: int = 1 << 20) -> bytes:
    """Whatever the stream has now (at most `size`), without waiting for `size` bytes: a source
    trickling one byte at a time still gives the caller a chance to check its deadline."""
    read1 = getattr(raw, "read1", None)
    if read1 is not None:
        return bytes(read1(size))
    return bytes(raw.read(size))  # type: ignore[attr-defined]


def read_secret(directory: str | None) -> str | None:
    """A mounted Secret's value: the key named like the Secret (TMS `--from-file NAME`), `value`,
    or its only key."""
    if not directory:
        return None
    folder = Path(directory)
    if not folder.is_dir():
        raise FetchError(f"secret {folder.name!r} is not mounted at {folder}", kind="secret missing")
    for candidate in (folder / folder.name, folder / "value"):
        if candidate.is_file():
            return candidate.read_text().strip()
    keys = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    if len(keys) == 1:
        return keys[0].read_text().strip()
    raise FetchError(f"secret {folder.name!r} has keys {sorted(p.name for p in keys)}: "
                     f"name the key {folder.name!r} or 'value'", kind="secret missing")
