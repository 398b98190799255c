"""Fingerprint queries compiled for the percolator (``percolate.py``).

A query is lowered from the query model (``lucene.py``) to a small boolean
program over three kinds of facts about a log line:

* *atoms*: a run of message tokens (a term is a run of one, a phrase of
  several) present in the line's analysed tokens;
* *context leaves*: a clause on a context field (``tags``, ``filename``,
  ``build_name``, ``module``...), true or false for every line of a context;
* *time ranges*: ``@timestamp`` bounds, checked against the line's time.

The lowering keeps the embedded engine's semantics (``search/translate.py``):
a clause that analyses to nothing is dropped from its boolean query; with a
required clause the optional ones only score; a purely negative query matches
everything but its exclusions. What the matcher cannot decide exactly (slop,
fuzzy, wildcard, regex or range on the message) raises :class:`NotNative`
and the fingerprint falls back to the index query.

Each program also gets its *anchors*, as Lucene's Monitor presearcher
extracts terms: a set of atoms of which at least one is present in every line
the query matches (for AND the most selective child's, for OR the union). A
line is only verified against the queries one of its present atoms anchors.
A query with no anchors (only context, time or negative clauses) is checked
on every line of the contexts it can match.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Mapping, Union

from . import lucene
from .analysis import analyze
from .search import schema as sch
from .search.translate import timestamp_micros

# tantivy does not index a token longer than this many bytes (its MAX_TOKEN_LEN):
# such a token is in no line as the index sees it, and no query finds it.
MAX_TOKEN_BYTES = 65530
MIN_MICROS = -(2**63)
MAX_MICROS = 2**63 - 1

# Program operations: (op, argument) pairs in postfix order.
OP_ATOM, OP_CTX, OP_TS, OP_TRUE, OP_FALSE, OP_AND, OP_OR, OP_NOT = range(8)


class NotNative(Exception):
    """The matcher cannot evaluate this query exactly; the reason says why."""


# -- the lowered expression ----------------------------------------------------


@dataclass(frozen=True)
class Atom:
    tokens: tuple[str, ...]


@dataclass(frozen=True)
class CtxLeaf:
    clause: lucene.Node  # a non-boolean clause on one context field


@dataclass(frozen=True)
class TimeRange:
    clause: lucene.Range


@dataclass(frozen=True)
class Const:
    value: bool


@dataclass(frozen=True)
class And:
    parts: tuple["Expr", ...]


@dataclass(frozen=True)
class Or:
    parts: tuple["Expr", ...]


@dataclass(frozen=True)
class Not:
    part: "Expr"


Expr = Union[Atom, CtxLeaf, TimeRange, Const, And, Or, Not]
TRUE, FALSE = Const(True), Const(False)


def lower(node: lucene.Node) -> Expr | None:
    """``node`` as an expression over line facts; None when it analyses to nothing."""
    if isinstance(node, lucene.Bool):
        must = [e for e in map(lower, node.must) if e is not None]
        should = [e for e in map(lower, node.should) if e is not None]
        must_not = [e for e in map(lower, node.must_not) if e is not None]
        if not must and not should:
            if not must_not:
                return None
            must = [TRUE]
        parts = list(must) if must else [_or(should)]  # with a required clause, optional ones only score
        if must_not:
            parts.append(Not(_or(must_not)))
        return parts[0] if len(parts) == 1 else And(tuple(parts))
    if isinstance(node, lucene.MatchAll):
        return TRUE
    name = node.field
    if name == "*":
        raise NotNative("searching every field ('*:') is not supported")
    if name == sch.TIMESTAMP_FIELD:
        if isinstance(node, lucene.Exists):
            return TRUE
        if isinstance(node, (lucene.Term, lucene.Phrase)):  # a date: the span it names, as the index reads it
            node = lucene.Range(node.field, node.text, node.text)
        if isinstance(node, lucene.Range):
            return TRUE if node.low is None and node.high is None else TimeRange(node)
        raise NotNative("@timestamp takes a date or a range")
    if name == sch.MESSAGE:
        return _message(node)
    return _context(node)


def _or(parts: list[Expr]) -> Expr:
    return parts[0] if len(parts) == 1 else Or(tuple(parts))


def _atom(tokens: tuple[str, ...]) -> Expr:
    if any(len(t.encode("utf-8", "surrogatepass")) > MAX_TOKEN_BYTES for t in tokens):
        return FALSE
    return Atom(tokens)


def _message(node: lucene.Node) -> Expr | None:
    if isinstance(node, lucene.Term):
        tokens = analyze(node.text)
        return _or([_atom((t,)) for t in tokens]) if tokens else None
    if isinstance(node, lucene.Phrase):
        tokens = analyze(node.text)
        if not tokens:
            return None
        if len(tokens) == 1:  # a one-word phrase is a term, whatever its slop
            return _atom(tokens)
        if node.slop:
            raise NotNative(f"a phrase with slop (~{node.slop}) on the message")
        return _atom(tuple(tokens))
    if isinstance(node, lucene.Exists):
        return TRUE  # every log event has a message, as Elasticsearch counts it: even an empty one
    kind = type(node).__name__.lower()
    raise NotNative(f"a {kind} clause on the message")


def _context(node: lucene.Node) -> Expr | None:
    if isinstance(node, (lucene.Term, lucene.Phrase)) and not analyze(node.text):
        return None  # analyses to nothing: dropped, as the index drops it
    return CtxLeaf(node)


# -- anchors -------------------------------------------------------------------


def anchor_offset(tokens: tuple[str, ...], df: Mapping[str, int]) -> int:
    """Where an atom is looked for: a term by its token; a phrase by the pair
    of adjacent tokens starting here. The pair is the one whose words are in
    the fewest atoms of the query set (``df``), longest first: a word many
    fingerprints use is a word logs are full of, and every line holding a
    phrase's pair costs a lookup and a comparison."""
    if len(tokens) == 1:
        return 0
    return min(range(len(tokens) - 1),
               key=lambda i: (df.get(tokens[i], 0) + df.get(tokens[i + 1], 0), -len(tokens[i]) - len(tokens[i + 1]), i))


