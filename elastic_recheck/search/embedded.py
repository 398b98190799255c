"""The embedded search backend: a tantivy index on disk, nothing to run.

One process writes at a time (tantivy's lock); any number of readers, in any
process, see each commit as it lands because every read reloads first.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Collection, Iterator, Sequence

import tantivy
from tantivy import Occur, Order, Query

from .. import lucene
from ..build_lines import FileLines
from ..analysis import (
    ANALYZER_NAME, PRETOKENIZED_NAME, build_analyzer, build_pretokenized_analyzer, index_text, index_texts,
)
from ..errors import BackendError, IndexBusy, RecheckError
from ..private_paths import private_dir
from . import schema as sch
from . import (
    ALL_TIME, BUILD_FIELDS, BuildOutcome, Hit, Pruned, SearchResult, TimeWindow, WriterBatch, epoch_micros,
    from_epoch_micros,
)
from .translate import Plan, QueryPlanner, Translator, prepare

try:
    from .._tokens import add_line_docs as _native_line_docs
except ImportError:  # an older build of the extension: the same documents, built in Python
    _native_line_docs = None

UTC = dt.timezone.utc
_FIELDS_FILE = "er-fields.json"
_LAYOUT_FILE = "er-layout.json"
# Touched by a process waiting for the index's writer, at each look: whoever
# holds the writer for a backlog lets go when it is fresh.
_WANTED_FILE = "writer-wanted"
_WANTED_FRESH_SECONDS = 5.0  # a waiter looks at least every second
_PRUNED_FILE = "er-pruned"  # replaced around each pruning's commit: compiled queries' context ids are stale
_MAX_BUCKETS = 60_000  # per aggregation, below tantivy's 65,000-bucket guard
_MAX_SPLIT_SERIES = 100
_LINES_HEAP = 64 * 1024 * 1024  # shared by its indexing threads
# Two threads index lines: with one, the writer's Python waited on tantivy's
# indexing thread (100 builds x 50k lines: 71 s, 62.6 s with two; the same CPU).
_LINES_THREADS = 2
_CONTEXTS_HEAP = 32 * 1024 * 1024
# tantivy's merges run at this niceness: they are background work, and at the
# same priority they took the CPU from the writer, which every build waits on
# (100 builds x 50k lines on 2 cores: the last result stored 2-5 s sooner).
# They still get every core the writer leaves idle.
_MERGE_NICENESS = 10
_MERGE_THREAD = "merge_thread"
_CONTEXT_CACHE = 200_000


def _open_index(path: Path, schema: tantivy.Schema) -> tantivy.Index:
    path.mkdir(parents=True, exist_ok=True)
    index = (
        tantivy.Index.open(str(path)) if tantivy.Index.exists(str(path)) else tantivy.Index(schema, path=str(path))
    )
    index.register_tokenizer(ANALYZER_NAME, build_analyzer())
    index.register_tokenizer(PRETOKENIZED_NAME, build_pretokenized_analyzer())
    return index


class EmbeddedBackend:
    name = "embedded"

    def __init__(self, index_dir: str | os.PathLike[str], max_buckets: int = _MAX_BUCKETS,
                 writer_wait: float = 0.0) -> None:
        """``max_buckets``: contexts per aggregation (tests make it small).
        ``writer_wait``: seconds to wait for the index's one writer while
        another process (the daemon between its commits, another ingest)
        holds it, before giving up with IndexBusy."""
        self.path = Path(index_dir)
        self.max_buckets = max_buckets
        self.writer_wait = writer_wait
        private_dir(self.path)  # 0700: the logs can hold anything a job printed
        _check_layout(self.path)
        try:
            self.lines = _open_index(self.path / "lines", sch.line_schema())
            self.contexts = _open_index(self.path / "contexts", sch.context_schema())
        except (OSError, ValueError) as exc:
            raise BackendError(f"cannot open the index in {self.path}: {exc}") from None
        self.schema = self.lines.schema
        self.context_schema = self.contexts.schema
        self._parsed: dict[str, lucene.Node] = {}
        self._read: dict[str, lucene.Node] = {}  # lucene.parse's answers, before prepare
        self._compiled: dict[str, tuple[tuple[int, tuple[int, int] | None], Query]] = {}
        self._compiled_once: set[int] = set()  # hashes of queries compiled once, not kept
        self._context_fields: dict[int, dict[str, Any]] = {}
        self._planner = QueryPlanner(self.schema, self.context_schema)
        self._plans: dict[str, Plan] = {}
        self._held: _HeldWriters | None = None
        self._lock = threading.Lock()

    @staticmethod
    def exists(index_dir: str | os.PathLike[str]) -> bool:
        """Whether an index was made in ``index_dir`` (opening one makes it)."""
        return (Path(index_dir) / _LAYOUT_FILE).is_file()

    # -- queries ------------------------------------------------------------

    def lucene_node(self, query: str) -> lucene.Node:
        """``lucene.parse(query)``, kept: the percolator compiles the queries
        this backend checked when the fingerprints were loaded, and parsing
        is most of that (~0.6 s for 1,000)."""
        with self._lock:
            node = self._read.get(query)
        if node is None:
            node = lucene.parse(query)
            with self._lock:
                if len(self._read) > 10_000:
                    self._read.clear()
                self._read[query] = node
        return node

    def parse(self, query: str) -> lucene.Node:
        """The query model, prepared for ``Translator(..., contexts=...)`` (cached)."""
        with self._lock:
            node = self._parsed.get(query)
        if node is None:
            node = prepare(self.lucene_node(query))
            with self._lock:
                if len(self._parsed) > 10_000:
                    self._parsed.clear()
                self._parsed[query] = node
        return node

    def _plan(self, query: str) -> Plan:
        """A query translated once for every build and every search it is run
        in; the one path every query takes (``check_query`` included)."""
        with self._lock:
            plan = self._plans.get(query)
        if plan is None:
            plan = self._planner.plan(query, self.parse(query))
            with self._lock:
                if len(self._plans) > 10_000:
                    self._plans.clear()
                    self._planner.leaves.clear()
                self._plans[query] = plan
        return plan

    def check_query(self, query: str) -> None:
        """Raise QuerySyntaxError unless this engine can run ``query``. The plan
        is kept, so the check costs nothing when the query is run."""
        self._plan(query)

    def compile(self, query: str) -> Query:
        """The tantivy query over ``lines/`` for a Lucene query string. Cached
        until new contexts arrive, since those may match its context clauses.
        Contexts only go by a pruning: its stamp, changed before and after it
        commits, is part of the generation, or a count of contexts back where
        it was before a pruning would bring back the ids of then."""
        searcher = self._context_searcher()
        generation = (searcher.num_docs, self._prune_stamp())
        with self._lock:
            cached = self._compiled.get(query)
        if cached is not None and cached[0] == generation:
            return cached[1]
        plan = self._plan(query)
        resolver = _ContextLookup(self, searcher)
        compiled = Translator(self.schema, query, contexts=resolver).instantiate(plan)
        with self._lock:
            # Kept from its second use on: a compiled query holds its context
            # clauses' id sets (megabytes when a clause such as voting:1
            # matches most files), and one-off queries (a bug page's
            # look-up of its builds' lines, er-query) would pile them up.
            key = hash(query)
            if cached is not None or key in self._compiled_once:
                if len(self._compiled) > 10_000:
                    self._compiled.clear()
                self._compiled[query] = (generation, compiled)
            else:
                if len(self._compiled_once) > 100_000:
                    self._compiled_once.clear()
                self._compiled_once.add(key)
        return compiled

    def _window_query(self, query: Query, window: TimeWindow) -> Query:
        if window.start is None and window.end is None:
            return query
        span = Query.range_query(
            self.schema, sch.TS, tantivy.FieldType.Integer,
            epoch_micros(window.start) if window.start else None,
            epoch_micros(window.end) if window.end else None,
            True, window.end is None,
        )
        return Query.boolean_query([(Occur.Must, query), (Occur.Must, span)])

    def _filtered(self, query: str, window: TimeWindow) -> Query:
        return self._window_query(self.compile(query), window)

    def _searcher(self) -> tantivy.Searcher:
        return self._reloaded(self.lines)

    def _context_searcher(self) -> tantivy.Searcher:
        return self._reloaded(self.contexts)

    def _reloaded(self, index: tantivy.Index) -> tantivy.Searcher:
        """A searcher on the latest commit. A directory gone from under us
        (unmounted, moved) is the backend being unavailable, not a crash."""
        try:
            index.reload()
            return index.searcher()
        except ValueError as exc:
            raise BackendError(f"the index in {self.path} cannot be read: {exc}") from None

    def search(self, query: str, window: TimeWindow = ALL_TIME, size: int = 10, offset: int = 0) -> SearchResult:
        compiled = self._filtered(query, window)
        searcher = self._searcher()
        result = self._run(
            searcher, compiled, limit=max(size, 1), order_by_field=sch.TS, order=Order.Desc, offset=offset,
        )
        rows = []
        for order_key, address in result.hits[:size]:
            doc = searcher.doc(address)
            rows.append((from_epoch_micros(order_key), doc.get_first(sch.CID), doc))
        contexts = self.context_fields([cid for _, cid, _ in rows if cid is not None])
        hits = []
        for stamp, cid, doc in rows:
            source = {"@timestamp": sch.format_timestamp(stamp), "message": sch.stored_message(doc)}
            source.update(contexts.get(cid, {}))
            hits.append(Hit(stamp, source))
        return SearchResult(total=result.count or 0, hits=hits)

    def scan(self, query: str, window: TimeWindow = ALL_TIME, page: int = 1000) -> Iterator[Hit]:
        offset = 0
        while True:
            result = self.search(query, window, size=page, offset=offset)
            yield from result.hits
            offset += len(result.hits)
            if not result.hits or offset >= result.total:
                return

    def newest_file_lines(self, build_uuid: str, per_file: int, fields: bool = True) -> list[FileLines]:
        """``build_lines.newest_lines`` on this index: one search per file,
        sorted on the time column and cut at ``per_file``, each line's stored
        message read once. ``scan``'s pages of 1,000 searched the build again
        for each page and joined every line's context; a cold ``suggest``
        spent most of its time there."""
        searcher = self._searcher()
        cids = self._build_cids(self._context_searcher(), build_uuid)
        contexts = self.context_fields(cids)
        by_file: dict[str, list[int]] = {}
        for cid in cids:
            by_file.setdefault(sch.facet_value(contexts[cid].get("filename") or ""), []).append(cid)
        found: list[FileLines] = []
        for name, group in sorted(by_file.items()):
            result = self._run(searcher, self._in_contexts(group), limit=max(per_file, 1), order_by_field=sch.TS,
                               order=Order.Desc)
            if not result.count:
                continue  # contexts of lines a re-ingest replaced
            addresses = [address for _, address in result.hits[:per_file]]
            docs = [searcher.doc(address) for address in addresses]
            messages = [sch.stored_message(doc) for doc in docs]
            lines = FileLines(name, result.count, messages)
            if fields:
                lines.micros = [stamp for stamp, _ in result.hits[:per_file]]
                lines.fields = [contexts[cid] for cid in searcher.fast_field_values(sch.CID, addresses)]
            found.append(lines)
        return found

    def count(self, query: str, window: TimeWindow = ALL_TIME) -> int:
        compiled = self._filtered(query, window)
        return self._count(self._searcher(), compiled)

    @staticmethod
    def _run(searcher: tantivy.Searcher, query: Query, count: bool = True, **kwargs: Any) -> tantivy.SearchResult:
        try:
            return searcher.search(query, count=count, **kwargs)
        except ValueError as exc:
            raise BackendError(f"embedded search failed: {exc}") from None

    def _count(self, searcher: tantivy.Searcher, query: Query) -> int:
        # Ordered by a fast field, so nothing is scored: BM25 statistics for
        # every term made a thousand-fingerprint count 2-3x slower (measured).
        return self._run(searcher, query, limit=1, order_by_field=sch.CID).count or 0

    def _aggregate(self, searcher: tantivy.Searcher, query: Query, aggs: dict[str, Any]) -> dict[str, Any]:
        try:
            return searcher.aggregate(query, aggs)
        except ValueError as exc:
            raise BackendError(f"embedded aggregation failed: {exc}") from None

    # -- contexts -------------------------------------------------------------

    def _context_counts(self, query: Query) -> dict[int, int]:
        """Hits per context: every facet on a context field is a sum over these."""
        return {cid: count for cid, (count, _) in self._context_buckets(query, newest=False).items()}

    def _context_buckets(
        self, query: Query, newest: bool, low: int = 0, high: int = sch.CID_END
    ) -> dict[int, tuple[int, int | None]]:
        """Hits per context with ``cid`` in ``[low, high)``, and with ``newest``
        the newest hit's timestamp (micros).

        One aggregation holds at most ``max_buckets`` contexts (tantivy refuses
        more than 65,000 buckets), and a broad query over days of CI matches
        lines of far more. ``cid`` is a uniform hash, so halving its range
        halves the contexts: a full answer is split until each half fits."""
        searcher = self._searcher()
        scoped = query
        if (low, high) != (0, sch.CID_END):
            upper = None if high == sch.CID_END else high  # 2**63 is past the integer field's range
            span = Query.range_query(self.schema, sch.CID, tantivy.FieldType.Integer, low, upper, True, upper is None)
            scoped = Query.boolean_query([(Occur.Must, query), (Occur.Must, span)])
        terms: dict[str, Any] = {"field": sch.CID, "size": self.max_buckets, "segment_size": self.max_buckets}
        aggs: dict[str, Any] = {"c": {"terms": terms}}
        if newest:
            aggs["c"]["aggs"] = {"newest": {"max": {"field": sch.TS}}}
        buckets = self._aggregate(searcher, scoped, aggs).get("c", {}).get("buckets", [])
        if len(buckets) >= self.max_buckets and high - low > 1:
            middle = low + (high - low) // 2
            return {**self._context_buckets(query, newest, low, middle), **self._context_buckets(query, newest, middle, high)}
        out: dict[int, tuple[int, int | None]] = {}
        for bucket in buckets:
            value = bucket.get("newest", {}).get("value") if newest else None
            out[int(bucket["key"])] = (int(bucket["doc_count"]), None if value is None else int(value))
        return out

    def context_fields(self, cids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """The fields of each context (immutable per ``cid``, so cached)."""
        missing = [cid for cid in set(cids) if cid not in self._context_fields]
        if missing:
            searcher = self._context_searcher()
            query = sch.in_contexts(self.context_schema, missing)
            result = self._run(searcher, query, limit=len(missing), order_by_field=sch.CID)
            loaded = dict(sch.stored_context(searcher.doc(address)) for _, address in result.hits)
            with self._lock:
                if len(self._context_fields) + len(loaded) > _CONTEXT_CACHE:
                    self._context_fields.clear()
                self._context_fields.update(loaded)
        return {cid: self._context_fields.get(cid, {}) for cid in cids}

    def _cids(self, searcher: tantivy.Searcher, query: Query) -> list[int]:
        result = self._run(searcher, query, limit=max(searcher.num_docs, 1), order_by_field=sch.CID)
        return [int(key) for key, _ in result.hits]

    def _build_cids(self, searcher: tantivy.Searcher, build_uuid: str) -> list[int]:
        return self._cids(searcher, Query.term_query(self.context_schema, sch.facet_field("build_uuid"), build_uuid))

    def _in_contexts(self, cids: Sequence[int]) -> Query:
        return sch.in_contexts(self.schema, list(cids))

    # -- aggregations ---------------------------------------------------------

    def facets(
        self, query: str, window: TimeWindow, fields: Sequence[str], size: int = 10
    ) -> dict[str, list[tuple[str, int]]]:
        context_fields = [name for name in fields if sch.is_context_field(name)]
        out: dict[str, list[tuple[str, int]]] = {name: [] for name in fields}
        if not context_fields:
            return out
        counts = self._context_counts(self._filtered(query, window))
        contexts = self.context_fields(list(counts))
        for name in context_fields:
            tally = _sum_by_value(counts, contexts, name)
            out[name] = sorted(tally.items(), key=lambda kv: (-kv[1], kv[0]))[:size]
        return out

    def histogram(
        self, query: str, window: TimeWindow, interval: dt.timedelta, split_by: str | None = None
    ) -> dict[str, list[tuple[dt.datetime, int]]]:
        compiled = self._filtered(query, window)
        step = int(interval.total_seconds() * 1_000_000)
        if step <= 0:
            raise BackendError(f"histogram interval must be positive, not {interval}")
        aggs = {"h": {"histogram": {"field": sch.TS, "interval": step}}}
        searcher = self._searcher()

        def series(q: Query) -> list[tuple[dt.datetime, int]]:
            result = self._aggregate(searcher, q, aggs)
            return [
                (from_epoch_micros(b["key"]), int(b["doc_count"]))
                for b in result.get("h", {}).get("buckets", [])
                if b["doc_count"]
            ]

        if split_by is None:
            return {"": series(compiled)}
        groups: dict[str, list[int]] = {}
        counts = self._context_counts(compiled)
        for cid, fields in self.context_fields(list(counts)).items():
            value = fields.get(split_by)
            if value is not None:
                groups.setdefault(sch.facet_value(value), []).append(cid)
        if len(groups) > _MAX_SPLIT_SERIES:
            raise BackendError(f"{split_by} has more than {_MAX_SPLIT_SERIES} values here; split by another field")
        return {
            value: series(Query.boolean_query([(Occur.Must, compiled), (Occur.Must, self._in_contexts(cids))]))
            for value, cids in sorted(groups.items())
        }

    def builds(self, query: str, window: TimeWindow = ALL_TIME) -> list[BuildOutcome]:
        buckets = self._context_buckets(self._filtered(query, window), newest=True)
        per_build: dict[str, dict[str, Any]] = {}
        for cid, fields in self.context_fields(list(buckets)).items():
            uuid = fields.get("build_uuid")
            if uuid is None:
                continue
            count, newest = buckets[cid]
            entry = per_build.setdefault(sch.facet_value(uuid), {"hits": 0, "newest": None, "rank": None})
            entry["hits"] += count
            # The fields (log_url differs per file) are those of the newest hit, as a cluster's top hit gives.
            rank = (newest if newest is not None else -1, count)
            if entry["rank"] is None or rank > entry["rank"]:
                entry["rank"] = rank
                entry["newest"] = newest
                entry["fields"] = {name: sch.facet_value(fields[name]) for name in ("build_status", *BUILD_FIELDS)
                                   if fields.get(name) is not None}
        ranked = sorted(per_build.items(), key=lambda kv: (-kv[1]["hits"], kv[0]))
        return [
            BuildOutcome(
                uuid, **{"build_status": "", **entry["fields"]}, hits=entry["hits"],
                last_hit=None if entry["newest"] is None else from_epoch_micros(entry["newest"]),
            )
            for uuid, entry in ranked
        ]

    def match_build(self, build_uuid: str, queries: Sequence[str]) -> list[bool]:
        """Group testing: one search answers "does any of these match?" for a
        whole group, and only groups that do are split. A build matching k of
        n fingerprints costs about 1 + 2k·log2(n) searches instead of n.

        Context clauses are answered among the build's own contexts only, so
        nothing here depends on the size of the index."""
        context_searcher = self._context_searcher()
        build_cids = self._build_cids(context_searcher, build_uuid)
        matched = [False] * len(queries)
        if not build_cids:
            return matched
        resolver = _ContextLookup(self, context_searcher, within=build_cids)
        translator = Translator(self.schema, "", contexts=resolver, context_cache={})
        compiled = [translator.instantiate(self._plan(q)) for q in queries]
        searcher = self._searcher()
        build = self._in_contexts(build_cids)

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
        counts = self._context_counts(self._in_contexts(self._build_cids(self._context_searcher(), build_uuid)))
        return _sum_by_value(counts, self.context_fields(list(counts)), "filename")

    def field_names(self) -> list[str]:
        extra = _read_fields(self.path)
        return sorted(set(sch.STANDARD_FIELDS) | set(extra) | {sch.TIMESTAMP_FIELD})

    def newest_timestamp(self) -> dt.datetime | None:
        # Not counted: the count of every line cost a third of the answer at 20M lines.
        result = self._run(self._searcher(), Query.all_query(), count=False, limit=1, order_by_field=sch.TS,
                           order=Order.Desc)
        if not result.hits:
            return None
        return from_epoch_micros(result.hits[0][0])

    def health(self) -> dict[str, Any]:
        searcher = self._searcher()
        return {
            "backend": self.name,
            "status": "green",
            "path": str(self.path),
            "documents": searcher.num_docs,
            "contexts": self._context_searcher().num_docs,
            "segments": searcher.num_segments,
        }

    def writer(self) -> "EmbeddedWriter":
        return EmbeddedWriter(self, self._held)

    def writer_wanted(self) -> bool:
        try:
            touched = (self.path / _WANTED_FILE).stat().st_mtime
        except OSError:
            return False
        return abs(time.time() - touched) < _WANTED_FRESH_SECONDS

    def prune(self, before: dt.datetime, dry_run: bool = False, keep: Collection[str] = ()) -> Pruned:
        """A build goes whole, once its newest line is older than ``before``:
        the pages, a comment and a fingerprint run again never see part of a
        build. ``keep``: build uuids that stay all the same (indexed lately,
        whatever their lines' dates). Lines with no ``build_uuid`` (an
        export's) go by their file, each counted as a build. What goes is
        chosen once the writer is held, so nothing committed meanwhile goes
        with it. Disk space comes back as tantivy drops segments left with
        no line (the oldest first: segments are merged with ones of similar
        size, which were mostly written around the same time)."""
        if dry_run:
            return self._prunable(before, keep)[0]
        writer = self.writer()
        try:
            pruned, cids = self._prunable(before, keep)
            if cids:
                self._bump_prune_stamp()  # before and after: see compile()
                writer.forget_contexts(cids)
                writer.commit()
                self._bump_prune_stamp()
        except BaseException:
            writer.rollback()  # a held writer must not carry the deletions into the next batch
            raise
        finally:
            writer.close()
        return pruned

    def _prunable(self, before: dt.datetime, keep: Collection[str]) -> tuple[Pruned, list[int]]:
        cutoff = epoch_micros(before)
        older = Query.range_query(self.schema, sch.TS, tantivy.FieldType.Integer, None, cutoff, True, False)
        old = self._context_counts(older)
        if not old:
            return Pruned(), []
        found = self.context_fields(list(old))
        # a build (or a lone context) -> every context of it, those with only newer lines too
        units = {f"cid:{cid}": [cid] for cid, fields in found.items() if "build_uuid" not in fields}
        builds = sorted({sch.facet_value(fields["build_uuid"]) for fields in found.values() if "build_uuid" in fields}
                        .difference(keep))
        if builds:
            of_builds = Query.term_set_query(self.context_schema, sch.facet_field("build_uuid"), builds)
            for cid, fields in self.context_fields(self._cids(self._context_searcher(), of_builds)).items():
                units.setdefault(sch.facet_value(fields["build_uuid"]), []).append(cid)
        every = sorted({cid for cids in units.values() for cid in cids})
        if not every:
            return Pruned(), []
        newer = Query.boolean_query([(Occur.Must, self._in_contexts(every)), (Occur.MustNot, older)])
        kept = set(self._context_counts(newer))
        gone = [cids for cids in units.values() if kept.isdisjoint(cids)]
        cids = [cid for unit in gone for cid in unit]
        counts = self._context_counts(self._in_contexts(cids)) if cids else {}
        return Pruned(builds=len(gone), lines=sum(counts.values())), cids

    def _prune_stamp(self) -> tuple[int, int] | None:
        try:
            seen = (self.path / _PRUNED_FILE).stat()
        except OSError:
            return None
        return seen.st_ino, seen.st_mtime_ns

    def _bump_prune_stamp(self) -> None:
        """A new file each time (a new inode), read by every process's compile()."""
        fresh = self.path / f".{_PRUNED_FILE}.{os.getpid()}.tmp"
        fresh.write_text(f"{time.time_ns()}\n")
        os.replace(fresh, self.path / _PRUNED_FILE)

    @contextlib.contextmanager
    def ingest_session(self, finish_merges: Callable[[], bool] = lambda: True) -> Iterator[None]:
        """Keep the tantivy writers open across batches. Opening and closing
        them costs ~4 ms each per batch on an index of a few segments
        (measured), about a tenth of ingesting a build; meanwhile no other
        process can write to the index. A merge left unfinished leaves the
        committed segments as they were (it writes new ones); its files are
        removed at a later commit."""
        if self._held is not None:  # already in one
            yield
            return
        self._held = _HeldWriters(self)
        try:
            yield
        finally:
            held, self._held = self._held, None
            held.close(wait=finish_merges())

    def close(self) -> None:
        self._parsed.clear()
        self._read.clear()
        self._compiled.clear()
        self._compiled_once.clear()
        self._context_fields.clear()
        self._planner.leaves.clear()
        self._plans.clear()


def _sum_by_value(counts: dict[int, int], contexts: dict[int, dict[str, Any]], name: str) -> dict[str, int]:
    """Hits per facet value of ``name``, from hits per context. A list shows
    as its entries in stored order joined by spaces (``console.html console``),
    as the original er-query printed it; an empty list is no value."""
    tally: dict[str, int] = {}
    for cid, hits in counts.items():
        value = contexts[cid].get(name)
        if value is not None and value != []:
            key = sch.facet_value(value)
            tally[key] = tally.get(key, 0) + hits
    return tally


class _ContextLookup:
    """Answers context clauses from ``contexts/`` (optionally only among the
    contexts ``within``), each distinct clause once."""

    def __init__(self, backend: EmbeddedBackend, searcher: tantivy.Searcher, within: Sequence[int] | None = None):
        self.backend = backend
        self.schema = backend.context_schema
        self.searcher = searcher
        self.within = sch.in_contexts(self.schema, list(within)) if within is not None else None
        self.scope = len(set(within)) if within is not None else None
        self._answers: dict[lucene.Node, list[int]] = {}
        self._terms: dict[str, list[str]] = {}

    def terms(self, field: str) -> list[str]:
        if field not in self._terms:
            self._terms[field] = [term for term, _ in self.searcher.terms_with_prefix(field, "")]
        return self._terms[field]

    def cids(self, key: lucene.Node, query: Query) -> list[int]:
        answer = self._answers.get(key)
        if answer is None:
            if self.within is not None:
                query = Query.boolean_query([(Occur.Must, self.within), (Occur.Must, query)])
            answer = self._answers[key] = self.backend._cids(self.searcher, query)
        return answer


class EmbeddedWriter(WriterBatch):
    """Buffers one batch; ``commit`` makes it visible to every reader at once,
    deletions of replaced builds included, so a re-ingested build is never seen
    twice or half. Contexts commit before lines, so no reader ever sees a line
    whose context it cannot find."""

    def __init__(self, backend: EmbeddedBackend, held: "_HeldWriters | None" = None) -> None:
        self.backend = backend
        self._held = held
        self._lines, self._contexts = held.writers() if held else _open_writers(backend)
        self._searcher = backend._context_searcher()
        self._cids: dict[str, int] = {}
        self._prefixes: dict[int, str] = {}
        self._batch_cids: dict[str, set[int]] = {}  # build_uuid -> contexts added by this batch
        self._fields: set[str] = set()
        self._forgotten: set[int] = set()
        self.added = 0

    def replace_build(self, build_uuid: str) -> None:
        """Its lines go, committed ones and any this batch added already (a
        build met twice in one batch ends up once)."""
        cids = set(self.backend._build_cids(self._searcher, build_uuid)) | self._batch_cids.get(build_uuid, set())
        for cid in cids:
            self._lines.delete_documents_by_term(sch.CID, cid)

    def forget_contexts(self, cids: Sequence[int]) -> None:
        """These contexts and their lines go when the batch commits (retention):
        the lines first, then the contexts, so no reader sees a line whose
        context is gone."""
        for cid in cids:
            self._lines.delete_documents_by_term(sch.CID, cid)
        self._forgotten.update(cids)

    def context(self, fields: dict[str, Any]) -> int:
        """The ``cid`` for these fields (message and @timestamp ignored),
        adding the context if it is new."""
        canonical = sch.canonical_context(fields)
        cid = self._cids.get(canonical)
        if cid is None:
            cid = sch.context_id(canonical)
            known = Query.term_query(self.backend.context_schema, sch.CID, cid)
            if not self.backend._count(self._searcher, known):
                try:
                    self._contexts.add_json(sch.context_json(cid, canonical))
                except ValueError as exc:
                    raise RecheckError(f"document rejected by the index: {exc}") from None
            self._fields.update(name for name in fields if not sch.is_indexed_field(name))
            self._cids[canonical] = cid
            self._prefixes[cid] = sch.line_prefix(cid)
            build = fields.get("build_uuid")
            if build is not None:
                self._batch_cids.setdefault(sch.facet_value(build), set()).add(cid)
        return cid

    def add_line(self, cid: int, micros: int, message: str) -> None:
        """One log event of a context from :meth:`context`: the ingest fast path."""
        self.add_analysed_line(cid, micros, message, index_text(message))

    def add_analysed_line(self, cid: int, micros: int, message: str, tokens: str) -> None:
        """:meth:`add_line` with the message already analysed (``analysis.index_text``):
        the pipeline analyses each line once, for the index and the percolator."""
        try:
            self._lines.add_json(sch.line_json(self._prefixes[cid], micros, message, tokens))
        except ValueError as exc:
            raise RecheckError(f"document rejected by the index: {exc}") from None
        self.added += 1

    def add_lines(self, cids: list[int], micros: list[int], messages: list[str]) -> None:
        """Many lines, each of its context: :meth:`add_line` in one call."""
        self.add_analysed_lines(cids, micros, messages, index_texts(messages))

    def add_analysed_lines(self, cids: list[int], micros: list[int], messages: list[str], tokens: list[str]) -> None:
        """:meth:`add_analysed_line` for many lines; the documents are built
        and handed to tantivy in C when the extension has it."""
        try:
            if _native_line_docs is not None:
                _native_line_docs(self._lines.add_json, cids, micros, messages, tokens, self._line_json)
            else:
                add = self._lines.add_json
                for cid, when, message, terms in zip(cids, micros, messages, tokens):
                    add(self._line_json(cid, when, message, terms))
        except ValueError as exc:
            raise RecheckError(f"document rejected by the index: {exc}") from None
        self.added += len(cids)

    def _line_json(self, cid: int, micros: int, message: str, tokens: str) -> str:
        return sch.line_json(self._prefixes[cid], micros, message, tokens)

    def add(self, doc: dict[str, Any], timestamp: dt.datetime) -> None:
        """A document the index cannot take (text no UTF-8 encoder takes,
        nesting too deep to encode) is refused alone, the batch goes on."""
        try:
            message = doc.get(sch.MESSAGE)
            if isinstance(message, list):
                message = "\n".join(sch.facet_value(part) for part in message)
            elif message is not None and not isinstance(message, str):
                message = sch.facet_value(message)
            self.add_line(self.context(doc), epoch_micros(timestamp), message or "")
        except (ValueError, RecursionError, OverflowError) as exc:
            raise RecheckError(f"document rejected by the index: {exc}") from None

    def commit(self) -> None:
        _merges_in_background()
        try:
            self._contexts.commit()
            self._lines.commit()
            if self._forgotten:  # a crash before this leaves contexts with no line: unused, never shown
                for cid in self._forgotten:
                    self._contexts.delete_documents_by_term(sch.CID, cid)
                self._contexts.commit()
                self._forgotten.clear()
        except ValueError as exc:  # a full disk, a directory gone read-only
            raise BackendError(f"cannot commit to the index in {self.backend.path}: {exc}") from None
        known = set(_read_fields(self.backend.path))
        if self._fields - known:
            _write_fields(self.backend.path, self._fields | known)

    def rollback(self) -> None:
        self._lines.rollback()
        self._contexts.rollback()

    def close(self) -> None:
        if self._held is None:
            self._lines.wait_merging_threads()
            self._contexts.wait_merging_threads()


def _open_writers(backend: EmbeddedBackend) -> tuple[tantivy.IndexWriter, tantivy.IndexWriter]:
    lines = _open_writer(backend, backend.lines, _LINES_HEAP, _LINES_THREADS)
    try:
        return lines, _open_writer(backend, backend.contexts, _CONTEXTS_HEAP, 1)
    except BackendError:
        lines.rollback()
        lines.wait_merging_threads()
        raise


def _merges_in_background() -> None:
    """tantivy's merge threads at a lower priority than the threads a build
    waits on. Called before each commit (the commit starts the merges): a
    pool's threads name themselves once running, so right after the writer
    is opened some are not found yet. Where threads cannot be found by name
    (no ``/proc``) they stay as they are."""
    try:
        tasks = list(Path("/proc/self/task").iterdir())
    except OSError:
        return
    for task in tasks:
        try:
            if (task / "comm").read_text().startswith(_MERGE_THREAD):
                tid = int(task.name)
                os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), _MERGE_NICENESS))
        except (OSError, ValueError):  # a thread gone meanwhile
            continue


