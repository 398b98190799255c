"""What each build matched, kept once it is known, in SQLite in the data dir.

The pages used to re-run every fingerprint over every indexed line each
time they were made: a cost that grows with log lines and fingerprints. A
build's classification is known the moment its logs are indexed, so it is
stored then (which fingerprints matched it, how many lines, the newest one),
and the dashboard, ``uncategorized`` and ``status`` read these rows: their
cost grows with builds. When a fingerprint is added or its query changes,
that fingerprint alone is run again over the window (``sync_fingerprints``),
and a removed one drops out.
"""

from __future__ import annotations

import array
import datetime as dt
import hashlib
import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Collection, Iterable, Iterator, Mapping, Sequence

from .builds import FAILED_STATUSES, Build
from .errors import RecheckError
from .private_paths import private_dir, private_file
from .search import BuildOutcome, from_epoch_micros
from .sqlite_files import open_database

log = logging.getLogger(__name__)
UTC = dt.timezone.utc

_SCHEMA = """
CREATE TABLE IF NOT EXISTS builds (
    uuid TEXT PRIMARY KEY,          -- the build_uuid its lines are indexed under
    job TEXT NOT NULL,
    status TEXT NOT NULL,
    voting INTEGER NOT NULL,
    pipeline TEXT NOT NULL,
    project TEXT NOT NULL,
    branch TEXT NOT NULL,
    change TEXT NOT NULL,
    patchset TEXT NOT NULL,
    log_url TEXT NOT NULL,
    newest INTEGER,                 -- the newest indexed line (micros since the epoch), NULL when none
    lines INTEGER NOT NULL,
    failed_tests TEXT,              -- JSON list; NULL when the build reports no test run
    stored REAL NOT NULL            -- when this row was written
);
CREATE INDEX IF NOT EXISTS builds_newest ON builds(newest);
CREATE TABLE IF NOT EXISTS matches (
    uuid TEXT NOT NULL,
    bug TEXT NOT NULL,
    hits INTEGER NOT NULL,          -- lines of the build the fingerprint matched
    newest INTEGER,                 -- the newest of them (micros)
    message TEXT NOT NULL,          -- and its text, cut to MESSAGE_CHARS
    PRIMARY KEY (uuid, bug)
);
CREATE INDEX IF NOT EXISTS matches_bug ON matches(bug);
CREATE TABLE IF NOT EXISTS build_templates (
    uuid TEXT PRIMARY KEY,          -- the templates (templates.py) of each file's newest max_lines lines
    max_lines INTEGER NOT NULL,
    version INTEGER NOT NULL,       -- TEMPLATE_VERSION they were computed with
    keys BLOB NOT NULL              -- sorted 8-byte keys
);
CREATE TABLE IF NOT EXISTS written_templates (
    uuid TEXT PRIMARY KEY,          -- the templates of every line of a build, kept by the writer as it indexed it
    version INTEGER NOT NULL,       -- TEMPLATE_VERSION
    largest_file INTEGER NOT NULL,  -- lines of its largest file: the set is each file's newest N lines for N >= this
    keys BLOB NOT NULL              -- sorted 8-byte keys
);
CREATE TABLE IF NOT EXISTS explanations (
    uuid TEXT PRIMARY KEY,          -- a failed build's new lines (explain.py), kept so it is read once
    recipe TEXT NOT NULL,           -- how they were computed; another recipe reads the build again
    body TEXT NOT NULL              -- JSON
);
CREATE TABLE IF NOT EXISTS bug_sightings (
    bug TEXT NOT NULL,              -- each fingerprint's first and last match among builds pruned (retention),
    query_hash TEXT NOT NULL,       -- by the query that matched them: only the current one's are shown
    first INTEGER NOT NULL,         -- micros
    last INTEGER NOT NULL,
    PRIMARY KEY (bug, query_hash)
);
CREATE TABLE IF NOT EXISTS fingerprints (
    bug TEXT PRIMARY KEY,
    query_hash TEXT NOT NULL,       -- of the query the stored matches were computed with
    synced REAL NOT NULL,
    since INTEGER                   -- the window start (micros) they cover; ALL_TIME, NULL when not known
);
"""
_PER_BUILD_TABLES = ("matches", "build_templates", "written_templates", "explanations")  # besides builds
ALL_TIME = -(2**62)  # ``since`` of matches run over every indexed build
MESSAGE_CHARS = 2_000  # of the newest matching line, kept for the pages and the comment


