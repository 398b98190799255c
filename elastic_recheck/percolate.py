"""Every fingerprint against a build's lines as they are indexed (percolation).

Asking the index one question per fingerprint per build costs more than
reading the build's raw files with ``grep -F``; the lines pass through the
ingest anyway, so each is matched against every fingerprint on its way in,
in the manner of Lucene's Monitor: the queries are compiled once
(``percolate_plan``), each line's analysed tokens are run through one
multi-pattern matcher (a hash of every token any query needs), and only the
queries a found term or phrase *anchors* are verified on that line.

The answer is the index's answer: for each fingerprint the number of the
build's lines its query matches and the newest of them, as
``count``/``search`` with ``AND build_uuid:...`` give them. A query the
matcher cannot evaluate exactly is listed in :attr:`Percolator.fallback` with
the reason, and the caller runs the index query for that key alone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from . import lucene
from .errors import RecheckError
from .percolate_contexts import ContextLeaves
from .percolate_plan import (
    And, Compiled, Const, CtxLeaf, Expr, Not, NotNative, Or, TimeRange, anchor_offset, check_time_range, line_independent, lower,
)
from .search import schema as sch

try:
    from ._percolate import Matcher as NativeMatcher
except ImportError:  # the extension is not built: the same algorithm in Python
    NativeMatcher = None

from .percolate_engine import Matcher as PythonMatcher


@dataclass(frozen=True)
class LineMatches:
    """What one fingerprint matched in one build: the number of lines and the
    newest of them (its time in microseconds since the epoch, and its text)."""

    hits: int
    newest_micros: int
    newest_message: str


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class Percolator:
    """A set of queries compiled once, matched against build after build."""

    def __init__(self, queries: Mapping[str, str], now: dt.datetime | None = None, native: bool | None = None) -> None:
        """``queries``: key -> Lucene query string. ``now``: the moment date
        math (``@timestamp:[now-1d TO now]``) is resolved against; by default
        the time each build starts. ``native``: False forces the pure-Python
        matcher (True insists on the C one)."""
        self.now = now
        self.fallback: dict[str, str] = {}
        compiled = Compiled()
        candidates: list[tuple[str, Expr]] = []
        for key, query in queries.items():
            try:
                expr = self._lower(query)
            except NotNative as exc:
                self.fallback[key] = str(exc)
                continue
            except RecheckError as exc:
                self.fallback[key] = _one_line(exc)
                continue
            except Exception as exc:  # a hostile query must not stop the others
                self.fallback[key] = f"the matcher cannot read this query: {_one_line(exc)}"
                continue
            if expr is None:
                self.fallback[key] = "the query analyses to nothing"
                continue
            candidates.append((key, expr))
        leaf_check = ContextLeaves([])
        for key, expr in candidates:
            try:
                _check_leaves(expr, leaf_check, now)
            except NotNative as exc:
                self.fallback[key] = str(exc)
                continue
            compiled.add(key, expr)
        self._compiled = compiled
        self._leaves = ContextLeaves(compiled.leaves)
        self._per_context = [
            (q, line_independent(compiled.exprs[q])) for q in compiled.anchorless
        ]
        vocab = compiled.vocabulary()
        tids = {token: tid for tid, token in enumerate(vocab)}
        atoms = [[tids[t] for t in atom.tokens] for atom in compiled.atoms]
        anchor = [anchor_offset(atom.tokens) for atom in compiled.atoms]
        atom_queries: list[list[int]] = [[] for _ in compiled.atoms]
        for query, found in enumerate(compiled.query_anchors):
            for atom in found:
                atom_queries[atom].append(query)
        if native is None:
            native = NativeMatcher is not None
        if native and NativeMatcher is None:
            raise RecheckError("the percolator's C extension (elastic_recheck._percolate) is not built")
        engine = NativeMatcher if native else PythonMatcher
        self.native = bool(native)
        self._matcher = engine(vocab, atoms, anchor, atom_queries, compiled.code, len(compiled.leaves))

    @staticmethod
    def _lower(query: str) -> Expr | None:
        return lower(lucene.parse(query))

    @property
    def keys(self) -> list[str]:
        """The keys the matcher evaluates (every key not in ``fallback``)."""
        return list(self._compiled.keys)

    def start(self) -> "BuildPercolation":
        return BuildPercolation(self)


def _check_leaves(expr: Expr, leaves: ContextLeaves, now: dt.datetime | None) -> None:
    if isinstance(expr, CtxLeaf):
        leaves.check(expr.clause)
    elif isinstance(expr, TimeRange):
        check_time_range(expr.clause, now)
    elif hasattr(expr, "parts"):
        for part in expr.parts:  # type: ignore[union-attr]
            _check_leaves(part, leaves, now)
    elif hasattr(expr, "part"):
        _check_leaves(expr.part, leaves, now)  # type: ignore[union-attr]


class BuildPercolation:
    """One build's matching, fed context by context and line by line as the
    build is indexed. ``line`` and ``lines`` are the matcher's own methods:
    no Python frame per line."""

    def __init__(self, percolator: Percolator) -> None:
        self._p = percolator
        compiled = percolator._compiled
        self._run = percolator._matcher.start(compiled.time_bounds(percolator.now or dt.datetime.now(dt.timezone.utc)))
        self.line = self._run.line
        self.lines = self._run.lines
        self._handles: dict[str, int] = {}
        self._whole: list[list[int]] = []  # per context: queries true on its every line

    def context(self, fields: dict[str, Any]) -> int:
        """A handle for lines with these fields (message and @timestamp
        ignored), as ``EmbeddedWriter.context`` takes them."""
        canonical = sch.canonical_context(fields)
        handle = self._handles.get(canonical)
        if handle is not None:
            return handle
        values = self._p._leaves.values(canonical)
        compiled = self._p._compiled
        per_line: list[int] = []
        whole: list[int] = []
        for query, independent in self._p._per_context:
            verdict = _decide(compiled.exprs[query], values, compiled.leaf_ids)
            if verdict is False:
                continue
            if verdict is True and independent:
                whole.append(query)
            else:
                per_line.append(query)
        handle = self._handles[canonical] = self._run.add_context(values, per_line, bool(whole))
        self._whole.append(whole)
        return handle

    def line(self, context: int, micros: int, message: str, tokens: str) -> None:  # replaced per instance
        """One log line: ``tokens`` is ``analysis.index_text(message)``."""
        raise NotImplementedError

    def lines(self, context: int, micros: Sequence[int], messages: Sequence[str], tokens: Sequence[str]) -> None:
        """Many lines of one context at once (replaced per instance)."""
        raise NotImplementedError

    def results(self) -> dict[str, LineMatches]:
        """Every evaluated key that matched a line of the build."""
        keys = self._p._compiled.keys
        merged: dict[int, list[Any]] = {q: [h, t, m] for q, h, t, m in self._run.results()}
        stats = self._run.context_stats()
        for handle, queries in enumerate(self._whole):
            lines, newest, message = stats[handle]
            if not lines:
                continue
            for query in queries:
                found = merged.get(query)
                if found is None:
                    merged[query] = [lines, newest, message]
                else:
                    found[0] += lines
                    if newest >= found[1]:
                        found[1], found[2] = newest, message
        return {keys[q]: LineMatches(h, t, m) for q, (h, t, m) in merged.items()}


def _decide(expr: Expr, values: bytes, leaf_ids: dict[lucene.Node, int]) -> bool | None:
    """``expr`` with the context's leaves known and the line's facts not:
    True or False when that decides it, None when the line does."""
    if isinstance(expr, CtxLeaf):
        return bool(values[leaf_ids[expr.clause]])
    if isinstance(expr, Const):
        return expr.value
    if isinstance(expr, Not):
        inner = _decide(expr.part, values, leaf_ids)
        return None if inner is None else not inner
    if isinstance(expr, (And, Or)):
        verdicts = [_decide(p, values, leaf_ids) for p in expr.parts]
        decisive = isinstance(expr, Or)  # True decides an OR, False an AND
        if decisive in verdicts:
            return decisive
        return None if None in verdicts else not decisive
    return None

