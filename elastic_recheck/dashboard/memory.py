"""What one dashboard run remembers for the next, in ``dashboard.sqlite3``
in the data dir: incidents open (so one is announced once, and closes only
once its count has fallen well below the threshold), regressions already
announced, and each build's matching lines once looked up (a build's lines
never change once indexed, so each is searched for once)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from ..errors import RecheckError
from ..private_paths import private_dir, private_file
from ..sqlite_files import open_database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    bug TEXT PRIMARY KEY,           -- open while present
    opened REAL NOT NULL,           -- epoch seconds
    changes INTEGER NOT NULL        -- changes hit in the incident's window at the last run
);
CREATE TABLE IF NOT EXISTS regressions (
    bug TEXT NOT NULL,
    resolved TEXT NOT NULL,         -- the fingerprint's resolved: date it was announced for
    seen REAL NOT NULL,
    PRIMARY KEY (bug, resolved)
);
CREATE TABLE IF NOT EXISTS lines (
    uuid TEXT NOT NULL,
    query_hash TEXT NOT NULL,       -- of the fingerprint's query the lines were found with
    body TEXT NOT NULL,             -- JSON list of [message, filename, log_url]
    stored REAL NOT NULL,           -- rows older than the window are dropped (forget_lines)
    PRIMARY KEY (uuid, query_hash)
);
"""


class DashboardMemory:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            if str(path) != ":memory:":
                private_dir(self.path.parent)
                private_file(self.path)
            # synchronous=NORMAL: a lost last run is found again, not worth an fsync a row
            self.db = open_database(self.path, _SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise RecheckError(f"{self.path}: cannot open the dashboard's state: {exc}") from None

    def close(self) -> None:
        self.db.close()

    def open_incidents(self) -> dict[str, tuple[float, int]]:
        return {bug: (opened, changes) for bug, opened, changes in
                self.db.execute("SELECT bug, opened, changes FROM incidents")}

    def save_incidents(self, incidents: dict[str, tuple[float, int]]) -> None:
        """The incidents open now: every other one is closed."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("DELETE FROM incidents")
            self.db.executemany("INSERT INTO incidents (bug, opened, changes) VALUES (?,?,?)",
                                [(bug, opened, changes) for bug, (opened, changes) in incidents.items()])

    def first_regression(self, bug: str, resolved: str, now: float) -> bool:
        """True the first time ``bug`` is seen hitting again after ``resolved``."""
        cursor = self.db.execute("INSERT OR IGNORE INTO regressions (bug, resolved, seen) VALUES (?,?,?)",
                                 (bug, resolved, now))
        return cursor.rowcount == 1

    def lines(self, uuid: str, digest: str) -> list[list[str]] | None:
        row = self.db.execute("SELECT body FROM lines WHERE uuid = ? AND query_hash = ?", (uuid, digest)).fetchone()
        if row is None:
            return None
        try:
            body: Any = json.loads(row[0])
        except ValueError:
            return None
        ok = isinstance(body, list) and all(isinstance(r, list) and len(r) == 3 for r in body)
        return [[str(v) for v in r] for r in body] if ok else None

    def store_lines(self, found: dict[str, list[list[str]]], digest: str, now: float) -> None:
        """uuid -> its lines, found with the query of ``digest``; in one transaction."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT OR REPLACE INTO lines (uuid, query_hash, body, stored) VALUES (?,?,?,?)",
                                [(uuid, digest, json.dumps(rows), now) for uuid, rows in found.items()])

    def forget_lines(self, before: float) -> None:
        """Lines looked up before ``before``: their builds have left the window."""
        self.db.execute("DELETE FROM lines WHERE stored < ?", (before,))


__all__ = ["DashboardMemory"]
