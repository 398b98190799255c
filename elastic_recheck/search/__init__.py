"""The search backend contract, and the one place a backend is constructed.

The embedded index and an Elasticsearch / OpenSearch cluster both implement
:class:`SearchBackend`; everything above this package speaks only to it.
Queries cross the contract as the Lucene strings fingerprints are written in,
so a cluster backend can run them as ``query_string`` exactly as written.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Collection, ContextManager, Iterator, Protocol, Sequence

UTC = dt.timezone.utc
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


def epoch_micros(moment: dt.datetime) -> int:
    """Microseconds since the epoch; naive moments are UTC. Log lines cross
    the writer contract this way: parsing yields it without a datetime per line."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_epoch_micros(value: int | float) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=int(value))


@dataclass(frozen=True)
class TimeWindow:
    """``[start, end)``; ``None`` leaves a side open."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None

    @classmethod
    def last_days(cls, days: float, now: dt.datetime | None = None) -> "TimeWindow":
        """The last ``days`` days up to now; 0 means all time."""
        if days <= 0:
            return cls()
        now = now or dt.datetime.now(UTC)
        return cls(start=now - dt.timedelta(days=days), end=None)


ALL_TIME = TimeWindow()


@dataclass(frozen=True)
class Hit:
    timestamp: dt.datetime | None
    source: dict[str, Any]


@dataclass(frozen=True)
class SearchResult:
    total: int
    hits: list[Hit] = field(default_factory=list)


@dataclass(frozen=True)
class BuildOutcome:
    """One build with hits: what the dashboard groups and links by."""

    build_uuid: str
    build_status: str
    build_name: str = ""
    build_queue: str = ""
    project: str = ""
    build_change: str = ""
    build_patchset: str = ""
    log_url: str = ""
    voting: str = ""
    hits: int = 0
    last_hit: dt.datetime | None = None  # the newest matching line


@dataclass(frozen=True)
class Pruned:
    """What ``prune`` dropped (or, asked for a dry run, would drop)."""

    builds: int = 0
    lines: int = 0


# Fields whose values are lists; a facet counts a list as one value, as the
# original tool's er-query printed them.
LIST_FIELDS = ("tags",)
# The fields a BuildOutcome carries from the build's documents, besides its id and status.
BUILD_FIELDS = tuple(f.name for f in fields(BuildOutcome) if f.name not in ("build_uuid", "build_status", "hits",
                                                                            "last_hit"))


class IndexWriter(Protocol):
    def replace_build(self, build_uuid: str) -> None:
        """Drop what is indexed for this build when the batch commits."""

    def add(self, doc: dict[str, Any], timestamp: dt.datetime) -> None:
        """One whole document (exports, ``ingest --docs``)."""

    def context(self, fields: dict[str, Any]) -> Any:
        """A handle for fields many lines share (a build's file at one level)."""

    def add_line(self, context: Any, micros: int, message: str) -> None:
        """One log event with the fields of ``context``, at ``micros``
        (:func:`epoch_micros`): the ingest fast path."""

    def commit(self) -> None: ...


class WriterBatch:
    """``with backend.writer() as writer:`` commits when the block ends well,
    rolls back when it raises, and closes the writer either way."""

    def commit(self) -> None:
        raise NotImplementedError

    def rollback(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Any:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        try:
            if exc_type is None:
                self.commit()
            else:
                self.rollback()
        finally:
            self.close()


class SearchBackend(Protocol):
    name: str

    def check_query(self, query: str) -> None:
        """Raise QuerySyntaxError (naming why) unless this backend can run
        ``query``: fingerprints are checked this way when they are loaded, so
        one the engine refuses is dropped there, never met mid-build."""

    def search(self, query: str, window: TimeWindow = ALL_TIME, size: int = 10, offset: int = 0) -> SearchResult:
        """Hits newest first, with the exact total."""

    def scan(self, query: str, window: TimeWindow = ALL_TIME) -> Iterator[Hit]:
        """Every hit, newest first, however many there are."""

    def count(self, query: str, window: TimeWindow = ALL_TIME) -> int: ...

    def facets(
        self, query: str, window: TimeWindow, fields: Sequence[str], size: int = 10
    ) -> dict[str, list[tuple[str, int]]]:
        """Most frequent exact values per field (lists joined by spaces)."""

    def histogram(
        self, query: str, window: TimeWindow, interval: dt.timedelta, split_by: str | None = None
    ) -> dict[str, list[tuple[dt.datetime, int]]]:
        """Hit counts per time bucket; one series per value of ``split_by``
        (the key ``""`` holds the only series when there is no split)."""

    def builds(self, query: str, window: TimeWindow = ALL_TIME) -> list[BuildOutcome]:
        """The distinct builds with at least one hit, most hits first, with
        their status, job, pipeline, change, log URL and newest hit."""

    def match_build(self, build_uuid: str, queries: Sequence[str]) -> list[bool]:
        """Which of ``queries`` match the build, in one batched pass."""

    def build_files(self, build_uuid: str) -> dict[str, int]:
        """Indexed log files of a build with their line counts."""

    def field_names(self) -> list[str]: ...

    def newest_timestamp(self) -> dt.datetime | None: ...

    def health(self) -> dict[str, Any]: ...

    def writer(self) -> IndexWriter: ...

    def ingest_session(self, finish_merges: Callable[[], bool] = lambda: True) -> ContextManager[None]:
        """Around many writer batches in a row (ingesting many builds in one
        run): a backend may keep what it sets up per batch. Each batch still
        commits on its own. ``finish_merges`` is asked as the session ends:
        False (the process is stopping) leaves background merges unfinished,
        for a later session to do again, rather than holding up the stop."""

    def writer_wanted(self) -> bool:
        """Whether another process is waiting for this backend's writer, which
        an ingest session holds: the daemon then lets go after its batch."""

    def prune(self, before: dt.datetime, dry_run: bool = False, keep: Collection[str] = ()) -> Pruned | None:
        """Drop every build whose newest line is older than ``before``, whole
        (with ``dry_run``, only count them), but those of ``keep`` (build
        uuids). None: this backend's own store keeps what it keeps (a
        cluster's index lifecycle)."""

    def close(self) -> None: ...


def query_checker(settings: Any) -> Callable[[str], None]:
    """The backend's ``check_query`` without opening it (no index, no
    cluster needed): what ``lint`` runs, so a queries repository can gate on
    exactly what the configured engine will run."""
    if settings.backend in ("elasticsearch", "opensearch"):
        import functools

        from .cluster import check_cluster_query

        return functools.partial(check_cluster_query, engine=settings.backend)
    from .translate import QueryPlanner

    return QueryPlanner().check


def open_existing_backend(settings: Any) -> SearchBackend:
    """For the commands that only read: an embedded index that is not there
    is an error, never a new empty one (a wrong ``--data-dir`` would
    otherwise answer "0 hits" and a 100% classification rate)."""
    if settings.backend == "embedded":
        from ..errors import RecheckError
        from .embedded import EmbeddedBackend

        if not EmbeddedBackend.exists(settings.index_dir):
            raise RecheckError(f"no index in {settings.index_dir}: `elastic-recheck ingest` or `watch` makes one "
                               "(is --data-dir / ER_DATA_DIR right?)")
    return open_backend(settings)


def open_backend(settings: Any, writer_wait: float = 0.0) -> SearchBackend:
    """Build the backend the settings name. ``writer_wait``: how long a
    writer waits its turn on the embedded index (see EmbeddedBackend)."""
    from ..errors import ConfigError

    if settings.backend == "embedded":
        from ..private_paths import private_dir
        from .embedded import EmbeddedBackend

        private_dir(settings.data_dir)  # owner only, like everything elastic-recheck creates in it
        return EmbeddedBackend(settings.index_dir, writer_wait=writer_wait)
    if settings.backend in ("elasticsearch", "opensearch"):
        from .cluster import ClusterBackend

        return ClusterBackend(settings.cluster, settings.backend)
    raise ConfigError(f"unknown backend {settings.backend!r} (choose from: embedded, elasticsearch, opensearch)")


__all__ = [
    "ALL_TIME",
    "BUILD_FIELDS",
    "BuildOutcome",
    "Hit",
    "LIST_FIELDS",
    "IndexWriter",
    "SearchBackend",
    "SearchResult",
    "TimeWindow",
    "WriterBatch",
    "open_backend",
    "open_existing_backend",
    "query_checker",
]