def _atom_cost(atom: Atom, df: Mapping[str, int]) -> float:
    """How often the atom's anchor is likely met, relatively."""
    if len(atom.tokens) == 1:
        return 1.0 + df.get(atom.tokens[0], 0)
    i = anchor_offset(atom.tokens, df)
    return (1.0 + df.get(atom.tokens[i], 0) + df.get(atom.tokens[i + 1], 0)) / 8


def anchors(expr: Expr, df: Mapping[str, int]) -> frozenset[Atom] | None:
    """Atoms one of which is in every line ``expr`` matches; None when there
    are none (the query must be checked on every line)."""
    if isinstance(expr, Atom):
        return frozenset((expr,))
    if expr == FALSE:
        return frozenset()  # matches nothing: never a candidate
    if isinstance(expr, And):
        options = [a for a in (anchors(p, df) for p in expr.parts) if a is not None]
        if not options:
            return None
        return min(options, key=lambda atoms: (sum(_atom_cost(a, df) for a in atoms), len(atoms)))
    if isinstance(expr, Or):
        union: set[Atom] = set()
        for part in expr.parts:
            found = anchors(part, df)
            if found is None:
                return None
            union |= found
        return frozenset(union)
    return None


# -- programs ------------------------------------------------------------------


@dataclass
class Compiled:
    """Every query's program over shared tables of atoms, context leaves and
    time ranges, in the form both matcher engines take."""

    df: Mapping[str, int] = field(default_factory=dict)  # in how many atoms of the query set each token is
    keys: list[str] = field(default_factory=list)
    exprs: list[Expr] = field(default_factory=list)
    atoms: list[Atom] = field(default_factory=list)
    atom_ids: dict[Atom, int] = field(default_factory=dict)
    leaves: list[lucene.Node] = field(default_factory=list)
    leaf_ids: dict[lucene.Node, int] = field(default_factory=dict)
    ranges: list[lucene.Range] = field(default_factory=list)
    range_ids: dict[lucene.Range, int] = field(default_factory=dict)
    code: list[list[int]] = field(default_factory=list)
    query_anchors: list[list[int]] = field(default_factory=list)
    anchorless: list[int] = field(default_factory=list)

    def add(self, key: str, expr: Expr) -> None:
        index = len(self.keys)
        code: list[int] = []
        self._emit(expr, code)
        found = anchors(expr, self.df)
        self.keys.append(key)
        self.exprs.append(expr)
        self.code.append(code)
        if found is None:
            self.query_anchors.append([])
            self.anchorless.append(index)
        else:
            self.query_anchors.append(sorted(self.atom_ids[a] for a in found))

    def _emit(self, expr: Expr, out: list[int]) -> None:
        if isinstance(expr, Atom):
            out += (OP_ATOM, _intern(self.atoms, self.atom_ids, expr))
        elif isinstance(expr, CtxLeaf):
            out += (OP_CTX, _intern(self.leaves, self.leaf_ids, expr.clause))
        elif isinstance(expr, TimeRange):
            out += (OP_TS, _intern(self.ranges, self.range_ids, expr.clause))
        elif isinstance(expr, Const):
            out += (OP_TRUE if expr.value else OP_FALSE, 0)
        elif isinstance(expr, Not):
            self._emit(expr.part, out)
            out += (OP_NOT, 0)
        else:
            for part in expr.parts:
                self._emit(part, out)
            out += (OP_AND if isinstance(expr, And) else OP_OR, len(expr.parts))

    def vocabulary(self) -> list[str]:
        """Every token of every atom, each once (a token's id is its index)."""
        return list(dict.fromkeys(t for atom in self.atoms for t in atom.tokens))

    def time_bounds(self, now: dt.datetime | None) -> list[tuple[int, int]]:
        """Each range as inclusive micros bounds. Date math (``now-1d``) is
        resolved when a build starts, as the index resolves it per search."""
        return [_bounds(r, now) for r in self.ranges]


