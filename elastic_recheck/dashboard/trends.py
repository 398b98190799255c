"""What the dashboard shows, computed from the backend's per-build counts.

The backend counts: one ``builds`` aggregation per fingerprint returns the
distinct builds it hit (status, job, pipeline, newest hit) — never the hits
themselves — plus one for every failed voting build in the window. Every
figure on the pages is then a count of distinct builds over those two small
tables (tens of thousands of rows at most), plain dicts and sets: pandas cost
more to import than the counting costs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence, TypeVar

from ..classify import failed_tests, index_match, match_fingerprints, tests_allow
from ..errors import RecheckError
from ..fingerprints import Fingerprint
from ..results import ResultStore, StoredBuild, last_hit
from ..search import SearchBackend, TimeWindow, epoch_micros

log = logging.getLogger(__name__)
UTC = dt.timezone.utc

FAILED_STATUSES = ("FAILURE", "TIMED_OUT", "POST_FAILURE", "RETRY_LIMIT")
# A build counts once: by its console log, which every CI build has.
FAILED_BUILDS_QUERY = "build_status:(" + " OR ".join(FAILED_STATUSES) + ") AND voting:1 AND tags:console"


class Hit(NamedTuple):
    """One fingerprint's hit on one build."""

    bug: str
    build_uuid: str
    build_status: str
    build_name: str
    build_queue: str
    last_hit: dt.datetime | None  # its newest matching line
    project: str
    build_change: str
    build_patchset: str
    log_url: str
    message: str  # that line's message


class FailedBuild(NamedTuple):
    """A failed voting build of the window."""

    build_uuid: str
    build_status: str
    build_name: str
    build_queue: str
    project: str
    build_change: str
    build_patchset: str
    log_url: str
    last_hit: dt.datetime | None  # its newest line


_Dated = TypeVar("_Dated", Hit, FailedBuild)


@dataclass
class JobShare:
    job: str
    failures: int  # failed builds of this job the bug hit
    percent: float | None  # of all failed builds of this job in the window


@dataclass
class ProjectShare:
    project: str
    builds: int  # builds of this project the bug hit, any status


@dataclass
class BugRow:
    bug: str
    title: str | None
    projects: tuple[str, ...]
    query: str
    fails_24h: int = 0
    fails_window: int = 0
    builds_window: int = 0  # builds hit with any status
    jobs: list[JobShare] = field(default_factory=list)
    series: dict[str, list[int]] = field(default_factory=dict)  # status -> hourly distinct builds
    error: str | None = None
    fails_prev_24h: int = 0  # the 24 hours before the last 24
    fails_prev_window: int | None = None  # the window before this one (None: not known)
    daily: dict[str, list[int]] = field(default_factory=dict)  # status -> distinct builds per day of the window
    last_day: dict[str, list[int]] = field(default_factory=dict)  # status -> distinct builds per hour, last 24 h
    first_seen: dt.datetime | None = None  # first and last matching line over every stored build
    last_seen: dt.datetime | None = None
    hit_projects: list[ProjectShare] = field(default_factory=list)
    resolved: dt.date | None = None
    regressions: int = 0  # failed builds hit after the resolved: day
    incident: bool = False  # set by incidents.update

    @property
    def removal_candidate(self) -> bool:
        return self.error is None and self.builds_window == 0

    @property
    def sparkline(self) -> list[int]:
        """Builds hit per day over the window, any status."""
        return [sum(day) for day in zip(*self.daily.values())] if self.daily else []


@dataclass
class UncategorizedBuild:
    build_uuid: str
    build_status: str
    build_queue: str
    project: str
    change: str
    patchset: str
    log_url: str
    last_hit: dt.datetime | None


@dataclass
class JobGroup:
    job: str
    failures: int
    uncategorized: list[UncategorizedBuild]

    @property
    def rate(self) -> float:
        return 1.0 - len(self.uncategorized) / self.failures if self.failures else 1.0


@dataclass
class DayRate:
    day: dt.datetime
    failures: int  # failed voting builds that day
    uncategorized: int  # of them, explained by no fingerprint

    @property
    def rate(self) -> float | None:
        return 1.0 - self.uncategorized / self.failures if self.failures else None


