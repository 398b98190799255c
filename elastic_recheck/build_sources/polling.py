"""Zuul's builds API polled in a thread, its builds handed to the daemon.

The checkpoint moves only once the daemon has written the builds into its
queue (``BuildBatch.accepted``): a crash between a poll and that write
repeats those builds at the next start (the queue drops what it already
has), never misses them.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..builds import Build
from ..sanitize import exception_line
from .zuul import ZuulBuilds

log = logging.getLogger(__name__)


@dataclass
class BuildBatch:
    """Builds from a source, for the daemon's queue; ``accepted`` once they are in it."""

    builds: list[Build]
    source: str
    accepted: threading.Event = field(default_factory=threading.Event)


# How long a batch of builds may wait for the daemon to take it. The daemon's
# loop takes each within a second or so; one it never takes (its state database
# refused the write) is asked for again at the next poll instead of holding
# the poller for ever. A batch taken after all is not doubled: the queue drops
# a build it has.
ACCEPT_TIMEOUT = 300.0


class ZuulPoller:
    def __init__(self, source: ZuulBuilds, events: "queue.Queue[Any]", interval: float,
                 accept_timeout: float = ACCEPT_TIMEOUT) -> None:
        self.source = source
        self.events = events
        self.interval = interval
        self.accept_timeout = accept_timeout
        self.stopping = threading.Event()
        self.polled = threading.Event()  # a first poll is done and its builds queued (a replay waits for it)
        self._thread = threading.Thread(target=self._run, name="zuul-poller", daemon=True)

    def start(self) -> "ZuulPoller":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self.stopping.is_set():
            self.poll_once()
            self.polled.set()
            self.stopping.wait(self.interval)

    def poll_once(self) -> int:
        """One poll; never raises (an API that fails is asked again next time, from the same place)."""
        try:
            builds = self.source.poll()
        except Exception as exc:  # noqa: BLE001 - the poller outlives any answer
            log.warning("Zuul's builds API: %s", exception_line(exc, 300))
            return 0
        if builds:
            batch = BuildBatch(builds, self.source.api_url)
            self.events.put(batch)
            given_up = time.monotonic() + self.accept_timeout
            while not batch.accepted.wait(min(0.5, self.accept_timeout)):
                if self.stopping.is_set():
                    return 0  # not in the queue yet: the checkpoint stays, they come again next start
                if time.monotonic() >= given_up:
                    log.error("Zuul's builds API: the daemon did not take %d builds within %.0fs; they are asked "
                              "for again at the next poll", len(builds), self.accept_timeout)
                    self.source.rewind()
                    return 0
        try:
            self.source.commit()
        except Exception as exc:  # noqa: BLE001 - the builds are queued; a failed write repeats them, no more
            log.error("could not write the Zuul checkpoint: %s", exception_line(exc, 300))
        if builds:
            log.info("Zuul's builds API: %d finished builds", len(builds))
        return len(builds)


def source_from_settings(settings: Any, events: "queue.Queue[Any]", since: Any) -> ZuulPoller | None:
    """Zuul's builds API, when ``zuul.api`` is set (see ``build_sources.configured_sources``)."""
    if not settings.zuul.api:
        return None
    return ZuulPoller(ZuulBuilds.from_settings(settings, since=since), events, settings.zuul.poll_interval)


__all__ = ["BuildBatch", "ZuulPoller", "source_from_settings"]