def _open_writer(backend: EmbeddedBackend, index: tantivy.Index, heap: int, threads: int) -> tantivy.IndexWriter:
    """Its turn, waited for up to ``backend.writer_wait`` seconds: tantivy
    allows one writer per index, and whoever holds it commits and lets go."""
    give_up = time.monotonic() + backend.writer_wait
    pause = 0.05
    wanted = backend.path / _WANTED_FILE
    while True:
        try:
            writer = index.writer(heap, threads)
        except ValueError as exc:
            if "lock" not in str(exc).lower():
                raise BackendError(f"cannot write to the index in {backend.path}: {exc}") from None
        else:
            with contextlib.suppress(OSError):
                wanted.unlink()  # another waiter touches it again at its next look
            return writer
        if backend.writer_wait:  # the holder lets go after its batch (an ingest session, the daemon's)
            with contextlib.suppress(OSError):
                wanted.touch()
        if time.monotonic() >= give_up:
            waited = f" (waited {backend.writer_wait:g} s)" if backend.writer_wait else ""
            raise IndexBusy(f"the index in {backend.path} is being written by another process{waited}; "
                            "try again when it is done")
        time.sleep(min(pause, max(give_up - time.monotonic(), 0.0)))
        pause = min(pause * 2, 1.0)


class _HeldWriters:
    """The writers of an ingest session, opened by its first batch."""

    def __init__(self, backend: EmbeddedBackend) -> None:
        self.backend = backend
        self._writers: tuple[tantivy.IndexWriter, tantivy.IndexWriter] | None = None

    def writers(self) -> tuple[tantivy.IndexWriter, tantivy.IndexWriter]:
        if self._writers is None:
            self._writers = _open_writers(self.backend)
        return self._writers

    def close(self, wait: bool = True) -> None:
        """``wait``: for the merges the commits started (else dropping the
        writers lets go of the index at once, their merges cut off when the
        process exits)."""
        if self._writers is not None:
            if wait:
                for writer in self._writers:
                    writer.wait_merging_threads()
            self._writers = None


def _check_layout(path: Path) -> None:
    """Refuse an index another version laid out, rather than misread it."""
    layout = path / _LAYOUT_FILE
    if layout.exists():
        version = json.loads(layout.read_text()).get("version")
        if version != sch.LAYOUT_VERSION:
            raise BackendError(
                f"the index in {path} has layout version {version}; this version reads {sch.LAYOUT_VERSION} "
                "(its layout or text analysis changed): re-ingest the logs into a new data directory"
            )
        return
    if (path / "meta.json").exists():
        raise BackendError(
            f"the index in {path} was made by an older version of elastic-recheck; ingest into a new data directory"
        )
    layout.write_text(json.dumps({"version": sch.LAYOUT_VERSION}))


def _read_fields(path: Path) -> list[str]:
    try:
        return json.loads((path / _FIELDS_FILE).read_text())
    except FileNotFoundError:
        return []


def _write_fields(path: Path, names: set[str]) -> None:
    tmp = path / (_FIELDS_FILE + ".tmp")
    tmp.write_text(json.dumps(sorted(names)))
    os.replace(tmp, path / _FIELDS_FILE)
