"""Gerrit ``comment-added`` events from CI → the failed jobs they report (DESIGN §5).

Two comment formats occur: Zuul v3 (``Build failed (gate pipeline).``, build
URLs ending in the build uuid) and the legacy Jenkins/Zuul v2 one
(``Build failed.``, log URLs ending in a short uuid, the pipeline in the path).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from .errors import EventError

UTC = dt.timezone.utc
DEFAULT_CI_ACCOUNTS = ("zuul", "jenkins")
# Results that leave logs worth classifying.
FAILED_RESULTS = frozenset({"FAILURE", "TIMED_OUT", "POST_FAILURE", "RETRY_LIMIT"})
# Gerrit numbers changes and patchsets with Java ints: anything outside is not
# a change of ours (and would overflow SQLite's INTEGER on the way in).
MAX_NUMBER = 2**31 - 1
# The latest event time taken as one (year 9999 would overflow datetime): an
# eventCreatedOn past this is garbage; one merely ahead of our clock is clamped
# to the time it arrived (see Daemon.accept).
LATEST_EVENT = 253_402_300_799
# Gerrit's biggest events (a comment listing hundreds of jobs) are tens of KiB.
MAX_EVENT_BYTES = 1 << 20
_DECIMAL = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,9})?")  # ASCII only: float() also takes '٣'
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

# Anchored at a line start and never spanning lines: with ``\s*`` here a comment
# of blank lines cost quadratic time (40,000 newlines took 4 s).
_HEADLINE = re.compile(r"^[ \t]*Build failed(?: \((?P<pipeline>[\w.-]+) pipeline\))?\.", re.M)
_JOB_LINE = re.compile(
    r"^- (?P<name>\S+) (?P<url>\S+) : (?P<result>[A-Z_]+)(?P<rest>[^\n]*)$", re.M
)
_BUILD_UUID = re.compile(r"/build/(?P<uuid>[0-9a-f]{32})/?$")
_LEGACY_LOG = re.compile(r"/(?P<pipeline>[\w.-]+)/(?P<job>[^/]+)/(?P<short>[0-9a-f]{7,32})/?$")


@dataclass(frozen=True)
class FailedJob:
    name: str
    url: str
    pipeline: str
    result: str = "FAILURE"
    build_uuid: str | None = None  # Zuul v3 build URLs carry the full uuid
    short_uuid: str | None = None  # log URLs carry the first 7 characters

    @property
    def key(self) -> str:
        return self.build_uuid or self.short_uuid or self.url


@dataclass(frozen=True)
class FailureReport:
    change: int
    patchset: int
    project: str
    branch: str
    url: str
    pipeline: str
    created: dt.datetime
    jobs: tuple[FailedJob, ...] = field(default=())

    @property
    def key(self) -> str:
        return f"{self.change},{self.patchset}"


@dataclass(frozen=True)
class EventFilter:
    """Which events are ours: the CI accounts, and project/job regexes."""

    ci_accounts: tuple[str, ...] = DEFAULT_CI_ACCOUNTS
    include_projects: str | None = None
    exclude_projects: str | None = None
    include_jobs: str | None = None
    exclude_jobs: str | None = None

    def wants_project(self, project: str) -> bool:
        return _wanted(project, self.include_projects, self.exclude_projects)

    def wants_job(self, job: str) -> bool:
        return _wanted(job, self.include_jobs, self.exclude_jobs)


def _wanted(value: str, include: str | None, exclude: str | None) -> bool:
    if include and not re.search(include, value):
        return False
    return not (exclude and re.search(exclude, value))


def parse_failure(event: Any, filters: EventFilter = EventFilter()) -> FailureReport | None:
    """The failed voting jobs an event reports; None for events that report
    none (other types, other authors, successes, non-voting only). Raises
    EventError for a CI failure comment that is missing what we need."""
    if not isinstance(event, dict):
        raise EventError("the event is not a JSON object")
    if event.get("type") != "comment-added":
        return None
    author = event.get("author") or {}
    if not isinstance(author, dict) or author.get("username") not in filters.ci_accounts:
        return None
    comment = event.get("comment")
    if not isinstance(comment, str):
        return None
    comment = clean_text(comment)
    headline = _HEADLINE.search(comment)
    if not headline:
        return None
    change, patchset = event.get("change"), event.get("patchSet")
    if change is None and patchset is None:
        change, patchset = _change_from_log_urls(comment)
    if not isinstance(change, dict) or not isinstance(patchset, dict):
        raise EventError("a failure comment without change or patchSet")
    number = _number(change.get("number"), "change")
    ps = _number(patchset.get("number"), "patchset")
    project = clean_text(change.get("project", ""))
    if not filters.wants_project(project):
        return None
    created = _created(event.get("eventCreatedOn") or patchset.get("createdOn"))
    pipeline = headline.group("pipeline") or ""
    # A build listed twice (under two names, or the same line repeated) is one build: classified and named once.
    unique: dict[str, FailedJob] = {}
    for job in _failed_jobs(comment, pipeline):
        unique.setdefault(job.key, job)
    jobs = tuple(job for job in unique.values() if filters.wants_job(job.name))
    if not jobs:
        return None
    return FailureReport(
        change=number,
        patchset=ps,
        project=project,
        branch=clean_text(change.get("branch", "")),
        url=clean_text(change.get("url", "")),
        pipeline=pipeline or jobs[0].pipeline,
        created=created,
        jobs=jobs,
    )


def clean_text(value: Any) -> str:
    """Event text as a string that can be stored, logged and posted: JSON may
    carry lone surrogates (``"\\ud800"``), which no UTF-8 encoder takes."""
    return _LONE_SURROGATE.sub("\ufffd", value if isinstance(value, str) else str(value))


def _number(value: Any, what: str) -> int:
    """A change or patchset number: a positive integer Gerrit could have made."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise EventError(f"a failure comment with a bad {what} number {clean_text(value)[:40]!r}")
    text = value.strip() if isinstance(value, str) else str(value)
    if not text.isascii() or not text.isdigit() or len(text) > 10 or not 0 < int(text) <= MAX_NUMBER:
        raise EventError(f"a failure comment with a bad {what} number {clean_text(text)[:40]!r}")
    return int(text)


