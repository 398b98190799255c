"""A log line's head (its time and level) read in Python: what
``elastic_recheck/_logline.c`` does faster, the specification the native
code is property-tested against, and what ingest runs where the extension
is not built.

One change from the regexes ingest used before: an offset of a day or more
(``+9900``) makes no timestamp instead of an uncaught ValueError.
"""

from __future__ import annotations

import datetime as dt
import re

UTC = dt.timezone.utc
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
_ISO = re.compile(
    rb"^\s?(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?(Z|[+-]\d\d:?\d\d)?"
)
_SYSLOG = re.compile(rb"^([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))? ")
_MONTHS = {m: i for i, m in enumerate(
    (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"), 1)}
_LEVEL = re.compile(rb"(?:^|[\s\]:|])(DEBUG|INFO|AUDIT|WARNING|WARN|ERROR|CRITICAL|TRACE|FATAL)(?=[\s:])")
_LEVEL_NAMES = {b"WARN": "WARNING", b"FATAL": "CRITICAL"}


def _timestamp(line: bytes, year: int) -> tuple[dt.datetime, int] | None:
    match = _ISO.match(line)
    if match:
        year_, month, day, hour, minute, second, fraction, zone = match.groups()
        tz = UTC
        micro = int((fraction or b"0").ljust(6, b"0")[:6])
        try:
            if zone and zone != b"Z":
                text = zone.decode().replace(":", "")
                offset = dt.timedelta(hours=int(text[1:3]), minutes=int(text[3:5]))
                tz = dt.timezone(offset if text[0] == "+" else -offset)
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


def line_head(line: bytes, year: int, detect_level: bool) -> tuple[int, str | None] | None:
    stamp = _timestamp(line, year)
    if stamp is None:
        return None
    moment, start = stamp
    delta = moment - _EPOCH
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    level = None
    if detect_level:
        match = _LEVEL.search(line, start, start + 80)
        if match:
            level = _LEVEL_NAMES.get(match.group(1), match.group(1).decode())
    return micros, level
