"""CI log files → log events: one per line, continuation lines folded in.

An event starts at a line carrying a timestamp; lines without one (Python
tracebacks, wrapped output) belong to the event before them, the way
logstash's multiline filter folded them for the existing fingerprints.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Iterable, Iterator

UTC = dt.timezone.utc
MAX_LINE_BYTES = 64 * 1024
MAX_FOLDED_LINES = 500
MAX_MESSAGE_CHARS = 256 * 1024

_ISO = re.compile(
    rb"^\s?(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?(Z|[+-]\d\d:?\d\d)?"
)
_SYSLOG = re.compile(rb"^([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))? ")
_MONTHS = {m: i for i, m in enumerate(
    (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"), 1)}
_LEVEL = re.compile(rb"(?:^|[\s\]:|])(DEBUG|INFO|AUDIT|WARNING|WARN|ERROR|CRITICAL|TRACE|FATAL)(?=[\s:])")
_LEVEL_NAMES = {b"WARN": "WARNING", b"FATAL": "CRITICAL"}


@dataclass
class LogEvent:
    timestamp: dt.datetime
    message: str
    level: str | None
    lineno: int


def _timestamp(line: bytes, year: int) -> tuple[dt.datetime, int] | None:
    """The line's timestamp and where its text after it starts."""
    match = _ISO.match(line)
    if match:
        year_, month, day, hour, minute, second, fraction, zone = match.groups()
        tz = UTC
        if zone and zone != b"Z":
            text = zone.decode().replace(":", "")
            offset = dt.timedelta(hours=int(text[1:3]), minutes=int(text[3:5]))
            tz = dt.timezone(offset if text[0] == "+" else -offset)
        micro = int((fraction or b"0").ljust(6, b"0")[:6])
        try:
            return dt.datetime(int(year_), int(month), int(day), int(hour), int(minute), int(second), micro,
                               tzinfo=tz), match.end()
        except ValueError:
            return None
    match = _SYSLOG.match(line)
    if match and match.group(1) in _MONTHS:
        month_name, day, hour, minute, second, fraction = match.groups()
        micro = int((fraction or b"0").ljust(6, b"0")[:6])
        try:
            return dt.datetime(year, _MONTHS[month_name], int(day), int(hour), int(minute), int(second), micro,
                               tzinfo=UTC), match.end()
        except ValueError:
            return None
    return None


def _decode(raw: bytes) -> str:
    if len(raw) > MAX_LINE_BYTES:
        dropped = len(raw) - MAX_LINE_BYTES
        return raw[:MAX_LINE_BYTES].decode("utf-8", "replace") + f" [... {dropped} bytes truncated]"
    return raw.decode("utf-8", "replace")


def parse_lines(
    lines: Iterable[bytes], default_time: dt.datetime, detect_level: bool = True
) -> Iterator[LogEvent]:
    """Events of one log file. Bytes in, so undecodable input never stops it."""
    current: LogEvent | None = None
    folded: list[str] = []
    last_time = default_time
    year = default_time.year

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
        stamp = _timestamp(raw, year)
        if stamp is None and current is not None and len(folded) < MAX_FOLDED_LINES:
            if raw.strip():
                folded.append(_decode(raw))
            continue
        if current is not None:
            yield finish()
            current = None
        if not raw.strip():
            continue
        level = None
        if stamp is not None:
            last_time, start = stamp
            if detect_level:
                match = _LEVEL.search(raw, start, start + 80)
                if match:
                    level = _LEVEL_NAMES.get(match.group(1), match.group(1).decode())
        current = LogEvent(last_time, _decode(raw), level, lineno)
        if stamp is None:  # a file without timestamps: every line stands alone
            yield finish()
            current = None
    if current is not None:
        yield finish()
