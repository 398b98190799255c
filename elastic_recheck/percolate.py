"""Every fingerprint against a build's lines as they are indexed (percolation).

Asking the index one question per fingerprint per build costs more than
reading the build's raw files with ``grep -F``; the lines pass through the
ingest anyway, so each is matched against every fingerprint on its way in,
in the manner of Lucene's Monitor: the queries are compiled once
(``percolate_plan``), each query is *anchored* by terms or phrases one of
which every line it matches holds, each token and pair of adjacent tokens of a
line is tested against a bitmap of the anchors' keys, and only the queries a
found anchor names are verified on that line.

Clauses on context fields (``tags``, ``filename``, ``build_name``,
``voting``...) are answered once per context (``percolate_contexts``), and
the queries are then compiled again for that *kind* of context, with those
answers folded in: a line of ``screen-n-cpu.txt`` is only matched against the
fingerprints that can match there, and a fingerprint true on every line of
the context (``tags:console`` alone) costs nothing per line. The compiled
kinds are kept (``max_context_kinds``), so builds after the first reuse them.

The answer is the index's answer: for each fingerprint the number of the
build's lines its query matches and the newest of them, as
``count``/``search`` with ``AND build_uuid:...`` give them. A query the
matcher cannot evaluate exactly is listed in :attr:`Percolator.fallback` with
the reason, and the caller runs the index query for that key alone.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from . import lucene
from .errors import RecheckError
from .percolate_contexts import ContextLeaves
from .percolate_plan import (
    FALSE, TRUE, And, Compiled, Const, CtxLeaf, Expr, Not, NotNative, Or, TimeRange, anchor_offset,
    check_time_range, lower, token_counts,
)
from .search import schema as sch

try:
    from ._percolate import Build as NativeBuild
    from ._percolate import Matcher as NativeMatcher
except ImportError:  # the extension is not built: the same algorithm in Python
    from .native import without

    NativeBuild = NativeMatcher = None
    without("elastic_recheck._percolate", "matching fingerprints as lines are indexed")

from .percolate_engine import Build as PythonBuild
from .percolate_engine import Matcher as PythonMatcher

# Kinds of context whose compiled matchers are kept. A kind is one set of
# answers to the context clauses (a file, a level, a job named by some
# fingerprint...): a deployment has dozens to hundreds.
MAX_CONTEXT_KINDS = 512
# Queries folded for a set of answers to their own context clauses, kept for
# the next kind of context: emptied past this (a few MB; 1,000 fingerprints
# over a few hundred kinds stay well below it).
MAX_FOLDS = 200_000


@dataclass(frozen=True)
class LineMatches:
    """What one fingerprint matched in one build: the number of lines and the
    newest of them (its time in microseconds since the epoch, and its text:
    of lines with the same time, any one, as the index's sort gives any one)."""

    hits: int
    newest_micros: int
    newest_message: str


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class _Kind:
    """The queries compiled for one kind of context."""

    def __init__(self, compiled: Compiled, queries: list[int], whole: list[int], matcher: Any) -> None:
        self.compiled = compiled
        self.queries = queries  # the matcher's query number -> the percolator's
        self.whole = whole  # the percolator's queries true on every line of the context
        self.matcher = matcher


class Percolator:
    """A set of queries compiled once, matched against build after build.
    One thread feeds it (the pipeline's index writer): the compiled kinds of
    context are shared by its builds without a lock."""

    def __init__(self, queries: Mapping[str, str], now: dt.datetime | None = None, native: bool | None = None,
                 max_context_kinds: int = MAX_CONTEXT_KINDS,
                 parse: Callable[[str], lucene.Node] = lucene.parse) -> None:
        """``queries``: key -> Lucene query string. ``now``: the moment date
        math (``@timestamp:[now-1d TO now]``) is resolved against; by default
        the time each build starts. ``native``: False forces the pure-Python
        matcher (True insists on the C one). ``parse``: ``lucene.parse``, or
        a cache of it (the backend's, which parsed them at load)."""
        if native is None:
            native = NativeMatcher is not None
        if native and NativeMatcher is None:
            raise RecheckError("the percolator's C extension (elastic_recheck._percolate) is not built")
        self.native = bool(native)
        self._engine, self._build_type = (NativeMatcher, NativeBuild) if native else (PythonMatcher, PythonBuild)
        self.now = now
        self.max_context_kinds = max_context_kinds
        self.fallback: dict[str, str] = {}
        self._keys: list[str] = []
        self._exprs: list[Expr] = []
        leaves: list[lucene.Node] = []
        self._leaf_ids: dict[lucene.Node, int] = {}
        checker = ContextLeaves([])
        for key, query in queries.items():
            try:
                expr = lower(parse(query))
                if expr is None:
                    raise NotNative("the query analyses to nothing")
                _check_leaves(expr, checker, now)
            except NotNative as exc:
                self.fallback[key] = str(exc)
                continue
            except RecheckError as exc:
                self.fallback[key] = _one_line(exc)
                continue
            except Exception as exc:  # a hostile query must not stop the others
                self.fallback[key] = f"the matcher cannot read this query: {_one_line(exc)}"
                continue
            _intern_leaves(expr, leaves, self._leaf_ids)
            self._keys.append(key)
            self._exprs.append(expr)
        self._leaves = ContextLeaves(leaves)
        self._df = token_counts(self._exprs)
        self._kinds: OrderedDict[bytes, _Kind] = OrderedDict()
        # A query folds the same way in every kind of context that answers its own
        # context clauses alike: folded once per answer, not once per kind (a new
        # build's kinds cost ~15 ms each to fold, on a report's way to its comment).
        self._expr_leaves = [tuple(sorted(_leaf_ids_of(expr, self._leaf_ids))) for expr in self._exprs]
        self._folds: dict[tuple[int, bytes], Expr] = {}

    @property
    def keys(self) -> list[str]:
        """The keys the matcher evaluates (every key not in ``fallback``)."""
        return list(self._keys)

    def start(self) -> "BuildPercolation":
        return BuildPercolation(self)

    def _kind(self, values: bytes) -> _Kind:
        kind = self._kinds.get(values)
        if kind is not None:
            self._kinds.move_to_end(values)
            return kind
        compiled = Compiled(df=self._df)
        whole: list[int] = []
        if len(self._folds) > MAX_FOLDS:
            self._folds.clear()
        for query, expr in enumerate(self._exprs):
            answers = (query, bytes([values[leaf] for leaf in self._expr_leaves[query]]))
            folded = self._folds.get(answers)
            if folded is None:
                folded = self._folds[answers] = _fold(expr, values, self._leaf_ids)
            if folded == TRUE:
                whole.append(query)
            elif folded != FALSE:
                compiled.add(str(query), folded)
        vocab = compiled.vocabulary()
        tids = {token: tid for tid, token in enumerate(vocab)}
        atom_queries: list[list[int]] = [[] for _ in compiled.atoms]
        for query, found in enumerate(compiled.query_anchors):
            for atom in found:
                atom_queries[atom].append(query)
        matcher = self._engine(
            vocab, [[tids[t] for t in atom.tokens] for atom in compiled.atoms],
            [anchor_offset(atom.tokens, self._df) for atom in compiled.atoms], atom_queries, compiled.code, 0,
        )
        kind = _Kind(compiled, [int(k) for k in compiled.keys], whole, matcher)
        self._kinds[values] = kind
        if len(self._kinds) > self.max_context_kinds:
            self._kinds.popitem(last=False)
        return kind


def _intern_leaves(expr: Expr, leaves: list[lucene.Node], ids: dict[lucene.Node, int]) -> None:
    if isinstance(expr, CtxLeaf):
        if expr.clause not in ids:
            ids[expr.clause] = len(leaves)
            leaves.append(expr.clause)
    elif isinstance(expr, (And, Or)):
        for part in expr.parts:
            _intern_leaves(part, leaves, ids)
    elif isinstance(expr, Not):
        _intern_leaves(expr.part, leaves, ids)


def _leaf_ids_of(expr: Expr, ids: dict[lucene.Node, int]) -> set[int]:
    """The context clauses ``expr`` asks (their numbers in ``ids``)."""
    if isinstance(expr, CtxLeaf):
        return {ids[expr.clause]}
    if isinstance(expr, (And, Or)):
        return set().union(*(_leaf_ids_of(part, ids) for part in expr.parts))
    if isinstance(expr, Not):
        return _leaf_ids_of(expr.part, ids)
    return set()


def _check_leaves(expr: Expr, leaves: ContextLeaves, now: dt.datetime | None) -> None:
    if isinstance(expr, CtxLeaf):
        leaves.check(expr.clause)
    elif isinstance(expr, TimeRange):
        check_time_range(expr.clause, now)
    elif isinstance(expr, (And, Or)):
        for part in expr.parts:
            _check_leaves(part, leaves, now)
    elif isinstance(expr, Not):
        _check_leaves(expr.part, leaves, now)


def _fold(expr: Expr, values: bytes, leaf_ids: dict[lucene.Node, int]) -> Expr:
    """``expr`` with the context's answers in place of its context clauses, simplified."""
    if isinstance(expr, CtxLeaf):
        return TRUE if values[leaf_ids[expr.clause]] else FALSE
    if isinstance(expr, Not):
        inner = _fold(expr.part, values, leaf_ids)
        return Const(not inner.value) if isinstance(inner, Const) else Not(inner)
    if isinstance(expr, (And, Or)):
        decisive = FALSE if isinstance(expr, And) else TRUE  # what decides it alone
        parts = []
        for part in expr.parts:
            folded = _fold(part, values, leaf_ids)
            if folded == decisive:
                return decisive
            if not isinstance(folded, Const):
                parts.append(folded)
        if not parts:
            return TRUE if decisive == FALSE else FALSE
        return parts[0] if len(parts) == 1 else type(expr)(tuple(parts))
    return expr


class BuildPercolation:
    """One build's matching, fed context by context and line by line as the
    build is indexed. ``line`` and ``lines`` are the matcher's own methods:
    no Python frame per line."""

    def __init__(self, percolator: Percolator) -> None:
        self._p = percolator
        self._now = percolator.now or dt.datetime.now(dt.timezone.utc)
        self._build = percolator._build_type()
        self.line = self._build.line
        self.lines = self._build.lines
        self._handles: dict[str, int] = {}
        self._runs: dict[bytes, tuple[_Kind, Any, int, int]] = {}  # kind -> (kind, run, its context, a handle)

    def context(self, fields: dict[str, Any]) -> int:
        """A handle for lines with these fields (message and @timestamp
        ignored), as ``EmbeddedWriter.context`` takes them."""
        canonical = sch.canonical_context(fields)
        handle = self._handles.get(canonical)
        if handle is not None:
            return handle
        values = self._p._leaves.values(canonical)
        entry = self._runs.get(values)
        if entry is None:
            kind = self._p._kind(values)
            run = kind.matcher.start(kind.compiled.time_bounds(self._now))
            local = run.add_context(b"", kind.compiled.anchorless, bool(kind.whole))
            entry = self._runs[values] = (kind, run, local, self._build.add(run, local))
        handle = self._handles[canonical] = entry[3]
        return handle

    def line(self, context: int, micros: int, message: str, tokens: str) -> None:  # replaced per instance
        """One log line: ``tokens`` is ``analysis.index_text(message)``."""
        raise NotImplementedError

    def lines(self, context: int, micros: Sequence[int], messages: Sequence[str], tokens: Sequence[str]) -> None:
        """Many lines of one context at once (replaced per instance)."""
        raise NotImplementedError

    def results(self) -> dict[str, LineMatches]:
        """Every evaluated key that matched a line of the build."""
        merged: dict[int, list[Any]] = {}

        def add(query: int, hits: int, newest: int, message: str) -> None:
            found = merged.get(query)
            if found is None:
                merged[query] = [hits, newest, message]
            else:
                found[0] += hits
                if newest >= found[1]:
                    found[1], found[2] = newest, message

        for kind, run, local, _ in self._runs.values():
            for query, hits, newest, message in run.results():
                add(kind.queries[query], hits, newest, message)
            if kind.whole:
                lines, newest, message = run.context_stats()[local]
                if lines:
                    for query in kind.whole:
                        add(query, lines, newest, message)
        keys = self._p._keys
        return {keys[q]: LineMatches(h, t, m) for q, (h, t, m) in merged.items()}
