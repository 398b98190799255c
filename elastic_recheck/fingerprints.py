"""Fingerprints: ``queries/<bug>.yaml``, one known bug each.

Every byte of a fingerprint file is treated as hostile: a file is refused,
with one line naming it (and the line in it), when it is too big, is not
UTF-8, is YAML that would cost more than a fingerprint ever needs (aliases of
lists, deep nesting), has a key of the wrong type, or holds a query that does
not parse or that the search engine would refuse (``check``). Refused files
are skipped; the others load.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Iterable

import yaml
from yaml.composer import ComposerError

from . import lucene
from .config import FingerprintSettings
from .errors import BackendError, FingerprintError, FingerprintQueryError, QuerySyntaxError
from .sanitize import escape_controls

KNOWN_KEYS = {
    "query": str,
    "suppress-graph": bool,
    "suppress-notification": bool,
    "allow-nonvoting": bool,
    "test_ids": list,
    "title": str,
    "projects": list,
    "resolved": (str, dt.date),  # YYYY-MM-DD; YAML reads an unquoted one as a date
}
FINGERPRINT_SUFFIXES = (".yaml", ".yml")
# The file name is the bug id: it goes into bug URLs, comments, IRC and HTML.
BUG_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# A fingerprint is a flat mapping with a few short lists; these bound what a
# hostile file can make the YAML loader build (fixed: no real file comes near).
MAX_YAML_DEPTH = 16
MAX_YAML_ALIASES = 8
# An index can know thousands of field names (one export with odd keys): a
# warning lists this many, so it stays a line a person reads.
MAX_FIELDS_LISTED = 40

QueryCheck = Callable[[str], None]
"""Raises QuerySyntaxError for a query the search engine would refuse
(``SearchBackend.check_query``, or ``search.query_checker`` without a backend),
one that does not parse included: with a check, a fingerprint's query is
parsed by it alone."""


@dataclass(frozen=True)
class Fingerprint:
    bug: str
    path: Path
    query: str
    suppress_graph: bool = False
    suppress_notification: bool = False
    allow_nonvoting: bool = False
    test_ids: tuple[str, ...] = ()
    title: str | None = None
    projects: tuple[str, ...] = ()
    # The day its bug was fixed: a hit dated after that day is a regression.
    resolved: dt.date | None = None
    unknown_keys: tuple[str, ...] = field(default=(), compare=False)
    query_line: int | None = field(default=None, compare=False)

    @property
    def voting_query(self) -> str:
        """The query the classifier runs: voting jobs only unless allowed."""
        if self.allow_nonvoting:
            return self.query
        return f"({self.query}) AND voting:1"


@dataclass
class Inspection:
    """One file read as a fingerprint: every error found, not only the first.
    ``fingerprint`` is set when the file's content could be read, even if the
    search engine refuses its query (then the errors say so)."""

    path: Path
    fingerprint: Fingerprint | None = None
    errors: list[FingerprintError] = field(default_factory=list)


def inspect_fingerprint(
    path: str | Path, check: QueryCheck | None = None, limits: FingerprintSettings = FingerprintSettings()
) -> Inspection:
    """Read and validate one file, collecting every error (for ``lint``)."""
    path = Path(path)
    found = Inspection(path)
    where = escape_controls(str(path))

    def error(message: str, line: int | None = None) -> None:
        found.errors.append(FingerprintError(where, escape_controls(_one_line(message)), line))

    if not BUG_ID.fullmatch(path.stem):
        error(f"the file name {path.stem!r} is not a bug id "
              "(letters, digits, '.', '_' and '-', starting with a letter or digit)")
    data, lines = _read_yaml(path, limits, found)
    if data is None:
        return found
    for key, kind in KNOWN_KEYS.items():
        value = data.get(key)
        if value is None:
            continue
        if key == "resolved":
            if _resolved_date(value) is None:
                error(f"'resolved' must be a date YYYY-MM-DD (the day the bug was fixed), not {str(value)[:40]!r}",
                      lines.get(key))
        elif not isinstance(value, kind):
            error(f"'{key}' must be a {kind.__name__}, not {type(value).__name__}", lines.get(key))
        elif kind is list and not all(isinstance(item, (str, int, float)) for item in value):
            error(f"'{key}' must be a list of strings", lines.get(key))
    for key, value in data.items():
        if _has_surrogate(key) or _has_surrogate(value):
            error(f"{str(key)!r} holds text that is not valid Unicode (a lone surrogate)",
                  lines.get(key) if isinstance(key, str) else None)
    query = data.get("query")
    if "query" not in data:
        error("missing required key 'query'", 1)
    elif isinstance(query, str) and not _has_surrogate(query):
        # With a backend check the query is parsed once, in its voting form
        # (~1 ms a query: a second of start-up at 1,000); on its own only when
        # that fails, or when the file's other errors keep the check from running.
        _check_query(query, lines.get("query"), limits, error, parse=check is None or bool(found.errors))
    if found.errors:
        return found
    fingerprint = Fingerprint(
        bug=path.stem,
        path=path,
        query=str(query).strip(),
        suppress_graph=bool(data.get("suppress-graph") or False),
        suppress_notification=bool(data.get("suppress-notification") or False),
        allow_nonvoting=bool(data.get("allow-nonvoting") or False),
        test_ids=tuple(str(t) for t in data.get("test_ids") or ()),
        title=data.get("title"),
        projects=tuple(str(p) for p in data.get("projects") or ()),
        resolved=_resolved_date(data.get("resolved")),
        unknown_keys=tuple(sorted(escape_controls(str(k)) for k in data if k not in KNOWN_KEYS)),
        query_line=lines.get("query"),
    )
    found.fingerprint = fingerprint
    if check is not None:
        try:
            check(fingerprint.voting_query)
        except BackendError:
            raise  # the backend's trouble, not the fingerprint's
        except Exception as exc:  # noqa: BLE001 - a check failing any other way is this query's bug too
            if isinstance(exc, QuerySyntaxError):
                _check_query(str(query), lines.get("query"), limits, error)  # the query's own syntax error first
                if found.errors:
                    found.fingerprint = None
                    return found
            why = exc.detail if isinstance(exc, QuerySyntaxError) else f"{type(exc).__name__}: {exc}"
            found.errors.append(FingerprintQueryError(
                where, f"the search engine cannot run the query: {escape_controls(_one_line(why))}",
                fingerprint.query_line, fingerprint))
    return found


def _check_query(query: str, line: int | None, limits: FingerprintSettings, error: Callable[..., None],
                 parse: bool = True) -> None:
    if not query.strip():
        error("'query' is empty", line)
    elif len(query) > limits.max_query_chars:
        error(f"the query is {len(query):,} characters long; at most {limits.max_query_chars:,} are allowed "
              "(setting fingerprints.max_query_chars)", line)
    elif parse:
        try:
            lucene.parse(query)
        except QuerySyntaxError as exc:
            error(f"query does not parse: {exc.detail}", line)


def _read_yaml(
    path: Path, limits: FingerprintSettings, found: Inspection
) -> tuple[dict[Any, Any] | None, dict[str, int]]:
    """The file's mapping and the line of each key, or None (the error recorded)."""
    where = escape_controls(str(path))

    def fail(message: str, line: int | None = None) -> tuple[None, dict[str, int]]:
        found.errors.append(FingerprintError(where, escape_controls(_one_line(message)), line))
        return None, {}

    if not path.is_file():
        return fail("not a regular file")
    try:
        with open(path, "rb") as handle:
            raw = handle.read(limits.max_file_bytes + 1)
    except OSError as exc:
        return fail(f"cannot read: {exc.strerror}")
    if len(raw) > limits.max_file_bytes:
        return fail(f"the file is over {limits.max_file_bytes:,} bytes (setting fingerprints.max_file_bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return fail(f"not UTF-8 text: {exc.reason} at byte {exc.start}")
    loader = None
    try:
        _check_bounds(yaml.parse(text, Loader=_Loader))
        loader = _Loader(text)
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = ", ".join(filter(None, (exc.context, exc.problem))) or "invalid YAML"
        return fail(f"YAML error: {problem}", mark.line + 1 if mark else None)
    except yaml.YAMLError as exc:
        return fail(f"YAML error: {exc}")
    except (ValueError, OverflowError, TypeError, RecursionError) as exc:  # a value PyYAML cannot build
        return fail(f"YAML value cannot be read: {str(exc)[:200]}")
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(data, dict):
        return fail("a fingerprint must be a mapping with a 'query' key", 1)
    seen: set[str] = set()
    for key, _ in node.value:  # YAML takes the last of two equal keys: a silently lost query
        if isinstance(key, yaml.ScalarNode):
            if key.value in seen:
                return fail(f"the key {key.value!r} is given twice", key.start_mark.line + 1)
            seen.add(key.value)
    return data, _key_lines(node)


# PyYAML's safe loader; libyaml's where PyYAML was built with it (4-5x
# faster: a dashboard run reads every fingerprint). A fingerprint never needs,
# and an attacker does, an alias of a list or mapping (the "billion laughs"
# bomb expands that way), many aliases or deep nesting (composers recurse):
# those are refused on the event stream, which is flat, before composing.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _check_bounds(events: Iterable[yaml.Event]) -> None:
    """Raise ComposerError at the first node nested too deep, alias past
    the allowed number, or alias of a list or mapping."""
    open_collections = aliases = 0
    plain_anchors: dict[str, bool] = {}  # anchor -> names a scalar
    for event in events:
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_YAML_ALIASES:
                raise ComposerError(None, None, f"more than {MAX_YAML_ALIASES} YAML aliases", event.start_mark)
            if plain_anchors.get(event.anchor) is False:
                raise ComposerError(None, None, "a YAML alias may repeat a plain value, not a list or mapping",
                                    event.start_mark)
        elif isinstance(event, (yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if open_collections + 1 > MAX_YAML_DEPTH:
                raise ComposerError(None, None, f"nested more than {MAX_YAML_DEPTH} levels deep", event.start_mark)
            if event.anchor is not None:
                plain_anchors[event.anchor] = isinstance(event, yaml.ScalarEvent)
            if not isinstance(event, yaml.ScalarEvent):
                open_collections += 1
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            open_collections -= 1


def _resolved_date(value: Any) -> dt.date | None:
    """``resolved:`` as a date: YAML's own date, or the same written as a quoted string."""
    if isinstance(value, dt.datetime):
        return None  # a time too: not the day the bug was fixed
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def _key_lines(node: Any) -> dict[str, int]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {key.value: key.start_mark.line + 1 for key, _ in node.value if isinstance(key, yaml.ScalarNode)}


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, (list, tuple)):
        return any(map(_has_surrogate, value))
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    return False


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def load_fingerprint(
    path: str | Path, check: QueryCheck | None = None, limits: FingerprintSettings = FingerprintSettings()
) -> Fingerprint:
    """One valid fingerprint, or the file's first error (FingerprintError)."""
    found = inspect_fingerprint(path, check, limits)
    if found.errors:
        raise _first_error(found)
    assert found.fingerprint is not None
    return found.fingerprint


def _first_error(found: Inspection) -> FingerprintError:
    first = found.errors[0]
    if len(found.errors) == 1:
        return first
    more = f" (and {len(found.errors) - 1} more: run lint)"
    if isinstance(first, FingerprintQueryError):
        return FingerprintQueryError(first.path, first.detail + more, first.line, first.fingerprint)
    return FingerprintError(first.path, first.detail + more, first.line)


def fingerprint_files(directory: str | Path) -> list[Path]:
    directory = Path(directory)
    if not directory.is_dir():
        raise FingerprintError(escape_controls(str(directory)), "not a directory of fingerprints")
    try:
        return sorted((p for p in directory.iterdir() if p.suffix in FINGERPRINT_SUFFIXES and p.is_file()),
                      key=lambda p: p.name)  # one directory: by name, without pathlib's slow comparisons
    except OSError as exc:
        raise FingerprintError(escape_controls(str(directory)), f"cannot list: {exc.strerror}") from None


def load_fingerprints(
    directory: str | Path, check: QueryCheck | None = None, limits: FingerprintSettings = FingerprintSettings()
) -> tuple[list[Fingerprint], list[FingerprintError]]:
    """Every valid fingerprint, and one error for each bad one (skipped, not
    fatal). With ``check``, a fingerprint the search engine would refuse is
    bad too (a FingerprintQueryError carrying it): every command that runs
    fingerprints drops such a one here, through the same check ``lint`` uses."""
    good: list[Fingerprint] = []
    bad: list[FingerprintError] = []
    for path in fingerprint_files(directory):
        found = inspect_fingerprint(path, check, limits)
        if found.errors:
            bad.append(_first_error(found))
        elif found.fingerprint is not None:
            good.append(found.fingerprint)
    return good, bad


@dataclass(frozen=True)
class LintWarning:
    fingerprint: Fingerprint
    message: str

    def __str__(self) -> str:
        path = str(self.fingerprint.path)
        where = f"{path}:{self.fingerprint.query_line}" if self.fingerprint.query_line else path
        return f"{escape_controls(where)}: warning: {escape_controls(_one_line(self.message))}"


def lint_warnings(
    fingerprint: Fingerprint, known_fields: Collection[str] | None = None, fields_source: str = "the index"
) -> list[LintWarning]:
    """Patterns that hurt the search engine or precision. ``known_fields``:
    the fields ``fields_source`` knows, to warn about a name that matches nothing."""
    tree = lucene.parse(fingerprint.query)
    warnings = [LintWarning(fingerprint, f"unknown key '{key}'") for key in fingerprint.unknown_keys]
    if not fingerprint.bug.isdigit():
        warnings.append(LintWarning(fingerprint, f"the file name {fingerprint.bug!r} is not a number; "
                                                 "the file name is the bug id"))
    restricted = False
    for leaf in lucene.iter_leaves(tree):
        if isinstance(leaf, lucene.Wildcard):
            if leaf.pattern[:1] in ("*", "?"):
                warnings.append(LintWarning(fingerprint,
                                            f"leading wildcard in {leaf.field}:{leaf.pattern} scans every term"))
            if leaf.field == "build_name":
                warnings.append(LintWarning(fingerprint,
                                            f"wildcard on build_name ({leaf.pattern}): name the jobs instead"))
        if isinstance(leaf, lucene.Regexp) and leaf.pattern.startswith((".*", ".+")):
            warnings.append(LintWarning(fingerprint, f"regular expression /{leaf.pattern}/ starts with a wildcard"))
        if getattr(leaf, "field", lucene.DEFAULT_FIELD) != lucene.DEFAULT_FIELD:
            restricted = True
    if fingerprint.resolved is not None and fingerprint.resolved > dt.datetime.now(dt.timezone.utc).date():
        warnings.append(LintWarning(fingerprint, f"resolved: {fingerprint.resolved} is in the future; every hit "
                                                 "until then is counted as usual, none as a regression"))
    if not restricted:
        warnings.append(
            LintWarning(fingerprint, "no field restriction besides message: add tags:, filename: or build_name:")
        )
    if known_fields is not None:
        unknown = sorted(lucene.fields_used(tree) - set(known_fields) - {"*"})
        if unknown:
            names = ", ".join(map(repr, unknown))
            known = sorted(known_fields)
            listed = ", ".join(known[:MAX_FIELDS_LISTED]) + (
                f" and {len(known) - MAX_FIELDS_LISTED} more" if len(known) > MAX_FIELDS_LISTED else "")
            warnings.append(LintWarning(fingerprint, f"unknown field(s) {names}; fields {fields_source} knows: "
                                                     f"{listed}"))
    return warnings
