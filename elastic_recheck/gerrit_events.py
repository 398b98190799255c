"""Gerrit events from CI → the failed jobs a review comment is about.

Reading a CI comment (both formats, every guard against hostile events) is
:mod:`elastic_recheck.build_sources.gerrit`'s job; this module keeps the
review comment's view of it (:class:`FailureReport`: the failed voting
jobs) and the event stream's framing (one event a line, its size limit).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, Sequence

from .build_sources.gerrit import MAX_EVENT_BYTES, ChangeReport, EventFilter, JobLine, clean_text, read_comment
from .builds import Build
from .errors import EventError

UTC = dt.timezone.utc


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

    @classmethod
    def from_line(cls, line: JobLine) -> "FailedJob":
        return cls(line.name, line.url, line.pipeline, line.result, line.build_uuid, line.short_uuid)

    def build(self, report: ChangeReport) -> Build:
        """The job as the project's build model: the same Build (and key) the
        report's full reading gave, which queued it (a failed job is voting)."""
        return JobLine(self.name, self.url, self.result, True, self.pipeline, self.build_uuid,
                       self.short_uuid).build(report)


@dataclass(frozen=True)
class FailureReport(ChangeReport):
    jobs: tuple[FailedJob, ...] = field(default=())


def parse_failure(event: Any, filters: EventFilter = EventFilter()) -> FailureReport | None:
    """The failed voting jobs an event reports; None for events that report
    none (other types, other authors, successes, non-voting only). Raises
    EventError for a CI failure comment that is missing what we need.

    The review comment's view of :func:`~elastic_recheck.build_sources.gerrit.parse_report`:
    the same reading of the comment, keeping its failed voting jobs."""
    reading = read_comment(event, filters, failed_only=True)
    if reading is None:
        return None
    where, lines = reading
    return FailureReport(**vars(where), jobs=tuple(FailedJob.from_line(line) for line in lines))


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


__all__: Sequence[str] = [
    "MAX_EVENT_BYTES", "EventFilter", "FailedJob", "FailureReport", "clean_text", "decode_event", "describe",
    "parse_failure",
]
