"""The agent's loop: read the desired models, observe Triton and the model directory, hand work
to workers.

The desired models come from the agent's own ConfigMap, watched through the API server
(agent/watch.py) while that watch is synced, else from the mounted file. Kubernetes updates a
mounted ConfigMap by swapping a `..data` symlink, so the file is re-read by content on every tick
(no inotify on a path that is replaced). Each tick is cheap when nothing changed: one read of a
small file and one model-index call to Triton.

The loop itself never waits for a download or a load (issue 23 #1): a lease with models to fetch
goes to the fetch workers (bounded), then to the load workers; a lease with only loads to do (a
Triton restart) goes straight to the load workers, so a hanging download never delays another
lease's reload. A lease is in at most one job at a time; a model is fetched or loaded by one job
at a time (a lock per model name), so two leases sharing it never fetch it twice at once.
Readiness is sampled on its own thread (agent/readiness.py).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from tms_stack.agent.actions import LeasePlan, Observed, owner_counts, plan, wanted_by
from tms_stack.agent.metrics import Metrics
from tms_stack.agent.modelconfig import ModelConfigError, count_override
from tms_stack.agent.readiness import Sample, Sampler, TritonState, observe
from tms_stack.agent.store import ModelStore
from tms_stack.agent.triton import TritonControl, TritonError
from tms_stack.agent.watch import ConfigMapWatch
from tms_stack.agent.workers import Workers
from tms_stack.models.desired import DesiredDocument, DesiredLease
from tms_stack.outside.sources import FetchContext, FetchError

log = logging.getLogger("tms.agent")
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
    fetch_workers: int = 4
    load_workers: int = 2
    fetch_deadline: float | None = None  # seconds one model's fetch may take; None: load_timeout
    read_timeout: float = 30.0           # seconds one read from a source may wait for data
    sample_interval: float = 1.0         # seconds between readiness samples
    stop_grace: float = 10.0             # seconds shutdown waits for aborted fetches


@dataclass
class _Failure:
    count: int
    retry_at: float
    reason: str          # the detail, for the log and tests
    kind: str = "failed"  # the coarse state shown on /ready


@dataclass
class _Job:
    lease: DesiredLease
    plan: LeasePlan
    desired: DesiredDocument
    refetched: set[str] = field(default_factory=set)
    fetches: list[FetchContext] = field(default_factory=list)  # to abort when the lease goes


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

    def __post_init__(self) -> None:
        if self.triton is None:
            self.triton = TritonControl(self.config.triton_url, self.config.repo_key, self.config.load_timeout)
        self.config.model_dir.mkdir(parents=True, exist_ok=True)
        self.store = ModelStore(self.config.model_dir, self.config.read_timeout)
        self.state = TritonState(stale_after=max(3 * self.config.sample_interval, 3.0))
        self._lock = threading.RLock()
        self._model_locks: dict[str, threading.Lock] = {}
        self._inflight: dict[str, _Job] = {}
        self._pending: set[str] = set()   # leases the current first pass still waits for
        self._pass_epoch = -1             # the Triton epoch the first pass was planned for
        self._stopping = threading.Event()
        self._fetchers: Workers | None = None
        self._loaders: Workers | None = None
        for name in self._leftovers():
            log.info("removed unfinished download %s", name)

    def _leftovers(self) -> list[str]:
        """A download cut short by a restart is never loaded: its work directory is removed."""
        names = [e.name for e in self.config.model_dir.iterdir() if e.name.startswith((".tms-tmp-", ".download-"))]
        self.store.remove_work_dirs()
        return names

    # --- desired ---------------------------------------------------------------------------

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
        names = {lease.name for lease in doc.leases}
        with self._lock:
            self.desired = doc
            self.failures = {k: v for k, v in self.failures.items() if k in names}
            self._pending &= names
            gone = [job for lease, job in self._inflight.items() if lease not in names]
        for job in gone:
            # A lease removed while it downloads: stop the download now (its worker is free for
            # others); the next plan unloads and deletes whatever of it no lease wants.
            for ctx in job.fetches:
                ctx.abort()
        self.metrics.set_desired({lease.name: (lease.owner, lease.expires.timestamp(), [m.name for m in lease.models])
                                  for lease in doc.leases})
        log.info("desired models changed (%s): %s", source, ", ".join(
            f"{lease.name}[{', '.join(m.name for m in lease.models)}]" for lease in doc.leases) or "none")
        return True

    def _read_file(self) -> bytes | None:
        try:
            return self.config.desired_path.read_bytes()
        except OSError as exc:
            if self.desired is None and self.watch is None:
                log.warning("desired-models file %s unreadable: %s", self.config.desired_path, exc)
            return None

    # --- readiness (from the sampler's latest sample, never from a pass) -------------------

    def _lease_state(self, lease: DesiredLease, sample: Sample) -> str:
        failure = self.failures.get(lease.name)  # until its next attempt succeeds
        if failure is not None:
            return failure.kind
        return "ready" if all(m.name in sample.ready for m in lease.models) else "loading"

    def ready(self) -> tuple[bool, dict]:
        """(Ready?, the body of /ready). The body holds coarse per-lease states only: it is served
        without authentication to anything in the pod (tenant code included); reasons, URIs and
        Triton's messages are in the agent's log."""
        with self._lock:
            desired = self.desired
            pending, pass_epoch = set(self._pending), self._pass_epoch
        if desired is None:
            return False, {"ready": False, "reason": "no desired-models file read yet"}
        sample = self.state.current()
        if not sample.up:
            return False, {"ready": False, "reason": "Triton is not answering"}
        states = {lease.name: self._lease_state(lease, sample) for lease in desired.leases}
        failed = {k: v for k, v in states.items() if v not in ("ready", "loading")}
        if self.config.first_pass_readiness:
            # A pool instance serves many tenants: one lease failing or still loading must not take
            # every tenant's Service endpoints away (issue 11 #4); per-lease readiness is in the
            # detail, the metrics, the TmsLeaseNotReady alert and `tms lease status`.
            ok = pass_epoch == self.state.epoch and not pending
            detail: dict = {"ready": ok, "leases": states, "failed": failed}
            if not ok:
                detail["reason"] = "the first pass over the desired leases is not finished"
            return ok, detail
        ok = all(v == "ready" for v in states.values())
        return ok, {"ready": ok, "leases": states, "failed": failed}

    def _on_sample(self, sample: Sample) -> None:
        self.metrics.observe(sample.up, set(sample.ready))

    # --- acting ----------------------------------------------------------------------------

    def observe(self) -> Observed:
        assert self.triton is not None
        sample = observe(self.triton, self.state)
        if not sample.up:
            raise TritonError("Triton is not answering")
        on_disk = self.store.on_disk()
        counts = {name: self.store.count_of(name) for name in sample.ready & set(on_disk)}
        return Observed(ready=set(sample.ready), loaded=set(sample.loaded), on_disk=on_disk, counts=counts)

    def step(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.read_desired()
        if self.desired is None:
            return
        try:
            observed = self.observe()
        except TritonError:
            self._on_sample(self.state.current())
            return
        self._on_sample(self.state.current())
        with self._lock:
            desired = self.desired
            backing_off = {lease for lease, f in self.failures.items() if f.retry_at > now}
            busy = set(self._inflight)
        todo = plan(desired, observed, backing_off | busy)
        self._unload_unwanted(todo.unload, observed)
        epoch = self.state.epoch
        with self._lock:
            if epoch != self._pass_epoch:
                # A new first pass: at the agent's start, every lease with work; after a Triton
                # restart, the leases it only has to reload (a lease still downloading was not
                # ready before the restart either, and must not hold the others' readiness).
                first = self._pass_epoch == -1
                self._pending = {lp.lease for lp in todo.leases if first or not lp.fetch} | (busy if first else set())
                self._pass_epoch = epoch
        for lp in todo.leases:
            lease = next(lease for lease in desired.leases if lease.name == lp.lease)
            self._submit(_Job(lease, lp, desired), now)

    def _model_lock(self, name: str) -> threading.Lock:
        with self._lock:
            return self._model_locks.setdefault(name, threading.Lock())

    def _unload_unwanted(self, names: tuple[str, ...], observed: Observed) -> None:
        for name in names:
            lock = self._model_lock(name)
            if not lock.acquire(blocking=False):
                continue  # a job holds it: next tick
            try:
                self._unload(name, observed, delete=True)
            finally:
                lock.release()

    def _unload(self, name: str, observed: Observed, delete: bool) -> None:
        assert self.triton is not None
        if name in observed.loaded or name in observed.ready:
            try:
                self.triton.unload(name)
                log.info("unloaded %s", name)
            except TritonError as exc:
                log.error("%s", exc)
        if delete:
            self.store.delete(name)
            log.info("deleted the files of %s", name)

    def _submit(self, job: _Job, now: float) -> None:
        if job.plan.conflict:
            self._fail(job, "-", job.plan.conflict, "conflict", now, unload=False)
            return
        with self._lock:
            if job.lease.name in self._inflight or self._stopping.is_set():
                return
            self._inflight[job.lease.name] = job
        if self._fetchers is None or self._loaders is None:
            self._fetchers = Workers(self.config.fetch_workers, "fetch")
            self._loaders = Workers(self.config.load_workers, "load")
        if job.plan.fetch:
            self._fetchers.submit(lambda: self._guarded(job, self._fetch_stage))
        else:
            self._loaders.submit(lambda: self._guarded(job, self._load_stage))

    def _guarded(self, job: _Job, stage: object) -> None:
        try:
            if self._stopping.is_set():
                self._done(job)
                return
            stage(job)  # type: ignore[operator]
        except Exception as exc:  # noqa: BLE001 - one lease's bug must not stall the others (issue 11 #5)
            log.exception("lease %s: unexpected error", job.lease.name)
            self._fail(job, "-", f"unexpected error: {type(exc).__name__}: {exc}", "failed", time.monotonic())
            self._done(job)

    def _fetch_stage(self, job: _Job) -> None:
        deadline_s = self.config.fetch_deadline or self.config.load_timeout
        limit = job.desired.repositorySize or self.config.repository_size
        for model in job.plan.fetch:
            error: FetchError | None = None
            with self._model_lock(model.name):
                if self.store.source_of(model.name) == model.uri and model.name not in job.refetched:
                    continue  # another lease sharing it fetched it meanwhile
                try:
                    self.store.fetch(model, time.monotonic() + deadline_s, limit, job.fetches.append)
                    job.refetched.add(model.name)
                except FetchError as exc:
                    error = exc
            if error is not None:  # outside the model's lock: failing unloads (and locks) models
                self._fail(job, model.name, f"cannot fetch {model.name} ({model.uri.split('?', 1)[0]}): {error}",
                           error.kind, time.monotonic())
                self._done(job)
                return
        assert self._loaders is not None
        self._loaders.submit(lambda: self._guarded(job, self._load_stage))

    def _load_stage(self, job: _Job) -> None:
        assert self.triton is not None
        counts = owner_counts(job.desired)
        models = {m.name: m for m in job.lease.models}
        try:
            ready_now = set(observe(self.triton, self.state).ready)
        except TritonError:
            ready_now = set()
        for name in job.plan.load:
            count = counts.get(name, 0)
            failed: Exception | None = None
            start = time.monotonic()
            with self._model_lock(name):
                if (name in ready_now and name not in job.refetched
                        and self.store.count_of(name) == count):
                    continue  # loaded meanwhile (a lease sharing it)
                try:
                    config = count_override(name, self.store.config_text(models[name]), count,
                                            overridden=self.store.count_of(name) > 0)
                    log.info("loading %s (lease %s%s)", name, job.lease.name,
                             f", {count} instance(s)" if count > 0 else "")
                    self.triton.load(name, config)
                    self.store.write_count(name, count)
                except (TritonError, ModelConfigError) as exc:
                    failed = exc
            if failed is not None:  # outside the model's lock
                kind = "model refused" if isinstance(failed, ModelConfigError) else "load failed"
                self._fail(job, name, str(failed), kind, time.monotonic())
                self._done(job)
                return
            self.metrics.load_done(job.lease.name, name, time.monotonic() - start)
            log.info("loaded %s in %.1fs", name, time.monotonic() - start)
        with self._lock:
            if job.lease.name in self.failures:
                log.info("lease %s recovered", job.lease.name)
            self.failures.pop(job.lease.name, None)
        self._done(job)

    def _done(self, job: _Job) -> None:
        with self._lock:
            if self._inflight.get(job.lease.name) is job:
                del self._inflight[job.lease.name]
            self._pending.discard(job.lease.name)

    def _fail(self, job: _Job, model: str, reason: str, kind: str, now: float, unload: bool = True) -> None:
        """No partially loaded leases (TMS rule): unload what this lease loaded, except models that
        another desired lease wants too (reference counting, issue 23 #2)."""
        lease = job.lease.name
        with self._lock:
            prev = self.failures.get(lease)
            count = prev.count + 1 if prev else 1
            delay = min(BACKOFF_START * 2 ** (count - 1), BACKOFF_MAX)
            self.failures[lease] = _Failure(count, now + delay, reason, kind)
            desired = self.desired or job.desired
        self.metrics.failure(lease, model)
        log.error("lease %s failed (%s): %s (retry in %.0fs)", lease, kind, reason, delay)
        if not unload:
            return
        others = wanted_by(desired, exclude=lease)
        try:
            fresh = self.observe()
        except TritonError:
            return
        for m in job.lease.models:
            if m.name in others or not (m.name in fresh.ready or m.name in fresh.loaded):
                continue
            with self._model_lock(m.name):
                self._unload(m.name, fresh, delete=False)

    # --- running ---------------------------------------------------------------------------

    def run_once(self, timeout: float = 60) -> None:
        """One tick, then wait for the jobs it started (tests and one-shot use)."""
        self.step()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._inflight:
                    break
            time.sleep(0.05)
        assert self.triton is not None
        observe(self.triton, self.state)

    def run(self, stop: threading.Event) -> None:
        log.info("agent started: desired=%s%s models=%s triton=%s", self.config.desired_path,
                 f" and ConfigMap {self.watch.access.namespace}/{self.watch.access.name}" if self.watch else "",
                 self.config.model_dir, self.config.triton_url)
        if self.watch is not None:
            self.watch.start(stop)
        assert self.triton is not None
        sampler_triton = TritonControl(self.config.triton_url, self.config.repo_key, self.config.load_timeout,
                                       quick=max(min(self.config.sample_interval * 2, 5.0), 1.0))
        Sampler(sampler_triton, self.state, self.config.sample_interval, self._on_sample).start(stop)
        try:
            while not stop.is_set():
                try:
                    self.step()
                except Exception:  # noqa: BLE001 - the agent must outlive any one bad tick
                    log.exception("reconcile failed; retrying")
                stop.wait(self.config.interval)
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Stop within the pod's grace period (issue 23 #4): abort every download (their blocked
        reads return at once), wait a bounded time for the workers, remove every work directory.
        A Triton load in progress is left to Triton; nothing half-written is ever in a model's place."""
        self._stopping.set()
        aborted = self.store.abort_all()
        clean = True
        for workers in (self._fetchers, self._loaders):
            if workers is not None:
                clean = workers.stop(self.config.stop_grace / 2) and clean
        removed = self.store.remove_work_dirs()
        log.info("agent stopped: %d download(s) aborted, %d work folder(s) removed%s", aborted, removed,
                 "" if clean else " (a load still running in Triton was left to it)")
