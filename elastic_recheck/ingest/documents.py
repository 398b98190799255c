"""Documents exported from an existing logstash / Elasticsearch.

Accepts NDJSON (one document, or one search hit, per line), JSON lists, and
whole Elasticsearch search responses (``hits.hits[]._source``); each document
in the flat logstash format or the old ``@fields``/``@message``/``@tags`` one.

An export is outside input like any other: one document nested a hundred
thousand levels deep, dated 1e300, holding a lone surrogate or an object
where the message goes must cost that document only, reported with its line
and the reason, while every other one is indexed.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any, Iterator, TextIO

from ..errors import IngestError
from ..json_items import item_spans, numbered
from .logparse import MAX_MESSAGE_CHARS

UTC = dt.timezone.utc
MAX_DEPTH = 20  # levels of objects and lists in a document: Elasticsearch's default index.mapping.depth.limit
MAX_LINE_CHARS = 16 * 1024 * 1024  # one NDJSON line
# Fields read as one value (a build's id, its job, the file): text, or a number or true/false taken as text.
ONE_VALUE_FIELDS = frozenset({
    "filename", "build_uuid", "build_short_uuid", "build_name", "build_change", "build_patchset", "build_queue",
    "build_status", "build_branch", "build_master", "build_node", "build_ref", "project", "voting", "log_url",
    "loglevel", "severity",
})
_SURROGATE = re.compile("[\ud800-\udfff]")
# Where the items are: a JSON list, or a search response's hits.hits.
_ITEM_PATHS = ((), ("hits", "hits"))


class BadDocument(ValueError):
    """Why a document cannot be indexed."""


@dataclass(frozen=True)
class Document:
    fields: dict[str, Any]
    timestamp: dt.datetime


@dataclass(frozen=True)
class Place:
    """Where a document is in its file: the line (when known) and, in a
    JSON list or search response, its position among the hits."""

    line: int | None
    hit: int | None = None

    def error(self, source: str, why: str) -> IngestError:
        return IngestError(source, f"hit {self.hit}: {why}" if self.hit else why, self.line)


def replace_surrogates(text: str) -> str:
    """A lone surrogate (``"\\ud800"`` in JSON) is no character: no UTF-8
    encoder takes it, so it becomes U+FFFD, as undecodable log bytes do."""
    if text.isascii() or not _SURROGATE.search(text):
        return text
    return _SURROGATE.sub("\ufffd", text)


def normalize(doc: dict[str, Any]) -> dict[str, Any]:
    """The flat logstash format, every field kept."""
    if "@fields" not in doc and "@message" not in doc:
        return dict(doc)
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        if key == "@fields":
            if value is None:
                continue
            if not isinstance(value, dict):
                raise BadDocument(f"@fields must be an object, not {_kind(value)}")
            for name, field_value in value.items():
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
    """A document's time, in UTC: ISO text, or milliseconds since 1970."""
    if isinstance(value, bool):
        raise ValueError("true/false is not a time")
    if isinstance(value, (int, float)):
        try:
            moment = dt.datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"{_shown(value)} milliseconds since 1970 is out of range") from None
        return moment
    if isinstance(value, list) and len(value) == 1:
        return parse_timestamp(value[0])
    if not isinstance(value, str):
        raise ValueError("missing or non-text @timestamp")
    text = value.strip().replace("Z", "+00:00")
    if len(text) > 10 and text[10] == " ":
        text = text[:10] + "T" + text[11:]
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a time: {_shown(value)}") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)  # a search shows it in UTC; one past year 9999 there cannot be shown
    except OverflowError:
        raise ValueError(f"out of range in UTC: {_shown(value)}") from None


def clean_document(item: Any) -> Document:
    """The document as the index takes it, or :class:`BadDocument` saying why not."""
    if isinstance(item, dict) and isinstance(item.get("_source"), dict):
        item = item["_source"]
    if not isinstance(item, dict):
        raise BadDocument(f"not a JSON object but {_kind(item)}")
    flat = _checked_tree(normalize(item))
    try:
        timestamp = parse_timestamp(flat.get("@timestamp"))
    except ValueError as exc:
        raise BadDocument(f"bad @timestamp: {exc}") from None
    fields: dict[str, Any] = {}
    for key, value in flat.items():
        if key == "message":
            value = _message(value)
        elif key == "tags":
            value = _tags(value)
        elif key in ONE_VALUE_FIELDS:
            value = _one_value(key, value)
        if value is not None:
            fields[key] = value
    return Document(fields, timestamp)


