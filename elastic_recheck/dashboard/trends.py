"""What the dashboard shows, computed from the backend's per-build counts.

The backend counts: one ``builds`` aggregation per fingerprint returns the
distinct builds it hit (status, job, pipeline, newest hit) — never the hits
themselves — plus one for every failed voting build in the window. Every
figure on the pages is then a pandas group-by over those two small tables.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import pandas as pd

from ..classify import failed_tests, index_match, match_fingerprints, tests_allow
from ..errors import RecheckError
from ..fingerprints import Fingerprint
from ..results import ResultStore, last_hit
from ..search import BuildOutcome, SearchBackend, TimeWindow, epoch_micros

log = logging.getLogger(__name__)
UTC = dt.timezone.utc

FAILED_STATUSES = ("FAILURE", "TIMED_OUT", "POST_FAILURE", "RETRY_LIMIT")
# A build counts once: by its console log, which every CI build has.
FAILED_BUILDS_QUERY = "build_status:(" + " OR ".join(FAILED_STATUSES) + ") AND voting:1 AND tags:console"
HIT_COLUMNS = ["bug", "build_uuid", "build_status", "build_name", "build_queue", "last_hit", "project",
               "build_change", "build_patchset", "log_url", "message"]
BUILD_COLUMNS = ["build_uuid", "build_status", "build_name", "build_queue", "project", "build_change",
                 "build_patchset", "log_url", "last_hit"]


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
    hits: pd.DataFrame  # one row per (fingerprint, build) hit
    failures: pd.DataFrame  # one row per failed voting build
    errors: dict[str, str]  # bug -> why its query could not run
    previous: pd.DataFrame | None = None  # hits of the window before this one, the same length
    spans: dict[str, tuple[dt.datetime, dt.datetime]] = field(default_factory=dict)  # bug -> first, last seen


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
                                              lambda bug, query: backend.builds(query, window), window.start))
        records, failed = _stored_tables(store, fingerprints, window, errors)
        previous = None
        if days > 0 and window.start is not None:  # the window before, for each bug's trend
            before = TimeWindow(start=window.start - dt.timedelta(days=days), end=window.start)
            previous = _frame(_stored_tables(store, fingerprints, before, errors, failed_only=True)[0], HIT_COLUMNS)
        spans = {bug: (last_hit(first), last_hit(last)) for bug, (first, last) in store.bug_spans().items()}
        start = window.start or last_hit(store.oldest()) or now
    finally:
        if own:
            store.close()
    return Collected(
        start=start, now=now, fingerprints=list(fingerprints),
        hits=_frame(records, HIT_COLUMNS), failures=_frame(failed, BUILD_COLUMNS), errors=errors,
        previous=previous, spans=spans,  # type: ignore[arg-type]
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


def _stored_tables(store: ResultStore, fingerprints: Sequence[Fingerprint], window: TimeWindow,
                   errors: Mapping[str, str], failed_only: bool = False
                   ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Hits (one per fingerprint and build) and failed voting builds, from the stored rows.
    A fingerprint with ``test_ids`` hits a build only when one of those
    tests failed in it (when its failed tests are known), as ``classify``
    decides; a build it does not hit stays uncategorized."""
    by_bug = {fp.bug: fp for fp in fingerprints}
    records: list[tuple[Any, ...]] = []
    failed: list[tuple[Any, ...]] = []
    for build in store.builds(window.start, window.end):
        if failed_only and not build.failed:
            continue
        newest = last_hit(build.newest)
        for match in build.matches:
            fp = by_bug.get(match.bug)
            if fp is None or match.bug in errors or not tests_allow(fp, build.failed_tests):
                continue
            records.append((match.bug, build.uuid, build.status, build.job, build.pipeline,
                            last_hit(match.newest) or newest, build.project, build.change, build.patchset,
                            build.log_url, match.message))
        if build.failed and build.voting:
            failed.append((build.uuid, build.status, build.job, build.pipeline, build.project, build.change,
                           build.patchset, build.log_url, newest))
    return records, failed


def _why(exc: BaseException) -> str:
    message = str(exc) if isinstance(exc, RecheckError) else f"{type(exc).__name__}: {exc}"
    return " ".join(message.split())


def _micros(moment: dt.datetime | None) -> int | None:
    return None if moment is None else epoch_micros(moment)


