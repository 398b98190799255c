"""The embedded search backend: a tantivy index on disk, nothing to run.

One process writes at a time (tantivy's lock); any number of readers, in any
process, see each commit as it lands because every read reloads first.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from pathlib import Path
from typing import Any, Sequence

import tantivy
from tantivy import Occur, Order, Query

from .. import lucene
from ..analysis import ANALYZER_NAME, build_analyzer
from ..errors import BackendError, RecheckError
from . import schema as sch
from . import ALL_TIME, BuildOutcome, Hit, SearchResult, TimeWindow
from .translate import Translator

UTC = dt.timezone.utc
_FIELDS_FILE = "er-fields.json"
_MAX_BUCKETS = 60_000  # below tantivy's 65,000-bucket guard
_WRITER_HEAP = 256 * 1024 * 1024


class EmbeddedBackend:
    name = "embedded"

    def __init__(self, index_dir: str | os.PathLike[str]) -> None:
        self.path = Path(index_dir)
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            if tantivy.Index.exists(str(self.path)):
                self.index = tantivy.Index.open(str(self.path))
            else:
                self.index = tantivy.Index(sch.build_schema(), path=str(self.path))
        except (OSError, ValueError) as exc:
            raise BackendError(f"cannot open the index in {self.path}: {exc}") from None
        self.index.register_tokenizer(ANALYZER_NAME, build_analyzer())
        self.schema = self.index.schema
        self._queries: dict[str, Query] = {}
        self._lock = threading.Lock()

    # -- queries ------------------------------------------------------------

    def compile(self, query: str) -> Query:
        """The tantivy query for a Lucene query string (cached)."""
        with self._lock:
            cached = self._queries.get(query)
        if cached is not None:
            return cached
        compiled = Translator(self.schema, query).translate(lucene.parse(query))
        with self._lock:
            if len(self._queries) > 10_000:
                self._queries.clear()
            self._queries[query] = compiled
        return compiled

    def _window_query(self, query: Query, window: TimeWindow) -> Query:
        if window.start is None and window.end is None:
            return query
        span = Query.range_query(
            self.schema, sch.TS, tantivy.FieldType.Date, window.start, window.end,
            True, window.end is None,
        )
        return Query.boolean_query([(Occur.Must, query), (Occur.Must, span)])

    def _filtered(self, query: str, window: TimeWindow) -> Query:
        return self._window_query(self.compile(query), window)

    def _searcher(self) -> tantivy.Searcher:
        self.index.reload()
        return self.index.searcher()

    def search(self, query: str, window: TimeWindow = ALL_TIME, size: int = 10, offset: int = 0) -> SearchResult:
        searcher = self._searcher()
        result = self._run(
            searcher, self._filtered(query, window), limit=max(size, 1), order_by_field=sch.TS, order=Order.Desc,
            offset=offset,
        )
        hits = []
        for order_key, address in result.hits[:size]:
            stamp = dt.datetime.fromtimestamp(order_key / 1e9, UTC) if isinstance(order_key, int) else None
            hits.append(Hit(stamp, sch.from_stored(searcher.doc(address))))
        return SearchResult(total=result.count or 0, hits=hits)

    def count(self, query: str, window: TimeWindow = ALL_TIME) -> int:
        return self._count(self._searcher(), self._filtered(query, window))

    @staticmethod
    def _run(searcher: tantivy.Searcher, query: Query, **kwargs: Any) -> tantivy.SearchResult:
        try:
            return searcher.search(query, count=True, **kwargs)
        except ValueError as exc:
            raise BackendError(f"embedded search failed: {exc}") from None

    def _count(self, searcher: tantivy.Searcher, query: Query) -> int:
        return self._run(searcher, query, limit=1).count or 0

    def _aggregate(self, query: Query, aggs: dict[str, Any]) -> dict[str, Any]:
        try:
            return self._searcher().aggregate(query, aggs)
        except ValueError as exc:
            raise BackendError(f"embedded aggregation failed: {exc}") from None

    def facets(
        self, query: str, window: TimeWindow, fields: Sequence[str], size: int = 10
    ) -> dict[str, list[tuple[str, int]]]:
        if not fields:
            return {}
        # Ask for far more buckets than shown so ties sort exactly, and make
        # every segment report all of them so counts are exact.
        wanted = max(size * 20, 1000)
        aggs = {
            f"f{i}": {"terms": {"field": sch.facet_field(name), "size": wanted, "segment_size": wanted}}
            for i, name in enumerate(fields)
        }
        result = self._aggregate(self._filtered(query, window), aggs)
        out = {}
        for i, name in enumerate(fields):
            buckets = result.get(f"f{i}", {}).get("buckets", [])
            values = sorted(((str(b["key"]), int(b["doc_count"])) for b in buckets), key=lambda kv: (-kv[1], kv[0]))
            out[name] = values[:size]
        return out

    def histogram(
        self, query: str, window: TimeWindow, interval: dt.timedelta, split_by: str | None = None
    ) -> dict[str, list[tuple[dt.datetime, int]]]:
        seconds = int(interval.total_seconds())
        histogram = {"date_histogram": {"field": sch.TS, "fixed_interval": f"{seconds}s"}}
        if split_by is None:
            aggs: dict[str, Any] = {"h": histogram}
        else:
            aggs = {"s": {"terms": {"field": sch.facet_field(split_by), "size": 1000}, "aggs": {"h": histogram}}}
        result = self._aggregate(self._filtered(query, window), aggs)

        def series(agg: dict[str, Any]) -> list[tuple[dt.datetime, int]]:
            return [
                (dt.datetime.fromtimestamp(b["key"] / 1000, UTC), int(b["doc_count"]))
                for b in agg.get("buckets", [])
                if b["doc_count"]
            ]

        if split_by is None:
            return {"": series(result.get("h", {}))}
        return {str(b["key"]): series(b["h"]) for b in result.get("s", {}).get("buckets", [])}

    def builds(self, query: str, window: TimeWindow = ALL_TIME) -> list[BuildOutcome]:
        aggs = {
            "b": {
                "terms": {"field": "k_build_uuid", "size": _MAX_BUCKETS, "segment_size": _MAX_BUCKETS},
                "aggs": {"s": {"terms": {"field": "k_build_status", "size": 1}}},
            }
        }
        result = self._aggregate(self._filtered(query, window), aggs)
        outcomes = []
        for bucket in result.get("b", {}).get("buckets", []):
            statuses = bucket["s"]["buckets"]
            outcomes.append(BuildOutcome(str(bucket["key"]), str(statuses[0]["key"]) if statuses else ""))
        return outcomes

    def match_build(self, build_uuid: str, queries: Sequence[str]) -> list[bool]:
        """Group testing: one search answers "does any of these match?" for a
        whole group, and only groups that do are split. A build matching k of
        n fingerprints costs about 1 + 2k·log2(n) searches instead of n."""
        compiled = [self.compile(q) for q in queries]
        searcher = self._searcher()
        build = Query.term_query(self.schema, "k_build_uuid", build_uuid)
        matched = [False] * len(compiled)

        def any_match(indices: Sequence[int]) -> bool:
            group = (
                compiled[indices[0]]
                if len(indices) == 1
                else Query.boolean_query([(Occur.Should, compiled[i]) for i in indices])
            )
            query = Query.boolean_query([(Occur.Must, build), (Occur.Must, group)])
            return self._count(searcher, query) > 0

        def visit(indices: Sequence[int]) -> None:
            if not indices or not any_match(indices):
                return
            if len(indices) == 1:
                matched[indices[0]] = True
                return
            middle = len(indices) // 2
            visit(indices[:middle])
            visit(indices[middle:])

        visit(list(range(len(compiled))))
        return matched

    def build_files(self, build_uuid: str) -> dict[str, int]:
        query = Query.term_query(self.schema, "k_build_uuid", build_uuid)
        aggs = {"f": {"terms": {"field": "k_filename", "size": _MAX_BUCKETS, "segment_size": _MAX_BUCKETS}}}
        result = self._aggregate(query, aggs)
        return {str(b["key"]): int(b["doc_count"]) for b in result.get("f", {}).get("buckets", [])}

    def field_names(self) -> list[str]:
        extra = _read_fields(self.path)
        return sorted(set(sch.STANDARD_FIELDS) | set(extra) | {sch.TIMESTAMP_FIELD})

    def newest_timestamp(self) -> dt.datetime | None:
        result = self._run(self._searcher(), Query.all_query(), limit=1, order_by_field=sch.TS, order=Order.Desc)
        if not result.hits:
            return None
        return dt.datetime.fromtimestamp(result.hits[0][0] / 1e9, UTC)

    def health(self) -> dict[str, Any]:
        searcher = self._searcher()
        return {
            "backend": self.name,
            "status": "green",
            "path": str(self.path),
            "documents": searcher.num_docs,
            "segments": searcher.num_segments,
        }

    def writer(self) -> "EmbeddedWriter":
        return EmbeddedWriter(self)

    def close(self) -> None:
        self._queries.clear()


class EmbeddedWriter:
    """Buffers one batch; ``commit`` makes it visible to every reader at once,
    deletions of replaced builds included, so a re-ingested build is never seen
    twice or half."""

    def __init__(self, backend: EmbeddedBackend) -> None:
        self.backend = backend
        try:
            self._writer = backend.index.writer(_WRITER_HEAP)
        except ValueError as exc:
            if "lock" in str(exc).lower():
                raise BackendError(
                    f"the index in {backend.path} is being written by another process; try again when it is done"
                ) from None
            raise BackendError(f"cannot write to the index in {backend.path}: {exc}") from None
        self._fields: set[str] = set()
        self.added = 0

    def replace_build(self, build_uuid: str) -> None:
        self._writer.delete_documents_by_term("k_build_uuid", build_uuid)

    def add(self, doc: dict[str, Any], timestamp: dt.datetime) -> None:
        self._fields.update(name for name in doc if not sch.is_indexed_field(name))
        try:
            self._writer.add_json(sch.to_index_json(doc, timestamp))
        except ValueError as exc:
            raise RecheckError(f"document rejected by the index: {exc}") from None
        self.added += 1

    def commit(self) -> None:
        self._writer.commit()
        known = set(_read_fields(self.backend.path))
        if self._fields - known:
            _write_fields(self.backend.path, self._fields | known)

    def rollback(self) -> None:
        self._writer.rollback()

    def close(self) -> None:
        self._writer.wait_merging_threads()

    def __enter__(self) -> "EmbeddedWriter":
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.rollback()
        self.close()


def _read_fields(path: Path) -> list[str]:
    try:
        return json.loads((path / _FIELDS_FILE).read_text())
    except FileNotFoundError:
        return []


def _write_fields(path: Path, names: set[str]) -> None:
    tmp = path / (_FIELDS_FILE + ".tmp")
    tmp.write_text(json.dumps(sorted(names)))
    os.replace(tmp, path / _FIELDS_FILE)
