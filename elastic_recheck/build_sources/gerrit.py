"""Gerrit ``comment-added`` events from CI → the builds they report.

Two comment formats occur: Zuul v3 (``Build failed (gate pipeline).``, build
URLs ending in the build uuid) and the legacy Jenkins/Zuul v2 one
(``Build succeeded.``, log URLs ending in a short uuid, the pipeline in the
path). Every job line becomes a :class:`Build`, successes and non-voting
jobs too: successful builds are what a fingerprint's precision is measured
against.

Every event is hostile: the guards here (sizes, numbers, times, lone
surrogates, regexes that stay linear on any comment) are the ones every
reader of Gerrit events uses.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..builds import FAILED_STATUSES, Build
from ..errors import EventError
from ..ingest.fetch import is_http_url

UTC = dt.timezone.utc
DEFAULT_CI_ACCOUNTS = ("zuul", "jenkins")
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
_HEADLINE = re.compile(
    r"^[ \t]*Build (?P<outcome>failed|succeeded)(?: \((?P<pipeline>[\w.-]+) pipeline\))?\.", re.M)
_JOB_LINE = re.compile(
    r"^- (?P<name>\S+) (?P<url>\S+) : (?P<result>[A-Z_]+)(?P<rest>[^\n]*)$", re.M
)
_BUILD_UUID = re.compile(r"/build/(?P<uuid>[0-9a-f]{32})/?$")
_LEGACY_LOG = re.compile(r"/(?P<pipeline>[\w.-]+)/(?P<job>[^/]+)/(?P<short>[0-9a-f]{7,32})/?$")
_CHANGE_IN_LOG_URL = re.compile(r"/\d{2}/(?P<change>\d+)/(?P<patchset>\d+)/[\w.-]+/[^/]+/[0-9a-f]{7,32}/?$")


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


@dataclass(frozen=True)
class ChangeReport:
    """What a CI comment says about where it was posted: the change, and when."""

    change: int
    patchset: int
    project: str
    branch: str
    url: str
    pipeline: str
    created: dt.datetime

    @property
    def key(self) -> str:
        return f"{self.change},{self.patchset}"


@dataclass(frozen=True)
class BuildReport(ChangeReport):
    """One CI comment: the change it is on and every build it lists."""

    builds: tuple[Build, ...] = field(default=())

    @property
    def failed(self) -> tuple[Build, ...]:
        """The failed voting builds: the ones a review comment is about."""
        return tuple(build for build in self.builds if build.failed and build.voting)


@dataclass(frozen=True)
class JobLine:
    """One ``- name url : RESULT ...`` line of a CI comment, as written."""

    name: str
    url: str
    result: str
    voting: bool
    pipeline: str  # the headline's, else the one in a legacy log URL's path
    build_uuid: str | None  # Zuul v3 build URLs carry the full uuid
    short_uuid: str | None  # legacy log URLs carry the first 7 characters

    @property
    def key(self) -> str:
        return self.build_uuid or self.short_uuid or self.url

    def build(self, report: ChangeReport) -> Build:
        """The line as a Build. A URL that is not http(s) is no log or build
        URL of ours: it is dropped here, so nothing downstream fetches it."""
        url = self.url if is_http_url(self.url) else ""
        return Build(
            job=self.name, status=self.result, uuid=self.build_uuid or "",
            short_uuid=self.short_uuid or "", change=report.change, patchset=report.patchset,
            project=report.project, branch=report.branch, pipeline=self.pipeline or report.pipeline,
            voting=self.voting,
            log_url="" if self.build_uuid else url, build_url=url if self.build_uuid else "",
            source="gerrit",
        )


def parse_report(event: Any, filters: EventFilter = EventFilter()) -> BuildReport | None:
    """Every build a CI comment reports ("Build failed" or "Build succeeded");
    None for events that report none (other types, other authors, other
    projects, no job lines left after the job filters). Raises EventError for
    a CI comment that is missing what we need."""
    reading = read_comment(event, filters)
    if reading is None:
        return None
    where, lines = reading
    return BuildReport(**vars(where), builds=tuple(line.build(where) for line in lines))


def read_comment(event: Any, filters: EventFilter, failed_only: bool = False
                 ) -> tuple[ChangeReport, tuple[JobLine, ...]] | None:
    """A CI comment's change and job lines (one per build, in the comment's
    order, filtered by job name). ``failed_only``: only "Build failed"
    comments, and only their failed voting lines (the review comment's view)."""
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
    if not headline or (failed_only and headline["outcome"] != "failed"):
        return None
    change, patchset = event.get("change"), event.get("patchSet")
    if change is None and patchset is None:
        change, patchset = _change_from_log_urls(comment)
    if not isinstance(change, dict) or not isinstance(patchset, dict):
        raise EventError(f"a {_what(failed_only)} without change or patchSet")
    number = event_number(change.get("number"), "change", _what(failed_only))
    ps = event_number(patchset.get("number"), "patchset", _what(failed_only))
    project = clean_text(change.get("project", ""))
    if not filters.wants_project(project):
        return None
    created = event_time(event.get("eventCreatedOn") or patchset.get("createdOn"))
    pipeline = headline.group("pipeline") or ""
    # A build listed twice (under two names, or the same line repeated) is one build: classified and named once.
    unique: dict[str, JobLine] = {}
    for line in _job_lines(comment, pipeline):
        if failed_only and (line.result not in FAILED_STATUSES or not line.voting):
            continue
        unique.setdefault(line.key, line)
    lines = tuple(line for line in unique.values() if filters.wants_job(line.name))
    if not lines:
        return None
    where = ChangeReport(number, ps, project, clean_text(change.get("branch", "")), clean_text(change.get("url", "")),
                         pipeline or lines[0].pipeline, created)
    return where, lines


def _what(failed_only: bool) -> str:
    return "failure comment" if failed_only else "CI comment"


def clean_text(value: Any) -> str:
    """Event text as a string that can be stored, logged and posted: JSON may
    carry lone surrogates (``"\\ud800"``), which no UTF-8 encoder takes."""
    return _LONE_SURROGATE.sub("\ufffd", value if isinstance(value, str) else str(value))


def event_number(value: Any, what: str, where: str = "failure comment") -> int:
    """A change or patchset number: a positive integer Gerrit could have made."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise EventError(f"a {where} with a bad {what} number {clean_text(value)[:40]!r}")
    text = value.strip() if isinstance(value, str) else str(value)
    if not text.isascii() or not text.isdigit() or len(text) > 10 or not 0 < int(text) <= MAX_NUMBER:
        raise EventError(f"a {where} with a bad {what} number {clean_text(text)[:40]!r}")
    return int(text)


def event_time(value: Any) -> dt.datetime:
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


def _change_from_log_urls(comment: str) -> tuple[dict | None, dict | None]:
    """Legacy log URLs spell out change and patchset (``/31/64831/1/check/job/287c655``):
    enough to comment on an event that lost its ``change`` block."""
    for match in _JOB_LINE.finditer(comment):
        found = _CHANGE_IN_LOG_URL.search(match["url"])
        if found:
            return {"number": found["change"]}, {"number": found["patchset"]}
    return None, None


def _job_lines(comment: str, pipeline: str) -> Iterator[JobLine]:
    for match in _JOB_LINE.finditer(comment):
        url = match["url"]
        build = _BUILD_UUID.search(url)
        legacy = _LEGACY_LOG.search(url)
        yield JobLine(
            name=match["name"],
            url=url,
            result=match["result"],
            voting="non-voting" not in match["rest"],
            pipeline=pipeline or (legacy["pipeline"] if legacy else ""),
            build_uuid=build["uuid"] if build else None,
            short_uuid=(build["uuid"][:7] if build else legacy["short"][:7] if legacy else None),
        )


__all__ = [
    "BuildReport", "ChangeReport", "DEFAULT_CI_ACCOUNTS", "EventFilter", "JobLine", "MAX_EVENT_BYTES",
    "clean_text", "event_number", "event_time", "parse_report", "read_comment",
]
