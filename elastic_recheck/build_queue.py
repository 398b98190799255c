"""Reported builds → fetched logs → the index pipeline, for the daemon.

The queue lives in the state database (table ``builds``), so a restart,
``kill -9`` included, resumes it: a fetch that was under way starts again
and its build is replaced whole when indexed, never doubled. Fetching runs
in a bounded pool of worker threads (``ingest.workers``) that write each
build's logs into a spool directory; the one writer thread indexes and
classifies the spooled build and stores its result. Only the daemon's loop
thread touches the state database: workers and the writer hand their news
back through a queue that the loop applies (``pump``).
"""

from __future__ import annotations

import hashlib
import logging
import queue
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .builds import Build
from .config import IngestSettings, Settings
from .errors import IngestError
from .ingest.fetch import HTTP_RETRY_STATUSES, FetchStopped, HttpError, TimedOut, Unreachable
from .ingest.fetch_pool import FetchOne, FetchPool, Outcome
from .ingest.spool import fetch_build
from .pipeline import IndexPipeline, Indexed, LogsReady
from .state import StateDB
from .testresults import failed_tests_in

log = logging.getLogger(__name__)

# A build whose fetch found nothing is asked again after this, doubling, until
# its log timeout: a log server may still be receiving the upload.
RETRY_INITIAL = 5.0
RETRY_MAX = 120.0
# Builds fetched and waiting for the writer, per fetch worker (beside those
# being fetched): a batch takes every build waiting, so with fewer the writer
# found none after each commit and waited on the fetches, with one core idle
# (~0.5 s a commit, measured on 100 builds x 50k lines). Each is a build's
# decompressed logs on disk in the spool directory: past
# ``ingest.spool_ahead_bytes`` waiting, no more are fetched ahead.
SPOOLED_PER_WORKER = 2


@dataclass
class Fetched:
    """What a fetch worker tells the loop."""

    key: str
    build: Build
    directory: Path | None  # the spooled logs; None when nothing could be fetched
    errors: list[str]
    failed_tests: Any = None
    retry: bool = True  # nothing fetched, but it may come (a busy server, logs still uploading)


@dataclass
class Spooled:
    """A fetch worker's word that a build's logs are on disk, handed to the writer."""

    key: str
    bytes: int


