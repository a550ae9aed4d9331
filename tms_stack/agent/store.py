"""The model directory (`/models`, an emptyDir Triton reads): fetching a model into place, the
agent's marks beside each model, the space budget, and cleaning up.

A fetch works in its own directory `.tms-tmp-<model>-<random>/` (Triton ignores names starting with
a dot): the archive and the unpacked `model/` go there, and the directory is removed when the fetch
ends, whatever the outcome (success, failure, deadline, over budget, disk full, shutdown); a model
becomes visible to Triton only by one rename of the finished, checked `model/`. Work directories
left by a killed agent are removed at start; on shutdown the agent aborts every fetch and removes
their work directories before it exits.

The marks (`.tms-source`: the URI; `.tms-count`: the `count` it was loaded with) and config.pbtxt
sit where tenant code can write: they are read through agent/safefile.py only.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from tms_stack.agent.modelconfig import CONFIG, check_backends, read_config
from tms_stack.agent.safefile import UnsafeFile, read_text_checked
from tms_stack.models.desired import DesiredModel, VolumeSource
from tms_stack.outside.sources import Budget, FetchContext, FetchError, fetch

log = logging.getLogger("tms.agent")
SOURCE_MARK = ".tms-source"
# The `count` a model was last loaded with, beside its files: an agent container restarted while
# Triton keeps running must still see a changed `count` (the model dir outlives the agent).
COUNT_MARK = ".tms-count"
TMP_PREFIX = ".tms-tmp-"
LEGACY_TMP = ".download-"


def _write_new(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(text)


class ModelStore:
    def __init__(self, model_dir: Path, read_timeout: float = 30.0):
        self.model_dir = model_dir
        self.read_timeout = read_timeout
        self.budget = Budget(None, self.disk_used)
        self._lock = threading.Lock()
        self._fetches: set[FetchContext] = set()
        self._configs: dict[str, str | None] = {}  # model -> config.pbtxt read when it was fetched

    # --- disk ------------------------------------------------------------------------------

    def disk_used(self) -> int:
        """Bytes of regular files under the model directory (allocated blocks when more than the
        size), downloads in progress excluded (they are charged to the budget as they write)."""
        used = 0
        for top, dirs, files in os.walk(self.model_dir):
            if top == str(self.model_dir):
                dirs[:] = [d for d in dirs if not d.startswith((TMP_PREFIX, LEGACY_TMP))]
                files = [f for f in files if not f.startswith((TMP_PREFIX, LEGACY_TMP))]
            for name in files:
                try:
                    st = os.lstat(os.path.join(top, name))
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    used += max(st.st_size, st.st_blocks * 512)  # what the kubelet's du sees
        return used

    def remove_work_dirs(self) -> int:
        """Remove every fetch work directory (and the older `.download-` files); returns how many."""
        n = 0
        for entry in self.model_dir.iterdir():
            if entry.name.startswith((TMP_PREFIX, LEGACY_TMP)):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                n += 1
        return n

    def source_of(self, name: str) -> str | None:
        try:
            return read_text_checked(self.model_dir, name, SOURCE_MARK, limit=8192).strip()
        except UnsafeFile:
            return None  # absent, or not the agent's: fetched again

    def count_of(self, name: str) -> int:
        try:
            return int(read_text_checked(self.model_dir, name, COUNT_MARK, limit=64))
        except (UnsafeFile, ValueError):
            return 0  # never loaded with an override

    def write_count(self, name: str, count: int) -> None:
        path = self.model_dir / name / COUNT_MARK
        if path.is_symlink() or path.exists():
            path.unlink()
        _write_new(path, f"{count}\n")

    def on_disk(self) -> dict[str, str]:
        out = {}
        for entry in self.model_dir.iterdir():
            if entry.name.startswith(".") or entry.is_symlink() or not entry.is_dir():
                continue
            uri = self.source_of(entry.name)
            if uri is not None:
                out[entry.name] = uri
        return out

    def delete(self, name: str) -> None:
        path = self.model_dir / name
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.exists():
            shutil.rmtree(path, ignore_errors=True)
        self._configs.pop(name, None)

    def config_text(self, model: DesiredModel) -> str | None:
        """config.pbtxt as read when the model was fetched; read again (checked) after a restart."""
        if model.name in self._configs:
            return self._configs[model.name]
        if isinstance(model.source, VolumeSource):
            return _volume_config(model.source)
        return read_config(self.model_dir / model.name)

    # --- fetching --------------------------------------------------------------------------

    def fetch(self, model: DesiredModel, deadline: float, limit: int | None,
              on_start: Callable[[FetchContext], None] | None = None) -> None:
        """Fetch `model` and rename it into place (replacing an older copy); FetchError otherwise.
        `on_start` gets the fetch's context (whoever holds it can abort the fetch)."""
        work = self.model_dir / f"{TMP_PREFIX}{model.name}-{uuid.uuid4().hex[:8]}"
        work.mkdir(mode=0o755)
        dest = work / "model"
        dest.mkdir()
        self.budget.limit = limit
        self.budget.refresh()
        src = model.source
        ctx = FetchContext(deadline=deadline, read_timeout=self.read_timeout, budget=self.budget,
                           allow_internal=getattr(src, "trusted", False))
        with self._lock:
            self._fetches.add(ctx)
        if on_start is not None:
            on_start(ctx)
        last = [0.0]
        started = time.monotonic()

        def progress(done: int, total: int | None) -> None:
            if time.monotonic() - last[0] >= 5 or (total and done >= total):
                last[0] = time.monotonic()
                pct = f" ({100 * done // total}%)" if total else ""
                log.info("fetching %s: %.1f MiB%s", model.name, done / 2**20, pct)

        try:
            log.info("fetching %s from %s", model.name, model.uri.split("?", 1)[0])
            fetch(src, dest, ctx, progress)
            ctx.check()
            try:
                text = _volume_config(src) if isinstance(src, VolumeSource) else read_config(dest)
                check_backends(Path(src.path) if isinstance(src, VolumeSource) else dest, text, model.backends)
            except Exception as exc:  # noqa: BLE001 - ModelConfigError, UnsafeFile: refused before Triton sees it
                raise FetchError(str(exc), kind="model refused") from None
            _write_new(dest / SOURCE_MARK, model.uri + "\n")
            final = self.model_dir / model.name
            if final.exists() or final.is_symlink():
                final.rename(work / "old")  # removed with the work directory below
            dest.rename(final)  # atomic: Triton never sees a half-written model
            self._configs[model.name] = text
            log.info("fetched %s in %.1fs", model.name, time.monotonic() - started)
        finally:
            with self._lock:
                self._fetches.discard(ctx)
            shutil.rmtree(work, ignore_errors=True)
            self.budget.release(ctx.charged)
            self.budget.refresh()

    def abort_all(self) -> int:
        with self._lock:
            fetches = list(self._fetches)
        for ctx in fetches:
            ctx.abort()
        return len(fetches)

    def busy(self) -> bool:
        with self._lock:
            return bool(self._fetches)


def _volume_config(src: VolumeSource) -> str | None:
    """A volume model's config.pbtxt, read from the read-only repository (not through the links in
    /models, which tenant code could replace)."""
    path = Path(src.path) / CONFIG
    try:
        return path.read_text(encoding="utf-8") if path.is_file() else None
    except (OSError, UnicodeDecodeError):
        return None
