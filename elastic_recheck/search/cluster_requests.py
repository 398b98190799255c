"""The request bodies the cluster backend sends, as plain data.

Kept apart from the HTTP code so tests can compare them with what
Elasticsearch documents, and so a reader sees in one place what reaches the
cluster. Every fingerprint goes out as a ``query_string`` query exactly as
written: the cluster parses it, as Kibana / OpenSearch Dashboards would.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Iterable, Sequence

from . import BUILD_FIELDS, LIST_FIELDS, TimeWindow

UTC = dt.timezone.utc
TIMESTAMP = "@timestamp"
MESSAGE = "message"
BUILDS_PAGE = 1_000  # builds per page of the composite aggregation (each with its newest hit)
MAX_SPLIT_SERIES = 100
MAX_FILES = 10_000
PAGE = 1000  # hits per scroll page
NEWEST_FIRST = [{TIMESTAMP: {"order": "desc"}}]
# Elasticsearch's limit for from + size (index.max_result_window).
MAX_RESULT_WINDOW = 10_000
# Exact-value sub-fields of keyword type hold at most this many characters.
KEYWORD_IGNORE_ABOVE = 8191


def iso(moment: dt.datetime) -> str:
    """A moment as Elasticsearch's ``strict_date_optional_time``, in UTC, to the millisecond."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def query_string(query: str) -> dict[str, Any]:
    """As fingerprints were written for the original tool: default operator OR,
    a bare term searches ``message``."""
    return {"query_string": {"query": query, "default_field": MESSAGE, "default_operator": "OR"}}


def time_filter(window: TimeWindow) -> dict[str, Any] | None:
    if window.start is None and window.end is None:
        return None
    bounds: dict[str, Any] = {"format": "strict_date_optional_time"}
    if window.start is not None:
        bounds["gte"] = iso(window.start)
    if window.end is not None:
        bounds["lt"] = iso(window.end)
    return {"range": {TIMESTAMP: bounds}}


def build_filter(build_uuid: str) -> dict[str, Any]:
    """One build's documents. A phrase on the analysed field works whether the
    cluster maps ``build_uuid`` as text or as keyword."""
    return {"match_phrase": {"build_uuid": build_uuid}}


def filtered(query: str | None, window: TimeWindow, *extra: dict[str, Any]) -> dict[str, Any]:
    """The query in the scoring-free context: fingerprints ask whether and
    how often, never how well, a document matches."""
    filters = [clause for clause in (time_filter(window), *extra) if clause is not None]
    if query is None:
        return {"bool": {"filter": filters}} if filters else {"match_all": {}}
    return {"bool": {"must": [query_string(query)], "filter": filters}}


def search_body(query: str, window: TimeWindow, size: int, offset: int) -> dict[str, Any]:
    return {
        "query": filtered(query, window),
        "sort": NEWEST_FIRST,
        "size": size,
        "from": offset,
        "track_total_hits": True,
    }


def scan_body(query: str, window: TimeWindow) -> dict[str, Any]:
    return {"query": filtered(query, window), "sort": NEWEST_FIRST, "size": PAGE}


def count_body(query: str, window: TimeWindow) -> dict[str, Any]:
    return {"query": filtered(query, window)}


def keyword(name: str, suffix: str) -> str:
    """The exact-value sub-field of a text field (``build_name.keyword``)."""
    return f"{name}.{suffix}" if suffix else name


def _by_count() -> list[dict[str, str]]:
    return [{"_count": "desc"}, {"_key": "asc"}]


def facet_aggregation(name: str, size: int, suffix: str) -> dict[str, Any]:
    """A terms aggregation over the exact values. A list field (``tags``) is
    counted as one value, its entries in stored order joined by spaces
    (``console.html console``, as the original er-query printed it, and as the
    embedded index shows it). Doc values hold a list sorted and deduplicated,
    so the script reads the document's ``_source``: slower than doc values,
    but only for the list fields and only for ``er-query``'s facets."""
    terms: dict[str, Any] = {"size": size, "order": _by_count()}
    if name in LIST_FIELDS:
        terms["script"] = {"lang": "painless", "source": _JOIN_STORED_LIST, "params": {"field": name}}
    else:
        terms["field"] = keyword(name, suffix)
    return {"terms": terms}


_JOIN_STORED_LIST = (
    "def v = params._source[params.field]; "
    "if (v == null) { return null; } "
    "if (!(v instanceof List)) { return String.valueOf(v); } "
    "if (v.isEmpty()) { return null; } "
    "StringBuilder joined = new StringBuilder(); "
    "for (def item : v) { if (joined.length() > 0) { joined.append(' '); } joined.append(String.valueOf(item)); } "
    "return joined.toString();"
)


def facets_body(query: str, window: TimeWindow, fields: Sequence[str], size: int, suffix: str) -> dict[str, Any]:
    return {
        "size": 0,
        "query": filtered(query, window),
        "aggs": {f"f{i}": facet_aggregation(name, size, suffix) for i, name in enumerate(fields)},
    }