@dataclass
class Uncategorized:
    failures: int
    groups: list[JobGroup]
    daily: list[DayRate] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(len(g.uncategorized) for g in self.groups)

    @property
    def rate(self) -> float:
        return 1.0 - self.count / self.failures if self.failures else 1.0


@dataclass
class Trends:
    """Everything the pages show, for one pipeline selection."""

    name: str
    rows: list[BugRow]
    uncategorized: Uncategorized


@dataclass
class Collected:
    """The two tables every page is computed from."""

    start: dt.datetime
    now: dt.datetime
    fingerprints: list[Fingerprint]
    hits: list[Hit]  # one per (fingerprint, build)
    failures: list[FailedBuild]
    errors: dict[str, str]  # bug -> why its query could not run
    previous: list[Hit] | None = None  # failed builds' hits of the window before this one, the same length
    spans: dict[str, tuple[dt.datetime, dt.datetime]] = field(default_factory=dict)  # bug -> first, last seen
    # the window asked for (no start: all time, where ``start`` is the oldest stored build's newest line)
    window: TimeWindow = field(default_factory=TimeWindow)
    stored: list[StoredBuild] = field(default_factory=list)  # the window's stored builds, newest first


def collect(
    backend: SearchBackend,
    fingerprints: Sequence[Fingerprint],
    now: dt.datetime,
    days: float,
    progress: Callable[[Iterable[Fingerprint]], Iterable[Fingerprint]] = lambda items: items,
    refused: Mapping[Fingerprint, str] | None = None,
    store: ResultStore | None = None,
) -> Collected:
    """The two tables, from each build's stored classification.

    The index is asked only for what the stored results cannot hold: a
    fingerprint added or changed since (run alone over the window, its rows
    replaced), and builds indexed without being classified (exported
    documents, an index fed by another pipeline), classified once and stored.
    A fingerprint whose query fails, whatever the exception, is an error on
    its own row. ``refused``: fingerprints the engine refused at load, with
    why (not run). Without ``store``, an in-memory one serves this run."""
    # 0 days is all time: the window has no start, and the pages' span begins
    # at the oldest stored build.
    window = TimeWindow(start=now - dt.timedelta(days=days) if days > 0 else None, end=now)
    refused = refused or {}
    errors: dict[str, str] = {fp.bug: refused[fp] for fp in fingerprints if fp in refused}
    for bug, why in errors.items():
        log.warning("fingerprint %s could not run: %s", bug, why)
    runnable = [fp for fp in fingerprints if fp not in refused]
    own = store is None
    store = store if store is not None else ResultStore(":memory:")
    try:
        queries = {fp.bug: fp.voting_query for fp in progress(runnable)}
        errors.update(catch_up(backend, store, runnable, window))
        errors.update(store.sync_fingerprints({bug: q for bug, q in queries.items() if bug not in errors},
                                              lambda bug, query: backend.builds(query, window), window.start,
                                              keep=set(errors)))
        stored = list(store.builds(window.start, window.end))  # newest first; suggest's clusters read them too
        records, failed = _stored_tables(stored, fingerprints, errors)
        previous = None
        if days > 0 and window.start is not None:  # the window before, for each bug's trend
            before = TimeWindow(start=window.start - dt.timedelta(days=days), end=window.start)
            previous = _stored_tables(store.builds(before.start, before.end), fingerprints, errors, failed_only=True)[0]
        spans = {bug: (last_hit(first), last_hit(last)) for bug, (first, last) in store.bug_spans().items()}
        start = window.start or last_hit(store.oldest()) or now
    finally:
        if own:
            store.close()
    return Collected(
        start=start, now=now, fingerprints=list(fingerprints),
        hits=records, failures=failed, errors=errors,
        previous=previous, spans=spans, window=window, stored=stored,  # type: ignore[arg-type]
    )


# Builds found indexed but never classified, past which they are classified
# fingerprint by fingerprint over the window (one query each) rather than
# build by build (one batched query each).
CATCH_UP_BY_BUILD = 50


