"""Which day indices (``logstash-%Y.%m.%d``) a time window touches.

A cluster with a year of logs has hundreds of day indices; a 10-day query
that names only the ten that exist is answered by those shards alone, where
``logstash-*`` would fan out to every shard of the year.
"""

from __future__ import annotations

import datetime as dt
import re

from ..errors import ConfigError
from . import TimeWindow

UTC = dt.timezone.utc
# Past this many names the request line gets long (Elasticsearch refuses
# lines over 4 KiB); the wildcard and the time filter do the same job.
MAX_NAMED = 100
_DIRECTIVE = re.compile(r"%[a-zA-Z%]")


class DayIndices:
    """Index names from a strftime ``pattern`` evaluated in UTC."""

    def __init__(self, pattern: str) -> None:
        if not pattern or pattern != pattern.strip() or any(c in pattern for c in ' ,"*\\/?#<>|'):
            raise ConfigError(f"cluster.index_pattern {pattern!r}: not a usable index name pattern")
        literal = _DIRECTIVE.sub("", pattern)
        if literal != literal.lower():
            raise ConfigError(f"cluster.index_pattern {pattern!r}: index names must be lower case")
        self.pattern = pattern
        prefix = _DIRECTIVE.split(pattern, maxsplit=1)[0]
        self.wildcard = prefix + "*" if _DIRECTIVE.search(pattern) else pattern

    def name(self, moment: dt.datetime) -> str:
        """The index a document of this moment goes to."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime(self.pattern)

    def names(self, window: TimeWindow, now: dt.datetime | None = None) -> list[str] | None:
        """The names of every day in the window, oldest first; None when the
        window is open at the start or spans too many days to name."""
        if window.start is None:
            return None
        now = now or dt.datetime.now(UTC)
        first = _utc(window.start).date()
        last = _utc(window.end).date() if window.end else max(now.astimezone(UTC).date(), first)
        if (last - first).days >= MAX_NAMED:
            return None
        names: list[str] = []
        day = first
        while day <= last:
            name = self.name(dt.datetime(day.year, day.month, day.day, tzinfo=UTC))
            if name not in names:  # a weekly or monthly pattern repeats
                names.append(name)
            day += dt.timedelta(days=1)
        return names

    def matches(self, name: str) -> bool:
        """Whether an existing index is one of ours (``wildcard`` can be broader)."""
        return re.fullmatch(self._regex(), name) is not None

    def _regex(self) -> str:
        out = []
        for part in re.split(r"(%[a-zA-Z%])", self.pattern):
            if part == "%%":
                out.append("%")
            elif _DIRECTIVE.fullmatch(part):
                out.append(r"[0-9a-z]+")
            else:
                out.append(re.escape(part))
        return "".join(out)


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
