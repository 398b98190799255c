"""How a log-event document is laid out in the embedded (tantivy) index.

Every standard field of DESIGN §3 gets two tantivy fields: ``NAME``, analysed
like Elasticsearch's standard analyzer (for queries), and ``k_NAME``, the raw
value as a fast field (for facets, exact filters and ``_exists_``). Fields
outside that list are kept too, in two JSON fields with the same split
(``t`` and ``k``), so ingest never loses a field. tantivy cannot run regex or
range queries on JSON paths, so those work on the standard fields only.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import tantivy

from ..analysis import ANALYZER_NAME

TIMESTAMP_FIELD = "@timestamp"
TS = "ts"
SOURCE = "src"
EXTRA_TEXT = "t"
EXTRA_FACET = "k"

STANDARD_FIELDS = (
    "message",
    "filename",
    "tags",
    "build_uuid",
    "build_short_uuid",
    "build_name",
    "build_change",
    "build_patchset",
    "build_queue",
    "build_status",
    "build_branch",
    "build_master",
    "build_node",
    "build_ref",
    "project",
    "voting",
    "log_url",
    "loglevel",
    "severity",
    "host",
    "type",
    "received_at",
)
_STANDARD = frozenset(STANDARD_FIELDS)
# Every value is kept as a facet except the line itself: huge and unique.
_NO_FACET = frozenset({"message"})


def is_indexed_field(name: str) -> bool:
    return name in _STANDARD


def text_field(name: str) -> str:
    return name if name in _STANDARD else f"{EXTRA_TEXT}.{name}"


def facet_field(name: str) -> str:
    return f"k_{name}" if name in _STANDARD else f"{EXTRA_FACET}.{name}"


def build_schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_date_field(TS, stored=False, indexed=True, fast=True)
    for name in STANDARD_FIELDS:
        builder.add_text_field(name, tokenizer_name=ANALYZER_NAME, index_option="position")
        if name not in _NO_FACET:
            builder.add_text_field(facet_field(name), tokenizer_name="raw", fast=True, index_option="basic")
    builder.add_json_field(EXTRA_TEXT, tokenizer_name=ANALYZER_NAME, index_option="position")
    builder.add_json_field(EXTRA_FACET, tokenizer_name="raw", fast=True, index_option="basic")
    builder.add_bytes_field(SOURCE, stored=True, indexed=False)
    return builder.build()


def facet_value(value: Any) -> str:
    """The exact value facets count: lists joined by spaces, as er-query shows them."""
    if isinstance(value, list):
        return " ".join(facet_value(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def _text_value(value: Any) -> Any:
    if isinstance(value, list):
        return [facet_value(v) for v in value]
    return facet_value(value)


def format_timestamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_index_json(doc: dict[str, Any], timestamp: dt.datetime) -> str:
    """One log-event document as the JSON tantivy's ``add_json`` reads."""
    row: dict[str, Any] = {TS: format_timestamp(timestamp)}
    extra_text: dict[str, Any] = {}
    extra_facet: dict[str, Any] = {}
    for name, value in doc.items():
        if value is None or name == TIMESTAMP_FIELD:
            continue
        if name in _STANDARD:
            row[name] = _text_value(value)
            if name not in _NO_FACET:
                row[f"k_{name}"] = facet_value(value)
        else:
            extra_text[name] = _text_value(value)
            extra_facet[name] = facet_value(value)
    if extra_text:
        row[EXTRA_TEXT] = extra_text
        row[EXTRA_FACET] = extra_facet
    source = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    row[SOURCE] = base64.b64encode(source).decode("ascii")
    return json.dumps(row, ensure_ascii=False)


def from_stored(document: tantivy.Document) -> dict[str, Any]:
    return json.loads(bytes(document[SOURCE][0]))