@dataclass(frozen=True)
class Match:
    """One fingerprint's lines in one build."""

    bug: str
    hits: int
    newest: int | None  # micros since the epoch
    message: str = ""


@dataclass(frozen=True)
class StoredBuild:
    uuid: str
    job: str
    status: str
    voting: bool
    pipeline: str
    project: str
    branch: str
    change: str
    patchset: str
    log_url: str
    newest: int | None
    lines: int
    failed_tests: tuple[str, ...] | None
    matches: tuple[Match, ...]

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES

    @property
    def bugs(self) -> tuple[str, ...]:
        return tuple(m.bug for m in self.matches)


def query_hash(query: str) -> str:
    return hashlib.sha256(query.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class ResultStore:
    """One connection; open one per thread (SQLite connections are not shared
    across threads). Writers and readers in other processes (the dashboard)
    work at once: WAL mode, and a busy wait instead of an error."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            private_dir(self.path.parent)
            private_file(self.path)
        try:
            self.db = open_database(self.path, _SCHEMA)
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(fingerprints)")}
            if "since" not in columns:  # a store from before the column: its fingerprints are run once again
                self.db.execute("ALTER TABLE fingerprints ADD COLUMN since INTEGER")
        except sqlite3.Error as exc:
            raise RecheckError(f"{self.path}: cannot open the stored results: {exc}") from None

    @classmethod
    def open_existing(cls, path: str | Path) -> "ResultStore | None":
        """For readers: None when nothing was ever stored (a read makes no file)."""
        return cls(path) if Path(path).exists() else None

    def close(self) -> None:
        self.db.close()

    # -- writing --------------------------------------------------------------

    def store_build(self, build: Build | Mapping[str, str], matches: Iterable[Match], *, newest: int | None,
                    lines: int, failed_tests: Sequence[str] | None,
                    classified_with: Mapping[str, str] | None = None) -> list[str]:
        """A build's classification, replacing any stored before (a build
        indexed again is classified again), in one transaction.
        ``classified_with``: bug -> :func:`query_hash` of the query each
        fingerprint was run with. One whose stored rows another process has
        meanwhile re-run with another query is marked not current, so the
        next sync runs it again, this build included; those are returned."""
        fields = _build_fields(build)
        rows = [(fields["uuid"], m.bug, m.hits, m.newest, m.message[:MESSAGE_CHARS]) for m in matches]
        tests = None if failed_tests is None else json.dumps(sorted(failed_tests))
        stale: list[tuple[str]] = []
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(
                "INSERT OR REPLACE INTO builds (uuid, job, status, voting, pipeline, project, branch, change, "
                "patchset, log_url, newest, lines, failed_tests, stored) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (fields["uuid"], fields["job"], fields["status"], fields["voting"], fields["pipeline"],
                 fields["project"], fields["branch"], fields["change"], fields["patchset"], fields["log_url"],
                 newest, lines, tests, time.time()),
            )
            self.db.execute("DELETE FROM matches WHERE uuid = ?", (fields["uuid"],))
            self.db.executemany("INSERT INTO matches (uuid, bug, hits, newest, message) VALUES (?,?,?,?,?)", rows)
            if classified_with:
                stale = [(bug,) for bug, digest in self.db.execute("SELECT bug, query_hash FROM fingerprints")
                         if bug in classified_with and classified_with[bug] != digest]
                self.db.executemany("UPDATE fingerprints SET since = NULL WHERE bug = ?", stale)
        return [bug for (bug,) in stale]

    def sync_fingerprints(self, queries: Mapping[str, str], rematch: Callable[[str, str], Iterable[BuildOutcome]],
                          since: dt.datetime | None = None, keep: Collection[str] = ()) -> dict[str, str]:
        """Bring the stored matches in line with the fingerprints now in use.

        ``queries``: bug -> the query its matches come from. A fingerprint
        not seen before, or whose query changed, is run alone with
        ``rematch(bug, query)`` (over the index, for the window) and its rows
        replaced; a fingerprint no longer there loses its rows. ``since``:
        the start of ``rematch``'s window (None: all time); rows run over a
        shorter window (``uncategorized --days 2``) are not current for a
        longer one, and are run again. ``keep``: bugs left out of ``queries``
        only because they could not run this time (a timeout): their rows
        stay. Returns bug -> why for those that could not be run (tried
        again next time)."""
        start = ALL_TIME if since is None else _micros(since)
        covered = {bug: (digest, covers) for bug, digest, covers in
                   self.db.execute("SELECT bug, query_hash, since FROM fingerprints").fetchall()}
        known = {bug: digest for bug, (digest, covers) in covered.items() if covers is not None and covers <= start}
        changed = [bug for bug, query in queries.items() if known.get(bug) != query_hash(query)]
        if changed:
            log.info("%d fingerprints added or changed: each is run over what is indexed (%s)", len(changed),
                     ", ".join(changed[:10]) + (", ..." if len(changed) > 10 else ""))
        failures: dict[str, str] = {}
        for bug, query in queries.items():
            if known.get(bug) == query_hash(query):
                continue
            asked = time.time()
            try:
                found = list(rematch(bug, query))
            except Exception as exc:  # noqa: BLE001 - one fingerprint's failure stays its own
                why = str(exc) if isinstance(exc, RecheckError) else f"{type(exc).__name__}: {exc}"
                failures[bug] = " ".join(why.split())
                log.warning("fingerprint %s could not run: %s", bug, failures[bug])
                continue
            self.replace_matches(bug, query, found, since, asked)
        gone = [bug for bug in covered if bug not in queries and bug not in keep]
        if gone:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                self.db.executemany("DELETE FROM matches WHERE bug = ?", [(bug,) for bug in gone])
                self.db.executemany("DELETE FROM fingerprints WHERE bug = ?", [(bug,) for bug in gone])
        return failures

    def replace_matches(self, bug: str, query: str, found: Iterable[BuildOutcome],
                        since: dt.datetime | None = None, asked: float | None = None) -> None:
        """``query`` was run over the window from ``since`` (None: all time),
        at ``asked`` (epoch seconds): its rows become what it found. A build
        stored since it was asked (the daemon, in another process, indexing
        it meanwhile) keeps its own rows: the answer is older than they are."""
        newer = "SELECT uuid FROM builds WHERE stored >= ?"
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            if asked is None:
                self.db.execute("DELETE FROM matches WHERE bug = ?", (bug,))
                kept: set[str] = set()
            else:
                self.db.execute(f"DELETE FROM matches WHERE bug = ? AND uuid NOT IN ({newer})", (bug, asked))
                kept = {row[0] for row in self.db.execute(newer, (asked,))}
            self.db.executemany(
                "INSERT OR REPLACE INTO matches (uuid, bug, hits, newest, message) VALUES (?,?,?,?,?)",
                [(b.build_uuid, bug, b.hits, _micros(b.last_hit), "") for b in found if b.build_uuid not in kept],
            )
            self.db.execute("INSERT OR REPLACE INTO fingerprints (bug, query_hash, synced, since) VALUES (?,?,?,?)",
                            (bug, query_hash(query), time.time(), ALL_TIME if since is None else _micros(since)))

    def mark_synced(self, queries: Mapping[str, str]) -> None:
        """These fingerprints' stored matches are current (nothing indexed yet, say)."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT OR IGNORE INTO fingerprints (bug, query_hash, synced, since) VALUES (?,?,?,?)",
                                [(bug, query_hash(q), time.time(), ALL_TIME) for bug, q in queries.items()])

    def store_templates(self, uuid: str, max_lines: int, version: int, keys: Iterable[int]) -> None:
        """Keep a build's template set: a passing build is read once however
        many failures are compared with it."""
        blob = array.array("Q", sorted(keys)).tobytes()
        self.db.execute("INSERT OR REPLACE INTO build_templates (uuid, max_lines, version, keys) VALUES (?, ?, ?, ?)",
                        (uuid, max_lines, version, blob))

    def store_written_templates(self, uuid: str, version: int, largest_file: int, packed: bytes) -> None:
        """Keep the templates of every line of a build, as the writer saw
        them: explain then reads no passing build it compares with.
        ``packed``: the distinct keys as native uint64s (``WrittenTemplates.packed``)."""
        self.db.execute("INSERT OR REPLACE INTO written_templates (uuid, version, largest_file, keys) "
                        "VALUES (?, ?, ?, ?)", (uuid, version, largest_file, packed))

    def templates(self, uuid: str, max_lines: int, version: int) -> frozenset[int] | None:
        """The stored template set of each file's newest ``max_lines`` lines,
        if it was computed the same way: by explain, or by the writer when no
        file of the build has more lines than that."""
        row = self.db.execute("SELECT keys FROM build_templates WHERE uuid = ? AND max_lines = ? AND version = ?",
                              (uuid, max_lines, version)).fetchone()
        if row is None:
            row = self.db.execute("SELECT keys FROM written_templates WHERE uuid = ? AND version = ? "
                                  "AND largest_file <= ?", (uuid, version, max_lines)).fetchone()
        if row is None:
            return None
        values = array.array("Q")
        blob = bytes(row[0])
        values.frombytes(blob[: len(blob) - len(blob) % values.itemsize])
        return frozenset(values)

    def store_explanation(self, uuid: str, recipe: str, body: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO explanations (uuid, recipe, body) VALUES (?, ?, ?)",
                        (uuid, recipe, body))

    def explanation(self, uuid: str, recipe: str) -> str | None:
        row = self.db.execute("SELECT body FROM explanations WHERE uuid = ? AND recipe = ?", (uuid, recipe)).fetchone()
        return None if row is None else row[0]

    def prune(self, before: dt.datetime, dry_run: bool = False) -> int:
        """Retention: the builds whose newest line is older than ``before``,
        and stored before it too (a replay of old builds, logs with a wrong
        clock: a month from their indexing) go with all that is stored of them.
        Each fingerprint's first and last match among them is kept, by the
        query that matched (shown while that query is in use), so a bug's
        "first seen" outlives its builds. Returns how many went (with
        ``dry_run``: would go)."""
        old = "SELECT uuid FROM builds WHERE (newest < ? OR newest IS NULL) AND stored < ?"
        args = (_micros(before), before.timestamp())
        if dry_run:
            return self.db.execute(f"SELECT COUNT(*) FROM ({old})", args).fetchone()[0]
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(
                "INSERT INTO bug_sightings (bug, query_hash, first, last) SELECT m.bug, COALESCE(f.query_hash, ''), "
                "MIN(COALESCE(m.newest, b.newest)), MAX(COALESCE(m.newest, b.newest)) FROM matches m "
                "JOIN builds b ON b.uuid = m.uuid LEFT JOIN fingerprints f ON f.bug = m.bug "
                f"WHERE m.uuid IN ({old}) AND COALESCE(m.newest, b.newest) IS NOT NULL GROUP BY m.bug "
                "ON CONFLICT (bug, query_hash) DO UPDATE SET first = MIN(first, excluded.first), "
                "last = MAX(last, excluded.last)", args)
            for table in _PER_BUILD_TABLES:
                self.db.execute(f"DELETE FROM {table} WHERE uuid IN ({old})", args)
            return self.db.execute(f"DELETE FROM builds WHERE uuid IN ({old})", args).rowcount

    def forget_builds(self, uuids: Iterable[str]) -> int:
        """Drop what is stored of these builds (their result, templates and
        explanation): documents were added to their lines in the index
        behind the writer's back (``ingest --docs``), so what was stored no
        longer holds. The next ``dashboard`` or ``uncategorized`` run
        classifies them again over the index, as a build never stored.
        Returns how many had a stored result."""
        wanted = sorted(set(uuids))
        forgotten = 0
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for start in range(0, len(wanted), 500):  # under SQLite's limit on bound parameters
                chunk = wanted[start:start + 500]
                marks = ",".join("?" * len(chunk))
                forgotten += self.db.execute(f"DELETE FROM builds WHERE uuid IN ({marks})", chunk).rowcount
                for table in _PER_BUILD_TABLES:
                    self.db.execute(f"DELETE FROM {table} WHERE uuid IN ({marks})", chunk)
        return forgotten

    # -- reading --------------------------------------------------------------

    def build(self, uuid: str) -> StoredBuild | None:
        row = self.db.execute(f"SELECT {_COLUMNS} FROM builds WHERE uuid = ?", (uuid,)).fetchone()
        if row is None:
            return None
        return self._stored(row, self._matches([uuid]).get(uuid, ()))

    def builds(self, start: dt.datetime | None = None, end: dt.datetime | None = None) -> Iterator[StoredBuild]:
        """Builds whose newest line is in ``[start, end)``, with their matches."""
        where, args = _window("newest", start, end)
        cursor = self.db.execute(f"SELECT {_COLUMNS} FROM builds{where} ORDER BY newest DESC", args)
        while True:
            rows = cursor.fetchmany(5000)
            if not rows:
                return
            matches = self._matches([row[0] for row in rows])
            for row in rows:
                yield self._stored(row, matches.get(row[0], ()))

    def bug_spans(self) -> dict[str, tuple[int, int]]:
        """Each fingerprint's first and last matching line (micros) over every
        stored build, whatever the window, and the builds pruned: when a bug
        was first and last seen."""
        return {bug: (first, last) for bug, first, last in self.db.execute(
            "SELECT bug, MIN(first), MAX(last) FROM ("
            "SELECT m.bug AS bug, MIN(COALESCE(m.newest, b.newest)) AS first, MAX(COALESCE(m.newest, b.newest)) AS last "
            "FROM matches m JOIN builds b ON b.uuid = m.uuid GROUP BY m.bug "
            "UNION ALL SELECT s.bug, s.first, s.last FROM bug_sightings s "
            "JOIN fingerprints f ON f.bug = s.bug AND f.query_hash = s.query_hash) GROUP BY bug") if first is not None}

    def stored_since(self, moment: dt.datetime) -> set[str]:
        """Builds stored at ``moment`` or later: retention keeps them whatever their lines' dates."""
        return {uuid for (uuid,) in self.db.execute("SELECT uuid FROM builds WHERE stored >= ?",
                                                    (moment.timestamp(),))}

    def stored_uuids(self) -> set[str]:
        """Every build with a stored result (without their matches)."""
        return {uuid for (uuid,) in self.db.execute("SELECT uuid FROM builds")}

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM builds").fetchone()[0]

    def oldest(self) -> int | None:
        """The newest line (micros) of the oldest stored build: where "all time" begins."""
        return self.db.execute("SELECT MIN(newest) FROM builds").fetchone()[0]

    def _matches(self, uuids: Sequence[str]) -> dict[str, tuple[Match, ...]]:
        out: dict[str, list[Match]] = {}
        for offset in range(0, len(uuids), 500):
            chunk = list(uuids[offset:offset + 500])
            marks = ",".join("?" * len(chunk))
            for uuid, bug, hits, newest, message in self.db.execute(
                    f"SELECT uuid, bug, hits, newest, message FROM matches WHERE uuid IN ({marks}) ORDER BY bug",
                    chunk):
                out.setdefault(uuid, []).append(Match(bug, hits, newest, message))
        return {uuid: tuple(found) for uuid, found in out.items()}

    @staticmethod
    def _stored(row: Sequence[Any], matches: Sequence[Match]) -> StoredBuild:
        (uuid, job, status, voting, pipeline, project, branch, change, patchset, log_url, newest, lines,
         tests) = row
        return StoredBuild(uuid, job, status, bool(voting), pipeline, project, branch, change, patchset, log_url,
                           newest, lines, None if tests is None else tuple(json.loads(tests)), tuple(matches))