def catch_up(backend: SearchBackend, store: ResultStore, fingerprints: Sequence[Fingerprint],
             window: TimeWindow) -> dict[str, str]:
    """Classify and store the builds of the window the index has and the
    store lacks. In steady state (every build classified as it was indexed)
    this is one aggregation over the window's console lines and nothing else.
    Returns bug -> why, for fingerprints that could not run."""
    indexed = backend.builds("tags:console", window)
    stored = store.stored_uuids()
    missing = [b for b in indexed if b.build_uuid not in stored]
    if not missing:
        return {}
    errors: dict[str, str] = {}
    by_build = len(missing) <= CATCH_UP_BY_BUILD
    for build in missing:
        matches = []
        if by_build:
            failures: dict[str, Exception] = {}
            matched = match_fingerprints(backend, build.build_uuid, fingerprints, failures)
            errors.update((bug, _why(exc)) for bug, exc in failures.items())
            matches = [index_match(backend, fp, build.build_uuid) for fp, hit in zip(fingerprints, matched) if hit]
        fields = {"build_uuid": build.build_uuid, "build_name": build.build_name, "build_status": build.build_status,
                  "build_queue": build.build_queue, "project": build.project, "build_change": build.build_change,
                  "build_patchset": build.build_patchset, "log_url": build.log_url, "voting": build.voting or "1"}
        store.store_build(fields, matches, newest=_micros(build.last_hit), lines=build.hits,
                          failed_tests=_failed_tests_or_none(backend, build.build_uuid, fingerprints))
    if not by_build:  # each fingerprint over the window: that is its every row, so it is synced too
        for fp in fingerprints:
            asked = time.time()
            try:
                outcomes = backend.builds(fp.voting_query, window)
            except Exception as exc:  # noqa: BLE001 - one fingerprint's failure, whatever it is, stays on its row
                errors[fp.bug] = _why(exc)
                continue
            store.replace_matches(fp.bug, fp.voting_query, outcomes, window.start, asked)
    return errors


def _failed_tests_or_none(backend: SearchBackend, uuid: str, fingerprints: Sequence[Fingerprint]
                          ) -> list[str] | None:
    if not any(fp.test_ids for fp in fingerprints):
        return None
    try:
        tests = failed_tests(backend, uuid)
    except RecheckError as exc:
        log.warning("the failed tests of build %s could not be read: %s", uuid, exc)
        return None
    return None if tests is None else sorted(tests)


def _stored_tables(builds: Iterable[StoredBuild], fingerprints: Sequence[Fingerprint], errors: Mapping[str, str],
                   failed_only: bool = False) -> tuple[list[Hit], list[FailedBuild]]:
    """Hits (one per fingerprint and build) and failed voting builds, from a window's stored builds.
    A fingerprint with ``test_ids`` hits a build only when one of those
    tests failed in it (when its failed tests are known), as ``classify``
    decides; a build it does not hit stays uncategorized."""
    by_bug = {fp.bug: fp for fp in fingerprints}
    records: list[Hit] = []
    failed: list[FailedBuild] = []
    for build in builds:
        if failed_only and not build.failed:
            continue
        newest = last_hit(build.newest)
        for match in build.matches:
            fp = by_bug.get(match.bug)
            if fp is None or match.bug in errors or not tests_allow(fp, build.failed_tests):
                continue
            records.append(Hit(match.bug, build.uuid, build.status, build.job, build.pipeline,
                            last_hit(match.newest) or newest, build.project, build.change, build.patchset,
                            build.log_url, match.message))
        if build.failed and build.voting:
            failed.append(FailedBuild(build.uuid, build.status, build.job, build.pipeline, build.project, build.change,
                           build.patchset, build.log_url, newest))
    return records, failed


def _why(exc: BaseException) -> str:
    message = str(exc) if isinstance(exc, RecheckError) else f"{type(exc).__name__}: {exc}"
    return " ".join(message.split())


def _micros(moment: dt.datetime | None) -> int | None:
    return None if moment is None else epoch_micros(moment)


def trends(collected: Collected, name: str, queue: str | None = None) -> Trends:
    """The bug rows and the uncategorized failures, for one pipeline or all."""
    hits, failures, previous = collected.hits, collected.failures, collected.previous
    if queue is not None:
        hits = [h for h in hits if h.build_queue == queue]
        failures = [f for f in failures if f.build_queue == queue]
        if previous is not None:
            previous = [h for h in previous if h.build_queue == queue]
    rows = _bug_rows(collected, hits, failures, previous)
    return Trends(name=name, rows=rows, uncategorized=_uncategorized(hits, failures, days(collected)))


