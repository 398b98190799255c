"""The Elasticsearch / OpenSearch backend: the same contract as the embedded
index, answered by a cluster.

Fingerprints go out as ``query_string`` exactly as written, facets and
histograms are aggregations computed by the cluster, and one build is
classified against every fingerprint in a single ``_msearch``. Searches name
only the day indices of the time window that exist.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import re
import threading
import time
import urllib.parse
from typing import Any, Callable, Collection, ContextManager, Iterator, Sequence

from .. import lucene
from ..config import ClusterSettings
from ..errors import BackendError, QuerySyntaxError
from ..ingest.documents import parse_timestamp
from . import (
    ALL_TIME, BUILD_FIELDS, BuildOutcome, Hit, Pruned, SearchResult, TimeWindow, WriterBatch, from_epoch_micros,
)
from . import cluster_requests as rq
from .cluster_connection import RETRY_STATUSES, ClusterConnection, ClusterHTTPError, error_reason, shard_failure
from .day_indices import DayIndices
from .schema import STANDARD_FIELDS, facet_value

log = logging.getLogger(__name__)
UTC = dt.timezone.utc
SEARCH_PARAMS = {"ignore_unavailable": True, "allow_no_indices": True}
SCROLL = "2m"
EXISTING_TTL = 60.0  # seconds the list of existing indices is trusted
BULK_BYTES = 10 * 1024 * 1024
MAX_REPORTED_REJECTIONS = 5


class ClusterBackend:
    def __init__(self, settings: ClusterSettings, product: str, connection: ClusterConnection | None = None) -> None:
        self.name = product
        self.settings = settings
        self.days = DayIndices(settings.index_pattern)
        self.suffix = settings.keyword_suffix
        self.connection = connection or ClusterConnection(settings, product)
        self._existing: tuple[float, list[str]] | None = None
        self._template_done = False
        self._lock = threading.Lock()

    def check_query(self, query: str) -> None:
        """Raise QuerySyntaxError for what is knowable without asking the cluster."""
        check_cluster_query(query, self.name)

    # -- which indices ---------------------------------------------------------

    def existing_indices(self) -> list[str]:
        """Our day indices that exist, oldest first (cached for a minute)."""
        with self._lock:
            cached = self._existing
        if cached is not None and time.monotonic() - cached[0] < EXISTING_TTL:
            return cached[1]
        rows = self.connection.request(
            "GET", f"/_cat/indices/{_quote(self.days.wildcard)}",
            {"h": "index", "format": "json", "expand_wildcards": "open"}, missing_ok=True,
        ) or []
        names = sorted(row["index"] for row in rows if isinstance(row, dict) and self.days.matches(row.get("index", "")))
        with self._lock:
            self._existing = (time.monotonic(), names)
        return names

    def index_for(self, window: TimeWindow, now: dt.datetime | None = None) -> str:
        """The index expression for a window: the existing day indices in it
        (plus today's, which may be created at any moment), or the wildcard."""
        now = now or dt.datetime.now(UTC)
        names = self.days.names(window, now)
        if names is None:
            return self.days.wildcard
        existing = set(self.existing_indices())
        chosen = [name for name in names if name in existing]
        today = self.days.name(now)
        if today in names and today not in chosen:
            chosen.append(today)
        return ",".join(chosen or names[-1:])

    def _build_window(self) -> TimeWindow:
        return TimeWindow.last_days(self.settings.build_days)

    # -- requests --------------------------------------------------------------

    def _search(self, index: str, body: dict[str, Any], query: str | None = None,
                params: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self._query_request("POST", f"/{_quote(index)}/_search", body, query, {**SEARCH_PARAMS, **(params or {})})
        return self._complete(response)

    def _complete(self, response: Any, consequence: str = "results would be incomplete") -> Any:
        """The response, unless some shards failed: a partial answer could
        hide a match, so it is an error (retried by the daemon)."""
        failure = shard_failure(response)
        if failure:
            raise BackendError(f"{self.connection.label}: {failure}; {consequence}")
        return response

    def _query_request(self, method: str, path: str, body: Any, query: str | None,
                       params: dict[str, Any] | None = None) -> Any:
        """A request carrying a fingerprint: a query the cluster refuses is the
        query's fault (QuerySyntaxError), not the cluster's."""
        try:
            return self.connection.request(method, path, params, body)
        except ClusterHTTPError as exc:
            if query is not None and exc.status == 400:
                raise QuerySyntaxError(query, exc.reason, engine=self.name) from None
            raise

    def search(self, query: str, window: TimeWindow = ALL_TIME, size: int = 10, offset: int = 0) -> SearchResult:
        if offset + size > rq.MAX_RESULT_WINDOW:
            raise BackendError(
                f"{self.connection.label}: hits past the first {rq.MAX_RESULT_WINDOW:,} cannot be paged to; "
                "stream them instead (er-query --json)"
            )
        response = self._search(self.index_for(window), rq.search_body(query, window, size, offset), query)
        hits = response.get("hits", {})
        return SearchResult(total=_total(hits), hits=[_hit(h) for h in hits.get("hits", [])])

    def scan(self, query: str, window: TimeWindow = ALL_TIME) -> Iterator[Hit]:
        """Every hit, newest first, through a scroll: no 10,000-hit ceiling."""
        response = self._search(self.index_for(window), rq.scan_body(query, window), query, {"scroll": SCROLL})
        scroll_id = response.get("_scroll_id")
        try:
            while True:
                page = response.get("hits", {}).get("hits", [])
                if not page:
                    return
                for raw in page:
                    yield _hit(raw)
                if not scroll_id:
                    return
                response = self._complete(self.connection.request("POST", "/_search/scroll", None,
                                                                  {"scroll": SCROLL, "scroll_id": scroll_id}))
                scroll_id = response.get("_scroll_id", scroll_id)
        finally:
            if scroll_id:
                try:
                    self.connection.request("DELETE", "/_search/scroll", None, {"scroll_id": [scroll_id]},
                                            missing_ok=True)
                except BackendError as exc:  # it expires by itself
                    log.debug("could not clear a scroll: %s", exc)

    def count(self, query: str, window: TimeWindow = ALL_TIME) -> int:
        response = self._query_request(
            "POST", f"/{_quote(self.index_for(window))}/_count", rq.count_body(query, window), query, SEARCH_PARAMS,
        )
        return int(self._complete(response, "the count would be incomplete").get("count", 0))

    def facets(
        self, query: str, window: TimeWindow, fields: Sequence[str], size: int = 10
    ) -> dict[str, list[tuple[str, int]]]:
        out: dict[str, list[tuple[str, int]]] = {name: [] for name in fields}
        wanted = [name for name in fields if name not in (rq.MESSAGE, rq.TIMESTAMP)]
        if not wanted:
            return out
        response = self._search(self.index_for(window), rq.facets_body(query, window, wanted, size, self.suffix), query)
        aggregations = response.get("aggregations", {})
        for i, name in enumerate(wanted):
            buckets = aggregations.get(f"f{i}", {}).get("buckets", [])
            out[name] = [(_key(b), int(b["doc_count"])) for b in buckets]
        return out

    def histogram(
        self, query: str, window: TimeWindow, interval: dt.timedelta, split_by: str | None = None
    ) -> dict[str, list[tuple[dt.datetime, int]]]:
        if interval.total_seconds() < 1:
            raise BackendError(f"histogram interval must be at least a second, not {interval}")
        body = rq.histogram_body(query, window, interval, split_by, self.suffix, self._interval_key())
        aggregations = self._search(self.index_for(window), body, query).get("aggregations", {})

        def series(agg: dict[str, Any]) -> list[tuple[dt.datetime, int]]:
            return [(_millis(b["key"]), int(b["doc_count"])) for b in agg.get("buckets", []) if b["doc_count"]]

        if split_by is None:
            return {"": series(aggregations.get("h", {}))}
        buckets = aggregations.get("s", {}).get("buckets", [])
        if len(buckets) > rq.MAX_SPLIT_SERIES:
            raise BackendError(f"{split_by} has more than {rq.MAX_SPLIT_SERIES} values here; split by another field")
        return {_key(b): series(b.get("h", {})) for b in buckets}

    def _interval_key(self) -> str:
        info = self.connection.info()
        return "interval" if info.product == "elasticsearch" and info.version < (7, 2) else "fixed_interval"

    def builds(self, query: str, window: TimeWindow = ALL_TIME) -> list[BuildOutcome]:
        index = self.index_for(window)
        outcomes = []
        after = None
        while True:
            response = self._search(index, rq.builds_body(query, window, self.suffix, after), query)
            page = response.get("aggregations", {}).get("b", {})
            buckets = page.get("buckets", [])
            for bucket in buckets:
                newest = (bucket.get("newest", {}).get("hits", {}).get("hits") or [{}])[0]
                source = newest.get("_source", {})
                fields = {name: facet_value(source[name]) for name in ("build_status", *BUILD_FIELDS)
                          if source.get(name) is not None}
                outcomes.append(BuildOutcome(
                    facet_value(bucket["key"]["build"]), **{"build_status": "", **fields},
                    hits=int(bucket["doc_count"]), last_hit=_hit(newest).timestamp if newest else None,
                ))
            after = page.get("after_key")
            if len(buckets) < rq.BUILDS_PAGE or after is None:  # a short page is the last
                break
        outcomes.sort(key=lambda outcome: (-outcome.hits, outcome.build_uuid))  # the contract's order
        return outcomes

    def match_build(self, build_uuid: str, queries: Sequence[str]) -> list[bool]:
        """All fingerprints in one ``_msearch``; only searches the cluster
        asks to retry (429, 502-504) are sent again, after a pause."""
        window = self._build_window()
        index = self.index_for(window)
        matched: list[bool | None] = [None] * len(queries)
        pending = list(range(len(queries)))
        attempt = 0
        while pending:
            body = rq.match_build_lines(build_uuid, [queries[i] for i in pending], index, window)
            response = self.connection.request("POST", "/_msearch", None, body, ndjson=True)
            answers = response.get("responses", []) if isinstance(response, dict) else []
            if len(answers) != len(pending):
                raise BackendError(f"{self.connection.label}: _msearch answered {len(answers)} of {len(pending)} searches")
            retry = []
            for i, answer in zip(pending, answers):
                status = int(answer.get("status", 200))
                if "error" in answer:
                    if status in RETRY_STATUSES:
                        retry.append(i)
                    elif 400 <= status < 500:
                        log.error("fingerprint query refused by %s, skipped: %s (query: %.200s)",
                                  self.connection.label, error_reason(answer), queries[i])
                        matched[i] = False
                    else:
                        raise BackendError(f"{self.connection.label}: a search failed: {error_reason(answer)}")
                    continue
                hit = _total(answer.get("hits", {})) > 0
                if not hit:  # a hit stands however many shards failed; a miss may not
                    self._complete(answer, "a match could be missed")
                matched[i] = hit
            if retry:
                if attempt >= self.settings.retries:
                    raise BackendError(f"{self.connection.label}: {len(retry)} searches still refused after "
                                       f"{attempt} retries (cluster overloaded)")
                self.connection.pause(attempt)
                attempt += 1
            pending = retry
        return [bool(m) for m in matched]

    def build_files(self, build_uuid: str) -> dict[str, int]:
        window = self._build_window()
        response = self._search(self.index_for(window), rq.build_files_body(build_uuid, window, self.suffix))
        buckets = response.get("aggregations", {}).get("f", {}).get("buckets", [])
        return {_key(b): int(b["doc_count"]) for b in buckets}

    def field_names(self) -> list[str]:
        names: set[str] = {rq.TIMESTAMP}
        recent = self.existing_indices()[-3:]
        if recent:
            mappings = self.connection.request("GET", f"/{_quote(','.join(recent))}/_mapping") or {}
            for index in mappings.values():
                properties = index.get("mappings", {}).get("properties", {})
                names.update(_property_names(properties))
        return sorted(names)

    def newest_timestamp(self) -> dt.datetime | None:
        for name in reversed(self.existing_indices()[-3:]):
            response = self._search(name, rq.newest_body())
            value = response.get("aggregations", {}).get("newest", {}).get("value")
            if value is not None:
                return _millis(value)
        return None

    def health(self) -> dict[str, Any]:
        info = self.connection.info()
        health = self.connection.request("GET", "/_cluster/health")
        return {
            "backend": self.name,
            "status": health.get("status", "unknown"),
            "cluster": health.get("cluster_name", info.cluster_name),
            "version": info.label,
            "nodes": health.get("number_of_nodes"),
            "url": self.connection.urls[0],
        }

    def writer(self) -> "ClusterWriter":
        return ClusterWriter(self)

    def ingest_session(self, finish_merges: Callable[[], bool] = lambda: True) -> ContextManager[None]:
        return contextlib.nullcontext()  # a bulk request per batch either way

    def writer_wanted(self) -> bool:
        return False  # writers do not exclude each other on a cluster

    def prune(self, before: dt.datetime, dry_run: bool = False, keep: Collection[str] = ()) -> Pruned | None:
        # Day indices go by the cluster's own lifecycle policy (ILM, ISM, curator): it may be shared
        # with another pipeline, and deleting its indices is not this tool's call.
        return None

    def ensure_template(self) -> None:
        """Install the index template, so day indices created by ingest get
        the logstash document schema's mapping (once per process)."""
        if self._template_done or not self.settings.manage_template:
            return
        info = self.connection.info()
        legacy = info.product == "elasticsearch" and info.version < (7, 8)
        body = rq.index_template([self.days.wildcard], self.suffix, STANDARD_FIELDS, legacy)
        kind = "_template" if legacy else "_index_template"
        try:
            self.connection.request("PUT", f"/{kind}/{_quote(self.settings.template_name)}", None, body)
        except BackendError as exc:
            raise BackendError(f"{exc} (installing the index template; set cluster.manage_template: false "
                               "to manage it yourself)") from None
        self._template_done = True

    def forget_indices(self) -> None:
        with self._lock:
            self._existing = None

    def close(self) -> None:
        self.connection.close()


class _Context:
    __slots__ = ("fields", "seed", "lines")

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields
        self.seed = _digest(fields)
        self.lines = 0


def _digest(document: dict[str, Any]) -> str:
    """A stable id part from a document's content (keys in any order)."""
    canonical = json.dumps(document, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.blake2b(canonical.encode(), digest_size=12).hexdigest()


class ClusterWriter(WriterBatch):
    """Bulk ingest into the day indices.

    Documents get ids derived from their content and position, so a bulk
    request sent again after a timeout overwrites rather than duplicates.
    A replaced build is deleted before the first of its new documents is
    sent. Unlike the embedded index, readers can see a build half written
    while ingest runs; ``commit`` refreshes the indices written to."""

    def __init__(self, backend: ClusterBackend) -> None:
        self.backend = backend
        self.connection = backend.connection
        backend.ensure_template()
        self._buffer: list[tuple[str, str, bytes]] = []
        self._bytes = 0
        self._deletes: list[str] = []
        self._touched: set[str] = set()
        self._occurrences: dict[str, int] = {}
        self.rejected: list[str] = []
        self.rejected_count = 0
        self.added = 0

    def replace_build(self, build_uuid: str) -> None:
        self._deletes.append(build_uuid)

    def context(self, fields: dict[str, Any]) -> _Context:
        return _Context({k: v for k, v in fields.items() if v is not None and k not in (rq.MESSAGE, rq.TIMESTAMP)})

    def add_line(self, context: _Context, micros: int, message: str) -> None:
        timestamp = from_epoch_micros(micros)
        context.lines += 1
        document = dict(context.fields)
        document[rq.TIMESTAMP] = rq.iso(timestamp)
        document[rq.MESSAGE] = message
        self._queue(timestamp, f"{context.seed}-{context.lines}", document)

    def add(self, doc: dict[str, Any], timestamp: dt.datetime) -> None:
        document = {k: v for k, v in doc.items() if v is not None}
        document[rq.TIMESTAMP] = rq.iso(timestamp)
        digest = _digest(document)
        seen = self._occurrences[digest] = self._occurrences.get(digest, 0) + 1  # identical lines stay distinct
        self._queue(timestamp, f"{digest}-{seen}", document)

    def _queue(self, timestamp: dt.datetime, doc_id: str, document: dict[str, Any]) -> None:
        encoded = json.dumps(document, ensure_ascii=False, default=str).encode("utf-8", "surrogateescape")
        index = self.backend.days.name(timestamp)
        self._buffer.append((index, doc_id, encoded))
        self._bytes += len(encoded)
        self.added += 1
        if len(self._buffer) >= self.backend.settings.bulk_documents or self._bytes >= BULK_BYTES:
            self.flush()

    def _run_deletes(self) -> None:
        while self._deletes:
            build_uuid = self._deletes[0]
            window = self.backend._build_window()
            self.connection.request(
                "POST", f"/{_quote(self.backend.index_for(window))}/_delete_by_query",
                {**SEARCH_PARAMS, "conflicts": "proceed", "refresh": True}, rq.delete_build_body(build_uuid),
            )
            self._deletes.pop(0)

    def flush(self) -> None:
        """Send what is buffered; documents the cluster asks to retry are sent
        again after a pause, the rest of the refusals are kept for ``commit``."""
        self._run_deletes()
        batch, self._buffer, self._bytes = self._buffer, [], 0
        attempt = 0
        while batch:
            response = self.connection.request("POST", "/_bulk", None, rq.bulk_lines(batch), ndjson=True)
            self._touched.update(index for index, _, _ in batch)
            if not response.get("errors"):
                return
            retry = []
            for action, item in zip(batch, response.get("items", [])):
                result = next(iter(item.values()), {}) if isinstance(item, dict) else {}
                status = int(result.get("status", 200))
                if status < 300:
                    continue
                if status in RETRY_STATUSES and attempt < self.backend.settings.retries:
                    retry.append(action)
                    continue
                self.rejected_count += 1
                if len(self.rejected) < MAX_REPORTED_REJECTIONS:
                    self.rejected.append(f"{action[0]}/{action[1]}: {error_reason(result)}")
            if retry:
                self.connection.pause(attempt)
                attempt += 1
            batch = retry

    def commit(self) -> None:
        self.flush()
        if self._touched:
            self.connection.request("POST", f"/{_quote(','.join(sorted(self._touched)))}/_refresh",
                                    SEARCH_PARAMS)
            self.backend.forget_indices()
            self._touched.clear()
        if self.rejected_count:
            count, self.rejected_count = self.rejected_count, 0
            examples, self.rejected = "; ".join(self.rejected), []
            raise BackendError(f"{self.connection.label} refused {count} of the documents "
                               f"(the others were indexed): {examples}")

    def rollback(self) -> None:
        """Drop what is still buffered. What a full buffer already sent stays."""
        self._buffer, self._bytes, self._deletes = [], 0, []


# An @timestamp bound the cluster reads: date math on now, or a date (ISO or
# epoch millis, optionally followed by ``||`` and date math).
_DATE_BOUND = re.compile(r"(?:now|[0-9-][^|]*(?:\|\|)?)(?:[+-]\d+[yMwdhHms]|/[yMwdhHms])*")


def check_cluster_query(query: str, engine: str = "elasticsearch") -> None:
    """What a cluster would refuse that can be known without one (``lint``
    runs this when the backend is a cluster): the query parses within the
    limits, and every ``@timestamp`` range bound is a date or date math. The
    rest (a regex too complex to determinize, say) only the cluster can tell;
    it then refuses that one search, not the others."""
    for leaf in lucene.iter_leaves(lucene.parse(query)):
        if isinstance(leaf, lucene.Range) and leaf.field == rq.TIMESTAMP:
            for bound in (leaf.low, leaf.high):
                if bound is not None and not _DATE_BOUND.fullmatch(bound):
                    raise QuerySyntaxError(query, f"@timestamp range: not a date or date math: {bound[:40]!r}",
                                           engine=engine)


def _quote(index: str) -> str:
    return urllib.parse.quote(index, safe=",*")


def _total(hits: dict[str, Any]) -> int:
    """``hits.total``: an object since Elasticsearch 7, a number before."""
    total = hits.get("total", 0)
    if isinstance(total, dict):
        return int(total.get("value", 0))
    return int(total or 0)


def _hit(raw: dict[str, Any]) -> Hit:
    source = dict(raw.get("_source") or {})
    stamp: dt.datetime | None = None
    try:
        stamp = parse_timestamp(source.get(rq.TIMESTAMP))
    except (TypeError, ValueError):
        sort = raw.get("sort") or []
        if sort and isinstance(sort[0], (int, float)):
            stamp = _millis(sort[0])
    return Hit(stamp, source)


def _millis(value: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(float(value) / 1000, UTC)


def _key(bucket: dict[str, Any]) -> str:
    key = bucket.get("key_as_string", bucket.get("key"))
    return facet_value(key)


def _property_names(properties: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for name, spec in properties.items():
        path = prefix + name
        if isinstance(spec, dict) and "properties" in spec:
            yield from _property_names(spec["properties"], path + ".")
        else:
            yield path
