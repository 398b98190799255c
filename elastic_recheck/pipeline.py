"""The one index writer: builds whose logs are on local disk go in whole,
classified in the same pass, their results stored.

Many producers (the daemon's fetch workers, an operator's ``ingest`` handed
to the daemon) and one writer: tantivy allows one writer per index, and a
build queued behind another waits its turn instead of being refused.
Builds that arrive together are committed together (up to
``BATCH_LINES`` lines or ``BATCH_SECONDS`` of work), since a commit per
build has tantivy merge small segments over and over; each build still
becomes visible whole, in one commit.

As each line is indexed, the percolator (when the backend is the embedded
index) tells which fingerprints match it, so a build's classification is
known when its commit lands, without asking the index a question per
fingerprint. A fingerprint the percolator cannot evaluate exactly, and every
fingerprint on a cluster backend, is asked of the index after the commit,
for that build only.
"""

from __future__ import annotations

import collections
import itertools
import logging
import queue
import shutil
import threading
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Iterable, Sequence

from . import lucene
from .analysis import index_text, index_texts
from .builds import Build
from .classify import MAX_FAILED_LINE_CHARS, MAX_FAILED_TESTS, index_match, match_fingerprints, test_ids_in
from .config import IngestSettings
from .errors import BackendError, IngestError, RecheckError
from .fingerprints import Fingerprint
from .ingest import CONSOLE_LOGS, IngestReport, write_build
from .ingest.sources import BuildMetadata, open_logs
from .ingest.spool import spool_logs
from .results import Match, ResultStore, query_hash
from .retention import PruneSchedule, prune_scheduled
from .sanitize import exception_line
from .search import SearchBackend, TimeWindow
from .search.schema import facet_value
from .templates import TEMPLATE_VERSION, WrittenTemplates

log = logging.getLogger(__name__)

BATCH_LINES = 200_000  # log events per commit when builds queue up
# Of writing before a commit while builds queue up (100 builds x 50k lines, under
# load: 109-112 s with 2 s, 76-92 s with 5: fewer commits the merges wait on).
BATCH_SECONDS = 5.0
# The writer keeps the index between batches while builds keep coming (unless
# another process waits for it) and, with nothing queued, this long for the next
# build: letting go waits for the last commit's merges (~0.1 s a build, and
# seconds in a backlog, with one core left idle), which the next build waited on.
IDLE_HOLD_SECONDS = 2.0
GIVE_WAY_SECONDS = 10.0  # at most this long for another process to take the index once let go for it
IDLE_SYNC_SECONDS = 1.0  # an idle writer looks this often for a changed fingerprint set
SYNC_RETRY_SECONDS = 60.0  # and this long after a fingerprint could not be run (not hammering a failing backend)
PERCOLATE_LINES = 1000  # lines of one context handed to the percolator at once


@dataclass
class LogsReady:
    """A build whose logs are at ``location``; ``spooled``: a copy the
    daemon fetched, removed once indexed."""

    metadata: BuildMetadata
    location: str  # a local directory (a spool copy, an operator's) or a log server URL (``ingest --logs``)
    build: Build | None = None
    spooled: bool = False
    failed_tests: Collection[str] | None = None  # from the build's test result file, when it had one
    fetch_errors: list[str] = field(default_factory=list)


@dataclass
class Indexed:
    """What the writer tells its producers about a build it finished."""

    item: LogsReady
    report: IngestReport | None
    matches: list[Match]
    error: str | None = None  # the build could not be indexed (its logs, not the backend)

    @property
    def uuid(self) -> str:
        return self.item.metadata.build_uuid


