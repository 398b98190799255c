"""The query model (``lucene.py``) as tantivy queries, with Elasticsearch's semantics.

Text is analysed with the same analyzer the index uses. Anything that cannot
be given Elasticsearch's exact answer raises UnsupportedQueryError instead of
running as something else.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Callable, Protocol

import tantivy
from tantivy import Occur, Query

from .. import lucene
from ..analysis import analyze, java_lower
from ..errors import QuerySyntaxError, UnsupportedQueryError
from . import schema as sch
from .date_math import range_millis

_MAX_CODEPOINT = 0x10FFFF
# A range over text becomes a regex whose size grows with the square of its
# bounds' length: 4,000 characters took 9 s to refuse. Real bounds are short.
_MAX_RANGE_BOUND = 256
# Elasticsearch refuses longer regular expressions (index.max_regex_length).
MAX_REGEX_LENGTH = 1000


# A query translated but for its context clauses (Translator.plan):
# ("query", Query | None) | ("contexts", node) | ("leaf", node) | ("bool", must, should, must_not)
Plan = tuple


class ContextResolver(Protocol):
    """Answers clauses on context fields (see ``schema``) with the ``cid`` of
    every matching context; ``key`` identifies the clause for caching.
    ``scope`` is how many contexts the query is confined to anyway (one
    build's), or None: a clause matching all of them needs no look-up in lines."""

    schema: tantivy.Schema
    scope: int | None

    def cids(self, key: lucene.Node, query: Query) -> list[int]: ...

    def terms(self, field: str) -> list[str]:
        """Every term of ``field`` in the whole context index (a fuzzy term's expansions)."""
        ...


def is_context_clause(node: lucene.Node) -> bool:
    """Whether every leaf of ``node`` is on a context field, so a context
    index can answer it whole."""
    if isinstance(node, lucene.Bool):
        children = (*node.must, *node.should, *node.must_not)
        return bool(children) and all(map(is_context_clause, children))
    field = getattr(node, "field", None)
    return field is not None and field != "*" and sch.is_context_field(field)


@dataclass(frozen=True)
class ContextClause:
    """A clause a context index answers whole (see :func:`prepare`)."""

    clause: lucene.Node


def prepare(node: lucene.Node) -> lucene.Node:
    """Mark the clauses answered in the context index, grouping required
    context clauses into one (an intersection) and prohibited ones into one
    (a union): one context look-up each. Done once per query, not per run."""
    if is_context_clause(node):
        return ContextClause(node)
    if not isinstance(node, lucene.Bool):
        return node
    must = [c for c in node.must if is_context_clause(c)]
    must_not = [c for c in node.must_not if is_context_clause(c)]
    new_must = tuple(prepare(c) for c in node.must if not is_context_clause(c))
    if must:
        new_must += (ContextClause(lucene.Bool(must=tuple(must)) if len(must) > 1 else must[0]),)
    new_must_not = tuple(prepare(c) for c in node.must_not if not is_context_clause(c))
    if must_not:
        new_must_not += (ContextClause(lucene.Bool(should=tuple(must_not)) if len(must_not) > 1 else must_not[0]),)
    return lucene.Bool(must=new_must, should=tuple(map(prepare, node.should)), must_not=new_must_not)


def _cached(
    cache: dict[lucene.Node, Query | None] | None, node: lucene.Node, translate: Callable[[lucene.Node], Query | None]
) -> Query | None:
    if cache is None:
        return translate(node)
    try:
        return cache[node]
    except KeyError:
        translated = cache[node] = translate(node)
        return translated


class Translator:
    def __init__(
        self,
        schema: tantivy.Schema,
        query: str,
        now: dt.datetime | None = None,
        contexts: ContextResolver | None = None,
        leaf_cache: dict[lucene.Node, Query | None] | None = None,
        context_cache: dict[lucene.Node, Query | None] | None = None,
        context_schema: tantivy.Schema | None = None,
    ) -> None:
        """``leaf_cache``: translated leaves kept across queries on one schema,
        so classifying a build does not rebuild a thousand phrase queries.
        ``context_cache``: context clauses as ``cid`` sets, kept across queries
        answered by the same ``contexts`` (a thousand fingerprints name a few
        dozen distinct ``tags``/``build_name`` clauses).
        ``context_schema``: enough for :meth:`plan` when no index is at hand
        (``contexts`` is only needed to answer context clauses)."""
        self.schema = schema
        self.query = query
        self.now = now
        self.contexts = contexts
        self.leaf_cache = leaf_cache
        self.context_cache = context_cache
        if context_schema is None and contexts is not None:
            context_schema = contexts.schema
        self._context_translator = Translator(context_schema, query, now) if context_schema is not None else None
        # The context index's term dictionary, where a fuzzy term is expanded (None: planning only).
        self.terms: Callable[[str], list[str]] | None = None
        if self._context_translator is not None and contexts is not None:
            self._context_translator.terms = contexts.terms

    def unsupported(self, detail: str) -> UnsupportedQueryError:
        return UnsupportedQueryError(self.query, detail, engine="embedded")

    # Each method returns None for a clause that analyses to nothing, which
    # Lucene drops from its boolean query.
    def _node(self, node: lucene.Node) -> Query | None:
        if isinstance(node, ContextClause):
            return self._context_set(node.clause)
        if isinstance(node, lucene.Bool):
            return self._bool(node)
        if isinstance(node, lucene.MatchAll):
            return Query.all_query()
        if node.field == sch.TIMESTAMP_FIELD:  # date math depends on now: never cached
            return self._timestamp(node)
        return _cached(self.leaf_cache, node, self._leaf)

    def _leaf(self, node: lucene.Node) -> Query | None:
        if node.field == "*":
            raise self.unsupported("searching every field ('*:') is not supported; name a field")
        if "*" in node.field or "?" in node.field:
            raise self.unsupported(f"field-name patterns ({node.field!r}) are not supported; name each field")
        base = node.field.split(".", 1)[0]
        if base != node.field and sch.is_indexed_field(base):
            raise self.unsupported(f"{node.field!r}: sub-fields of {base!r} (such as a cluster's keyword "
                                   "sub-field) do not exist in the embedded index")
        if isinstance(node, lucene.Exists):
            return self._exists(node.field)
        text_field = sch.text_field(node.field)
        if isinstance(node, lucene.Term):
            return _any_of([self._term(text_field, token) for token in analyze(node.text)])
        if isinstance(node, lucene.Phrase):
            tokens = analyze(node.text)
            if len(tokens) <= 1:
                return self._term(text_field, tokens[0]) if tokens else None
            if node.slop:
                self._check_slop(node, tokens)
            return Query.phrase_query(self.schema, text_field, list(tokens), node.slop)
        if isinstance(node, lucene.Fuzzy):
            return self._fuzzy(text_field, normalize(node.text), node.distance)
        if not sch.is_indexed_field(node.field):
            raise self.unsupported(
                f"wildcards, regular expressions and ranges work on the standard fields only, "
                f"not on {node.field!r}"
            )
        if isinstance(node, lucene.Wildcard):
            if node.pattern == "*":  # "**" is a pattern: any term
                return self._exists(node.field)
            return self._regex(text_field, wildcard_to_regex(normalize_wildcard(node.pattern)), "wildcard")
        if isinstance(node, lucene.Regexp):
            if len(node.pattern) > MAX_REGEX_LENGTH:
                raise self.unsupported(f"a regular expression longer than {MAX_REGEX_LENGTH} characters is refused "
                                       "(as Elasticsearch's index.max_regex_length does)")
            return self._regex(text_field, self._lucene_regex(node.pattern), "regular expression")
        if isinstance(node, lucene.Range):
            low = normalize(node.low) if node.low is not None else None
            high = normalize(node.high) if node.high is not None else None
            if max(len(low or ""), len(high or "")) > _MAX_RANGE_BOUND:
                raise self.unsupported(f"a range bound longer than {_MAX_RANGE_BOUND} characters is not supported "
                                       "by the embedded engine")
            pattern = range_to_regex(low, high, node.include_low, node.include_high)
            return self._regex(text_field, pattern, "range") if pattern else Query.empty_query()
        raise self.unsupported(f"unsupported clause {node!r}")

    def _regex(self, text_field: str, pattern: str, what: str) -> Query:
        """tantivy compiles the automaton here, and refuses one past its size
        limits (``/a{1000}/``) with a ValueError: the query's fault, said so."""
        try:
            return Query.regex_query(self.schema, text_field, pattern)
        except ValueError as exc:
            reason = " ".join(str(exc).split("RegexQueryError: ")[-1].strip("'\" ").split())
            raise self.unsupported(f"this {what} is too complex for the embedded engine ({reason})") from None

    def _context_set(self, node: lucene.Node) -> Query | None:
        return _cached(self.context_cache, node, self._lookup_context_set)

    def _lookup_context_set(self, node: lucene.Node) -> Query | None:
        assert self.contexts is not None and self._context_translator is not None
        query = self._context_translator._node(node)
        if query is None:  # analyses to nothing: Lucene drops the clause
            return None
        cids = self.contexts.cids(node, query)
        if self.contexts.scope is not None and len(cids) == self.contexts.scope:
            return Query.all_query()
        return sch.in_contexts(self.schema, cids)

    def plan(self, node: lucene.Node) -> Plan:
        """The translation of a prepared query with its context clauses left
        open, so classifying build after build translates each fingerprint
        once; :meth:`instantiate` fills them in for the build at hand."""
        if isinstance(node, ContextClause):
            assert self._context_translator is not None
            self._context_translator._node(node.clause)  # an unsupported clause fails now, naming its query
            return ("contexts", node.clause)
        if isinstance(node, lucene.Bool):
            return ("bool", tuple(map(self.plan, node.must)), tuple(map(self.plan, node.should)),
                    tuple(map(self.plan, node.must_not)))
        if getattr(node, "field", None) == sch.TIMESTAMP_FIELD:  # date math depends on now
            self._node(node)  # an unsupported clause fails now, naming its query
            return ("leaf", node)
        return ("query", self._node(node))

    def instantiate(self, plan: Plan) -> Query:
        result = self._instantiate(plan)
        return result if result is not None else Query.empty_query()

    def _instantiate(self, plan: Plan) -> Query | None:
        kind = plan[0]
        if kind == "query":
            return plan[1]
        if kind == "contexts":
            return self._context_set(plan[1])
        if kind == "leaf":
            return self._node(plan[1])
        return self._combine(
            [q for q in map(self._instantiate, plan[1]) if q is not None],
            [q for q in map(self._instantiate, plan[2]) if q is not None],
            [q for q in map(self._instantiate, plan[3]) if q is not None],
        )

    def _bool(self, node: lucene.Bool) -> Query | None:
        return self._combine(
            [q for q in map(self._node, node.must) if q is not None],
            [q for q in map(self._node, node.should) if q is not None],
            [q for q in map(self._node, node.must_not) if q is not None],
        )

    @staticmethod
    def _combine(must: list[Query], should: list[Query], must_not: list[Query]) -> Query | None:
        if not must and not should:
            if not must_not:
                return None
            must = [Query.all_query()]
        clauses = [(Occur.Must, q) for q in must]
        if not must:  # with a required clause, optional ones only score
            clauses += [(Occur.Should, q) for q in should]
        clauses += [(Occur.MustNot, q) for q in must_not]
        if len(clauses) == 1 and clauses[0][0] != Occur.MustNot:
            return clauses[0][1]
        return Query.boolean_query(clauses)

    def _term(self, text_field: str, token: str) -> Query:
        return Query.term_query(self.schema, text_field, token)

    def _check_slop(self, node: lucene.Phrase, tokens: tuple[str, ...]) -> None:
        """Sloppy phrases tantivy cannot answer as Lucene does, refused."""
        if node.field != sch.MESSAGE:
            raise self.unsupported(
                f"phrase slop on {node.field!r}: Elasticsearch leaves 100 positions between the values of a "
                "list, so a sloppy phrase never spans two; the embedded index does not (use slop on message only)")
        if len(set(tokens)) < len(tokens):
            raise self.unsupported("a sloppy phrase that repeats a word: Lucene matches each word at its own "
                                   "position, tantivy may match one position twice")

    def _fuzzy(self, text_field: str, term: str, distance: int | None) -> Query:
        """One term, not analysed but lower-cased, as Elasticsearch's query_string
        builds it. Lucene only takes a term fewer edits away than the shorter
        of the two words' lengths: the same as tantivy's answer whenever the
        word is longer than twice the edits (always so for AUTO).

        Elasticsearch expands it to the FUZZY_MAX_EXPANSIONS best index terms
        only (see :func:`fuzzy_expansions`): on a context field the terms are
        enumerated and the same ones kept; the message's dictionary (every word
        of every line, and of deleted ones) is too large to enumerate per query."""
        length = len(term)
        if distance is None:  # Elasticsearch's AUTO fuzziness
            distance = 0 if length <= 2 else 1 if length <= 5 else 2
        if "." in text_field:
            raise self.unsupported("fuzzy terms work on the standard fields only")
        if text_field == sch.MESSAGE and distance:
            raise self.unsupported(
                f"fuzzy terms on the message: Elasticsearch keeps only the {FUZZY_MAX_EXPANSIONS} best index terms "
                "within the distance (max_expansions), which depends on every word of every log line; the embedded "
                "engine cannot enumerate them (use a wildcard, a regular expression or the words themselves)")
        if distance and length <= 2 * distance:
            raise self.unsupported(f"fuzziness ~{distance} on {term!r}: on a word of at most {2 * distance} "
                                   "characters Lucene's answer differs from the embedded engine's "
                                   "(use a longer word, or a bare ~)")
        if self.terms is not None and distance:
            kept = fuzzy_expansions(term, distance, self.terms(text_field))
            if kept is not None:
                return _any_of([self._term(text_field, t) for t in kept]) or Query.empty_query()
        return Query.fuzzy_term_query(self.schema, text_field, term, distance, True, False)

    def _exists(self, fieldname: str) -> Query:
        if fieldname in (sch.TIMESTAMP_FIELD, sch.MESSAGE):  # every log event has both
            return Query.all_query()
        return Query.exists_query(sch.facet_field(fieldname), False)

    def _timestamp(self, node: lucene.Node) -> Query:
        """``@timestamp`` is a date in Elasticsearch: ranges and single dates
        (``@timestamp:2026-11-20`` is that day) as its date math reads them."""
        if isinstance(node, lucene.Exists):
            return Query.all_query()
        if isinstance(node, (lucene.Term, lucene.Phrase)):
            node = lucene.Range(node.field, node.text, node.text)
        if not isinstance(node, lucene.Range):
            raise self.unsupported("@timestamp is a date: it takes a date or a range, e.g. @timestamp:[now-1d TO now]")
        try:
            low, high = timestamp_micros(node, self.now)
        except (ValueError, OverflowError) as exc:
            raise self.unsupported(f"@timestamp: {exc}") from None
        if low is None and high is None:
            return Query.all_query()
        if low is not None and high is not None and low > high:
            return Query.empty_query()
        return Query.range_query(self.schema, sch.TS, tantivy.FieldType.Integer, low, high, True, True)

    def _lucene_regex(self, pattern: str) -> str:
        try:
            return lucene_regex_to_rust(pattern)
        except ValueError as exc:
            raise self.unsupported(str(exc)) from None


class QueryPlanner:
    """Plans queries for the embedded engine from its two schemas alone.

    The backend plans every query through one of these (and caches the
    plans), and ``lint`` uses one with no index at all: so lint refuses
    exactly what classification and the dashboard would refuse."""

    def __init__(self, schema: tantivy.Schema | None = None, context_schema: tantivy.Schema | None = None) -> None:
        self.schema = schema if schema is not None else sch.line_schema()
        self.context_schema = context_schema if context_schema is not None else sch.context_schema()
        self.leaves: dict[lucene.Node, Query | None] = {}  # translated leaves, shared by every plan

    def plan(self, query: str, node: lucene.Node | None = None) -> Plan:
        """``node``: the query already parsed and :func:`prepare`-d (the
        backend keeps those too). Any failure is the query's, and says so."""
        try:
            if node is None:
                node = prepare(lucene.parse(query))
            translator = Translator(self.schema, query, leaf_cache=self.leaves, context_schema=self.context_schema)
            return translator.plan(node)
        except QuerySyntaxError:
            raise
        except (ValueError, OverflowError, RecursionError) as exc:  # tantivy and Python refusing a value
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise UnsupportedQueryError(query, f"the embedded engine cannot run this query: {reason}",
                                        engine="embedded") from None

    def check(self, query: str) -> None:
        """Raise QuerySyntaxError (naming why) unless the engine can run ``query``."""
        self.plan(query)


# Elasticsearch's query_string fuzzy_max_expansions: a fuzzy term becomes at
# most this many index terms.
FUZZY_MAX_EXPANSIONS = 50


def fuzzy_expansions(term: str, distance: int, dictionary: list[str]) -> list[str] | None:
    """The index terms Lucene's FuzzyQuery keeps for ``term`` (its
    TopTermsBlendedFreqScoringRewrite): those within ``distance`` edits (a
    transposition is one) and fewer edits away than the shorter word's length,
    best first by 1 - edits / shorter length, ties by term order, at most
    FUZZY_MAX_EXPANSIONS of them; None when all of them are kept."""
    scored = []
    for candidate in dictionary:
        if abs(len(candidate) - len(term)) > distance:
            continue
        edits = _edit_distance(term, candidate, distance)
        shorter = min(len(candidate), len(term))
        if edits <= distance and (edits == 0 or edits < shorter):
            scored.append((-(1.0 - edits / shorter) if edits else -1.0, candidate))
    if len(scored) <= FUZZY_MAX_EXPANSIONS:
        return None
    scored.sort()
    return [candidate for _, candidate in scored[:FUZZY_MAX_EXPANSIONS]]


def _edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance with adjacent transpositions (optimal string
    alignment, as Lucene's automata count them), or limit + 1 past ``limit``."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            best = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                best = min(best, previous2[j - 2] + 1)
            current[j] = best
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


def _any_of(queries: list[Query]) -> Query | None:
    if not queries:
        return None
    if len(queries) == 1:
        return queries[0]
    return Query.boolean_query([(Occur.Should, q) for q in queries])


# -- patterns -----------------------------------------------------------------


def _literal(text: str) -> str:
    return "".join(_codepoint(c) for c in text)


def _codepoint(ch: str) -> str:
    return ch if ch.isalnum() else f"\\x{{{ord(ch):X}}}"


def normalize(text: str) -> str:
    """Lower-cased one character at a time, as the index's lowercase filter
    and Lucene's do (a final sigma stays ``σ``; ``İ`` becomes ``i``)."""
    return java_lower(text)


_WILDCARD_RUNS = re.compile(r"(\\.)|([?*]+)", re.S)


def normalize_wildcard(pattern: str) -> str:
    """A wildcard pattern lower-cased as Elasticsearch does: a prefix (``Foo*``,
    Lucene's PREFIXTERM: one trailing ``*``, no other wildcard) wholly,
    escaped characters included; any other pattern in its literal runs only,
    leaving escaped characters as written."""
    runs = list(_WILDCARD_RUNS.finditer(pattern))
    wildcards = [m for m in runs if m.group(2)]
    if len(wildcards) == 1 and wildcards[0].group(2) == "*" and wildcards[0].end() == len(pattern):
        return "".join(normalize(m.group(1)) if m.group(1) else "" for m in
                       re.finditer(r"(\\.|[^\\])", pattern[:-1], re.S)) + "*"
    out, last = [], 0
    for match in runs:
        out.append(normalize(pattern[last : match.start()]))
        out.append(match.group())
        last = match.end()
    out.append(normalize(pattern[last:]))
    return "".join(out)


def wildcard_to_regex(pattern: str) -> str:
    """``*``/``?`` pattern (backslash escapes honoured) as an anchored Rust regex."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(_codepoint(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "*" else "." if ch == "?" else _codepoint(ch))
        i += 1
    return "".join(out)


_REGEX_PASSTHROUGH = set(".*+?|(){},")


def lucene_regex_to_rust(pattern: str) -> str:
    """Lucene's RegExp syntax (as Elasticsearch's query_string reads it) as Rust regex.

    Lucene has no anchors or ``\\d``-style classes: ``^``/``$`` are literal and
    ``\\x`` is the literal ``x``. Its complement, intersection, interval and
    empty-language operators have no Rust equivalent and are refused.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            out.append(_codepoint(pattern[i + 1]))
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
                out.append("]")
            elif ch == "-" or (ch == "^" and out[-1] == "["):
                out.append(ch)
            else:
                out.append(_codepoint(ch))
            i += 1
            continue
        if ch == "[":
            in_class = True
            out.append("[")
        elif ch == '"':
            end = pattern.find('"', i + 1)
            if end < 0:
                raise ValueError("unterminated quoted string in regular expression")
            out.append(_literal(pattern[i + 1 : end]))
            i = end + 1
            continue
        elif ch == "@":
            out.append(".*")
        elif ch in "~&#<>":
            raise ValueError(f"the regular expression operator {ch!r} is not supported by the embedded engine")
        elif ch in _REGEX_PASSTHROUGH or ch.isalnum():
            out.append(ch)
        else:
            out.append(_codepoint(ch))
        i += 1
    if in_class:
        raise ValueError("unterminated character class in regular expression")
    return "".join(out)


def _above(ch: str) -> str | None:
    code = ord(ch) + 1
    return f"[\\x{{{code:X}}}-\\x{{{_MAX_CODEPOINT:X}}}]" if code <= _MAX_CODEPOINT else None


def _below(ch: str) -> str | None:
    code = ord(ch) - 1
    return f"[\\x{{0}}-\\x{{{code:X}}}]" if code >= 0 else None


def _alternatives(options: list[str]) -> str | None:
    if not options:
        return None
    return "(?:" + "|".join(options) + ")"


def _at_least(x: str, inclusive: bool) -> str | None:
    """Strings (possibly empty) ordered after ``x``."""
    options = []
    for i, ch in enumerate(x):
        above = _above(ch)
        if above:
            options.append(_literal(x[:i]) + above + ".*")
    options.append(_literal(x) + ".+")
    if inclusive:
        options.append(_literal(x))
    return _alternatives(options)


def _at_most(x: str, inclusive: bool, allow_empty: bool = True) -> str | None:
    """Strings ordered before ``x`` (the empty string only if ``allow_empty``)."""
    options = []
    for i, ch in enumerate(x):
        below = _below(ch)
        if below:
            options.append(_literal(x[:i]) + below + ".*")
        if i or allow_empty:
            options.append(_literal(x[:i]))  # a proper prefix sorts first
    if inclusive and (x or allow_empty):
        options.append(_literal(x))
    return _alternatives(options)


def range_to_regex(low: str | None, high: str | None, include_low: bool, include_high: bool) -> str | None:
    """A regex for the terms in a lexicographic range, ordered by code point as
    Lucene's TermRangeQuery orders them; None when the range is empty."""
    if low is None and high is None:
        return ".+"
    if low is None:
        return _at_most(high, include_high)
    if high is None:
        return _at_least(low, include_low)
    if low > high or (low == high and not (include_low and include_high)):
        return None
    common = 0
    while common < min(len(low), len(high)) and low[common] == high[common]:
        common += 1
    prefix, a, b = _literal(low[:common]), low[common:], high[common:]
    if not a:  # low is a prefix of high
        rest = _at_most(b, include_high, allow_empty=include_low)
        return prefix + rest if rest else None
    options = []
    tail = _at_least(a[1:], include_low)
    if tail:
        options.append(_literal(a[0]) + tail)
    first, last = ord(a[0]) + 1, ord(b[0]) - 1
    if first <= last:
        options.append(f"[\\x{{{first:X}}}-\\x{{{last:X}}}].*")
    tail = _at_most(b[1:], include_high)
    if tail:
        options.append(_literal(b[0]) + tail)
    middle = _alternatives(options)
    return prefix + middle if middle else None


def timestamp_micros(node: lucene.Range, now: dt.datetime | None = None) -> tuple[int | None, int | None]:
    """The inclusive bounds, in the index's microseconds, of a range on
    ``@timestamp`` (None: open), or ValueError naming the bad bound.
    Elasticsearch keeps milliseconds: an upper bound takes its whole millisecond."""
    low, high = range_millis(node.low, node.high, node.include_low, node.include_high,
                             now or dt.datetime.now(dt.timezone.utc))
    return (None if low is None else low * 1000, None if high is None else high * 1000 + 999)
