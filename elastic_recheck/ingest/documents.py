"""Documents exported from an existing logstash / Elasticsearch.

Accepts NDJSON (one document, or one search hit, per line) and whole
Elasticsearch search responses (``hits.hits[]._source``); each document in the
flat logstash format or the old ``@fields``/``@message``/``@tags`` one.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Iterator, TextIO

from ..errors import IngestError

UTC = dt.timezone.utc


def normalize(doc: dict[str, Any]) -> dict[str, Any]:
    """The flat logstash format, every field kept."""
    if "@fields" not in doc and "@message" not in doc:
        return dict(doc)
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        if key == "@fields":
            for name, field_value in (value or {}).items():
                if isinstance(field_value, list) and len(field_value) == 1:
                    field_value = field_value[0]
                flat[name] = field_value
        elif key == "@message":
            flat["message"] = value
        elif key == "@tags":
            flat["tags"] = value
        else:
            flat[key] = value
    return flat


def parse_timestamp(value: Any) -> dt.datetime:
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value / 1000, UTC)
    if isinstance(value, list) and len(value) == 1:
        return parse_timestamp(value[0])
    if not isinstance(value, str):
        raise ValueError("missing or non-text @timestamp")
    text = value.strip().replace("Z", "+00:00")
    if len(text) > 10 and text[10] == " ":
        text = text[:10] + "T" + text[11:]
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _unwrap(item: Any) -> Any:
    if isinstance(item, dict) and isinstance(item.get("_source"), dict):
        return item["_source"]
    return item


def read_documents(handle: TextIO, source: str) -> Iterator[tuple[int, dict[str, Any] | IngestError]]:
    """``(line, document)`` pairs, or ``(line, IngestError)`` for a bad one, so
    one bad document never costs the good ones."""
    first = handle.readline()
    first_line = 1
    while first and not first.strip():
        first = handle.readline()
        first_line += 1
    if not first:
        return
    try:
        head = json.loads(first)
    except json.JSONDecodeError:
        head = None
    if isinstance(head, dict) and "hits" not in head:
        yield from _ndjson_line(first, source, first_line)
        for lineno, line in enumerate(handle, first_line + 1):
            if line.strip():
                yield from _ndjson_line(line, source, lineno)
        return
    text = first + handle.read()
    try:
        whole = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IngestError(source, f"not JSON or NDJSON: {exc.msg}", exc.lineno) from None
    if isinstance(whole, dict) and isinstance(whole.get("hits"), dict):
        items = whole["hits"].get("hits") or []
    elif isinstance(whole, list):
        items = whole
    else:
        raise IngestError(source, "expected NDJSON, a JSON list, or a search response with hits.hits")
    for index, item in enumerate(items, 1):
        yield index, _checked(_unwrap(item), source, index, "hit")


def _ndjson_line(line: str, source: str, lineno: int) -> Iterator[tuple[int, dict[str, Any] | IngestError]]:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        yield lineno, IngestError(source, f"invalid JSON: {exc.msg}", lineno)
        return
    yield lineno, _checked(_unwrap(item), source, lineno, "line")


def _checked(item: Any, source: str, number: int, unit: str) -> dict[str, Any] | IngestError:
    if not isinstance(item, dict):
        return IngestError(source, f"{unit} {number} is not a JSON object", number if unit == "line" else None)
    return normalize(item)