def histogram_body(
    query: str, window: TimeWindow, interval: dt.timedelta, split_by: str | None, suffix: str,
    interval_key: str = "fixed_interval",
) -> dict[str, Any]:
    """``interval_key`` is ``interval`` for Elasticsearch before 7.2."""
    seconds = int(interval.total_seconds())
    histogram = {"date_histogram": {"field": TIMESTAMP, interval_key: f"{seconds}s", "min_doc_count": 1}}
    if split_by is None:
        aggs: dict[str, Any] = {"h": histogram}
    else:
        # One bucket more than allowed, to tell "too many" from "exactly enough".
        split = {"terms": {"field": keyword(split_by, suffix), "size": MAX_SPLIT_SERIES + 1, "order": {"_key": "asc"}}}
        aggs = {"s": {**split, "aggs": {"h": histogram}}}
    return {"size": 0, "query": filtered(query, window), "aggs": aggs}


def builds_body(query: str, window: TimeWindow, suffix: str, after: dict[str, Any] | None = None) -> dict[str, Any]:
    """One page of the builds with hits: a composite aggregation, paged with
    ``after``, so no number of builds is too many (a terms aggregation stops at
    ``search.max_buckets``, 10,000 on Elasticsearch 7)."""
    newest = {
        "top_hits": {
            "size": 1,
            "sort": NEWEST_FIRST,
            "_source": {"includes": [TIMESTAMP, "build_status", *BUILD_FIELDS]},
        }
    }
    composite: dict[str, Any] = {
        "size": BUILDS_PAGE, "sources": [{"build": {"terms": {"field": keyword("build_uuid", suffix)}}}],
    }
    if after is not None:
        composite["after"] = after
    return {
        "size": 0,
        "query": filtered(query, window),
        "aggs": {"b": {"composite": composite, "aggs": {"newest": newest}}},
    }


def build_files_body(build_uuid: str, window: TimeWindow, suffix: str) -> dict[str, Any]:
    return {
        "size": 0,
        "query": filtered(None, window, build_filter(build_uuid)),
        "aggs": {"f": {"terms": {"field": keyword("filename", suffix), "size": MAX_FILES}}},
    }


def newest_body() -> dict[str, Any]:
    return {"size": 0, "aggs": {"newest": {"max": {"field": TIMESTAMP}}}}


def match_build_lines(build_uuid: str, queries: Sequence[str], index: str, window: TimeWindow) -> bytes:
    """The ``_msearch`` body: a header and a body line per fingerprint, each
    asking only whether the build has at least one matching document."""
    header = json.dumps({"index": index, "ignore_unavailable": True, "allow_no_indices": True})
    lines: list[str] = []
    for query in queries:
        body = {
            "size": 0,
            "terminate_after": 1,
            "track_total_hits": True,
            "query": {
                "bool": {
                    "must": [query_string(query)],
                    "filter": [clause for clause in (build_filter(build_uuid), time_filter(window)) if clause],
                }
            },
        }
        lines.append(header)
        lines.append(json.dumps(body, ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode("utf-8")


def bulk_lines(actions: Iterable[tuple[str, str, bytes]]) -> bytes:
    """``_bulk`` NDJSON from (index, id, document JSON) triples."""
    out = bytearray()
    for index, doc_id, document in actions:
        out += json.dumps({"index": {"_index": index, "_id": doc_id}}).encode()
        out += b"\n"
        out += document
        out += b"\n"
    return bytes(out)


def delete_build_body(build_uuid: str) -> dict[str, Any]:
    return {"query": filtered(None, TimeWindow(), build_filter(build_uuid))}


def mappings(suffix: str, text_fields: Iterable[str]) -> dict[str, Any]:
    """The document schema as a mapping: every string is analysed ``text`` (the standard
    analyzer) with an exact ``keyword`` sub-field for facets; ``message`` is
    text only, ``@timestamp`` a date. A number or boolean in an extra field
    (``error_pr``) is text too, as the embedded index keeps it: dynamic
    mapping would make it a long or float (typed by whichever document came
    first) that term queries compare by value."""
    with_keyword = {
        "type": "text",
        "fields": {suffix: {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE}},
    }
    properties: dict[str, Any] = {TIMESTAMP: {"type": "date"}, MESSAGE: {"type": "text"}}
    for name in text_fields:
        if name not in properties:
            properties[name] = with_keyword
    return {
        "dynamic_templates": [{kind: {"match_mapping_type": json_type, "mapping": with_keyword}}
                              for kind, json_type in (("strings", "string"), ("integers", "long"),
                                                      ("decimals", "double"), ("booleans", "boolean"))],
        "properties": properties,
    }


def index_template(patterns: Sequence[str], suffix: str, text_fields: Iterable[str], legacy: bool) -> dict[str, Any]:
    """A composable template (``_index_template``), or for Elasticsearch
    before 7.8 a legacy one (``_template``)."""
    body = mappings(suffix, text_fields)
    if legacy:
        return {"index_patterns": list(patterns), "order": 200, "mappings": body}
    return {"index_patterns": list(patterns), "priority": 200, "template": {"mappings": body}}
