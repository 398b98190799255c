"""Opening the project's SQLite files (state, stored results, the IRC
outbox, the dashboard's memory), each shared by several processes: the
daemon, a dashboard run, an operator's command.

Switching a file to WAL and creating its tables take locks that SQLite's
busy timeout does not always wait for (a journal-mode change answers
"database is locked" at once). Two processes opening a file at the same
moment, the first time above all, would see one of them fail; this is why
opening is retried here, for as long as the busy timeout would have waited.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

OPEN_TIMEOUT = 30.0  # seconds a file busy in another process or thread is waited for


def open_database(path: str | Path, schema: str, synchronous: str = "NORMAL",
                  timeout: float = OPEN_TIMEOUT) -> sqlite3.Connection:
    """A connection in autocommit mode, in WAL, with ``schema`` applied.
    Raises sqlite3.Error when the file cannot be opened (the caller names it)."""
    deadline = time.monotonic() + timeout
    while True:
        db = sqlite3.connect(str(path), timeout=timeout, isolation_level=None)
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={synchronous}")
            db.executescript(schema)
            return db
        except sqlite3.OperationalError as exc:
            db.close()
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)
        except BaseException:
            db.close()
            raise
