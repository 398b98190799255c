"""The lines a fingerprint matched in a build, for the bug pages: each with
a link to its log file that scrolls to it (a ``#:~:text=`` fragment).

The stored result keeps (at best) the newest matching line's text but not
its file; the file comes from the index. One search per bug asks for the
lines of all its listed builds not looked up before (``(query) AND
build_uuid:(a OR b ...)``, never one search per line or per build), busiest
bugs first, for at most ``dashboard.line_search_seconds`` a run; each
build's answer (its lines, or that it has none) is kept in the dashboard's
memory, since a build's lines do not change once indexed. A build not looked up yet shows the stored line's
text and a link to the build's logs; a later run fills it in.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Sequence

from ..errors import RecheckError
from ..explain import line_link
from ..lucene import quote
from ..results import query_hash
from ..search import SearchBackend
from .memory import DashboardMemory

log = logging.getLogger(__name__)
LINES_PER_BUILD = 3
EXCERPT_CHARS = 300  # of each line, kept
SHOWN_CHARS = 200  # of its first line, shown
BUILDS_PER_SEARCH = 100  # builds named in one search (a longer query costs the engine more to parse)
# Lines one answer may hold, however few builds it names: reading a line
# costs little beside evaluating the query (at 20M indexed lines, 3,000
# lines took no longer than 300), and a roomier answer reaches the builds
# that match on few lines past those that match on many.
ANSWER_LINES = 5_000


@dataclass(frozen=True)
class MatchedLine:
    message: str
    filename: str
    link: str  # the file scrolled to the line, or "" when the file is not known


class LineFinder:
    def __init__(self, backend: SearchBackend, memory: DashboardMemory, seconds: float, now: float,
                 answer_lines: int = ANSWER_LINES) -> None:
        self.backend = backend
        self.answer_lines = answer_lines
        self.memory = memory
        self.seconds = seconds
        self.deadline: float | None = None  # no new search past this; the clock starts at the first
        self.now = now
        self.searches = 0

    def lines_of(self, uuids: Sequence[str], query: str) -> dict[str, list[list[str]]]:
        """uuid -> [message, filename, log_url] rows, newest first: from
        memory, else from one search for all the builds missing, while there
        is time left this run. Builds with no answer yet are left out."""
        digest = query_hash(query)
        found: dict[str, list[list[str]]] = {}
        missing = []
        for uuid in uuids:
            rows = self.memory.lines(uuid, digest)
            if rows is None:
                missing.append(uuid)
            else:
                found[uuid] = rows
        if missing and self.deadline is None:
            self.deadline = time.monotonic() + self.seconds
        for offset in range(0, len(missing), BUILDS_PER_SEARCH):
            if self.deadline is None or time.monotonic() >= self.deadline:
                break
            found.update(self._search(missing[offset:offset + BUILDS_PER_SEARCH], query, digest))
        return found

    def _search(self, uuids: list[str], query: str, digest: str) -> dict[str, list[list[str]]]:
        """The lines of ``uuids``. The answer is newest first across builds,
        so one build matching on many lines can fill it: while it is full,
        the builds it left out are asked again without the ones found
        (each round finds at least one). A build missing from an answer
        that was not full has no matching line in the index: it is kept as
        such, so later runs do not ask again."""
        found: dict[str, list[list[str]]] = {}
        pending = uuids
        while pending:
            self.searches += 1
            size = max(LINES_PER_BUILD * len(pending), self.answer_lines)
            wanted = " OR ".join(quote(uuid) for uuid in pending)
            try:
                hits = self.backend.search(f"({query}) AND build_uuid:({wanted})", size=size).hits
            except RecheckError as exc:
                log.warning("the lines a fingerprint matched could not be read from the index: %s", exc)
                break
            by_build: dict[str, list[list[str]]] = {}
            for hit in hits:  # newest first
                rows = by_build.setdefault(_text(hit.source.get("build_uuid")), [])
                if len(rows) < LINES_PER_BUILD:
                    rows.append([_text(hit.source.get("message"))[:EXCERPT_CHARS], _text(hit.source.get("filename")),
                                 _text(hit.source.get("log_url"))])
            if len(hits) < size:  # the whole answer: a build not in it matched no line
                found.update((uuid, by_build.get(uuid, [])) for uuid in pending)
                break
            found.update((uuid, by_build[uuid]) for uuid in pending if uuid in by_build)
            pending = [uuid for uuid in pending if uuid not in by_build]
            if self.deadline is None or time.monotonic() >= self.deadline:
                break  # the builds left out are asked again next run
        self.memory.store_lines(found, digest, self.now)
        return found


def excerpt(message: str) -> str:
    """A line's first line, cut to SHOWN_CHARS (a log line may carry a whole traceback)."""
    first = next((part.strip() for part in message.splitlines() if part.strip()), "")
    return first if len(first) <= SHOWN_CHARS else first[:SHOWN_CHARS].rstrip() + "…"


def matched_lines(rows: list[list[str]] | None, stored_message: str) -> list[MatchedLine]:
    """The lines to show for one build: those found, else the stored newest line's text alone."""
    if rows:
        return [MatchedLine(excerpt(message), filename, line_link(url, excerpt(message).rstrip("…")))
                for message, filename, url in rows]
    message = excerpt(stored_message)
    return [MatchedLine(message, "", "")] if message else []


def _text(value: object) -> str:
    if isinstance(value, (list, tuple)):
        value = value[0] if value else ""
    return "" if value is None else str(value)


__all__ = ["LineFinder", "MatchedLine", "matched_lines"]
