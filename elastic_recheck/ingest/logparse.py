"""CI log files → log events: one per line, continuation lines folded in.

An event starts at a line carrying a timestamp; lines without one (Python
tracebacks, wrapped output) belong to the event before them, the way
logstash's multiline filter folded them for the existing fingerprints.

A line's head (ISO or syslog timestamp, then the level within 80 bytes) is
read by ``_logline.line_head``, in C: it runs on every line ingested, and
tests/logline_reference.py is the same reading as regular expressions.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

from ..search import epoch_micros

from ..native import without

try:
    from .._logline import line_head

    NATIVE_HEAD = True
except ImportError:  # not built: the same reading in Python (said on first use)
    from .line_head import line_head

    NATIVE_HEAD = False

try:
    from .._logline import EventParser as NativeEventParser
except ImportError:  # not built, or an older build of the extension: the Python reading below
    NativeEventParser = None

MAX_LINE_BYTES = 64 * 1024
MAX_FOLDED_LINES = 500
MAX_MESSAGE_CHARS = 256 * 1024
_DAY_MICROS = 86_400 * 1_000_000


@dataclass
class LogEvent:
    micros: int  # the time, as microseconds since the epoch (search.epoch_micros)
    message: str
    level: str | None
    lineno: int


def _decode(raw: bytes, limit: int | None) -> str:
    if limit is not None and len(raw) > limit:
        dropped = len(raw) - limit
        return raw[:limit].decode("utf-8", "replace") + f" [... {dropped} bytes truncated]"
    return raw.decode("utf-8", "replace")


def parse_lines(
    lines: Iterable[bytes],
    default_time: dt.datetime,
    detect_level: bool = True,
    max_line_bytes: int | None = MAX_LINE_BYTES,
) -> Iterator[LogEvent]:
    """Events of one log file. Bytes in, so undecodable input never stops it.
    A line longer than ``max_line_bytes`` is cut with a marker (None: the
    lines come cut already, as ``streams.bounded_lines`` gives them)."""
    if not NATIVE_HEAD:
        without("elastic_recheck._logline", "reading log lines' times and levels")
    current: LogEvent | None = None
    folded: list[str] = []
    last_time = epoch_micros(default_time)
    year = default_time.year
    future = last_time + _DAY_MICROS  # later than this, a syslog line (no year) is from the year before

    def finish() -> LogEvent:
        assert current is not None
        if folded:
            text = "\n".join([current.message, *folded])
            if len(text) > MAX_MESSAGE_CHARS:
                text = text[:MAX_MESSAGE_CHARS] + " [... truncated]"
            current.message = text
            folded.clear()
        return current

    for lineno, raw in enumerate(lines, 1):
        raw = raw.rstrip(b"\r\n")
        head = line_head(raw, year, detect_level)
        if head is not None and head[0] > future:  # "Dec 31 23:59:58" read on January 1st
            head = line_head(raw, year - 1, detect_level) or head  # the same for an ISO line
        if head is None and current is not None and len(folded) < MAX_FOLDED_LINES:
            if raw.strip():
                folded.append(_decode(raw, max_line_bytes))
            continue
        if current is not None:
            yield finish()
            current = None
        if not raw.strip():
            continue
        level = None
        if head is not None:
            last_time, level = head
        current = LogEvent(last_time, _decode(raw, max_line_bytes), level, lineno)
        if head is None:  # a file without timestamps: every line stands alone
            yield finish()
            current = None
    if current is not None:
        yield finish()


Events = tuple[list[int], list[Any], list[str]]  # micros, levels (str or None), messages: one entry per event


class PyEventParser:
    """:func:`parse_lines` fed a batch of lines at a time, giving the events
    each batch finished as three lists (no object per event), DEBUG events
    dropped unless ``keep_debug``. ``_logline.EventParser`` is the same in C;
    this one is for an install without a compiler. Lines come cut to
    ``ingest.max_line_bytes`` already (``streams.bounded_line_batches``)."""

    def __init__(self, start_micros: int, year: int, detect_level: bool, keep_debug: bool) -> None:
        if not NATIVE_HEAD:
            without("elastic_recheck._logline", "reading log lines' times and levels")
        self.year = year
        self.detect_level = detect_level
        self.keep_debug = keep_debug
        self.future = start_micros + _DAY_MICROS
        self.last_time = start_micros
        self.last = start_micros  # the time of the latest event read, DEBUG ones included
        self.skipped_debug = 0
        self._current: tuple[int, str, str | None] | None = None
        self._folded: list[str] = []
        self._out: Events = ([], [], [])

    def feed(self, lines: Sequence[bytes]) -> Events:
        self._out = out = ([], [], [])
        year, detect_level, folded = self.year, self.detect_level, self._folded
        for raw in lines:
            raw = raw.rstrip(b"\r\n")
            head = line_head(raw, year, detect_level)
            if head is not None and head[0] > self.future:
                head = line_head(raw, year - 1, detect_level) or head
            if head is None and self._current is not None and len(folded) < MAX_FOLDED_LINES:
                if raw.strip():
                    folded.append(raw.decode("utf-8", "replace"))
                continue
            if self._current is not None:
                self._finish()
            if not raw.strip():
                continue
            level = None
            if head is not None:
                self.last_time, level = head
            self._current = (self.last_time, raw.decode("utf-8", "replace"), level)
            if head is None:
                self._finish()
        return out

    def finish(self) -> Events:
        self._out = out = ([], [], [])
        if self._current is not None:
            self._finish()
        return out

    def _finish(self) -> None:
        assert self._current is not None
        micros, message, level = self._current
        self._current = None
        if self._folded:
            message = "\n".join([message, *self._folded])
            if len(message) > MAX_MESSAGE_CHARS:
                message = message[:MAX_MESSAGE_CHARS] + " [... truncated]"
            self._folded.clear()
        self.last = micros
        if level == "DEBUG" and not self.keep_debug:
            self.skipped_debug += 1
            return
        self._out[0].append(micros)
        self._out[1].append(level)
        self._out[2].append(message)


def event_parser(default_time: dt.datetime, detect_level: bool, keep_debug: bool,
                 native: bool | None = None) -> Any:
    """The events of one log file, a batch of lines at a time: the C reader
    when it is built (``native=False`` forces the Python one)."""
    kind = NativeEventParser if native is not False and NativeEventParser is not None else PyEventParser
    if native and kind is PyEventParser:
        raise RuntimeError("the native event parser is not built")
    return kind(epoch_micros(default_time), default_time.year, detect_level, keep_debug)
