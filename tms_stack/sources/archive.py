"""Model zips, in both layouts TMS accepted: files at the top (`config.pbtxt`, `1/...`), or one
top-level folder holding them (`my_model/config.pbtxt`). Guards against zip-slip and zip bombs."""

from __future__ import annotations

import zipfile
from pathlib import Path

from tms_stack.sources import FetchError


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


def extract_model(zip_path: Path, dest: Path, limit: int | None) -> None:
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile:
        raise FetchError("the download is not a valid zip archive (corrupt or not a zip)") from None
    with archive:
        infos = archive.infolist()
        total = sum(i.file_size for i in infos)
        if limit is not None and total > limit:
            raise FetchError(f"the zip expands to {total} bytes, over the repositorySize limit of {limit}")
        root = model_root([i.filename for i in infos])
        base = dest.resolve()
        for info in infos:
            if not info.filename.startswith(root) or info.is_dir():
                continue
            rel = info.filename[len(root):]
            target = (base / rel).resolve()
            if not target.is_relative_to(base) or rel.startswith("/"):
                raise FetchError(f"zip member {info.filename!r} escapes the model directory")
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(info) as src, open(target, "wb") as out:
                    written = 0
                    while chunk := src.read(1 << 20):
                        written += len(chunk)
                        if written > info.file_size:
                            raise FetchError(f"zip member {info.filename!r} is larger than its header says")
                        out.write(chunk)
            except (zipfile.BadZipFile, OSError) as exc:
                raise FetchError(f"zip member {info.filename!r} is corrupt: {exc}") from None