def _build_record(build: BuildOutcome) -> tuple[Any, ...]:
    return tuple(getattr(build, name) for name in BUILD_COLUMNS)


def _frame(records: list[tuple[Any, ...]], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records, columns=columns)
    frame["last_hit"] = pd.to_datetime(frame["last_hit"], utc=True)
    return frame


def trends(collected: Collected, name: str, queue: str | None = None) -> Trends:
    """The bug rows and the uncategorized failures, for one pipeline or all."""
    hits, failures = collected.hits, collected.failures
    if queue is not None:
        hits = hits[hits["build_queue"] == queue]
        failures = failures[failures["build_queue"] == queue]
    previous = collected.previous
    if queue is not None and previous is not None:
        previous = previous[previous["build_queue"] == queue]
    rows = _bug_rows(collected, hits, failures, previous)
    return Trends(name=name, rows=rows, uncategorized=_uncategorized(hits, failures, days(collected)))


def hours(collected: Collected) -> pd.DatetimeIndex:
    """The hourly buckets of the window, oldest first."""
    return pd.date_range(pd.Timestamp(collected.start).floor("h"), pd.Timestamp(collected.now).floor("h"), freq="h")


def days(collected: Collected) -> pd.DatetimeIndex:
    """The days (UTC) of the window, oldest first."""
    return pd.date_range(pd.Timestamp(collected.start).floor("D"), pd.Timestamp(collected.now).floor("D"), freq="D")


def last_day_hours(collected: Collected) -> pd.DatetimeIndex:
    """The 24 hourly buckets ending with the current hour."""
    now = pd.Timestamp(collected.now).floor("h")
    return pd.date_range(now - pd.Timedelta(hours=23), now, freq="h")


def _by_status(frame: pd.DataFrame, floor: str, buckets: pd.DatetimeIndex) -> dict[str, dict[str, list[int]]]:
    """bug -> status -> distinct builds per bucket."""
    if frame.empty:
        return {}
    counted = (frame.assign(bucket=frame["last_hit"].dt.floor(floor))
               .groupby(["bug", "build_status", "bucket"])["build_uuid"].nunique())
    out: dict[str, dict[str, list[int]]] = {}
    for (bug, status), series in counted.groupby(level=[0, 1]):
        counts = series.droplevel([0, 1]).reindex(buckets, fill_value=0)
        out.setdefault(str(bug), {})[str(status)] = [int(v) for v in counts.to_numpy()]
    return out