def floor_hour(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def floor_day(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _steps(first: dt.datetime, last: dt.datetime, step: dt.timedelta) -> list[dt.datetime]:
    out = []
    while first <= last:
        out.append(first)
        first += step
    return out


def hours(collected: Collected) -> list[dt.datetime]:
    """The hourly buckets (UTC) of the window, oldest first."""
    return _steps(floor_hour(collected.start), floor_hour(collected.now), dt.timedelta(hours=1))


def days(collected: Collected) -> list[dt.datetime]:
    """The days (UTC) of the window, oldest first."""
    return _steps(floor_day(collected.start), floor_day(collected.now), dt.timedelta(days=1))


def last_day_hours(collected: Collected) -> list[dt.datetime]:
    """The 24 hourly buckets ending with the current hour."""
    now = floor_hour(collected.now)
    return _steps(now - dt.timedelta(hours=23), now, dt.timedelta(hours=1))


def _distinct_builds(rows: Iterable[Any], key: Callable[[Any], Any] = lambda row: row.bug) -> dict[Any, int]:
    """key -> the number of different builds among ``rows`` with that key."""
    seen: dict[Any, set[str]] = {}
    for row in rows:
        seen.setdefault(key(row), set()).add(row.build_uuid)
    return {k: len(uuids) for k, uuids in seen.items()}


HOUR, DAY = 3600, 86400  # bucket widths in seconds: UTC hours and days start at multiples of them


def _by_status(hits: Iterable[Hit], width: int, buckets: Sequence[dt.datetime]) -> dict[str, dict[str, list[int]]]:
    """bug -> status -> distinct builds per bucket of ``width`` seconds
    (statuses in name order; a hit outside the buckets makes its status
    appear with no count)."""
    index = {int(bucket.timestamp()) // width: i for i, bucket in enumerate(buckets)}
    seen: dict[tuple[str, str], dict[int, set[str]]] = {}
    for hit in hits:
        if hit.last_hit is None:  # an undated hit is in no bucket
            continue
        cells = seen.setdefault((hit.bug, hit.build_status), {})
        i = index.get(int(hit.last_hit.timestamp()) // width)
        if i is not None:
            cells.setdefault(i, set()).add(hit.build_uuid)
    out: dict[str, dict[str, list[int]]] = {}
    for (bug, status), cells in sorted(seen.items()):
        counts = [0] * len(buckets)
        for i, uuids in cells.items():
            counts[i] = len(uuids)
        out.setdefault(bug, {})[status] = counts
    return out


def _ranked(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    """Most first; ties by name."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def _bug_rows(collected: Collected, hits: Sequence[Hit], failures: Sequence[FailedBuild],
              previous: Sequence[Hit] | None = None) -> list[BugRow]:
    day_ago = collected.now - dt.timedelta(days=1)
    two_days_ago = collected.now - dt.timedelta(days=2)
    failed_hits = [h for h in hits if h.build_status in FAILED_STATUSES]
    fails_window = _distinct_builds(failed_hits)
    fails_24h = _distinct_builds(h for h in failed_hits if h.last_hit is not None and h.last_hit >= day_ago)
    fails_prev_24h = _distinct_builds(h for h in failed_hits
                                      if h.last_hit is not None and two_days_ago <= h.last_hit < day_ago)
    fails_prev_window = _distinct_builds(previous) if previous is not None else None
    daily = _by_status(hits, DAY, days(collected))
    recent = last_day_hours(collected)
    last_day = _by_status([h for h in hits if h.last_hit is not None and h.last_hit >= recent[0]], HOUR, recent)
    hourly = _by_status(hits, HOUR, hours(collected))
    builds_window = _distinct_builds(hits)
    job_failures = _distinct_builds(failures, lambda f: f.build_name)
    projects_by_bug: dict[str, dict[str, int]] = {}
    for (bug, project), count in _distinct_builds(hits, lambda h: (h.bug, h.project)).items():
        projects_by_bug.setdefault(bug, {})[project] = count
    jobs_by_bug: dict[str, dict[str, int]] = {}
    for (bug, job), count in _distinct_builds(failed_hits, lambda h: (h.bug, h.build_name)).items():
        jobs_by_bug.setdefault(bug, {})[job] = count
    rows = []
    for fp in collected.fingerprints:
        if fp.suppress_graph:
            continue
        row = BugRow(fp.bug, fp.title, fp.projects, fp.query, error=collected.errors.get(fp.bug))
        row.fails_window = fails_window.get(fp.bug, 0)
        row.fails_24h = fails_24h.get(fp.bug, 0)
        row.builds_window = builds_window.get(fp.bug, 0)
        row.fails_prev_24h = fails_prev_24h.get(fp.bug, 0)
        if fails_prev_window is not None:
            row.fails_prev_window = fails_prev_window.get(fp.bug, 0)
        row.daily = daily.get(fp.bug, {})
        row.last_day = last_day.get(fp.bug, {})
        row.series = hourly.get(fp.bug, {})
        row.first_seen, row.last_seen = collected.spans.get(fp.bug, (None, None))
        row.hit_projects = [ProjectShare(str(project), count)
                            for project, count in _ranked(projects_by_bug.get(fp.bug, {}))]
        row.resolved = fp.resolved
        if fp.resolved is not None:
            fixed = dt.datetime.combine(fp.resolved, dt.time(), UTC) + dt.timedelta(days=1)  # after the day it names
            row.regressions = len({h.build_uuid for h in failed_hits
                                   if h.bug == fp.bug and h.last_hit is not None and h.last_hit >= fixed})
        for job, count in _ranked(jobs_by_bug.get(fp.bug, {})):
            total = job_failures.get(job, 0)
            row.jobs.append(JobShare(str(job), count, 100.0 * count / total if total else None))
        rows.append(row)
    rows.sort(key=lambda r: (-r.fails_24h, -r.fails_window, r.bug))
    return rows


def newest_first(rows: Iterable[_Dated]) -> list[_Dated]:
    """Newest first, undated ones last, in their order otherwise."""
    dated = sorted((r for r in rows if r.last_hit is not None), key=lambda r: r.last_hit, reverse=True)
    return dated + [r for r in rows if r.last_hit is None]


def _uncategorized(hits: Sequence[Hit], failures: Sequence[FailedBuild], buckets: Sequence[dt.datetime] | None = None
                   ) -> Uncategorized:
    """Failed voting builds no fingerprint hit (suppressed ones count: they are known bugs)."""
    explained = {h.build_uuid for h in hits}
    unexplained = newest_first([f for f in failures if f.build_uuid not in explained])
    totals = _distinct_builds(failures, lambda f: f.build_name)
    by_job: dict[str, list[UncategorizedBuild]] = {}
    for f in unexplained:
        by_job.setdefault(f.build_name, []).append(UncategorizedBuild(
            f.build_uuid, f.build_status, f.build_queue, f.project, f.build_change, f.build_patchset, f.log_url,
            f.last_hit))
    groups = [JobGroup(str(job), totals.get(job, len(builds)), builds) for job, builds in by_job.items()]
    groups += [JobGroup(str(job), total, []) for job, total in sorted(totals.items()) if job not in by_job]
    groups.sort(key=lambda g: (-len(g.uncategorized), g.rate, g.job))
    daily = []
    if buckets is not None:
        total = _distinct_builds((f for f in failures if f.last_hit is not None), lambda f: floor_day(f.last_hit))
        missed = _distinct_builds((f for f in unexplained if f.last_hit is not None), lambda f: floor_day(f.last_hit))
        daily = [DayRate(day, total.get(day, 0), missed.get(day, 0)) for day in buckets]
    return Uncategorized(failures=len({f.build_uuid for f in failures}), groups=groups, daily=daily)


def as_json(value: Any) -> Any:
    """Dataclasses, times and numbers as plain JSON values, for the data files."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: as_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
        for extra in ("removal_candidate", "rate", "count"):
            if hasattr(type(value), extra):
                out[extra] = as_json(getattr(value, extra))
        return out
    if isinstance(value, dict):
        return {str(k): as_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_json(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 4)
    return value


__all__ = ["BugRow", "Collected", "FAILED_BUILDS_QUERY", "FailedBuild", "Hit", "Trends", "as_json", "collect",
           "days", "hours", "last_day_hours", "newest_first", "trends"]
