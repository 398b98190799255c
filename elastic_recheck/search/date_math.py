"""Elasticsearch's reading of a date in a query on ``@timestamp``.

The index template maps ``@timestamp`` as a ``date`` (format
``strict_date_optional_time||epoch_millis``, UTC), so a bound is an ISO date
with optional parts (``2026``, ``2026-11``, ``2026-11-20T10:00:00.5+01:00``),
epoch milliseconds, or date math (``now-7d/d``, ``2026-11-20||+1M``).

What a bound means depends on its side, as in Elasticsearch: a bound that
names a span (a day, ``now/d``) is rounded *down* to its start for ``gte``
and ``lt``, and *up* to its last millisecond for ``lte`` and ``gt``. So
``[2026-11-20 TO 2026-11-20]`` is the whole day, and ``{2026-11-20 TO *]``
starts the next day. ``@timestamp:2026-11-20`` is the range
``[2026-11-20 TO 2026-11-20]``.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re

UTC = dt.timezone.utc
_DATE = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?)?)?)?"
)
_EPOCH_MILLIS = re.compile(r"-?\d+(?:\.\d{1,6})?")
_UNITS = "yMwdhHms"
_MILLI = dt.timedelta(milliseconds=1)


def bound_millis(text: str, round_up: bool, now: dt.datetime) -> int:
    """One range bound as epoch milliseconds (``round_up``: the last
    millisecond of the span it names), or ValueError saying why not."""
    if text.startswith("now"):
        return _millis(_math(text[3:], now.astimezone(UTC), round_up))
    date, sep, math = text.partition("||")
    if not sep:
        return _millis(_date(text, round_up))
    return _millis(_math(math, _date(date, False), round_up))


def range_millis(low: str | None, high: str | None, include_low: bool, include_high: bool,
                 now: dt.datetime) -> tuple[int | None, int | None]:
    """Inclusive epoch-millisecond bounds (None: open), as Elasticsearch's
    date field turns a range query into a point range."""
    lo = hi = None
    if low is not None:
        lo = bound_millis(low, not include_low, now) + (0 if include_low else 1)
    if high is not None:
        hi = bound_millis(high, include_high, now) - (0 if include_high else 1)
    return lo, hi


def _millis(moment: dt.datetime) -> int:
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _date(text: str, round_up: bool) -> dt.datetime:
    match = _DATE.fullmatch(text)
    if match:
        year, month, day, hour, minute, second, fraction, zone = match.groups()
        try:
            y = int(year)
            m = int(month) if month else 12 if round_up else 1
            last_day = calendar.monthrange(y, m)[1] if 1 <= m <= 12 else 31
            d = int(day) if day else last_day if round_up else 1
            h = int(hour) if hour else 23 if round_up else 0
            mi = int(minute) if minute else 59 if round_up else 0
            s = int(second) if second else 59 if round_up else 0
            if fraction:
                micros = int((fraction + "000000")[:6])
            else:
                micros = 999_999 if round_up else 0
            tz = UTC
            if zone and zone != "Z":
                sign = 1 if zone[0] == "+" else -1
                digits = zone[1:].replace(":", "")
                offset = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
                tz = dt.timezone(sign * offset)
            return dt.datetime(y, m, d, h, mi, s, micros, tzinfo=tz)
        except ValueError as exc:
            raise ValueError(f"not a valid date: {text[:40]!r} ({exc})") from None
    if _EPOCH_MILLIS.fullmatch(text):
        if text.isdigit() and len(text) > 4 and len(text) < 10:
            raise ValueError(f"{text!r} is ambiguous: Elasticsearch reads 5 to 9 digits as a year; "
                             "give an ISO date or epoch milliseconds of 10 digits or more")
        try:
            return dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(milliseconds=int(float(text)))
        except OverflowError:
            raise ValueError(f"epoch milliseconds out of range: {text[:40]!r}") from None
    raise ValueError(f"not a date: {text[:40]!r} (give an ISO date such as 2026-05-01T12:00:00Z, epoch "
                     "milliseconds, or date math such as now-7d)")


def _math(math: str, moment: dt.datetime, round_up: bool) -> dt.datetime:
    i = 0
    while i < len(math):
        op = math[i]
        i += 1
        if op not in "/+-":
            raise ValueError(f"date math: operator {op!r} is not supported in {math!r}")
        digits = re.match(r"\d*", math[i:]).group()
        i += len(digits)
        if i >= len(math):
            raise ValueError(f"date math is truncated: {math!r}")
        amount = int(digits) if digits else 1
        if op == "/" and amount != 1:
            raise ValueError(f"date math: rounding '/' takes a single unit, not {math!r}")
        unit = math[i]
        i += 1
        if unit not in _UNITS:
            raise ValueError(f"date math: unit {unit!r} is not supported in {math!r} (use y M w d h m s)")
        try:
            moment = _round(moment, unit, round_up) if op == "/" else _add(moment, unit, amount * (1 if op == "+" else -1))
        except (OverflowError, ValueError):
            raise ValueError(f"date math out of range: {math!r}") from None
    return moment


def _add(moment: dt.datetime, unit: str, amount: int) -> dt.datetime:
    if unit in "yM":
        months = moment.month - 1 + amount * (12 if unit == "y" else 1)
        year, month = moment.year + months // 12, months % 12 + 1
        day = min(moment.day, calendar.monthrange(year, month)[1])
        return moment.replace(year=year, month=month, day=day)
    seconds = {"w": 7 * 86400, "d": 86400, "h": 3600, "H": 3600, "m": 60, "s": 1}[unit]
    return moment + dt.timedelta(seconds=amount * seconds)


def _round(moment: dt.datetime, unit: str, round_up: bool) -> dt.datetime:
    """The start of the unit holding ``moment``, or with ``round_up`` its last millisecond."""
    if unit == "y":
        start = moment.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    elif unit == "M":
        start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    elif unit == "w":
        start = (moment - dt.timedelta(days=moment.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    elif unit == "d":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    elif unit in "hH":
        start = moment.replace(minute=0, second=0, microsecond=0)
    elif unit == "m":
        start = moment.replace(second=0, microsecond=0)
    else:
        start = moment.replace(microsecond=0)
    if not round_up:
        return start
    return _add(start, unit, 1) - _MILLI