def _checked_tree(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with lone surrogates replaced in its keys and text; refused
    when nested deeper than :data:`MAX_DEPTH` (walked without recursion)."""
    pending: list[tuple[Any, int]] = [(doc, 1)]
    surrogates = False
    while pending:
        item, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise BadDocument(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, dict):
            surrogates = surrogates or any(isinstance(k, str) and replace_surrogates(k) is not k for k in item)
            values = item.values()
        else:
            values = item
        for value in values:
            if isinstance(value, (dict, list)):
                pending.append((value, depth + 1))
            elif isinstance(value, str) and not surrogates:
                surrogates = replace_surrogates(value) is not value
    return _replaced(doc) if surrogates else doc


def _replaced(value: Any) -> Any:
    if isinstance(value, str):
        return replace_surrogates(value)
    if isinstance(value, dict):
        return {replace_surrogates(k): _replaced(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replaced(v) for v in value]
    return value


def _as_text(value: Any) -> str | None:
    """Text, or a number or true/false as text (Elasticsearch takes them so into a text field)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return None


def _message(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        parts = [_as_text(part) for part in value]
        for part, text_part in zip(value, parts):
            if text_part is None:
                raise BadDocument(f"message must be text or a list of text, not a list holding {_kind(part)}")
        text = "\n".join(parts)  # type: ignore[arg-type]
    else:
        text = _as_text(value)  # type: ignore[assignment]
        if text is None:
            raise BadDocument(f"message must be text, not {_kind(value)}")
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[:MAX_MESSAGE_CHARS] + " [... truncated]"
    return text


def _tags(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(tag, str) for tag in value):
        return value
    raise BadDocument(f"tags must be text or a list of text, not {_kind(value)}")


def _one_value(key: str, value: Any) -> str | None:
    if isinstance(value, list):
        if not value:
            return None
        if len(value) > 1:
            raise BadDocument(f"{key} must be one value, not a list of {len(value)}")
        value = value[0]
    if value is None:
        return None
    text = _as_text(value)
    if text is None:
        raise BadDocument(f"{key} must be text, not {_kind(value)}")
    return text


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if value is None:
        return "null"
    return "text"


def _shown(value: Any, limit: int = 80) -> str:
    """A value from the input, as one short line in a message."""
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:40]} is too large")
    return number


def _loads(text: str) -> Any:
    """JSON as the standard defines it: no NaN or Infinity, no number past a double."""
    return json.loads(text, parse_constant=_not_json, parse_float=_finite)


def _why(exc: ValueError | RecursionError) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply to read"
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc.msg}"
    return f"invalid JSON: {exc}"


Item = tuple[Place, "Document | IngestError"]


def read_documents(handle: TextIO, source: str) -> Iterator[Item]:
    """``(place, document)`` pairs, or ``(place, IngestError)`` for a bad one,
    so one bad document never costs the good ones."""
    first = handle.readline(MAX_LINE_CHARS + 1)
    first_line = 1
    while first and not first.strip():
        first = handle.readline(MAX_LINE_CHARS + 1)
        first_line += 1
    if not first:
        return
    if _is_ndjson(first):
        yield from _ndjson(handle, first, first_line, source)
    else:
        yield from _whole(first + handle.read(), source)


def _is_ndjson(first: str) -> bool:
    """One document per line: the first line is an object that is not a
    search response, or an object on one line that does not parse."""
    try:
        head = _loads(first)
    except (ValueError, RecursionError):
        line = first.strip()
        return line.startswith("{") and line.endswith("}") and item_spans(line, *_ITEM_PATHS) is None
    return isinstance(head, dict) and "hits" not in head


def _ndjson(handle: TextIO, first: str, first_line: int, source: str) -> Iterator[Item]:
    line, number = first, first_line
    while line:
        if len(line) > MAX_LINE_CHARS and not line.endswith("\n"):
            while line and not line.endswith("\n"):  # the rest of it, never held whole
                line = handle.readline(MAX_LINE_CHARS)
            yield Place(number), IngestError(source, f"longer than {MAX_LINE_CHARS} characters", number)
        elif line.strip():
            yield Place(number), _document(line, Place(number), source)
        line = handle.readline(MAX_LINE_CHARS + 1)
        number += 1


def _document(text: str, place: Place, source: str) -> Document | IngestError:
    try:
        item = _loads(text)
    except (ValueError, RecursionError) as exc:
        return place.error(source, _why(exc))
    try:
        return clean_document(item)
    except BadDocument as exc:
        return place.error(source, str(exc))


def _whole(text: str, source: str) -> Iterator[Item]:
    try:
        whole = _loads(text)
    except (ValueError, RecursionError) as exc:
        # One item the parser cannot take (nested too deeply, a number past Python's
        # 4,300-digit limit or a double, a syntax error inside it) must cost that item
        # only: the items of the list or of hits.hits are then parsed one by one.
        spans = item_spans(text, *_ITEM_PATHS)
        if spans is None or not _inside_an_item(exc, spans):
            raise _unreadable(source, exc) from None
        yield from _each_span(text, spans, source)
        return
    if isinstance(whole, dict) and isinstance(whole.get("hits"), dict):
        items = whole["hits"].get("hits") or []
    elif isinstance(whole, list):
        items = whole
    else:
        raise IngestError(source, "expected NDJSON, a JSON list, or a search response with hits.hits")
    if not isinstance(items, list):
        raise IngestError(source, "hits.hits is not a list")
    for number, item in enumerate(items, 1):
        place = Place(None, number)
        try:
            yield place, clean_document(item)
        except BadDocument as exc:
            yield place, place.error(source, str(exc))


def _inside_an_item(exc: ValueError | RecursionError, spans: list[tuple[int, int]]) -> bool:
    """Whether the failure is one item's: a syntax error must lie inside an
    item (one between them breaks the file); the others name no place, and
    parsing each item on its own finds the one at fault."""
    if isinstance(exc, json.JSONDecodeError):
        return any(start <= exc.pos < end for start, end in spans)
    return True


def _unreadable(source: str, exc: ValueError | RecursionError) -> IngestError:
    if isinstance(exc, RecursionError):
        return IngestError(source, "nested too deeply to read (and not a JSON list or search response)")
    line = exc.lineno if isinstance(exc, json.JSONDecodeError) else None
    return IngestError(source, f"not JSON or NDJSON: {_why(exc).removeprefix('invalid JSON: ')}", line)


def _each_span(text: str, spans: list[tuple[int, int]], source: str) -> Iterator[Item]:
    """The items of a list or search response, each parsed on its own, so a
    bad one costs only itself; each named by its line and position."""
    for number, (line, item) in enumerate(numbered(text, spans), 1):
        place = Place(line, number)
        yield place, _document(item, place, source)
