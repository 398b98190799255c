"""The daemon's memory, in SQLite in the data dir.

An event is written here before any work on it starts, so a restart (kill -9
included) resumes it; a build is commented on at most once, because the
intent to comment is committed before the comment is posted; every outcome
is kept with its time for the dashboard and for audits.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Iterator, Sequence

from .errors import RecheckError
from .private_paths import looser_than_private, private_dir, private_file
from .sqlite_files import open_database

log = logging.getLogger(__name__)

# Daemon starts that find one build still being fetched or indexed, before that
# build is given up: a crash it causes must not repeat at every start for ever,
# and an operator's few restarts in a row must not cost a build.
MAX_FETCH_RESTARTS = 5
BUILD_STATUSES = ("queued", "fetching", "indexed", "failed")  # of a build in the queue (table builds)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    raw TEXT NOT NULL,
    received REAL NOT NULL,
    created REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',  -- pending | done | parked (failed in a way a retry cannot mend)
    next_check REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    finished REAL,
    error TEXT  -- why a parked event was parked
);
CREATE INDEX IF NOT EXISTS events_due ON events(status, next_check);
CREATE TABLE IF NOT EXISTS outcomes (
    id INTEGER PRIMARY KEY,
    event_id INTEGER NOT NULL REFERENCES events(id),
    change INTEGER NOT NULL,
    patchset INTEGER NOT NULL,
    project TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    job TEXT NOT NULL,
    build TEXT NOT NULL,
    url TEXT NOT NULL,
    kind TEXT NOT NULL,  -- bugs | unrecognized | timeout | ambiguous | error
    bugs TEXT NOT NULL,  -- JSON list
    at REAL NOT NULL,
    UNIQUE (event_id, job, build)
);
CREATE TABLE IF NOT EXISTS comments (
    change INTEGER NOT NULL,
    patchset INTEGER NOT NULL,
    build TEXT NOT NULL,
    state TEXT NOT NULL,  -- posting | posted | unknown
    at REAL NOT NULL,
    PRIMARY KEY (change, patchset, build)
);
CREATE TABLE IF NOT EXISTS builds (
    key TEXT PRIMARY KEY,           -- Build.key
    build TEXT NOT NULL,            -- the Build as JSON (our own record)
    status TEXT NOT NULL,           -- queued | fetching | indexed | failed
    uuid TEXT,                      -- the build_uuid its lines are indexed under, once indexed
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL,
    reported REAL NOT NULL,         -- when a source reported it: its log timeout counts from this
    error TEXT,
    restarts INTEGER NOT NULL DEFAULT 0  -- daemon starts that found it being fetched or indexed
);
CREATE INDEX IF NOT EXISTS builds_due ON builds(status, next_try);
CREATE TABLE IF NOT EXISTS build_names (
    name TEXT PRIMARY KEY,          -- another Build.key of a queued build, or "log:" and its log URL
    key TEXT NOT NULL               -- its builds.key
);
CREATE TABLE IF NOT EXISTS metrics (
    name TEXT PRIMARY KEY,
    value REAL NOT NULL  -- counters: totals across restarts; gauges: the last value
);
"""


@dataclass(frozen=True)
class StoredEvent:
    id: int
    key: str
    raw: dict[str, Any]
    created: dt.datetime
    attempts: int
    received: float = 0.0  # when the daemon accepted it (epoch seconds)


class StateError(RecheckError):
    """The state database cannot be used."""


