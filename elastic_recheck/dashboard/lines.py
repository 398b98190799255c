"""The lines a fingerprint matched in a build, for the bug pages: each with
a link to its log file that scrolls to it (a ``#:~:text=`` fragment).

The stored result keeps the newest matching line's text but not its file;
the file comes from the index: one search per (build, fingerprint), never
one per line, at most ``dashboard.line_searches`` a run (newest builds of
the busiest bugs first), each answer kept in the dashboard's memory, since a
build's lines do not change once indexed. A build not looked up yet shows
the stored line's text and a link to the build's logs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..errors import RecheckError
from ..explain import line_link
from ..lucene import quote
from ..results import query_hash
from ..search import SearchBackend
from .memory import DashboardMemory

log = logging.getLogger(__name__)
LINES_PER_BUILD = 3
EXCERPT_CHARS = 300


@dataclass(frozen=True)
class MatchedLine:
    message: str
    filename: str
    link: str  # the file scrolled to the line, or "" when the file is not known


class LineFinder:
    def __init__(self, backend: SearchBackend, memory: DashboardMemory, budget: int, now: float) -> None:
        self.backend = backend
        self.memory = memory
        self.budget = budget  # searches left this run
        self.now = now
        self.searched = 0

    def lines(self, uuid: str, query: str, stored_message: str) -> list[MatchedLine]:
        """The build's matching lines (newest first), from memory, the index
        while the budget lasts, else the stored newest line alone."""
        digest = query_hash(query)
        rows = self.memory.lines(uuid, digest)
        if rows is None and self.budget > 0:
            self.budget -= 1
            self.searched += 1
            try:
                found = self.backend.search(f"({query}) AND build_uuid:{quote(uuid)}", size=LINES_PER_BUILD).hits
            except RecheckError as exc:
                log.warning("the lines fingerprint query matched in build %s could not be read: %s", uuid, exc)
                found = []
            else:
                rows = [[_text(h.source.get("message"))[:EXCERPT_CHARS], _text(h.source.get("filename")),
                         _text(h.source.get("log_url"))] for h in found]
                self.memory.store_lines(uuid, digest, rows, self.now)
        if rows:
            return [MatchedLine(message, filename, line_link(url, message)) for message, filename, url in rows]
        message = " ".join(stored_message.split())[:EXCERPT_CHARS]
        return [MatchedLine(message, "", "")] if message else []


def _text(value: object) -> str:
    if isinstance(value, (list, tuple)):
        value = value[0] if value else ""
    return "" if value is None else str(value)


__all__ = ["LineFinder", "MatchedLine"]
