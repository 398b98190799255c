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
from typing import Iterable, Iterator

from .._logline import line_head
from ..search import epoch_micros

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