class _BuildFailed(Exception):
    def __init__(self, item: LogsReady, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.item = item
        self.cause = cause


class BuildClassifier:
    """Every active fingerprint over one build as its lines are written.

    Wraps the batch's writer for one build: each line goes to the index
    and to the percolator, analysed once; console lines reporting failed
    tests are read on the way (for fingerprints with ``test_ids``), and
    every line's template is kept (``templates``) for explain."""

    def __init__(self, writer: Any, percolation: Any | None, keying: Executor | None = None) -> None:
        """``keying``: the thread the lines' template keys are made in."""
        self.writer = writer
        self.percolation = percolation
        self.lines = 0
        self.newest: int | None = None
        self._handles: dict[Any, tuple[Any, bool, str]] = {}  # handle -> (percolator's context, console, file)
        self.failed_tests: set[str] = set()
        self.templates = WrittenTemplates(keying)
        self._analysed = hasattr(writer, "add_analysed_line")
        self._batched = hasattr(writer, "add_analysed_lines")
        # Lines wait here, per run of one context, for the percolator's bulk
        # call: one C call per line costs more than matching the line.
        self._pending: Any = None
        self._micros: list[int] = []
        self._messages: list[str] = []
        self._tokens: list[str] = []

    def replace_build(self, build_uuid: str) -> None:
        self.writer.replace_build(build_uuid)

    def context(self, fields: dict[str, Any]) -> Any:
        handle = self.writer.context(fields)
        tags = fields.get("tags") or ()
        console = "console" in tags or any(tag in CONSOLE_LOGS for tag in tags)
        mine = self.percolation.context(fields) if self.percolation is not None else None
        self._handles[handle] = (mine, console, facet_value(fields.get("filename") or ""))
        return handle

    def add_line(self, handle: Any, micros: int, message: str) -> None:
        mine, console, filename = self._handles[handle]
        self.templates.count(filename, 1)
        if self.percolation is not None:
            tokens = index_text(message)
            self.templates.add([message], [tokens])
            if self._analysed:
                self.writer.add_analysed_line(handle, micros, message, tokens)
            else:
                self.writer.add_line(handle, micros, message)
            if mine != self._pending or len(self._micros) >= PERCOLATE_LINES:
                self._percolate_pending()
                self._pending = mine
            self._micros.append(micros)
            self._messages.append(message)
            self._tokens.append(tokens)
        else:
            self.templates.add([message])
            self.writer.add_line(handle, micros, message)
        self.lines += 1
        if self.newest is None or micros > self.newest:
            self.newest = micros
        if console and "FAIL" in message and len(self.failed_tests) < MAX_FAILED_TESTS:
            found = test_ids_in(message[:MAX_FAILED_LINE_CHARS])
            self.failed_tests.update(found[: MAX_FAILED_TESTS - len(self.failed_tests)])

    def add_lines(self, handles: list[Any], micros: list[int], messages: list[str]) -> None:
        """:meth:`add_line` for many lines in order (one file's batch of
        events): analysed, written and percolated a run of one context at a
        time, with no Python call per line."""
        if not micros:
            return
        if not self._batched:
            for handle, when, message in zip(handles, micros, messages):
                self.add_line(handle, when, message)
            return
        if self.percolation is not None:
            self._percolate_pending()  # lines given one by one before these go first
        tokens = index_texts(messages)
        self.templates.add(messages, tokens)  # keyed in its thread while these are indexed
        self.writer.add_analysed_lines(handles, micros, messages, tokens)
        start = percolated = 0
        pending = None  # the percolation handle of lines[percolated:start]
        for handle, run in itertools.groupby(handles):
            end = start + sum(1 for _ in run)
            mine, console, filename = self._handles[handle]
            self.templates.count(filename, end - start)
            if self.percolation is not None and mine != pending:
                # contexts the percolator cannot tell apart (a file's levels, when no
                # fingerprint asks for one) share a handle: one call for their lines
                self._percolate_run(pending, micros, messages, tokens, percolated, start)
                pending, percolated = mine, start
            if console and len(self.failed_tests) < MAX_FAILED_TESTS:
                for message in [message for message in messages[start:end] if "FAIL" in message]:
                    found = test_ids_in(message[:MAX_FAILED_LINE_CHARS])
                    self.failed_tests.update(found[: MAX_FAILED_TESTS - len(self.failed_tests)])
                    if len(self.failed_tests) >= MAX_FAILED_TESTS:
                        break
            start = end
        if self.percolation is not None:
            self._percolate_run(pending, micros, messages, tokens, percolated, start)
        self.lines += len(micros)
        newest = max(micros)
        if self.newest is None or newest > self.newest:
            self.newest = newest

    def _percolate_run(self, mine: Any, micros: list[int], messages: list[str], tokens: list[str],
                       start: int, end: int) -> None:
        if end > start:
            self.percolation.lines(mine, micros[start:end], messages[start:end], tokens[start:end])

    def _percolate_pending(self) -> None:
        if self._micros:
            self.percolation.lines(self._pending, self._micros, self._messages, self._tokens)
            self._micros, self._messages, self._tokens = [], [], []

    def percolation_results(self) -> dict[str, Any]:
        """What the percolator found in every line written so far."""
        self._percolate_pending()
        return self.percolation.results()

    def add(self, doc: dict[str, Any], timestamp: Any) -> None:  # pragma: no cover - builds come as lines
        raise RecheckError("a build's logs are written line by line")

    def commit(self) -> None:  # the pipeline commits the batch, not one build
        pass


class Percolators:
    """The percolator for the fingerprints in use, compiled again only when they change."""

    def __init__(self, backend: SearchBackend, enabled: bool = True) -> None:
        self.enabled = enabled and getattr(backend, "name", "") == "embedded"
        self.backend = backend
        self._key: tuple[tuple[str, str], ...] | None = None
        self._percolator: Any = None

    def current(self, fingerprints: Sequence[Fingerprint]) -> Any:
        if not self.enabled:
            return None
        key = tuple((fp.bug, fp.voting_query) for fp in fingerprints)
        if key != self._key:
            from .percolate import Percolator

            self._percolator = Percolator(dict(key), parse=getattr(self.backend, "lucene_node", lucene.parse))
            self._key = key
            for bug, why in sorted(self._percolator.fallback.items()):
                log.info("fingerprint %s is run as an index query after each build (%s)", bug, why)
        return self._percolator


class IndexPipeline:
    """The writer thread. ``submit`` never blocks for long and never refuses:
    the queue holds paths, not logs."""

    def __init__(self, backend: SearchBackend, results_path: Path, fingerprints: Callable[[], Sequence[Fingerprint]],
                 limits: IngestSettings = IngestSettings(), done: Callable[[Indexed], None] = lambda item: None,
                 batch_lines: int = BATCH_LINES, batch_seconds: float = BATCH_SECONDS,
                 keep_debug: bool = False, percolate: bool = True, window_days: float = 10.0,
                 progress: Callable[[int], None] | None = None, retention_days: float = 0.0) -> None:
        """``percolate=False``: every fingerprint asked of the index after each
        commit, as on a cluster (the reference the percolator is held to).
        ``window_days``: how far back a fingerprint added or changed is run
        again over what is indexed (the dashboard's window).
        ``retention_days``: builds older go from the index and the stored
        results, at the writer's first idle moment and hourly (0: never)."""
        self.backend = backend
        self.results_path = results_path
        self.fingerprints = fingerprints
        self.limits = limits
        self.done = done
        self.batch_lines = batch_lines
        self.batch_seconds = batch_seconds
        self.keep_debug = keep_debug
        self.queue: "queue.Queue[LogsReady]" = queue.Queue()
        self._pending: collections.deque[LogsReady] = collections.deque()
        self.stopping = threading.Event()
        self.percolators = Percolators(backend, percolate)
        self.window_days = window_days
        self.progress = progress
        self._synced: tuple[tuple[str, str], ...] | None = None
        self._hashed: tuple[tuple[str, str], ...] | None = None
        self._classified_with: dict[str, str] = {}  # bug -> query_hash of the query the batch runs
        self._thread: threading.Thread | None = None
        # Beside the writer: template keys are made (in C, without the GIL, while
        # it indexes: ~7 s of its time for 100 builds x 50k lines) and fetched
        # copies removed once indexed (~1 s).
        self._beside = ThreadPoolExecutor(1, thread_name_prefix="writer-helper")
        self._warm = threading.Event()
        self.backend_failures = 0
        self.pruning = PruneSchedule(retention_days)

    def submit(self, item: LogsReady) -> None:
        self.queue.put(item)

    def pending(self) -> int:
        return self.queue.qsize() + len(self._pending)

    def _take(self, timeout: float | None) -> LogsReady | None:
        """The next build: one put back by a failed batch first, then the
        queue's; None when there is none (within ``timeout`` seconds)."""
        if self._pending:
            return self._pending.popleft()
        try:
            return self.queue.get(timeout=timeout) if timeout else self.queue.get_nowait()
        except queue.Empty:
            return None

    def start(self, warm_up_wait: float = 60.0) -> "IndexPipeline":
        """The writer thread, once it has compiled and synced the fingerprints
        (or ``warm_up_wait`` seconds have passed): a build reported right
        after the daemon starts does not wait on that (~1 s for 1,000)."""
        self._thread = threading.Thread(target=self._run, name="index-writer", daemon=True)
        self._thread.start()
        self._warm.wait(warm_up_wait)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._beside.shutdown(wait=True)  # spooled copies still being removed

    def _run(self) -> None:
        try:
            store = ResultStore(self.results_path)
        except BaseException:
            self._warm.set()  # start() does not wait it out
            raise
        try:
            # first thing: the fingerprints compiled and synced before the first
            # build is waiting on them (its comment would wait ~1 s longer)
            look = time.monotonic() + self._sync_idle(store)
            self._warm.set()
            while not self.stopping.is_set():
                first = self._take(0.2)
                if first is None:
                    if time.monotonic() >= look:
                        look = time.monotonic() + self._sync_idle(store)
                    self._prune_if_due(store)
                    continue
                try:
                    self._run_held(store, first)
                except Exception as exc:  # noqa: BLE001 - the writer outlives any batch (a results store that failed)
                    log.error("a batch of builds failed after indexing: %s", exception_line(exc, 500))
                    self.stopping.wait(1.0)
        finally:
            store.close()

    def _run_held(self, store: ResultStore, first: LogsReady) -> None:
        """``first`` and the builds queued behind it, batch after batch, the
        index's writers kept open between batches: closing them waits for the
        merges of every commit, which held the next batch back. They are let
        go when nothing is queued, after a batch the backend refused, and
        after the batch under way when another process waits for them (an
        operator's ``ingest`` waits its turn), so the daemon's writer is not
        held for its life."""
        wanted = False
        # stopping, the daemon exits without waiting for merges (seconds, at the end of a backlog)
        with self.backend.ingest_session(finish_merges=lambda: not self.stopping.is_set()):
            item: LogsReady | None = first
            while item is not None:
                self.run_batch(store, item)
                self._prune_if_due(store)  # a writer never idle for long still prunes
                item = None
                wanted = self.backend.writer_wanted()
                if wanted:
                    break
                idle_until = time.monotonic() + IDLE_HOLD_SECONDS
                while item is None and not self.backend_failures and not self.stopping.is_set():
                    left = idle_until - time.monotonic()
                    if left <= 0:
                        break
                    item = self._take(min(left, 0.2))
        if wanted:  # the waiter looks every second at most: it gets its turn before this writer asks again
            give_up = time.monotonic() + GIVE_WAY_SECONDS
            while self.backend.writer_wanted() and time.monotonic() < give_up and not self.stopping.is_set():
                self.stopping.wait(0.1)

    def _sync_idle(self, store: ResultStore) -> float:
        """With no build to index, a changed fingerprint set is synced now: a
        comment is made from rows stored earlier (a build Zuul's API brought
        in before its report). Seconds until the next look."""
        try:
            fingerprints = list(self.fingerprints())
            self._sync(store, fingerprints)
            # compiled now, not when the next build waits on it (~1 s for 1,000)
            self.percolators.current(fingerprints)
        except Exception as exc:  # noqa: BLE001 - the writer outlives it; the next batch syncs too
            log.warning("could not bring the stored results in line with the fingerprints: %s",
                        exception_line(exc, 300))
            return SYNC_RETRY_SECONDS
        return IDLE_SYNC_SECONDS if self._synced is not None else SYNC_RETRY_SECONDS

    def _prune_if_due(self, store: ResultStore) -> None:
        before = self.pruning.due()
        if before is not None:
            prune_scheduled(self.backend, store, before, self.pruning)

    def drain(self, store: ResultStore, raise_backend_errors: bool = False) -> None:
        """Index everything queued, in this thread (``ingest`` by hand, tests).
        ``raise_backend_errors``: a batch the backend refuses ends the drain
        (an operator is told) instead of being tried again."""
        with self.backend.ingest_session():
            while True:
                first = self._take(None)
                if first is None:
                    return
                self.run_batch(store, first, raise_backend_errors)

    def run_batch(self, store: ResultStore, first: LogsReady, raise_backend_errors: bool = False) -> list[Indexed]:
        """``first`` and whatever else is queued, up to the batch limits, in one commit."""
        try:
            fingerprints = list(self.fingerprints())
            self._sync(store, fingerprints)
            percolator = self.percolators.current(fingerprints)
        except BaseException:
            self._pending.appendleft(first)  # nothing of it written yet: it waits for the next try
            raise
        batch: list[tuple[LogsReady, BuildClassifier | None, IngestReport | None, str | None]] = []
        writer: Any = None
        try:
            try:
                writer = self.backend.writer()
                try:
                    self._write(writer, first, percolator, batch)
                except BaseException:
                    writer.rollback()
                    raise
                writer.commit()
            except BaseException:
                if writer is not None:
                    writer.close()
                raise
        except _BuildFailed as failed:
            # Part of that build may be in the batch: none of it is committed. It is
            # recorded as an error; the builds before it in the batch go first again.
            log.error("build %s could not be indexed: %s", failed.item.metadata.build_uuid,
                      exception_line(failed.cause, 500))
            self._pending.extendleft(reversed([entry[0] for entry in batch]))
            return [self._finish(store, fingerprints, percolator, failed.item, None, None,
                                 f"indexing failed: {exception_line(failed.cause, 300)}")]
        except RecheckError as exc:
            # The backend refused the batch: nothing of it is visible. Its builds
            # go back in the queue, after a pause, in order.
            if raise_backend_errors:
                done = [entry[0].location for entry in batch]
                raise BackendError(f"{done[0] if done else first.location}: {exc} (the builds of this batch are not "
                                   "indexed; those before it are)") from exc
            self.backend_failures += 1
            log.error("could not index %d builds (%s); trying again", len(batch) or 1, exception_line(exc, 300))
            self._pending.extendleft(reversed([entry[0] for entry in batch] or [first]))
            self.stopping.wait(min(0.5 * 2 ** min(self.backend_failures, 6), 30.0))
            return []
        self.backend_failures = 0
        try:
            return [self._finish(store, fingerprints, percolator, item, recorder, report, error)
                    for item, recorder, report, error in batch]
        finally:
            # Closing waits for the merges the commit started (when the writers are
            # not held across batches): the builds' results and comments do not.
            writer.close()

    def _write(self, writer: Any, first: LogsReady, percolator: Any,
               batch: list[tuple[LogsReady, BuildClassifier | None, IngestReport | None, str | None]]) -> None:
        """``first`` and the builds queued behind it into ``writer``, up to the
        batch limits; each build's outcome onto ``batch``."""
        started = time.monotonic()
        item: LogsReady | None = first
        lines = 0
        while item is not None:
            recorder = BuildClassifier(writer, percolator.start() if percolator is not None else None, self._beside)
            try:
                logs = (spool_logs(Path(item.location), self.limits) if item.spooled
                        else open_logs(item.location, limits=self.limits))
                report = write_build(recorder, logs, item.metadata, keep_debug=self.keep_debug,
                                     progress=self.progress)
                batch.append((item, recorder, report, None))
                lines += recorder.lines
            except IngestError as exc:  # nothing of it to index (no log files): its own outcome
                batch.append((item, None, None, str(exc)))
            except RecheckError:
                raise
            except Exception as exc:  # noqa: BLE001 - a bug met by one build: the batch is rolled back
                raise _BuildFailed(item, exc) from exc
            if lines >= self.batch_lines or time.monotonic() - started >= self.batch_seconds:
                break
            item = self._take(None)

    def _sync(self, store: ResultStore, fingerprints: Sequence[Fingerprint]) -> None:
        """Before builds are classified with a new set of fingerprints, those
        added or changed are run over what is already indexed (and removed
        ones dropped), so every stored row is of the fingerprints in use."""
        key = tuple((fp.bug, fp.voting_query) for fp in fingerprints)
        if key != self._hashed:
            self._classified_with = {bug: query_hash(query) for bug, query in key}
            self._hashed = key
        if key == self._synced:
            return
        window = TimeWindow.last_days(self.window_days)
        failures = store.sync_fingerprints(dict(key), lambda bug, query: self.backend.builds(query, window),
                                           window.start)
        self._synced = key if not failures else None  # the failed ones are tried again with the next batch

    def _finish(self, store: ResultStore, fingerprints: Sequence[Fingerprint], percolator: Any, item: LogsReady,
                recorder: BuildClassifier | None, report: IngestReport | None, error: str | None) -> Indexed:
        uuid = item.metadata.build_uuid
        matches: list[Match] = []
        if recorder is not None:
            try:
                matches = self._matches(fingerprints, percolator, recorder, uuid)
            except Exception as exc:  # noqa: BLE001 - the index refusing, or a bug: this build's outcome, told
                error = f"classified in part: the index could not be asked ({exception_line(exc, 300)})"
                log.error("build %s: %s", uuid, error)
            tests = item.failed_tests
            if tests is None and recorder.failed_tests:
                tests = recorder.failed_tests
            try:
                stale = store.store_build(item.metadata.fields(), matches, newest=recorder.newest,
                                          lines=recorder.lines, failed_tests=None if tests is None else sorted(tests),
                                          classified_with=self._classified_with)
                written = recorder.templates
                packed = written.packed()
                if written.complete:
                    store.store_written_templates(uuid, TEMPLATE_VERSION, written.largest_file, packed)
                if stale:  # re-run meanwhile by another process with another query: synced again next batch
                    self._synced = None
            except Exception as exc:  # noqa: BLE001 - a full disk, a locked file: this build's outcome, told
                error = f"indexed, but its result could not be stored: {exception_line(exc, 300)}"
                log.error("build %s: %s", uuid, error)
            for problem in (report.errors if report else ()):
                log.warning("build %s: %s", uuid, problem)
        if item.spooled:  # a copy a crash leaves behind is removed at the next start
            self._beside.submit(shutil.rmtree, item.location, ignore_errors=True)
        result = Indexed(item, report, matches, error)
        try:
            self.done(result)
        except Exception as exc:  # noqa: BLE001 - the producer's trouble must not stop the writer
            log.error("build %s indexed, but its producer failed on the news: %s", uuid, exception_line(exc, 300))
        return result

    def _matches(self, fingerprints: Sequence[Fingerprint], percolator: Any, recorder: BuildClassifier,
                 uuid: str) -> list[Match]:
        matches: list[Match] = []
        pending = list(fingerprints)
        if percolator is not None and recorder.percolation is not None:
            found = recorder.percolation_results()
            pending = [fp for fp in fingerprints if fp.bug in percolator.fallback]
            for fp in fingerprints:
                hit = found.get(fp.bug)
                if hit is not None and fp.bug not in percolator.fallback:
                    matches.append(Match(fp.bug, hit.hits, hit.newest_micros, hit.newest_message))
        if pending:
            matched = match_fingerprints(self.backend, uuid, pending, {})
            matches.extend(index_match(self.backend, fp, uuid) for fp, hit in zip(pending, matched) if hit)
        return matches


def index_builds(backend: SearchBackend, results_path: Path, fingerprints: Sequence[Fingerprint],
                 items: Iterable[LogsReady], limits: IngestSettings = IngestSettings(), *, keep_debug: bool = False,
                 window_days: float = 10.0, progress: Callable[[int], None] | None = None,
                 batch_lines: int = BATCH_LINES) -> IngestReport:
    """``ingest`` by hand: these builds through the same writer path as the
    daemon's (classified as they are indexed, results stored), now, in this
    process. Builds are committed together, a batch at a time."""
    total = IngestReport()

    def finished(item: Indexed) -> None:
        if item.error:
            total.errors.append(IngestError(item.item.location, item.error.split(": ", 1)[-1]))
            return
        assert item.report is not None
        total.add_build(item.report)

    pipeline = IndexPipeline(backend, results_path, lambda: fingerprints, limits, finished, batch_lines=batch_lines,
                             batch_seconds=float("inf"), keep_debug=keep_debug, window_days=window_days,
                             progress=progress)
    for item in items:
        pipeline.submit(item)
    store = ResultStore(results_path)
    try:
        pipeline.drain(store, raise_backend_errors=True)
    finally:
        store.close()
    return total


__all__ = ["BATCH_LINES", "BATCH_SECONDS", "BuildClassifier", "IndexPipeline", "Indexed", "LogsReady",
           "index_builds"]
