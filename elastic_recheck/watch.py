"""The stream listener: Gerrit failure reports → known bugs → review comments.

Single-threaded on purpose: event sources run in threads and only fill a
queue; this loop persists each accepted event before working on it, then
works through whatever is due, so a build waiting for its logs never blocks
the others and a restart picks up exactly where the state database says.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import math
import os
import queue
import re
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

from .build_queue import BuildQueue
from .build_sources.gerrit import parse_report
from .build_sources.polling import BuildBatch
from .classify import Classifier, failed_tests, tests_allow
from .config import FingerprintSettings, Settings
from .errors import BackendError, EventError, RecheckError, ReportError
from .fingerprints import FINGERPRINT_SUFFIXES, Fingerprint, QueryCheck, load_fingerprints
from .gerrit_events import (
    MAX_EVENT_BYTES, EventFilter, FailedJob, FailureReport, decode_event, describe, parse_failure,
)
from .ingest import CONSOLE_LOGS
from .irc_messages import ChannelRule, announcements, route
from .irc_outbox import Outbox
from .json_items import item_spans, numbered
from .lucene import quote
from .metrics import Metrics
from .reporting import JobResult, Review, Reviewer, render_review
from .results import ResultStore
from .retention import PruneSchedule, Pruning, prune_scheduled
from .sanitize import exception_line
from .search import SearchBackend
from .state import BUILD_STATUSES, StateDB, StoredEvent

log = logging.getLogger(__name__)
UTC = dt.timezone.utc
END = object()  # a replay source is exhausted
# A replay file in the JSON list form is parsed whole; JSON lines have no such limit.
MAX_REPLAY_BYTES = 256 << 20
# Backend failures in a row on one event, while the backend says it is healthy,
# before that event is parked: a few minutes at the default retry backoff.
HEALTHY_BACKEND_STRIKES = 8
# Reviews Gerrit answers with a refusal, in a row, before a comment is given up
# (about 13 minutes at the default backoff): one it will never take (too long,
# no permission) must not be retried for the daemon's whole life. Gerrit being
# unreachable is not a refusal: that is waited out however long it takes.
COMMENT_REFUSALS = 20
WAITING_KEYS_MAX = 100_000  # builds events are known to wait on; past it, their recheck alone wakes them
WAITING_RECHECK_SECONDS = 30.0  # an event waiting on a build the daemon fetches is looked at again after this


def read_event_file(path: str, handle: Any) -> Iterator[Any]:
    """Events from a JSON list, ``{"events": [...]}`` or JSON lines, from a
    binary (or text) handle; a bad one is yielded as an EventError naming the
    file and line, and the others are replayed. JSON lines are read one at a
    time, so a live pipe (``--events -``) is worked on as it comes and a line
    over the event limit is skipped without being held; a list is read whole,
    up to MAX_REPLAY_BYTES."""
    if hasattr(handle, "buffer"):
        reader = handle.buffer
    elif isinstance(handle, io.TextIOBase):  # text already in memory (tests, callers with a string)
        reader = io.BytesIO(handle.read().encode("utf-8", "surrogatepass"))
    else:
        reader = handle
    number = 0
    while True:
        line = reader.readline(MAX_EVENT_BYTES + 1)
        number += 1
        if not line:
            return
        if line.strip():
            break
    head = line.lstrip()
    if head.startswith(b"[") or (head.startswith(b"{") and _not_one_line(line)):
        yield from _whole_file(path, line + reader.read(MAX_REPLAY_BYTES), reader, number)
        return
    while line:
        if len(line) > MAX_EVENT_BYTES:
            while line and not line.endswith(b"\n"):  # the rest of the long line, dropped as it comes
                line = reader.readline(MAX_EVENT_BYTES)
            yield EventError(f"{path}:{number}: an event of more than {MAX_EVENT_BYTES} bytes skipped")
        elif line.strip():
            item = decode_event(line, f"{path}:{number}")
            if isinstance(item, dict) and "type" not in item and isinstance(item.get("events"), list):
                yield from item["events"]  # {"events": [...]} written on one line
            else:
                yield item
        line = reader.readline(MAX_EVENT_BYTES + 1)
        number += 1


def _not_one_line(line: bytes) -> bool:
    """A first line that is not a JSON object by itself: a pretty-printed document."""
    try:
        return not isinstance(json.loads(line), dict)
    except (ValueError, RecursionError):
        return True


def _whole_file(path: str, raw: bytes, reader: Any, first_line: int) -> Iterator[Any]:
    """A JSON list (or ``{"events": [...]}``): parsed whole, or item by item
    when one item is beyond the parser, so that one costs only itself."""
    if len(raw) > MAX_REPLAY_BYTES or reader.read(1):
        yield EventError(f"{path}: a JSON list of more than {MAX_REPLAY_BYTES} bytes; write it as JSON lines")
        return
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:  # one bad byte need not cost the whole file
        line = first_line + raw.count(b"\n", 0, exc.start)
        yield EventError(f"{path}:{line}: not UTF-8 (replaced with U+FFFD)")
        text = raw.decode("utf-8", "replace")
    try:
        whole = json.loads(text)
    except (ValueError, RecursionError) as exc:
        whole = exc
    if isinstance(whole, list):
        yield from whole
        return
    if isinstance(whole, dict) and isinstance(whole.get("events"), list):
        yield from whole["events"]
        return
    spans = item_spans(text, (), ("events",))
    if spans is None:
        shape = 'not a JSON list of events, nor {"events": [...]}'
        reason = f"not JSON: {' '.join(str(whole).split())[:200]}" if isinstance(whole, Exception) else shape
        yield EventError(f"{path}: {reason}")
        return
    for line, item in numbered(text, spans):
        yield decode_event(item.encode("utf-8"), f"{path}:{first_line - 1 + line}")


def replay(path: str, events: "queue.Queue[Any]") -> threading.Thread:
    """Feed a replay file (``-`` for stdin) into the queue, then END."""
    import sys

    def run() -> None:
        try:
            if path == "-":
                for item in read_event_file("<stdin>", sys.stdin.buffer):
                    events.put(item)
            else:
                with open(path, "rb") as handle:
                    for item in read_event_file(path, handle):
                        events.put(item)
        except Exception as exc:  # noqa: BLE001 - a file that cannot be read ends the replay, never hangs it
            events.put(EventError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}"))
        finally:
            events.put(END)

    thread = threading.Thread(target=run, name="replay", daemon=True)
    thread.start()
    return thread


class Notifier(Protocol):
    def send(self, channel: str, text: str) -> None: ...


class FingerprintSet:
    """The fingerprints in a directory, reloaded when its files change.

    ``check`` (the backend's ``check_query``) drops, at load, a fingerprint
    the search engine would refuse, with one log line naming it; the others
    load. If the directory cannot be read on a reload, the fingerprints already
    loaded stay in use (said once); only the first load fails."""

    def __init__(self, directory: str | Path, check: QueryCheck | None = None,
                 limits: FingerprintSettings = FingerprintSettings(), recheck_every: float = 0.0) -> None:
        """``recheck_every``: seconds between looks at the directory. Every
        event and every batch asks for the set, and a look at a thousand
        files costs ~7 ms: with a backlog, that was CPU the writer needed."""
        self.directory = Path(directory)
        self.recheck_every = recheck_every
        self._looked = -math.inf
        self.check = check
        self.limits = limits
        self._stamp: tuple[Any, ...] | None = None
        self._reload_error: str | None = None
        self.fingerprints: list[Fingerprint] = []
        self._lock = threading.Lock()  # asked by the daemon's loop and by the index writer thread

    def current(self) -> list[Fingerprint]:
        with self._lock:
            return self._current()

    def _current(self) -> list[Fingerprint]:
        now = time.monotonic()
        if self._stamp is not None and now - self._looked < self.recheck_every:
            return self.fingerprints
        self._looked = now
        try:
            self._reload()
        except (OSError, RecheckError) as exc:
            if isinstance(exc, BackendError):
                raise  # checking needs the backend: retried like any other backend outage
            message = str(exc) if isinstance(exc, RecheckError) else f"{self.directory}: {exc}"
            if self._stamp is None:
                raise RecheckError(f"cannot read the fingerprints: {message}") from None
            if message != self._reload_error:
                log.error("cannot reload the fingerprints; the %d loaded stay in use: %s", len(self.fingerprints),
                          message)
            self._reload_error = message
        return self.fingerprints

    def _reload(self) -> None:
        stamp = _directory_stamp(self.directory)
        if stamp == self._stamp:
            return
        good, bad = load_fingerprints(self.directory, self.check, self.limits)
        for error in bad:
            log.error("fingerprint skipped: %s", error)
        self.fingerprints = good
        self._stamp = stamp
        self._reload_error = None
        log.info("loaded %d fingerprints from %s", len(good), self.directory)


def _directory_stamp(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """Name, mtime and size of each fingerprint file: what says the set changed.
    Asked before every event, so one directory scan and one stat per file."""
    with os.scandir(directory) as entries:
        return tuple(sorted((entry.name, stat.st_mtime_ns, stat.st_size) for entry in entries
                            if os.path.splitext(entry.name)[1] in FINGERPRINT_SUFFIXES and entry.is_file()
                            for stat in (entry.stat(),)))


class Daemon:
    def __init__(
        self,
        settings: Settings,
        backend: SearchBackend,
        state: StateDB,
        reviewer: Reviewer,
        fingerprints: FingerprintSet,
        clock: Callable[[], float] = time.time,
        notifier: Notifier | None = None,
        channels: Sequence[ChannelRule] = (),
        builds: BuildQueue | None = None,
        results: ResultStore | None = None,
    ) -> None:
        """``builds`` and ``results``: the daemon fetches and indexes each
        reported build itself and comments from its stored result; without
        them (``ingest.fetch: false``, an index fed by another pipeline) it
        waits for each build's logs to appear in the index and asks it."""
        self.settings = settings
        self.watch = settings.watch
        self.backend = backend
        self.state = state
        self.reviewer = reviewer
        self.fingerprints = fingerprints
        self.clock = clock
        self.notifier = notifier
        self.channels = list(channels)
        self.builds = builds
        self.results = results
        self.filters = EventFilter(
            ci_accounts=settings.gerrit.ci_accounts,
            include_projects=self.watch.include_projects or None,
            exclude_projects=self.watch.exclude_projects or None,
            include_jobs=self.watch.include_jobs or None,
            exclude_jobs=self.watch.exclude_jobs or None,
        )
        self.outbox = Outbox(settings.irc_outbox)  # what dashboard runs announce, sent here
        self.stopping = threading.Event()
        self.counters = Metrics()
        self._paused_until = 0.0  # no work before this while the search backend is down (intake goes on)
        self._notifier_errors = (0, 0)
        self._strikes: dict[int, int] = {}  # event id -> backend failures in a row while the backend was up
        self._not_ready: list[tuple[int, float]] | None = None  # (event id, delay) waiting on logs, in this pass
        self._by_bug: tuple[Sequence[Fingerprint] | None, dict[str, Fingerprint]] = (None, {})
        # build key -> the events found waiting on its logs: an indexed build wakes
        # those, not every pending event (44 of them re-read 100 times in a backlog
        # took a tenth of the CPU the writer needed)
        self._waiting_on: dict[str, set[int]] = {}
        self._refusals: dict[tuple[int, int], int] = {}  # change, patchset -> reviews Gerrit refused in a row
        self.pruning = PruneSchedule(settings.retention.days)
        self._pruner: threading.Thread | None = None

    # -- intake ---------------------------------------------------------------

    def accept(self, raw: Any) -> int | None:
        """Persist a failure report; everything else is logged and dropped.
        No event, however odd, gets past this as an exception."""
        self.counters.inc("events")
        try:
            return self._accept(raw)
        except Exception as exc:  # noqa: BLE001 - one bad event must not stop the daemon
            self.counters.inc("malformed")
            log.error("skipped an event that could not be accepted (%s): %s", describe(raw), exception_line(exc, 500))
            return None

    def _accept(self, raw: Any) -> int | None:
        if isinstance(raw, BuildBatch):  # from a build source (Zuul's builds API): logs to fetch, nobody to tell
            if self.builds is not None:
                for build in raw.builds:
                    self.builds.enqueue(build)
            raw.accepted.set()
            return None
        if isinstance(raw, EventError):
            self.counters.inc("malformed")
            log.warning("skipped a malformed event: %s", raw)
            return None
        if not isinstance(raw, dict):
            self.counters.inc("malformed")
            log.warning("skipped a malformed event: not a JSON object: %.200r", raw)
            return None
        try:
            if self.builds is not None:
                self._enqueue_report(raw)
            report = parse_failure(raw, self.filters)
        except EventError as exc:
            self.counters.inc("malformed")
            log.warning("skipped a malformed event (%s): %s", describe(raw), exc)
            return None
        if report is None:
            return None
        key = f"{report.key}:" + ",".join(sorted(job.key for job in report.jobs))
        # Never later than now: the log timeout counts from this, and a clock a
        # little ahead must not make a build wait for its logs longer than it should.
        created = min(report.created, dt.datetime.fromtimestamp(self.clock(), UTC))
        event_id = self.state.add_event(key, raw, created)
        if event_id is None:
            self.counters.inc("duplicates")
            log.info("event for %s seen before; ignored", report.key)
            return None
        self.counters.inc("accepted")
        log.info("failure on %s (%s): %s", report.key, report.project,
                 ", ".join(job.name for job in report.jobs))
        return event_id

    def _enqueue_report(self, raw: dict[str, Any]) -> None:
        """Every build a CI report lists, succeeded ones too: a fingerprint's
        precision is measured against the builds it should not match."""
        assert self.builds is not None
        report = parse_report(raw, self.filters)
        for build in report.builds if report is not None else ():
            self.builds.enqueue(build)

    # -- work -----------------------------------------------------------------

    def process_due(self, intake: Callable[[], None] | None = None) -> None:
        """Work on every event that is due. ``intake`` runs between events,
        so new reports are persisted however long the pass takes; a backend
        failure ends the pass, since every other event would meet it too."""
        # Events still waiting on logs are put off in one transaction at the end
        # of the pass: a disk sync each (~4 ms) for dozens of waiting events after
        # every indexed build kept the loop from handing fetched builds to the writer.
        self._not_ready = []
        try:
            for event in self.state.due_events(self.clock()):
                if self.stopping.is_set():
                    return
                if intake is not None:
                    intake()
                if not self.process(event):
                    return
        finally:
            waiting, self._not_ready = self._not_ready, None
            self.state.retry_many(waiting)

    def process(self, event: StoredEvent) -> bool:
        """False when the search backend failed (the event is retried later).

        Anything else that goes wrong with this one event parks it: recorded,
        counted and logged in one line, never retried in a loop, never in the
        way of the events behind it."""
        try:
            return self._process(event)
        except Exception as exc:  # noqa: BLE001 - the daemon outlives any one event
            self._park(event, exc)
            return True

    def _park(self, event: StoredEvent, exc: BaseException) -> None:
        why = exception_line(exc, 500)
        self._strikes.pop(event.id, None)
        self.counters.inc("errors")
        log.error("event %s parked (not retried): %s", event.key, why)
        try:
            report = parse_failure(event.raw, self.filters)
        except Exception:  # noqa: BLE001 - it is being parked for a reason
            report = None
        for job in report.jobs if report else ():
            self.state.record_outcome(event.id, report.change, report.patchset, report.project, report.pipeline,
                                      job.name, job.key, job.url, "error", (), replace=False)
        self.state.park(event.id, why)

    def _process(self, event: StoredEvent) -> bool:
        try:
            report = parse_failure(event.raw, self.filters)
        except EventError as exc:  # accepted under another config; nothing to do now
            log.warning("event %s no longer parses: %s", event.key, exc)
            report = None
        if report is None:
            self.state.finish(event.id)
            return True
        started = time.monotonic()
        try:
            review = self._classify(event, report)
        except BackendError as exc:
            self.counters.inc("backend_errors")
            delay = self._backoff(event.attempts, self.watch.retry_max)
            if self._backend_healthy():
                # The backend answers, but not for this event: not an outage, so the
                # others need not wait; and not for ever, or one event would be retried
                # for the daemon's whole life.
                strikes = self._strikes[event.id] = self._strikes.get(event.id, 0) + 1
                if strikes >= HEALTHY_BACKEND_STRIKES:
                    raise BackendError(f"the search backend is up but failed {strikes} times in a row on this "
                                       f"event: {exc}") from None
                log.warning("search backend failed on %s (%s) though it is up; retrying in %.0fs",
                            report.key, exc, delay)
                self.state.retry_later(event.id, delay)
                return True
            log.warning("search backend unavailable for %s (%s); retrying in %.0fs", report.key, exc, delay)
            self.state.retry_later(event.id, delay)
            self._paused_until = self.clock() + delay  # the others would fail too: probe again after the delay
            return False
        self._strikes.pop(event.id, None)
        if review is None:  # logs not ready yet
            # A build the daemon fetches wakes its events when it is done: their
            # poll is a safety net. Logs another pipeline indexes are polled for.
            delay = (min(WAITING_RECHECK_SECONDS, max(self._fetch_deadline(event) - self.clock(), 0.0) + 0.1)
                     if self.builds is not None else self._backoff(event.attempts))
            if self._not_ready is not None:
                self._not_ready.append((event.id, delay))
            else:
                self.state.retry_later(event.id, delay)
            return True
        self.counters.observe(time.monotonic() - started)
        for result in review.results:
            first = self.state.record_outcome(
                event.id, report.change, report.patchset, report.project, report.pipeline, result.job.name,
                result.build_uuid or result.job.key, result.job.url, result.kind, result.bugs + result.silent_bugs,
            )
            if first:  # an event worked on again (its comment retried) counts its builds once
                self.counters.inc(_COUNTER[result.kind])
        if review.worth_commenting(self.watch.comment_unrecognized):
            if not self._comment(report, review):
                self.state.retry_later(event.id, self._backoff(event.attempts, self.watch.retry_max))
                return True
        self._announce(report, review)
        self.state.finish(event.id)
        return True

    def _classify(self, event: StoredEvent, report: FailureReport) -> Review | None:
        fingerprints = self.fingerprints.current()
        if self.builds is not None:  # the daemon fetches the logs itself
            return self._classify_stored(event, report, fingerprints, self.clock() >= self._fetch_deadline(event))
        expired = self.clock() >= event.created.timestamp() + self.watch.log_timeout
        classifier = Classifier(self.backend, fingerprints)
        review = Review(report)
        for job in report.jobs:
            uuid, candidates = self._build_uuid(report, job)
            if len(candidates) > 1:
                log.warning("%s %s: short build id %s matches %d builds (%s); not classified",
                            report.key, job.name, job.short_uuid, len(candidates), ", ".join(candidates))
                review.results.append(JobResult(job, None, ambiguous=candidates))
                continue
            if uuid is None or not self._ready(uuid, job.name):
                if not expired:
                    log.info("logs of %s (%s) not indexed yet", job.name, job.key)
                    return None
                log.warning("logs of %s (%s) not indexed %.0fs after the event: timed out",
                            job.name, job.key, self.watch.log_timeout)
                review.results.append(JobResult(job, uuid, timed_out=True))
                continue
            tests = failed_tests(self.backend, uuid) if any(fp.test_ids for fp in fingerprints) else None
            matches = classifier.classify(uuid, tests)
            log.info("%s %s (%s): %s", report.key, job.name, uuid,
                     ", ".join(fp.bug for fp in matches) or "unrecognized")
            review.results.append(JobResult.from_matches(job, uuid, matches))
        return review

    def _fetch_deadline(self, event: StoredEvent) -> float:
        """When an event stops waiting for the builds the daemon fetches: from
        when it learnt of them, not from when they ended (a replay, a backlog
        after downtime); the fetch gives up on its own before."""
        return max(event.received, event.created.timestamp()) + self.watch.log_timeout

    def _classify_stored(self, event: StoredEvent, report: FailureReport, fingerprints: Sequence[Fingerprint],
                         expired: bool) -> Review | None:
        """Each job's result as the index pipeline stored it when the build's
        logs were indexed: no question to the index here. None while a build
        is not in yet: the event waits on it (woken when it is done, else
        after WAITING_RECHECK_SECONDS)."""
        assert self.builds is not None and self.results is not None
        if self._by_bug[0] is not fingerprints:  # made once per fingerprint set, not per event and pass
            self._by_bug = (fingerprints, {fp.bug: fp for fp in fingerprints})
        by_bug = self._by_bug[1]
        review = Review(report)
        for job in report.jobs:
            build = job.build(report)
            found = self.state.build_state(build.key)
            if found is None:  # accepted before fetching was on
                self.builds.enqueue(build)
                found = ("queued", None, None)
            status, uuid, error = found
            stored = self.results.build(uuid) if status == "indexed" and uuid else None
            if stored is None:
                if status != "failed" and not expired:
                    if len(self._waiting_on) > WAITING_KEYS_MAX:  # builds that never finish: backoff alone
                        self._waiting_on.clear()
                    self._waiting_on.setdefault(build.key, set()).add(event.id)
                    return None
                why = error or f"not indexed {self.watch.log_timeout:.0f}s after the event"
                log.warning("logs of %s (%s): %s", job.name, build.key, why)
                review.results.append(JobResult(job, uuid, timed_out=True))
                continue
            matches = [by_bug[m.bug] for m in stored.matches
                       if m.bug in by_bug and tests_allow(by_bug[m.bug], stored.failed_tests)]
            log.info("%s %s (%s): %s", report.key, job.name, uuid, ", ".join(fp.bug for fp in matches) or
                     "unrecognized")
            review.results.append(JobResult.from_matches(job, uuid, matches))
        return review

    def _build_uuid(self, report: FailureReport, job: FailedJob) -> tuple[str | None, tuple[str, ...]]:
        """The build a job line names, and every candidate when it cannot tell.

        A legacy report names its builds by a 7-character short uuid, and those
        collide across changes; so the build must also be of the report's change
        and patchset (as the original elastic-recheck scoped its queries), and
        where that still leaves several, of the job's name and pipeline."""
        if job.build_uuid:
            return job.build_uuid, (job.build_uuid,)
        if not job.short_uuid:
            return None, ()
        found = self.backend.builds(
            f'build_short_uuid:{quote(job.short_uuid)} AND build_change:"{report.change}" '
            f'AND build_patchset:"{report.patchset}"'
        )
        found = [b for b in found if b.build_uuid.startswith(job.short_uuid)]
        for narrower in (lambda b: b.build_name == job.name, lambda b: b.build_queue == job.pipeline):
            if len({b.build_uuid for b in found}) > 1 and any(map(narrower, found)):
                found = [b for b in found if narrower(b)]
        candidates = tuple(sorted({b.build_uuid for b in found}))
        return (candidates[0] if len(candidates) == 1 else None), candidates

    def _ready(self, build_uuid: str, job_name: str) -> bool:
        """The console log and the job's required files are indexed."""
        files = self.backend.build_files(build_uuid)
        names = set(files)

        def present(wanted: str) -> bool:
            return any(name == wanted or name.endswith("/" + wanted) for name in names)

        if not any(present(console) for console in CONSOLE_LOGS):
            return False
        for pattern, required in self.watch.required_files:
            if re.search(pattern, job_name) and not all(present(name) for name in required):
                return False
        return True

    def _comment(self, report: FailureReport, review: Review) -> bool:
        """Post the review at most once per change, patchset and build; False to retry later."""
        builds = sorted({r.build_uuid or r.job.key for r in review.results})
        if not self.state.claim_comment(report.change, report.patchset, builds):
            log.info("%s already commented on; not again", report.key)
            return True
        message = render_review(review, self.watch)
        try:
            self.reviewer.review(report.project, report.change, report.patchset, message)
        except Exception as exc:  # noqa: BLE001 - anything unexpected leaves the arrival unknown
            self.counters.inc("gerrit_errors")
            if not isinstance(exc, (ReportError, OSError)) or (isinstance(exc, ReportError) and not exc.retry):
                log.error("comment on %s refused for good or its arrival unknown; not retried, so never doubled: %s",
                          report.key, exception_line(exc, 500) if not isinstance(exc, ReportError) else exc)
                self.state.comment_unknown(report.change, report.patchset, builds)
                return True
            self.state.release_comment(report.change, report.patchset, builds)
            key = (report.change, report.patchset)
            refusals = self._refusals[key] = (self._refusals.get(key, 0) + 1) if getattr(exc, "answered", False) else 0
            if refusals >= COMMENT_REFUSALS:
                log.error("comment on %s refused by Gerrit %d times in a row; given up: %s", report.key, refusals, exc)
                self._refusals.pop(key, None)
                return True
            log.warning("could not comment on %s: %s", report.key, exc)
            return False
        self._refusals.pop((report.change, report.patchset), None)
        self.state.comment_posted(report.change, report.patchset, builds)
        self.counters.inc("commented")
        log.info("commented on %s", report.key)
        return True

    def _announce(self, report: FailureReport, review: Review) -> None:
        """IRC lines for the channels that want them; queued, so IRC being down delays nothing."""
        if self.notifier is None or report.pipeline not in self.settings.irc.pipelines:
            return
        projects = {fp.bug: fp.projects for fp in self.fingerprints.current()}
        items = announcements(review, self.watch.bug_url, projects, self.watch.log_timeout)
        for channel, text in route(items, self.channels):
            try:
                self.notifier.send(channel, text)
            except Exception as exc:  # noqa: BLE001 - IRC failing must not stop Gerrit comments
                self.counters.inc("irc_errors")
                log.error("IRC: could not queue a line for %s: %s", channel, exception_line(exc, 500))
                continue
            self.counters.inc("announced")

    def _backend_healthy(self) -> bool:
        """Whether the search backend answers and says it is whole: a failure
        it gives then is about the event at hand, not an outage."""
        try:
            health = self.backend.health()
        except Exception:  # noqa: BLE001 - any failure to answer means it is not healthy
            return False
        return isinstance(health, dict) and health.get("status") in ("green", "yellow")

    def _backoff(self, attempts: int, cap: float | None = None) -> float:
        return min(self.watch.poll_initial * (2 ** min(attempts, 16)), cap or self.watch.poll_max)

    # -- the loop -----------------------------------------------------------

    def run(self, events: "queue.Queue[Any]", exit_when_exhausted: bool = False,
            sources_done: Callable[[], bool] = lambda: True) -> None:
        """Until SIGTERM (``stop``), or for a replay until the file is done,
        ``sources_done`` (other build sources have had their say) and every
        event and build from them is finished."""
        try:
            self._loop(events, exit_when_exhausted, sources_done)
        finally:
            self.flush_metrics()

    def _loop(self, events: "queue.Queue[Any]", exit_when_exhausted: bool, sources_done: Callable[[], bool]) -> None:
        exhausted = False
        flushed = 0.0

        def intake(timeout: float = 0.0) -> None:
            """Accept every report waiting in the queue (waiting up to ``timeout`` for the first)."""
            nonlocal exhausted
            try:
                item = events.get(timeout=timeout) if timeout > 0 else events.get_nowait()
            except queue.Empty:
                return
            while True:
                if item is END:
                    exhausted = True
                else:
                    self.accept(item)
                try:
                    item = events.get_nowait()
                except queue.Empty:
                    return

        while not self.stopping.is_set():
            if time.monotonic() - flushed >= 1.0:
                self.flush_metrics()
                flushed = time.monotonic()
                if self.notifier is not None:
                    self.counters.inc("announced", self.outbox.deliver(self.notifier.send, self.channels))
                self._prune_if_due()
            if self.builds is not None:
                woken = [self._waiting_on.pop(key, ()) for key in self.builds.pump()]
                if any(woken):
                    self.state.wake_events(set().union(*woken))
            if self.clock() >= self._paused_until:
                self.process_due(intake)
            if (exhausted and exit_when_exhausted and sources_done() and self.state.pending_count() == 0
                    and self._builds_idle()):
                return
            next_due = max(self.state.next_due() or 0.0, self._paused_until) or None
            wait = 1.0 if next_due is None else max(0.0, min(1.0, next_due - self.clock()))
            if self.builds is not None and self.builds.in_flight:
                wait = min(wait, 0.05)  # a build being fetched or indexed: its news is due any moment
            intake(wait)

    def _prune_if_due(self) -> None:
        """Retention for the state database; for the index and the stored
        results too when no index pipeline runs here (``ingest.fetch:
        false``: the pipeline's writer prunes those itself), on a thread of
        their own, since the index's writer may be another process's for a
        while and this loop must go on taking reports meanwhile."""
        before = self.pruning.due()
        if before is None:
            return
        try:
            events, queued = self.state.prune(before)
        except Exception as exc:  # noqa: BLE001 - no pruning stops the daemon; tried again at the next hour
            log.warning("could not prune the state database of what is older than %s: %s",
                        f"{before:%Y-%m-%d %H:%M} UTC", exception_line(exc, 300))
        else:
            if events or queued:
                log.info("retention: %s", Pruning(before, events=events, queued=queued).summary())
        if self.builds is None and (self._pruner is None or not self._pruner.is_alive()):
            self._pruner = threading.Thread(target=prune_scheduled, name="pruner", daemon=True,
                                            args=(self.backend, self.settings.results_db, before, self.pruning))
            self._pruner.start()

    def _builds_idle(self) -> bool:
        """No build is being fetched or indexed, and none is due (a replay ends when its builds are in)."""
        if self.builds is None:
            return True
        counts = self.state.build_counts()
        return not self.builds.in_flight and not counts.get("fetching") and not self.state.due_builds(
            float("inf"), 1)

    def flush_metrics(self) -> None:
        """Queue depth and the IRC bot's failures into the counters, and the
        counters into the state database (for ``status``)."""
        self.counters.set("queue_depth", self.state.pending_count())
        if self.builds is not None:
            counts = self.state.build_counts()
            for status in BUILD_STATUSES:
                self.counters.set(f"builds_{status}", counts.get(status, 0))
        errors = int(getattr(self.notifier, "errors", 0)), int(getattr(self.notifier, "dropped", 0))
        self.counters.inc("irc_errors", errors[0] - self._notifier_errors[0])
        self.counters.inc("irc_dropped", errors[1] - self._notifier_errors[1])
        self._notifier_errors = errors
        self.state.add_metrics(*self.counters.unflushed())

    def stop(self) -> None:
        self.stopping.set()


_COUNTER = {"bugs": "classified", "timeout": "timeouts", "ambiguous": "ambiguous", "unrecognized": "unrecognized"}



__all__ = ["Daemon", "END", "FingerprintSet", "read_event_file", "replay"]