class StateDB:
    def __init__(self, path: str | Path, recover: bool = True) -> None:
        """``recover``: only for the daemon, which holds the data directory's
        instance lock. Recovery takes what the last daemon left under way
        for cut off by its end; a reader (``status``, the dashboard) opening
        the database while a daemon runs would re-queue the builds it is
        fetching and disown the comment it is posting."""
        self.path = Path(path)
        # Owner only: it holds every report received. An existing file is left as it is (see private_paths).
        private_dir(self.path.parent)
        private_file(self.path)
        mode = looser_than_private(self.path)
        if mode:
            log.warning("%s is readable by other users (mode %s); `chmod 600` it unless that is intended",
                        self.path, mode)
        try:
            self.db = open_database(self.path, _SCHEMA, synchronous="FULL")
            self._migrate()
        except sqlite3.Error as exc:
            raise StateError(f"{self.path}: cannot open the state database: {exc}") from None
        if recover:
            self._recover()

    def _migrate(self) -> None:
        """Columns added since the first release, added to an older database."""
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(events)")}
        if "error" not in columns:
            self.db.execute("ALTER TABLE events ADD COLUMN error TEXT")
        if "restarts" not in {row[1] for row in self.db.execute("PRAGMA table_info(builds)")}:
            self.db.execute("ALTER TABLE builds ADD COLUMN restarts INTEGER NOT NULL DEFAULT 0")

    def _recover(self) -> None:
        """A comment whose posting was interrupted may or may not have been
        posted: never post it again (at most once), and say so."""
        self.db.execute("UPDATE comments SET state = 'unknown' WHERE state = 'posting'")
        # A fetch cut off by a crash (kill -9 included) starts again from the
        # beginning: its build is replaced whole when indexed, so nothing doubles.
        # A build that kills the daemon (memory, a crash in the matcher) would be
        # fetched again at every start and kill it again: after a few, it is given up.
        self.db.execute("UPDATE builds SET restarts = restarts + 1 WHERE status = 'fetching'")
        self.db.execute("UPDATE builds SET status = 'failed', error = ? WHERE status = 'fetching' AND restarts >= ?",
                        (f"its fetch or indexing was cut off by {MAX_FETCH_RESTARTS} restarts of the daemon (does "
                         "this build crash it?); given up", MAX_FETCH_RESTARTS))
        self.db.execute("UPDATE builds SET status = 'queued' WHERE status = 'fetching'")

    def close(self) -> None:
        self.db.close()

    # -- events -------------------------------------------------------------

    def add_event(self, key: str, raw: dict[str, Any], created: dt.datetime) -> int | None:
        """Persist an accepted event; None if the same event was seen before."""
        now = time.time()
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO events (key, raw, received, created, next_check) VALUES (?, ?, ?, ?, ?)",
            (key, json.dumps(raw), now, created.timestamp(), now),
        )
        return cursor.lastrowid if cursor.rowcount else None

    def due_events(self, now: float | None = None) -> list[StoredEvent]:
        now = time.time() if now is None else now
        rows = self.db.execute(
            "SELECT id, key, raw, created, attempts, received FROM events WHERE status = 'pending' AND next_check <= ? "
            "ORDER BY id",
            (now,),
        ).fetchall()
        return [self._event(row) for row in rows]

    def next_due(self) -> float | None:
        row = self.db.execute("SELECT MIN(next_check) FROM events WHERE status = 'pending'").fetchone()
        return row[0]

    def pending_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM events WHERE status = 'pending'").fetchone()[0]

    def last_received(self) -> float | None:
        """When the newest failure report arrived (epoch seconds)."""
        return self.db.execute("SELECT MAX(received) FROM events").fetchone()[0]

    def retry_later(self, event_id: int, delay: float) -> None:
        self.db.execute(
            "UPDATE events SET attempts = attempts + 1, next_check = ? WHERE id = ?", (time.time() + delay, event_id)
        )

    def retry_many(self, delays: Sequence[tuple[int, float]]) -> None:
        """:meth:`retry_later` for many events (event id, delay), in one transaction."""
        if not delays:
            return
        now = time.time()
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("UPDATE events SET attempts = attempts + 1, next_check = ? WHERE id = ?",
                                [(now + delay, event_id) for event_id, delay in delays])

    def finish(self, event_id: int) -> None:
        self.db.execute("UPDATE events SET status = 'done', finished = ? WHERE id = ?", (time.time(), event_id))

    def park(self, event_id: int, error: str) -> None:
        """Set an event aside for good: working on it failed in a way a retry
        would only repeat, and the events behind it must not wait for it."""
        self.db.execute("UPDATE events SET status = 'parked', finished = ?, error = ? WHERE id = ?",
                        (time.time(), error, event_id))

    def parked(self) -> list[tuple[str, str]]:
        """(event key, why) of every parked event, oldest first."""
        return self.db.execute("SELECT key, error FROM events WHERE status = 'parked' ORDER BY id").fetchall()

    @staticmethod
    def _event(row: Sequence[Any]) -> StoredEvent:
        return StoredEvent(row[0], row[1], json.loads(row[2]), dt.datetime.fromtimestamp(row[3], dt.timezone.utc),
                           row[4], row[5])

    # -- outcomes -----------------------------------------------------------

    def record_outcome(
        self, event_id: int, change: int, patchset: int, project: str, pipeline: str, job: str, build: str,
        url: str, kind: str, bugs: Sequence[str], replace: bool = True,
    ) -> bool:
        """Record (or, for an event worked on again, replace) a job's outcome;
        True the first time, so a retried comment does not count a build twice.
        ``replace=False`` keeps an outcome already there."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            seen = self.db.execute(
                "SELECT 1 FROM outcomes WHERE event_id = ? AND job = ? AND build = ?", (event_id, job, build)
            ).fetchone()
            if seen is not None and not replace:
                return False
            self.db.execute(
                "INSERT OR REPLACE INTO outcomes (event_id, change, patchset, project, pipeline, job, build, url, "
                "kind, bugs, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (event_id, change, patchset, project, pipeline, job, build, url, kind, json.dumps(list(bugs)),
                 time.time()),
            )
        return seen is None

    def outcomes(self) -> Iterator[dict[str, Any]]:
        cursor = self.db.execute(
            "SELECT change, patchset, project, pipeline, job, build, url, kind, bugs, at FROM outcomes ORDER BY id"
        )
        names = [d[0] for d in cursor.description]
        for row in cursor:
            item = dict(zip(names, row))
            item["bugs"] = json.loads(item["bugs"])
            yield item

    # -- comments -----------------------------------------------------------

    def claim_comment(self, change: int, patchset: int, builds: Sequence[str]) -> bool:
        """Record the intent to comment on these builds; False if any of them
        was commented on (or attempted) before."""
        now = time.time()
        try:
            self.db.execute("BEGIN IMMEDIATE")
            for build in builds:
                found = self.db.execute(
                    "SELECT 1 FROM comments WHERE change = ? AND patchset = ? AND build = ?", (change, patchset, build)
                ).fetchone()
                if found:
                    self.db.execute("ROLLBACK")
                    return False
            self.db.executemany(
                "INSERT INTO comments (change, patchset, build, state, at) VALUES (?, ?, ?, 'posting', ?)",
                [(change, patchset, build, now) for build in builds],
            )
            self.db.execute("COMMIT")
        except sqlite3.Error:
            self.db.execute("ROLLBACK")
            raise
        return True

    def comment_posted(self, change: int, patchset: int, builds: Sequence[str]) -> None:
        self.db.executemany(
            "UPDATE comments SET state = 'posted', at = ? WHERE change = ? AND patchset = ? AND build = ?",
            [(time.time(), change, patchset, build) for build in builds],
        )

    def comment_unknown(self, change: int, patchset: int, builds: Sequence[str]) -> None:
        self.db.executemany(
            "UPDATE comments SET state = 'unknown', at = ? WHERE change = ? AND patchset = ? AND build = ?",
            [(time.time(), change, patchset, build) for build in builds],
        )

    def release_comment(self, change: int, patchset: int, builds: Sequence[str]) -> None:
        """The post certainly failed (nothing was sent): allow a retry."""
        self.db.executemany(
            "DELETE FROM comments WHERE change = ? AND patchset = ? AND build = ? AND state = 'posting'",
            [(change, patchset, build) for build in builds],
        )

    # -- retention ------------------------------------------------------------

    def prune(self, before: dt.datetime, dry_run: bool = False) -> tuple[int, int]:
        """Retention: events finished (done or parked) before ``before``, with
        their outcomes (but the newest event), and builds of the queue indexed
        or given up that were reported before it go. Comment records stay: a replay of an old event
        must still not comment twice (a row per comment, a few MiB a year).
        Returns (events, builds) that went (with ``dry_run``: would go)."""
        moment = before.timestamp()
        # the newest event stays: `status` says when the last report arrived, however long ago
        old_events = ("SELECT id FROM events WHERE status IN ('done', 'parked') AND finished < ? "
                      "AND id < (SELECT MAX(id) FROM events)")
        old_builds = "SELECT key FROM builds WHERE status IN ('indexed', 'failed') AND reported < ?"
        if dry_run:
            return tuple(self.db.execute(f"SELECT COUNT(*) FROM ({query})", (moment,)).fetchone()[0]
                         for query in (old_events, old_builds))  # type: ignore[return-value]
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(f"DELETE FROM outcomes WHERE event_id IN ({old_events})", (moment,))
            events = self.db.execute(f"DELETE FROM events WHERE id IN ({old_events})", (moment,)).rowcount
            self.db.execute(f"DELETE FROM build_names WHERE key IN ({old_builds})", (moment,))
            builds = self.db.execute(f"DELETE FROM builds WHERE key IN ({old_builds})", (moment,)).rowcount
        return events, builds

    # -- the build queue ------------------------------------------------------

    def enqueue_build(self, key: str, build: dict[str, Any], reported: float, log_url: str = "") -> bool:
        """A build a source reported, to be fetched and indexed; False if it
        is queued or was handled already (sources overlap: a Gerrit report
        and the Zuul API name the same build). A build is the same by its key
        or by its log URL: a report of log URLs names a build by a short
        uuid, Zuul's API by its full one; its other key is remembered as a
        name of the build (see :meth:`build_state`)."""
        by_url = "log:" + log_url.rstrip("/") if log_url else ""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            known = self._key_of(key)
            if known is not None:
                if by_url:  # named by its uuid first (a build page), its log URL now known too
                    self.db.execute("INSERT OR IGNORE INTO build_names (name, key) VALUES (?, ?)", (by_url, known))
                return False
            row = None
            if by_url:
                row = self.db.execute("SELECT key FROM build_names WHERE name = ?", (by_url,)).fetchone()
            if row is not None:
                self.db.execute("INSERT OR IGNORE INTO build_names (name, key) VALUES (?, ?)", (key, row[0]))
                return False
            self.db.execute("INSERT INTO builds (key, build, status, next_try, reported) VALUES (?, ?, 'queued', ?, ?)",
                            (key, json.dumps(build), reported, reported))
            if by_url:
                self.db.execute("INSERT OR IGNORE INTO build_names (name, key) VALUES (?, ?)", (by_url, key))
            return True

    def _key_of(self, key: str) -> str | None:
        """The builds.key of a build known by ``key`` (its own or another name)."""
        if self.db.execute("SELECT 1 FROM builds WHERE key = ?", (key,)).fetchone():
            return key
        row = self.db.execute("SELECT key FROM build_names WHERE name = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def due_builds(self, now: float, limit: int) -> list[tuple[str, dict[str, Any], float, int]]:
        """(key, build, reported, attempts) of queued builds due now, oldest report first."""
        rows = self.db.execute(
            "SELECT key, build, reported, attempts FROM builds WHERE status = 'queued' AND next_try <= ? "
            "ORDER BY reported LIMIT ?", (now, limit)).fetchall()
        return [(key, json.loads(build), reported, attempts) for key, build, reported, attempts in rows]

    def set_build(self, key: str, status: str, *, uuid: str | None = None, error: str | None = None,
                  retry_in: float | None = None) -> None:
        if retry_in is not None:
            self.db.execute("UPDATE builds SET status = 'queued', attempts = attempts + 1, next_try = ?, error = ? "
                            "WHERE key = ?", (time.time() + retry_in, error, key))
            return
        self.db.execute("UPDATE builds SET status = ?, uuid = COALESCE(?, uuid), error = ? WHERE key = ?",
                        (status, uuid, error, key))

    def build_state(self, key: str) -> tuple[str, str | None, str | None] | None:
        """(status, indexed uuid, error) of a queued build; None if never queued."""
        row = self.db.execute("SELECT status, uuid, error FROM builds WHERE key = ?", (self._key_of(key),)).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def build_attempts(self, key: str) -> tuple[float, int] | None:
        """(when it was reported, fetches tried) of a queued build; None if never queued."""
        row = self.db.execute("SELECT reported, attempts FROM builds WHERE key = ?", (key,)).fetchone()
        return None if row is None else (row[0], row[1])

    def build_counts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT status, COUNT(*) FROM builds GROUP BY status").fetchall())

    def wake_events(self, event_ids: Collection[int]) -> None:
        """A build was indexed: the events waiting on it are due now (a comment
        within a second of the logs, not at the next poll)."""
        now = time.time()
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("UPDATE events SET next_check = ? WHERE id = ? AND status = 'pending'",
                                [(now, event_id) for event_id in event_ids])

    # -- metrics ------------------------------------------------------------

    def add_metrics(self, increments: dict[str, float], gauges: dict[str, float]) -> None:
        """Add counter increments to the totals and set the gauges, at once."""
        if not increments and not gauges:
            return
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT INTO metrics (name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                list(increments.items()),
            )
            self.db.executemany(
                "INSERT INTO metrics (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                list(gauges.items()),
            )

    def metrics(self) -> dict[str, float]:
        return dict(self.db.execute("SELECT name, value FROM metrics").fetchall())

    def comment_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM comments WHERE state = 'posted'").fetchone()[0]