def _created(value: Any) -> dt.datetime:
    """When the event happened; now when it does not say. A time no clock
    could show (NaN, negative, past year 9999) is an error, not a guess."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "0")) or (
            isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0):
        return dt.datetime.now(UTC)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)) or (
            isinstance(value, str) and not _DECIMAL.fullmatch(value.strip())):
        raise EventError(f"bad eventCreatedOn {clean_text(value)[:40]!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or not 0 < seconds <= LATEST_EVENT:
        raise EventError(f"eventCreatedOn {clean_text(value)[:40]!r} is not a time")
    return dt.datetime.fromtimestamp(seconds, UTC)


_CHANGE_IN_LOG_URL = re.compile(r"/\d{2}/(?P<change>\d+)/(?P<patchset>\d+)/[\w.-]+/[^/]+/[0-9a-f]{7,32}/?$")


def _change_from_log_urls(comment: str) -> tuple[dict | None, dict | None]:
    """Legacy log URLs spell out change and patchset (``/31/64831/1/check/job/287c655``):
    enough to comment on an event that lost its ``change`` block."""
    for match in _JOB_LINE.finditer(comment):
        found = _CHANGE_IN_LOG_URL.search(match["url"])
        if found:
            return {"number": found["change"]}, {"number": found["patchset"]}
    return None, None


def _failed_jobs(comment: str, pipeline: str) -> Iterable[FailedJob]:
    for match in _JOB_LINE.finditer(comment):
        if match["result"] not in FAILED_RESULTS or "non-voting" in match["rest"]:
            continue
        url = match["url"]
        build = _BUILD_UUID.search(url)
        legacy = _LEGACY_LOG.search(url)
        yield FailedJob(
            name=match["name"],
            url=url,
            pipeline=pipeline or (legacy["pipeline"] if legacy else ""),
            result=match["result"],
            build_uuid=build["uuid"] if build else None,
            short_uuid=(build["uuid"][:7] if build else legacy["short"][:7] if legacy else None),
        )


def decode_event(line: bytes, where: str) -> Any:
    """One event line as JSON, or an EventError saying why not."""
    if len(line) > MAX_EVENT_BYTES:
        return EventError(f"{where}: an event of {len(line)} bytes (at most {MAX_EVENT_BYTES}) skipped")
    try:
        return json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return EventError(f"{where}: not UTF-8 (byte {exc.start + 1})")
    except RecursionError:
        return EventError(f"{where}: JSON nested too deep")
    except ValueError as exc:
        return EventError(f"{where}: not JSON: {exc}")


def describe(event: Any) -> str:
    """A short name for an event in log lines and errors."""
    if not isinstance(event, dict):
        return "a non-object event"
    change = event.get("change") if isinstance(event.get("change"), dict) else {}
    patchset = event.get("patchSet") if isinstance(event.get("patchSet"), dict) else {}

    def short(value: Any) -> str:
        return clean_text(value)[:40]

    return f"{short(event.get('type', '?'))} on {short(change.get('number', '?'))},{short(patchset.get('number', '?'))}"


__all__: Sequence[str] = ["EventFilter", "FailedJob", "FailureReport", "decode_event", "describe", "parse_failure"]