_COLUMNS = ("uuid, job, status, voting, pipeline, project, branch, change, patchset, log_url, newest, lines, "
            "failed_tests")


def _build_fields(build: Build | Mapping[str, str]) -> dict[str, Any]:
    """A Build, or the indexed fields of one (an ingest's metadata)."""
    if isinstance(build, Build):
        build = build.metadata().fields()
    return {
        "uuid": build["build_uuid"], "job": build.get("build_name", ""), "status": build.get("build_status", ""),
        "voting": 0 if str(build.get("voting", "1")) in ("0", "false", "False") else 1,
        "pipeline": build.get("build_queue", ""), "project": build.get("project", ""),
        "branch": build.get("build_branch", ""), "change": build.get("build_change", ""),
        "patchset": build.get("build_patchset", ""), "log_url": build.get("log_url", ""),
    }


def _window(column: str, start: dt.datetime | None, end: dt.datetime | None) -> tuple[str, tuple[int, ...]]:
    from .search import epoch_micros

    clauses, args = [], []
    if start is not None:
        clauses.append(f"{column} >= ?")
        args.append(epoch_micros(start))
    if end is not None:
        clauses.append(f"{column} < ?")
        args.append(epoch_micros(end))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)


def _micros(moment: dt.datetime | None) -> int | None:
    from .search import epoch_micros

    return None if moment is None else epoch_micros(moment)


def last_hit(micros: int | None) -> dt.datetime | None:
    return None if micros is None else from_epoch_micros(micros)


__all__ = ["ALL_TIME", "Match", "ResultStore", "StoredBuild", "last_hit", "query_hash"]
