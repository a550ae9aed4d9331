"""What Triton actually holds, sampled on its own thread (issue 23 #1).

`/ready`, `tms_agent_model_ready` and `tms_agent_triton_up` come from here: one model-index call
every `interval` seconds with a short timeout, on a thread that does nothing else, so no download,
load or pass of the agent's loop can hold them back. A sample older than `stale_after` counts as
"Triton is not answering". Every observation (this thread's and the loop's) goes through
`TritonState.update`, which also notices a Triton restart: answering again after not answering,
or holding nothing after holding models. Each restart starts a new epoch (the pool's first pass).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tms_stack.agent.triton import TritonControl, TritonError

log = logging.getLogger("tms.agent")


@dataclass(frozen=True)
class Sample:
    up: bool
    ready: frozenset[str] = frozenset()     # READY in Triton
    loaded: frozenset[str] = frozenset()    # known to Triton in a state other than unloaded
    at: float = 0.0                         # time.monotonic() of the sample


def sample_of(index: list[dict[str, Any]], at: float) -> Sample:
    return Sample(True, frozenset(m["name"] for m in index if m.get("state") == "READY"),
                  frozenset(m["name"] for m in index if m.get("state") in ("READY", "LOADING", "UNAVAILABLE")
                            and m.get("reason", "") != "unloaded"), at)


@dataclass
class TritonState:
    stale_after: float = 5.0
    epoch: int = 0                          # Triton (re)starts seen; 0: never seen up
    latest: Sample = field(default_factory=lambda: Sample(False))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def update(self, sample: Sample) -> None:
        with self._lock:
            prev = self.latest
            if sample.at < prev.at:
                return  # an older observation finished late
            restarted = sample.up and (not prev.up or (bool(prev.ready) and not (sample.ready | sample.loaded)))
            if restarted:
                self.epoch += 1
                if prev.up:
                    log.warning("Triton lost every model (restarted?); reloading")
                else:
                    log.info("Triton is up; %d model(s) ready", len(sample.ready))
            elif prev.up and not sample.up:
                log.warning("Triton is not answering; waiting for it")
            self.latest = sample

    def current(self) -> Sample:
        """The latest sample, or "down" when it is too old to trust."""
        with self._lock:
            s = self.latest
        if time.monotonic() - s.at > self.stale_after:
            return Sample(False, at=s.at)
        return s


def observe(triton: TritonControl, state: TritonState) -> Sample:
    at = time.monotonic()
    try:
        sample = sample_of(triton.index(), at)
    except TritonError:
        sample = Sample(False, at=at)
    state.update(sample)
    return sample


class Sampler:
    def __init__(self, triton: TritonControl, state: TritonState, interval: float,
                 on_sample: Callable[[Sample], None]):
        self.triton, self.state, self.interval, self.on_sample = triton, state, interval, on_sample
        self._thread: threading.Thread | None = None

    def start(self, stop: threading.Event) -> None:
        self._thread = threading.Thread(target=self.run, args=(stop,), name="readiness-sampler", daemon=True)
        self._thread.start()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                observe(self.triton, self.state)
                self.on_sample(self.state.current())
            except Exception:  # noqa: BLE001 - the sampler must outlive any one bad sample
                log.exception("readiness sample failed")
            stop.wait(self.interval)
