"""Reading files under /models, which tenant code in Triton can write too (issue 23 #5).

A Python-backend model may replace its own `config.pbtxt` (or the agent's marks beside it) with a
symlink to a file only the agent can read (a mounted repository Secret). Every read of a file under
the model directory therefore walks the path one component at a time from the model directory's
descriptor with O_NOFOLLOW (no symlink anywhere, not only at the end), and accepts only a regular
file with one link, owned by the agent's own user, of a bounded size. A refused or unreadable file
is `UnsafeFile`, whose message names the path and the reason, never the content.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from tms_stack.models.diagnostics import UnreadableInput

MAX_BYTES = 1 << 20


class UnsafeFile(UnreadableInput):
    """A file under /models the agent refuses to read (a symlink, not its own, too big)."""


def read_checked(root: Path, *parts: str, limit: int = MAX_BYTES) -> bytes:
    """The bytes of root/parts..., or UnsafeFile."""
    rel = "/".join(parts)
    flags = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fds: list[int] = []
    try:
        try:
            fd = os.open(root, flags | os.O_DIRECTORY)
            fds.append(fd)
            for name in parts[:-1]:
                fd = os.open(name, flags | os.O_DIRECTORY, dir_fd=fd)
                fds.append(fd)
            fd = os.open(parts[-1], flags | getattr(os, "O_NONBLOCK", 0), dir_fd=fd)
            fds.append(fd)
        except OSError as exc:
            why = "is a symlink" if exc.errno in (errno.ELOOP, errno.ENOTDIR) else (exc.strerror or "cannot be opened")
            raise UnsafeFile(f"{rel} {why}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(f"{rel} is not a regular file")
        if st.st_nlink != 1:
            raise UnsafeFile(f"{rel} has {st.st_nlink} links (not a file the agent wrote)")
        if st.st_uid != os.geteuid():
            raise UnsafeFile(f"{rel} is owned by uid {st.st_uid}, not the agent's (not a file the agent wrote)")
        if st.st_size > limit:
            raise UnsafeFile(f"{rel} is {st.st_size} bytes, more than {limit}")
        data = os.read(fd, limit + 1)
        if len(data) > limit:
            raise UnsafeFile(f"{rel} grew past {limit} bytes while read")
        return data
    finally:
        for f in reversed(fds):
            os.close(f)


def read_text_checked(root: Path, *parts: str, limit: int = MAX_BYTES) -> str:
    try:
        return read_checked(root, *parts, limit=limit).decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafeFile(f"{'/'.join(parts)} is not UTF-8 text") from None
