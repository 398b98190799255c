"""How log-event documents are laid out in the embedded (tantivy) index.

A CI build has a million lines but one set of build fields, so the index is
two tantivy indexes: ``lines/`` holds each event's ``message`` and time, and
``contexts/`` holds everything else (build fields, ``filename``, ``tags``,
``loglevel``, any other field), once per distinct combination. A line points
at its context by ``cid``, a hash of the context's content, so a context never
changes once written and can be cached forever. A query clause on a context
field is answered in ``contexts/`` and becomes a ``cid`` set in ``lines/``:
exact, because every line of a context has the same values for those fields.

In ``contexts/`` every standard field of the document schema gets two tantivy fields:
``NAME``, analysed like Elasticsearch's standard analyzer (for queries), and
``k_NAME``, the raw value as a fast field (for facets, exact filters and
``_exists_``). Other fields are kept in two JSON fields with the same split
(``t`` and ``k``), so ingest never loses a field. tantivy cannot run regex or
range queries on JSON paths, so those work on the standard fields only.

In ``lines/`` the message is analysed before tantivy sees it (``analysis.index_text``) and
indexed with a whitespace tokenizer: the same terms, at a fraction of the cost.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from typing import Any

import tantivy

from ..analysis import ANALYZER_NAME, PRETOKENIZED_NAME, analysable

# Raised whenever what is indexed changes, the analysis included: an index
# laid out or analysed by another version is refused, never misread. 5: words
# lower-cased as Java does, cut at 255 UTF-16 units, Unicode 9.0 letters only,
# no value for an empty list.
LAYOUT_VERSION = 5
TIMESTAMP_FIELD = "@timestamp"
MESSAGE = "message"
TS = "ts"  # microseconds since the epoch
CID = "cid"
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
# Fields that live in lines/, not in a context.
LINE_FIELDS = frozenset({MESSAGE, TIMESTAMP_FIELD})


def is_indexed_field(name: str) -> bool:
    return name in _STANDARD


def is_context_field(name: str) -> bool:
    return name not in LINE_FIELDS


def text_field(name: str) -> str:
    return name if name in _STANDARD else f"{EXTRA_TEXT}.{name}"


def facet_field(name: str) -> str:
    return f"k_{name}" if name in _STANDARD else f"{EXTRA_FACET}.{name}"


def line_schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    # Fast only: range queries run on the column, and an indexed ts would put a
    # term per line into the dictionary (a third of the indexing CPU, measured).
    builder.add_integer_field(TS, stored=False, indexed=False, fast=True)
    builder.add_integer_field(CID, stored=True, indexed=True, fast=True)
    builder.add_text_field(MESSAGE, tokenizer_name=PRETOKENIZED_NAME, index_option="position")
    builder.add_bytes_field(SOURCE, stored=True, indexed=False)
    return builder.build()


def context_schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_integer_field(CID, stored=True, indexed=True, fast=True)
    for name in STANDARD_FIELDS:
        if name == MESSAGE:
            continue
        builder.add_text_field(name, tokenizer_name=ANALYZER_NAME, index_option="position")
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


def has_value(value: Any) -> bool:
    """Whether Elasticsearch indexes a value for this field: an empty list
    (or one of nulls and empty lists) is none, so ``_exists_`` and ``field:*``
    skip it; an empty string is one (its text field has norms)."""
    if isinstance(value, list):
        return any(map(has_value, value))
    return value is not None


def _text_value(value: Any) -> Any:
    """The value(s) the index analyses, made :func:`analysable` (a copy of
    the field kept for queries; the stored source keeps what came in)."""
    if isinstance(value, list):
        return [analysable(facet_value(v)) for v in value if v is not None]
    return analysable(facet_value(value))


def format_timestamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_context(fields: dict[str, Any]) -> str:
    """The context fields as one canonical string (what ``cid`` hashes)."""
    return json.dumps(
        {k: v for k, v in fields.items() if v is not None and k not in LINE_FIELDS},
        sort_keys=True, ensure_ascii=False, separators=(",", ":"),
    )


CID_END = 1 << 63  # every cid is below it


def context_id(canonical: str) -> int:
    """63 bits of BLAKE2b: collisions are not a practical concern."""
    digest = hashlib.blake2b(canonical.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def context_json(cid: int, canonical: str) -> str:
    """One context as the JSON tantivy's ``add_json`` reads."""
    fields = json.loads(canonical)
    row: dict[str, Any] = {CID: cid}
    extra_text: dict[str, Any] = {}
    extra_facet: dict[str, Any] = {}
    for name, value in fields.items():
        if not has_value(value):  # kept in the source only
            continue
        if name in _STANDARD:
            row[name] = _text_value(value)
            row[f"k_{name}"] = facet_value(value)
        else:
            extra_text[name] = _text_value(value)
            extra_facet[name] = facet_value(value)
    if extra_text:
        row[EXTRA_TEXT] = extra_text
        row[EXTRA_FACET] = extra_facet
    row[SOURCE] = base64.b64encode(canonical.encode()).decode("ascii")
    return json.dumps(row, ensure_ascii=False)


def line_prefix(cid: int) -> str:
    """The start of the JSON of every line of one context (see :func:`line_json`).

    A line holds no build field: a build's lines are its contexts' lines, and
    a term per line for it cost an eighth of the indexing time (measured)."""
    return f'{{"cid":{cid},'


def line_json(prefix: str, ts: int, message: str, tokens: str) -> str:
    """One line as the JSON tantivy's ``add_json`` reads. ``tokens`` is the
    message's analysed terms joined by spaces (``analysis.index_text``)."""
    source = base64.b64encode(message.encode("utf-8", "surrogatepass")).decode("ascii")
    if tokens.isascii():  # analysed ASCII tokens hold no quote, backslash or control character
        text = f'"{tokens}"'
    else:
        text = json.dumps(tokens, ensure_ascii=False)
    return f'{prefix}"ts":{ts},"message":{text},"src":"{source}"}}'


def in_contexts(schema: tantivy.Schema, cids: list[int]) -> tantivy.Query:
    """Documents of any of these contexts. Few contexts become term queries,
    which skip through postings when intersected; many, one term-set query."""
    Query = tantivy.Query
    if not cids:
        return Query.empty_query()
    if len(cids) == 1:
        return Query.term_query(schema, CID, cids[0])
    if len(cids) <= 32:
        return Query.boolean_query([(tantivy.Occur.Should, Query.term_query(schema, CID, c)) for c in cids])
    return Query.term_set_query(schema, CID, cids)


def stored_message(document: tantivy.Document) -> str:
    return (document.get_first(SOURCE) or b"").decode("utf-8", "surrogatepass")


def stored_context(document: tantivy.Document) -> tuple[int, dict[str, Any]]:
    return int(document[CID][0]), json.loads(bytes(document[SOURCE][0]))
