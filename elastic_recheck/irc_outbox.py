"""Lines for IRC written by another process (the dashboard run), sent by the daemon.

The daemon owns the one IRC connection; a dashboard run that finds an
incident or a regression must not open a second one (a second nick, its own
flood limits, its own reconnects). It writes the announcement here, in a
small SQLite file in the data dir, and the daemon, about once a second,
routes what is waiting to the channels that take that kind of event and
marks it sent. A line is delivered once, by whichever daemon takes it first.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

from .errors import RecheckError
from .irc_messages import KINDS, Announcement, ChannelRule, route
from .private_paths import private_dir, private_file
from .sanitize import strip_controls
from .sqlite_files import open_database

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,         -- positive | negative: which channels take it
    projects TEXT NOT NULL,     -- JSON list: the channels' project filters apply
    text TEXT NOT NULL,
    posted REAL NOT NULL,
    sent REAL                   -- NULL until a daemon queued it for its channels
);
"""
TEXT_CHARS = 2_000  # one announcement: a few IRC lines at most
KEPT_SECONDS = 7 * 86400.0  # sent or not, older lines are dropped (no daemon ran to take them)
MAX_WAITING = 1_000  # unsent lines kept; the oldest go first


class Outbox:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None

    def _open(self, create: bool) -> sqlite3.Connection | None:
        if self._db is None:
            if not create and not self.path.exists():
                return None
            try:
                private_dir(self.path.parent)
                private_file(self.path)
                db = open_database(self.path, _SCHEMA, synchronous="FULL", timeout=10)
            except (OSError, sqlite3.Error) as exc:
                raise RecheckError(f"{self.path}: cannot open the IRC outbox: {exc}") from None
            self._db = db
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def post(self, items: Iterable[Announcement], now: float | None = None) -> int:
        """Queue announcements for the daemon; returns how many."""
        now = time.time() if now is None else now
        rows = [(a.kind, json.dumps(sorted(a.projects)), strip_controls(a.text)[:TEXT_CHARS], now)
                for a in items if a.kind in KINDS]
        db = self._open(create=True)
        assert db is not None
        try:
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.executemany("INSERT INTO outbox (kind, projects, text, posted) VALUES (?,?,?,?)", rows)
                db.execute("DELETE FROM outbox WHERE posted < ?", (now - KEPT_SECONDS,))
                db.execute("DELETE FROM outbox WHERE sent IS NULL AND id NOT IN "
                           "(SELECT id FROM outbox WHERE sent IS NULL ORDER BY id DESC LIMIT ?)", (MAX_WAITING,))
        except sqlite3.Error as exc:
            raise RecheckError(f"{self.path}: cannot write the IRC outbox: {exc}") from None
        return len(rows)

    def waiting(self) -> list[Announcement]:
        db = self._open(create=False)
        if db is None:
            return []
        found = (_announcement(kind, projects, text) for kind, projects, text in
                 db.execute("SELECT kind, projects, text FROM outbox WHERE sent IS NULL ORDER BY id"))
        return [item for item in found if item is not None]

    def deliver(self, send: Callable[[str, str], None], rules: Sequence[ChannelRule]) -> int:
        """Route every waiting line to its channels through ``send`` (the
        bot's queue: never blocks) and mark it sent. Returns lines sent.
        Never raises: IRC announcements must not stop the daemon."""
        try:
            db = self._open(create=False)
            if db is None or db.execute("SELECT 1 FROM outbox WHERE sent IS NULL LIMIT 1").fetchone() is None:
                return 0  # the common case, each second: nothing waiting, no write lock taken
            with db:
                db.execute("BEGIN IMMEDIATE")
                waiting = db.execute("SELECT id, kind, projects, text FROM outbox WHERE sent IS NULL "
                                     "ORDER BY id").fetchall()
                db.executemany("UPDATE outbox SET sent = ? WHERE id = ?", [(time.time(), row[0]) for row in waiting])
        except (RecheckError, sqlite3.Error) as exc:
            log.error("IRC outbox %s could not be read: %s", self.path, " ".join(str(exc).split()))
            self.close()
            return 0
        sent = 0
        for row_id, kind, projects, text in waiting:
            item = _announcement(kind, projects, text)
            if item is None:
                log.error("IRC outbox %s: line %d is not an announcement; skipped", self.path, row_id)
                continue
            for channel, line in route([item], rules):
                try:
                    send(channel, line)
                    sent += 1
                except Exception as exc:  # noqa: BLE001 - IRC failing must not stop the daemon
                    log.error("IRC: could not queue a line for %s: %s", channel, " ".join(str(exc).split())[:500])
        return sent


def _announcement(kind: object, projects: object, text: object) -> Announcement | None:
    try:
        names = json.loads(str(projects))
    except ValueError:
        return None
    if kind not in KINDS or not isinstance(text, str) or not isinstance(names, list):
        return None
    return Announcement(str(kind), frozenset(str(p) for p in names), strip_controls(text)[:TEXT_CHARS])


__all__ = ["Outbox"]
