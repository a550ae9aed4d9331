"""The agent's loop: read the desired models, observe Triton and the model directory, act.

The desired models come from the agent's own ConfigMap, watched through the API server
(agent/watch.py) while that watch is synced, else from the mounted file. Kubernetes updates a
mounted ConfigMap by swapping a `..data` symlink, so the file is re-read by content on every tick
(no inotify on a path that is replaced). Each tick is cheap when nothing changed: one read of a
small file and one model-index call to Triton.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from tms_stack.agent.metrics import Metrics
from tms_stack.agent.modelconfig import ModelConfigError, count_override
from tms_stack.agent.plan import LeasePlan, Observed, owner_counts, owners, plan
from tms_stack.agent.triton import TritonControl, TritonError
from tms_stack.agent.watch import ConfigMapWatch
from tms_stack.desired import DesiredDocument, DesiredModel
from tms_stack.sources import FetchError, fetch

log = logging.getLogger("tms.agent")
SOURCE_MARK = ".tms-source"
# The `count` a model was last loaded with, beside its files: an agent container restarted while
# Triton keeps running must still see a changed `count` (the model dir outlives the agent).
COUNT_MARK = ".tms-count"
TMP_PREFIX = ".tms-tmp-"
BACKOFF_START, BACKOFF_MAX = 5.0, 300.0


@dataclass
class AgentConfig:
    desired_path: Path
    model_dir: Path
    triton_url: str = "localhost:8000"
    repo_key: str | None = None
    port: int = 8080
    interval: float = 1.0
    repository_size: int | None = None  # bytes; the desired document's value wins when set
    load_timeout: float = 3600          # seconds one load may take: the pod's startupTimeout
    # Pool instance: Ready once the first pass is done, whatever one lease does afterwards.
    # Bespoke lease (False): Ready only while every desired model is READY.
    first_pass_readiness: bool = False


@dataclass
class _Failure:
    count: int
    retry_at: float
    reason: str


@dataclass
class Agent:
    config: AgentConfig
    triton: TritonControl | None = None
    metrics: Metrics = field(default_factory=Metrics)
    desired: DesiredDocument | None = None
    failures: dict[str, _Failure] = field(default_factory=dict)
    watch: ConfigMapWatch | None = None  # the API server's copy of the file; None: the file only
    _desired_hash: str = ""
    _file_hash: str = ""
    _ready: set[str] = field(default_factory=set)
    _triton_up: bool = False
    _first_pass: bool = False     # every desired lease loaded or failed since Triton (re)started

    def __post_init__(self) -> None:
        if self.triton is None:
            self.triton = TritonControl(self.config.triton_url, self.config.repo_key, self.config.load_timeout)
        self.config.model_dir.mkdir(parents=True, exist_ok=True)
        self._clean_leftovers()

    # --- state ---------------------------------------------------------------------------

    def _clean_leftovers(self) -> None:
        """A download cut short by a restart is never loaded: its temp directory is removed."""
        for entry in self.config.model_dir.iterdir():
            if entry.name.startswith((TMP_PREFIX, ".download-")):
                log.info("removing unfinished download %s", entry.name)
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)

    def read_desired(self) -> bool:
        """Re-read the desired models; returns whether they changed. A broken document keeps the last
        good one.

        The watched ConfigMap wins while its watch is synced. The file is read on every tick anyway,
        and applied only when the watch is not synced *and* the file changed since the last tick:
        after a watch fails, a file the kubelet has not refreshed yet (older than what the watch
        delivered) is not applied back."""
        file_raw = self._read_file()
        file_changed = False
        if file_raw is not None:
            file_digest = hashlib.sha256(file_raw).hexdigest()
            file_changed, self._file_hash = file_digest != self._file_hash, file_digest
        api_raw = self.watch.current() if self.watch is not None else None
        if api_raw is not None:
            raw, source = api_raw, "ConfigMap (API server)"
        elif file_changed and file_raw is not None:
            raw, source = file_raw, "file"
        else:
            return False
        digest = hashlib.sha256(raw).hexdigest()
        if digest == self._desired_hash:
            return False
        try:
            doc = DesiredDocument.model_validate_json(raw)
        except ValidationError as exc:
            log.error("desired models (%s) are invalid, keeping the previous ones: %s", source, exc)
            self._desired_hash = digest
            return False
        self._desired_hash = digest
        self.desired = doc
        self.failures = {k: v for k, v in self.failures.items() if any(l.name == k for l in doc.leases)}
        self.metrics.set_desired({l.name: (l.expires.timestamp(), [m.name for m in l.models]) for l in doc.leases})
        log.info("desired models changed (%s): %s", source, ", ".join(
            f"{l.name}[{', '.join(m.name for m in l.models)}]" for l in doc.leases) or "none")
        return True

    def _read_file(self) -> bytes | None:
        try:
            return self.config.desired_path.read_bytes()
        except OSError as exc:
            if self.desired is None and self.watch is None:
                log.warning("desired-models file %s unreadable: %s", self.config.desired_path, exc)
            return None

    def observe(self) -> Observed:
        assert self.triton is not None
        index = self.triton.index()
        on_disk = {}
        for entry in self.config.model_dir.iterdir():
            mark = entry / SOURCE_MARK
            if entry.is_dir() and not entry.name.startswith(".") and mark.exists():
                on_disk[entry.name] = mark.read_text().strip()
        ready = {m["name"] for m in index if m.get("state") == "READY"}
        counts = {name: self._loaded_count(name) for name in ready & set(on_disk)}
        return Observed(ready=ready,
                        loaded={m["name"] for m in index if m.get("state") in ("READY", "LOADING", "UNAVAILABLE")
                                and m.get("reason", "") != "unloaded"},
                        on_disk=on_disk, counts=counts)

    def _loaded_count(self, name: str) -> int:
        try:
            return int((self.config.model_dir / name / COUNT_MARK).read_text())
        except (OSError, ValueError):
            return 0  # never loaded with an override

    # --- readiness -------------------------------------------------------------------------

    def ready(self) -> tuple[bool, dict]:
        if self.desired is None:
            return False, {"ready": False, "reason": "no desired-models file read yet"}
        if not self._triton_up:
            return False, {"ready": False, "reason": "Triton is not answering"}
        missing = {l.name: [m.name for m in l.models if m.name not in self._ready] for l in self.desired.leases}
        missing = {k: v for k, v in missing.items() if v}
        failed = {k: v.reason for k, v in self.failures.items()}
        if self.config.first_pass_readiness:
            # A pool instance serves many tenants: one lease failing or still loading must not take
            # every tenant's Service endpoints away (issue 11 #4); per-lease readiness is in the
            # detail, the metrics, the TmsLeaseNotReady alert and `tms lease status`.
            ok = self._first_pass
            detail = {"ready": ok, "notReady": missing, "failed": failed}
            if not ok:
                detail["reason"] = "the first pass over the desired leases is not finished"
            return ok, detail
        return not missing, {"ready": not missing, "notReady": missing, "failed": failed}

    # --- acting ----------------------------------------------------------------------------

    def step(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        assert self.triton is not None
        self.read_desired()
        if self.desired is None:
            return
        try:
            observed = self.observe()
        except TritonError as exc:
            if self._triton_up:
                log.warning("%s; waiting for Triton", exc)
            self._triton_up = False
            self._first_pass = False
            self.metrics.triton_up = 0
            self._ready = set()
            self.metrics.observe_ready(set())
            return
        if self._ready and not (observed.ready | observed.loaded):
            # Triton restarted between two ticks: it lost every model; reload before Ready again.
            log.warning("Triton lost every model (restarted?); reloading")
            self._first_pass = False
        if not self._triton_up:
            log.info("Triton is up; %d model(s) ready", len(observed.ready))
        self._triton_up = True
        self.metrics.triton_up = 1
        backing_off = {lease for lease, f in self.failures.items() if f.retry_at > now}
        todo = plan(self.desired, observed, backing_off)
        for name in todo.unload:
            self._unload(name, observed, delete=True)
        for lease_plan in todo.leases:
            try:
                self._serve_lease(lease_plan, observed, now)
            except Exception as exc:  # noqa: BLE001 - one lease's bug must not stall the others (issue 11 #5)
                log.exception("lease %s: unexpected error", lease_plan.lease)
                self._fail(lease_plan.lease, "-", f"unexpected error: {type(exc).__name__}: {exc}", now, observed)
        self._ready = self.observe().ready if not todo.idle else observed.ready
        self.metrics.observe_ready(self._ready)
        if not self._first_pass:
            # Every lease was tried in this pass: loaded, or failed (and retried with backoff).
            log.info("first pass done: %d lease(s) ready, %d failed",
                     sum(1 for l in self.desired.leases if all(m.name in self._ready for m in l.models)),
                     len(self.failures))
            self._first_pass = True

    def _unload(self, name: str, observed: Observed, delete: bool) -> None:
        assert self.triton is not None
        if name in observed.loaded or name in observed.ready:
            try:
                self.triton.unload(name)
                log.info("unloaded %s", name)
            except TritonError as exc:
                log.error("%s", exc)
        if delete:
            path = self.config.model_dir / name
            if path.is_symlink() or path.is_file():
                path.unlink()
            elif path.exists():
                shutil.rmtree(path, ignore_errors=True)
            log.info("deleted the files of %s", name)

    def _serve_lease(self, lp: LeasePlan, observed: Observed, now: float) -> None:
        assert self.desired is not None and self.triton is not None
        if lp.conflict:
            self._fail(lp.lease, "-", lp.conflict, now, observed, unload=False)
            return
        for model in lp.fetch:
            try:
                self._fetch(model)
            except FetchError as exc:
                self._fail(lp.lease, model.name, f"cannot fetch {model.name} ({model.uri}): {exc}", now, observed)
                return
        counts = owner_counts(self.desired)
        for name in lp.load:
            start = time.monotonic()
            try:
                config = count_override(self.config.model_dir / name, counts.get(name, 0),
                                        overridden=self._loaded_count(name) > 0)
                log.info("loading %s (lease %s%s)", name, lp.lease,
                         f", {counts[name]} instance(s)" if counts.get(name, 0) > 0 else "")
                self.triton.load(name, config)
            except (TritonError, ModelConfigError) as exc:
                self._fail(lp.lease, name, str(exc), now, observed)
                return
            (self.config.model_dir / name / COUNT_MARK).write_text(f"{counts.get(name, 0)}\n")
            self.metrics.load_done(name, time.monotonic() - start)
            log.info("loaded %s in %.1fs", name, time.monotonic() - start)
        if lp.lease in self.failures:
            log.info("lease %s recovered", lp.lease)
        self.failures.pop(lp.lease, None)

    def _fail(self, lease: str, model: str, reason: str, now: float, observed: Observed, unload: bool = True) -> None:
        """No partially loaded leases (TMS rule): unload what this lease alone had loaded."""
        assert self.desired is not None
        prev = self.failures.get(lease)
        count = prev.count + 1 if prev else 1
        delay = min(BACKOFF_START * 2 ** (count - 1), BACKOFF_MAX)
        self.failures[lease] = _Failure(count, now + delay, reason)
        self.metrics.failure(lease, model)
        log.error("lease %s failed: %s (retry in %.0fs)", lease, reason, delay)
        if not unload:
            return
        wanted = owners(self.desired)
        spec = next(l for l in self.desired.leases if l.name == lease)
        fresh = self.observe()
        for m in spec.models:
            if wanted.get(m.name, ("",))[0] == lease and (m.name in fresh.ready or m.name in fresh.loaded):
                self._unload(m.name, fresh, delete=False)

    def _budget(self) -> int | None:
        limit = (self.desired.repositorySize if self.desired else None) or self.config.repository_size
        if limit is None:
            return None
        used = 0
        for path in self.config.model_dir.rglob("*"):
            if path.is_file() and not path.is_symlink():
                used += path.stat().st_size
        return max(limit - used, 0)

    def _fetch(self, model: DesiredModel) -> None:
        tmp = self.config.model_dir / f"{TMP_PREFIX}{model.name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        last = [0.0]
        started = time.monotonic()

        def progress(done: int, total: int | None) -> None:
            if time.monotonic() - last[0] >= 5 or (total and done >= total):
                last[0] = time.monotonic()
                pct = f" ({100 * done // total}%)" if total else ""
                log.info("fetching %s: %.1f MiB%s", model.name, done / 2**20, pct)

        try:
            log.info("fetching %s from %s", model.name, model.uri)
            fetch(model.source, tmp, self._budget(), progress)
            (tmp / SOURCE_MARK).write_text(model.uri + "\n")
            final = self.config.model_dir / model.name
            if final.exists() or final.is_symlink():
                old = self.config.model_dir / f"{TMP_PREFIX}old-{model.name}-{uuid.uuid4().hex[:8]}"
                final.rename(old)
                shutil.rmtree(old, ignore_errors=True)
            tmp.rename(final)  # atomic: Triton never sees a half-written model
            log.info("fetched %s in %.1fs", model.name, time.monotonic() - started)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def run(self, stop: threading.Event) -> None:
        log.info("agent started: desired=%s%s models=%s triton=%s", self.config.desired_path,
                 f" and ConfigMap {self.watch.access.namespace}/{self.watch.access.name}" if self.watch else "",
                 self.config.model_dir, self.config.triton_url)
        if self.watch is not None:
            self.watch.start(stop)
        while not stop.is_set():
            try:
                self.step()
            except Exception:  # noqa: BLE001 - the agent must outlive any one bad tick
                log.exception("reconcile failed; retrying")
            stop.wait(self.config.interval)