def spool_name(key: str) -> str:
    """A directory name for a build key (keys hold URLs)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class BuildQueue:
    def __init__(self, state: StateDB, pipeline: IndexPipeline, settings: IngestSettings, spool: Path,
                 log_timeout: float, fetch_one: FetchOne = fetch_build, clock: Callable[[], float] = time.time) -> None:
        """``fetch_one``: how one build is fetched into a spool directory (a
        wrapper may first find its log URL through Zuul's API)."""
        self.state = state
        self.pipeline = pipeline
        self.spool = spool
        self.workers = max(1, settings.workers)
        self.log_timeout = log_timeout
        self.clock = clock
        self.news: "queue.Queue[Fetched | Spooled | Indexed]" = queue.Queue()
        self.pool = FetchPool(settings, fetch_one)
        self.in_flight: set[str] = set()  # being fetched, or spooled and not indexed yet
        self.spooled: dict[str, int] = {}  # in flight and on disk: the bytes of its spooled files
        self.spool_ahead_bytes = settings.spool_ahead_bytes
        self._discard_unfinished()

    def _discard_unfinished(self) -> None:
        """Spool directories a crash left behind: their builds are fetched again."""
        if not self.spool.is_dir():
            return
        for entry in self.spool.iterdir():
            shutil.rmtree(entry, ignore_errors=True)

    # -- the loop thread --------------------------------------------------------

    def enqueue(self, build: Build) -> bool:
        reported = self.clock()
        added = self.state.enqueue_build(build.key, build.as_json(), reported, build.log_url)
        if added:
            log.info("build %s (%s, %s) queued for its logs", build.key, build.job, build.status)
        return added

    def pump(self) -> set[str]:
        """Apply what workers and the writer finished, and start due fetches.
        The keys of the builds that are done (indexed, or given up): events
        waiting on them are due."""
        finished: set[str] = set()
        while True:
            try:
                news = self.news.get_nowait()
            except queue.Empty:
                break
            if isinstance(news, Spooled):
                if news.key in self.in_flight:  # not indexed already
                    self.spooled[news.key] = news.bytes
            elif isinstance(news, Fetched):
                if self._fetched(news):
                    finished.add(news.key)
            else:
                finished.add(self._indexed(news))
        fetching = len(self.in_flight) - len(self.spooled)
        ahead = SPOOLED_PER_WORKER if sum(self.spooled.values()) < self.spool_ahead_bytes else 0
        room = min(self.workers * 2 - fetching, self.workers * (2 + ahead) - len(self.in_flight))
        if room > 0:
            for key, record, reported, attempts in self.state.due_builds(self.clock(), room):
                if key in self.in_flight:
                    continue
                build = Build.from_json(record)
                self.state.set_build(key, "fetching")
                self.in_flight.add(key)
                self.pool.submit(build, self.spool / spool_name(key), self._fetch_done)
        return finished

    def _fetched(self, news: Fetched) -> bool:
        """A fetch's outcome: logs to index (told by the worker thread itself),
        or a build to ask again or give up on (by the loop: it writes the state).
        True when the build is given up."""
        if news.directory is not None:
            for error in news.errors:
                log.warning("build %s: %s", news.key, error)
            self.pipeline.submit(LogsReady(news.build.metadata(), str(news.directory), build=news.build,
                                           spooled=True, failed_tests=news.failed_tests, fetch_errors=news.errors))
            return False
        self.in_flight.discard(news.key)
        why = "; ".join(news.errors) or "no log files"
        reported, attempts = self.state.build_attempts(news.key) or (self.clock(), 0)
        if not news.retry:
            log.warning("build %s: its logs cannot be fetched: %s", news.key, why)
            self.state.set_build(news.key, "failed", error=why)
            return True
        if self.clock() - reported >= self.log_timeout:
            log.warning("build %s: its logs could not be fetched within %.0fs: %s", news.key, self.log_timeout, why)
            self.state.set_build(news.key, "failed", error=why)
            return True
        delay = min(RETRY_INITIAL * 2 ** min(attempts, 10), RETRY_MAX)
        log.info("build %s: no logs yet (%s); asking again in %.0fs", news.key, why, delay)
        self.state.set_build(news.key, "queued", error=why, retry_in=delay)
        return False

    def _indexed(self, news: Indexed) -> str:
        """The writer's outcome, recorded; the build's key."""
        build = news.item.build
        key = build.key if build is not None else news.uuid
        self.in_flight.discard(key)
        self.spooled.pop(key, None)
        if news.error:
            self.state.set_build(key, "failed", error=news.error)
            return key
        self.state.set_build(key, "indexed", uuid=news.uuid)
        log.info("build %s indexed: %s", news.uuid, ", ".join(m.bug for m in news.matches) or "no known bug")
        return key

    # -- the worker threads -----------------------------------------------------

    def _fetch_done(self, build: Build, destination: Path, outcome: Outcome) -> None:
        """The pool's callback, in a worker thread: news for the loop."""
        if isinstance(outcome, IngestError):
            self.news.put(Fetched(build.key, build, None, [str(outcome)], retry=worth_retrying(outcome)))
            return
        if not build.log_url:  # found through Zuul's API by the fetch
            build = build.with_log_url(outcome.log_url)
        # Straight to the writer's queue (it is thread-safe): through the loop, a
        # fetched build waited for the loop's next turn, and the writer with it.
        self.news.put(Spooled(build.key, outcome.bytes))  # before the writer can tell of it: no slot counted twice
        self._fetched(Fetched(build.key, build, destination, [str(e) for e in outcome.errors],
                              failed_tests=failed_tests_in(destination)))

    def writer_done(self, item: Indexed) -> None:
        """The pipeline's ``done`` callback (the writer thread)."""
        self.news.put(item)

    def close(self) -> None:
        """Stop fetching now; builds cut off are fetched again at the next start."""
        self.pool.close()


def worth_retrying(error: IngestError) -> bool:
    """A busy or unreachable server may answer later, and Zuul's API may not
    have a reported build's result yet; a 404 from Zuul's API,
    a host not in ``ingest.log_hosts`` or a build without a log URL will not."""
    from .build_sources.zuul_api import NotFinished

    if isinstance(error, HttpError):
        return error.status in HTTP_RETRY_STATUSES
    return isinstance(error, (Unreachable, FetchStopped, NotFinished, TimedOut))


def fetch_with_zuul(settings: Settings) -> FetchOne:
    """Fetching as the daemon does it: a Zuul v3 report links a build's page,
    not its logs, so the build's log URL is asked of Zuul's API first
    (``zuul.api``, or the API beside the build page, whose host must then be
    one of ``ingest.log_hosts``: a report must not send the daemon anywhere)."""
    from .build_sources.zuul_api import resolve_report_build
    from .ingest.fetch import HttpRetry, LogHosts

    def fetch_one(build: Build, destination: Path, ingest: IngestSettings, connections: Any) -> Any:
        if not build.log_url and build.build_url:
            # The API a report's build page implies is asked through the log
            # hosts' connections: its host, and every redirect it answers, checked.
            derived = not settings.zuul.api
            if derived:
                LogHosts(ingest.log_hosts).check(build.build_url, build.build_url)
            build = resolve_report_build(build, settings.zuul.api, HttpRetry(), ingest,
                                         connections if derived else None)
        return fetch_build(build, destination, ingest, connections)

    return fetch_one


__all__ = ["BuildQueue", "Fetched", "fetch_with_zuul", "spool_name"]
