"""Builds fetched a few at a time (``ingest.workers``), each worker thread
with its own kept connections.

A log server answers one build's many files faster over a connection kept
open, and several builds at once hide each server's latency (OpenStack's
logscraper fetched 100 builds in about a minute with 4 workers). The queue
in front of the workers is bounded, so a burst of reports waits in
:meth:`FetchPool.submit` instead of filling memory. Nothing a worker meets
stops it: a failure, expected or not, becomes that build's outcome.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

from ..builds import Build
from ..config import IngestSettings
from ..errors import IngestError
from ..sanitize import exception_line
from .fetch import ConnectionPool, FetchStopped, LogHosts
from .spool import FetchReport, fetch_build

log = logging.getLogger(__name__)

Outcome = Union[FetchReport, IngestError]
Done = Callable[[Build, Path, Outcome], None]
FetchOne = Callable[[Build, Path, IngestSettings, ConnectionPool], FetchReport]
QUEUE_PER_WORKER = 4  # builds waiting for a worker, per worker, before submit waits


@dataclass(frozen=True)
class _Job:
    build: Build
    destination: Path
    done: Done


class FetchPool:
    """``ingest.workers`` threads fetching builds into spool directories.

    ``done(build, destination, outcome)`` is called from the worker thread
    once per submitted build that finished: ``outcome`` is the
    :class:`FetchReport` (the spool holds ``fetch.json``) or the
    :class:`IngestError` that kept the build from being fetched. Builds
    still waiting or cut off by :meth:`close` get no call; ``close`` returns
    them."""

    def __init__(self, settings: IngestSettings, fetch_one: FetchOne = fetch_build, *,
                 queue_size: int | None = None, name: str = "fetch") -> None:
        self.settings = settings
        self._fetch_one = fetch_one
        self._hosts = LogHosts(settings.log_hosts)
        self._queue: queue.Queue[_Job | None] = queue.Queue(queue_size or QUEUE_PER_WORKER * settings.workers)
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._running: dict[int, _Job] = {}  # worker thread id -> the build it is fetching
        self._pools: list[ConnectionPool] = []
        self._unfinished: list[_Job] = []
        self._handed_back = False  # close() has returned the unfinished: a late finisher reports nothing
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{number}", daemon=True)
                         for number in range(settings.workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, build: Build, destination: Path, done: Done, timeout: float | None = None) -> bool:
        """Queue ``build``; waits while the queue is full (up to ``timeout``
        seconds, None: as long as it takes). False when it was not queued:
        the pool is closing, or the time ran out."""
        if self._closing.is_set():
            return False
        try:
            self._queue.put(_Job(build, Path(destination), done), timeout=timeout)
        except queue.Full:
            return False
        if self._closing.is_set():  # closed while this one waited: close() may have drained already
            self._drain()
        return True

    @property
    def busy(self) -> int:
        """Builds being fetched now."""
        with self._lock:
            return len(self._running)

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def close(self, timeout: float = 10.0) -> list[tuple[Build, Path]]:
        """Stop: builds waiting are dropped, fetches under way are cut off
        (their sockets shut), the workers end. Returns the builds that were
        not fetched, to be fetched again later (their directories, if any,
        have no ``fetch.json``)."""
        self._closing.set()
        with self._lock:
            pools = list(self._pools)
        for pool in pools:
            pool.close()
        self._drain()
        for _ in self._threads:
            try:
                self._queue.put_nowait(None)
            except queue.Full:  # a submit raced in; the workers see _closing all the same
                break
        for thread in self._threads:
            thread.join(timeout)
        self._drain()
        with self._lock:
            unfinished = self._unfinished + list(self._running.values())
            self._unfinished = []
            self._handed_back = True
        return [(job.build, job.destination) for job in unfinished]

    def __enter__(self) -> "FetchPool":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _drain(self) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                with self._lock:
                    self._unfinished.append(job)

    def _work(self) -> None:
        connections = ConnectionPool(self._hosts)
        with self._lock:
            self._pools.append(connections)
        if self._closing.is_set():
            connections.close()
        me = threading.get_ident()
        try:
            while not self._closing.is_set():
                job = self._queue.get()
                if job is None or self._closing.is_set():
                    if job is not None:
                        with self._lock:
                            self._unfinished.append(job)
                    return
                with self._lock:
                    self._running[me] = job
                outcome = self._fetch(job, connections)
                with self._lock:
                    del self._running[me]
                    if outcome is None and not self._handed_back:
                        self._unfinished.append(job)
                    late = self._handed_back  # close() gave it back as unfinished already
                if outcome is not None and not late:
                    self._report(job, outcome)
        finally:
            connections.close()

    def _fetch(self, job: _Job, connections: ConnectionPool) -> Outcome | None:
        """The build's outcome; None when the fetch was stopped part way."""
        try:
            return self._fetch_one(job.build, job.destination, self.settings, connections)
        except FetchStopped:
            return None
        except IngestError as exc:
            return exc
        except Exception as exc:  # a defect, not the build's input: logged in full, the worker goes on
            log.exception("fetching %s failed", job.build.key)
            return IngestError(job.build.log_url or job.build.key, f"fetching failed: {exception_line(exc)}")

    def _report(self, job: _Job, outcome: Outcome) -> None:
        try:
            job.done(job.build, job.destination, outcome)
        except Exception:  # the caller's callback: its failure is logged, the worker goes on
            log.exception("the callback for %s failed", job.build.key)


__all__ = ["Done", "FetchOne", "FetchPool", "Outcome"]
