"""Model zips, in both layouts TMS accepted: files at the top (`config.pbtxt`, `1/...`), or one
top-level folder holding them (`my_model/config.pbtxt`). Guards against zip-slip and zip bombs:
the unpacked size is charged to the space budget together with the archive itself (both sit on
disk until the archive is removed), and an archive may hold at most MAX_ENTRIES entries, nested
at most MAX_DEPTH folders deep."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from tms_stack.outside.sources.base import DISK_FULL, FetchContext, FetchError

ARCHIVE_NAME = "archive.zip"  # in the fetch's work directory, beside the model folder
MAX_ENTRIES = 10_000
MAX_DEPTH = 32
BLOCK = 4096


def model_root(names: list[str]) -> str:
    """The prefix inside the zip where the model's files start ('' or 'folder/')."""
    files = [n for n in names if not n.endswith("/")]
    if "config.pbtxt" in files:
        return ""
    tops = {n.split("/", 1)[0] for n in names if n.strip("/")}
    if len(tops) == 1:
        top = next(iter(tops))
        if any(n.startswith(top + "/") for n in files):
            return top + "/"
    return ""


def _limits(infos: list[zipfile.ZipInfo]) -> None:
    if len(infos) > MAX_ENTRIES:
        raise FetchError(f"the zip holds {len(infos)} entries, more than the {MAX_ENTRIES} a model may have",
                         kind="archive refused")
    deepest = max((i.filename.strip("/").count("/") + 1 for i in infos), default=0)
    if deepest > MAX_DEPTH:
        raise FetchError(f"the zip nests {deepest} levels deep, more than the {MAX_DEPTH} a model may have",
                         kind="archive refused")


def extract_model(zip_path: Path, dest: Path, ctx: FetchContext) -> None:
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile:
        raise FetchError("the download is not a valid zip archive (corrupt or not a zip)") from None
    with archive:
        infos = archive.infolist()
        _limits(infos)
        total = sum(i.file_size for i in infos)
        room = ctx.budget.available()
        if room is not None and total > room:
            raise FetchError(f"the zip expands to {total} bytes, more than the repositorySize budget has left "
                             f"({room} bytes, its own archive counted)", kind="over the repository size")
        root = model_root([i.filename for i in infos])
        base = dest.resolve()
        for info in infos:
            if not info.filename.startswith(root) or info.is_dir():
                continue
            ctx.check()
            rel = info.filename[len(root):]
            target = (base / rel).resolve()
            if not target.is_relative_to(base) or rel.startswith("/"):
                raise FetchError(f"zip member {info.filename!r} escapes the model directory", kind="archive refused")
            target.parent.mkdir(parents=True, exist_ok=True)
            ctx.charge(BLOCK, "unpacking the zip")  # every file takes at least a block on disk
            try:
                with archive.open(info) as src:
                    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
                    with os.fdopen(fd, "wb") as out:
                        written = 0
                        while chunk := src.read(1 << 20):
                            written += len(chunk)
                            if written > info.file_size:
                                raise FetchError(f"zip member {info.filename!r} is larger than its header says",
                                                 kind="archive refused")
                            ctx.charge(len(chunk), "unpacking the zip")
                            out.write(chunk)
            except zipfile.BadZipFile as exc:
                raise FetchError(f"zip member {info.filename!r} is corrupt: {exc}") from None
            except OSError as exc:
                if exc.errno in DISK_FULL:  # the caller reports disk full
                    raise
                raise FetchError(f"zip member {info.filename!r} cannot be written: {exc.strerror}") from None
