"""Retention: builds older than ``retention.days`` go from all that is kept of
them, so a data directory stays the size of its window however long the
daemon runs.

A build goes whole, by its newest line (and, when it has a stored result,
the time that was stored): its lines (embedded index), its stored result,
the finished events and queue rows of its age. The daemon prunes when it
starts and then hourly; ``elastic-recheck prune`` does it by hand
(``--dry-run`` counts first).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .results import ResultStore
from .sanitize import exception_line
from .search import Pruned, SearchBackend

log = logging.getLogger(__name__)
UTC = dt.timezone.utc
PRUNE_EVERY_SECONDS = 3600.0  # a day of CI is pruned in 24 small steps, not one large one
PRUNE_RETRY_SECONDS = 300  # after a pruning that failed (the index's writer busy for long)


@dataclass(frozen=True)
class Pruning:
    """What one pruning dropped, or would drop (a dry run)."""

    before: dt.datetime
    index: Pruned | None = None  # None: not pruned here (by the daemon's writer, or a cluster's own policy)
    results: int = 0  # stored build results
    events: int = 0  # finished events, with their outcomes
    queued: int = 0  # build queue rows of builds indexed or given up

    def summary(self, dry_run: bool = False) -> str:
        """One line for an operator."""
        verb = "would go" if dry_run else "went"
        index = "" if self.index is None else f"{self.index.builds:,} build(s) ({self.index.lines:,} lines) from the index; "
        return (f"older than {self.before:%Y-%m-%d %H:%M} UTC {verb}: {index}{self.results:,} stored result(s); "
                f"{self.events:,} finished event(s); {self.queued:,} build queue row(s)")

    @property
    def anything(self) -> bool:
        return bool((self.index and self.index.builds) or self.results or self.events or self.queued)


def cutoff(days: float, now: dt.datetime | None = None) -> dt.datetime | None:
    """Where kept begins; None when everything is kept (``days`` 0)."""
    if not days:
        return None
    return (now or dt.datetime.now(UTC)) - dt.timedelta(days=days)


class PruneSchedule:
    """When a long-lived process prunes next: at its first look, then every
    ``every`` seconds; never while ``days`` is 0."""

    def __init__(self, days: float, every: float = PRUNE_EVERY_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.days = days
        self.every = every
        self.clock = clock
        self._next = clock()

    def due(self) -> dt.datetime | None:
        """The cutoff when a pruning is due now (the next is then scheduled), else None."""
        if not self.days or self.clock() < self._next:
            return None
        self._next = self.clock() + self.every
        return cutoff(self.days)

    def retry(self, after: float) -> None:
        """The last pruning failed: the next one is due sooner than hourly."""
        self._next = min(self._next, self.clock() + after)


def prune_index_and_results(backend: SearchBackend | None, results: ResultStore | None, before: dt.datetime,
                            dry_run: bool = False) -> Pruning:
    """The index first, then the stored results: a crash between leaves
    stored results of builds already gone, which the next pruning takes.
    A build stored since ``before`` stays in both, whatever its lines'
    dates: a replay of old builds is not pruned as it is indexed. Either
    may be None: not there yet (no index, nothing stored)."""
    keep = results.stored_since(before) if results is not None else set()
    index = backend.prune(before, dry_run=dry_run, keep=keep) if backend is not None else None
    stored = results.prune(before, dry_run=dry_run) if results is not None else 0
    return Pruning(before, index, stored)


def prune_scheduled(backend: SearchBackend, results: ResultStore | Path, before: dt.datetime,
                    schedule: PruneSchedule) -> None:
    """One pruning of a long-lived process (the index writer, the daemon):
    what went is logged; a failure (a full disk, the index's writer held by
    another process for long) is logged and tried again sooner. Never
    raises: the process outlives it. ``results``: the store, or its path
    (opened and closed here, for a thread of its own). A CI quiet for longer
    than the window keeps its last window of builds."""
    store = None
    try:
        newest = backend.newest_timestamp()
        if newest is not None:
            # never past the window before the newest line indexed: a clock set ahead (at boot,
            # before NTP mends it) must not prune what is really recent
            before = min(before, newest - dt.timedelta(days=schedule.days))
        store = results if isinstance(results, ResultStore) else ResultStore(results)
        pruned = prune_index_and_results(backend, store, before)
    except Exception as exc:  # noqa: BLE001 - whatever it is, the process goes on
        log.warning("could not prune builds older than %s (tried again in %d minutes): %s",
                    f"{before:%Y-%m-%d %H:%M} UTC", PRUNE_RETRY_SECONDS // 60, exception_line(exc, 300))
        schedule.retry(PRUNE_RETRY_SECONDS)
        return
    finally:
        if store is not None and store is not results:
            store.close()
    if pruned.anything:
        log.info("retention: %s", pruned.summary())
