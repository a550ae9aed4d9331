"""A fixed number of daemon worker threads fed from a queue.

Not concurrent.futures: its workers are joined when the interpreter exits, so one download blocked
in a read would hold a stopping agent past the pod's grace period. These threads are daemons: the
agent aborts its fetches, waits a bounded time, cleans up and exits (agent/runner.py, shutdown)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

log = logging.getLogger("tms.agent")


class Workers:
    def __init__(self, count: int, name: str):
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._threads = [threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True) for i in range(count)]
        for t in self._threads:
            t.start()

    def submit(self, fn: Callable[[], None]) -> None:
        self._queue.put(fn)

    def _run(self) -> None:
        while True:
            fn = self._queue.get()
            if fn is None:
                return
            try:
                fn()
            except Exception:  # noqa: BLE001 - a job's own handler reports; this only keeps the worker alive
                log.exception("worker job failed")

    def stop(self, timeout: float) -> bool:
        """Ask every worker to end after its job; True when all ended within `timeout` seconds."""
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(deadline - time.monotonic(), 0))
        return not any(t.is_alive() for t in self._threads)