def _bug_rows(collected: Collected, hits: pd.DataFrame, failures: pd.DataFrame,
              previous: pd.DataFrame | None = None) -> list[BugRow]:
    buckets = hours(collected)
    day_ago = pd.Timestamp(collected.now - dt.timedelta(days=1))
    two_days_ago = pd.Timestamp(collected.now - dt.timedelta(days=2))
    failed_hits = hits[hits["build_status"].isin(FAILED_STATUSES)]
    # plain dicts: a thousand look-ups each, where a pandas Series answers one in tens of microseconds
    fails_window = failed_hits.groupby("bug")["build_uuid"].nunique().to_dict()
    fails_24h = failed_hits[failed_hits["last_hit"] >= day_ago].groupby("bug")["build_uuid"].nunique().to_dict()
    fails_prev_24h = failed_hits[(failed_hits["last_hit"] >= two_days_ago) & (failed_hits["last_hit"] < day_ago)
                                 ].groupby("bug")["build_uuid"].nunique().to_dict()
    fails_prev_window = (previous.groupby("bug")["build_uuid"].nunique().to_dict()
                         if previous is not None else None)
    daily = _by_status(hits, "D", days(collected))
    recent = last_day_hours(collected)
    last_day = _by_status(hits[hits["last_hit"] >= recent[0]], "h", recent)
    per_project = hits.groupby(["bug", "project"])["build_uuid"].nunique()
    projects_by_bug = {bug: series.droplevel(0) for bug, series in per_project.groupby(level="bug")}
    builds_window = hits.groupby("bug")["build_uuid"].nunique().to_dict()
    job_failures = failures.groupby("build_name")["build_uuid"].nunique().to_dict()
    per_job = failed_hits.groupby(["bug", "build_name"])["build_uuid"].nunique()
    hourly = (
        hits.assign(hour=hits["last_hit"].dt.floor("h"))
        .groupby(["bug", "build_status", "hour"])["build_uuid"].nunique()
    )
    jobs_by_bug = {bug: series.droplevel(0) for bug, series in per_job.groupby(level="bug")}
    hourly_by_bug = {bug: series.droplevel(0) for bug, series in hourly.groupby(level="bug")}
    rows = []
    for fp in collected.fingerprints:
        if fp.suppress_graph:
            continue
        row = BugRow(fp.bug, fp.title, fp.projects, fp.query, error=collected.errors.get(fp.bug))
        row.fails_window = int(fails_window.get(fp.bug, 0))
        row.fails_24h = int(fails_24h.get(fp.bug, 0))
        row.builds_window = int(builds_window.get(fp.bug, 0))
        row.fails_prev_24h = int(fails_prev_24h.get(fp.bug, 0))
        if fails_prev_window is not None:
            row.fails_prev_window = int(fails_prev_window.get(fp.bug, 0))
        row.daily = daily.get(fp.bug, {})
        row.last_day = last_day.get(fp.bug, {})
        row.first_seen, row.last_seen = collected.spans.get(fp.bug, (None, None))
        if fp.bug in projects_by_bug:
            row.hit_projects = [ProjectShare(str(project), int(count)) for project, count in
                                projects_by_bug[fp.bug].sort_values(ascending=False).items()]
        row.resolved = fp.resolved
        if fp.resolved is not None:
            fixed = pd.Timestamp(fp.resolved, tz=UTC) + pd.Timedelta(days=1)  # after the day it names
            mine = failed_hits[(failed_hits["bug"] == fp.bug) & (failed_hits["last_hit"] >= fixed)]
            row.regressions = int(mine["build_uuid"].nunique())
        if fp.bug in jobs_by_bug:
            for job, count in jobs_by_bug[fp.bug].sort_values(ascending=False).items():
                total = int(job_failures.get(job, 0))
                row.jobs.append(JobShare(str(job), int(count), 100.0 * count / total if total else None))
        if fp.bug in hourly_by_bug:
            for status, series in hourly_by_bug[fp.bug].groupby(level=0):
                counts = series.droplevel(0).reindex(buckets, fill_value=0)
                row.series[str(status)] = [int(v) for v in counts.to_numpy()]
        rows.append(row)
    rows.sort(key=lambda r: (-r.fails_24h, -r.fails_window, r.bug))
    return rows


def _uncategorized(hits: pd.DataFrame, failures: pd.DataFrame, buckets: pd.DatetimeIndex | None = None
                   ) -> Uncategorized:
    """Failed voting builds no fingerprint hit (suppressed ones count: they are known bugs)."""
    explained = set(hits["build_uuid"])
    unexplained = failures[~failures["build_uuid"].isin(explained)].sort_values("last_hit", ascending=False)
    totals = failures.groupby("build_name")["build_uuid"].nunique()
    groups = []
    for job, frame in unexplained.groupby("build_name", sort=False):
        builds = [
            UncategorizedBuild(r.build_uuid, r.build_status, r.build_queue, r.project, r.build_change,
                               r.build_patchset, r.log_url, None if pd.isna(r.last_hit) else r.last_hit.to_pydatetime())
            for r in frame.itertuples()
        ]
        groups.append(JobGroup(str(job), int(totals.get(job, len(builds))), builds))
    listed = set(unexplained["build_name"])
    for job, total in totals.items():  # jobs whose every failure is explained still have a rate
        if job not in listed:
            groups.append(JobGroup(str(job), int(total), []))
    groups.sort(key=lambda g: (-len(g.uncategorized), g.rate, g.job))
    daily = []
    if buckets is not None:
        day = failures["last_hit"].dt.floor("D")
        total = failures.groupby(day)["build_uuid"].nunique().reindex(buckets, fill_value=0)
        missed = unexplained.groupby(unexplained["last_hit"].dt.floor("D"))["build_uuid"].nunique().reindex(
            buckets, fill_value=0)
        daily = [DayRate(moment.to_pydatetime(), int(total.iloc[i]), int(missed.iloc[i]))
                 for i, moment in enumerate(buckets)]
    return Uncategorized(failures=int(failures["build_uuid"].nunique()), groups=groups, daily=daily)


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


__all__ = ["BugRow", "Collected", "FAILED_BUILDS_QUERY", "Trends", "as_json", "collect", "days", "hours",
           "last_day_hours", "trends"]