def _intern(table: list, ids: dict, item: object) -> int:
    found = ids.get(item)
    if found is None:
        found = ids[item] = len(table)
        table.append(item)
    return found


def _bounds(node: lucene.Range, now: dt.datetime | None) -> tuple[int, int]:
    try:
        low, high = timestamp_micros(node, now)
    except (ValueError, OverflowError):
        return (1, 0)  # checked when compiled; a moment out of range matches nothing
    lo = MIN_MICROS if low is None else low
    hi = MAX_MICROS if high is None else high
    return (max(lo, MIN_MICROS), min(hi, MAX_MICROS))


def check_time_range(node: lucene.Range, now: dt.datetime | None) -> None:
    """Raise NotNative for bounds the index refuses (not a date, months in date math)."""
    try:
        timestamp_micros(node, now)
    except (ValueError, OverflowError) as exc:
        raise NotNative(f"@timestamp range: {exc}") from None


def token_counts(exprs: list[Expr]) -> dict[str, int]:
    """In how many distinct atoms of ``exprs`` each token is."""
    seen: set[Atom] = set()
    stack = list(exprs)
    while stack:
        expr = stack.pop()
        if isinstance(expr, Atom):
            seen.add(expr)
        elif isinstance(expr, (And, Or)):
            stack.extend(expr.parts)
        elif isinstance(expr, Not):
            stack.append(expr.part)
    counts: dict[str, int] = {}
    for atom in seen:
        for token in set(atom.tokens):
            counts[token] = counts.get(token, 0) + 1
    return counts
