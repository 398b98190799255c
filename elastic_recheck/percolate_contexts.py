"""Clauses on context fields, answered once per context for the percolator.

A context (``search/schema.py``) holds every field of a log line but the
message and the time, so a clause on one of them is true or false for all
lines of the context at once. Terms and plain phrases on text fields (nearly
every fingerprint's ``tags:``, ``filename:``, ``build_name:``, ``voting:``) and
``_exists_`` are answered here the way the index answers them: each value
analysed on its own (a list such as ``tags`` is several values, and a phrase
does not run from one into the next). Every other clause (wildcard, regex,
range, fuzzy, slop, a field name tantivy reads as a JSON path) is answered by
a one-document in-memory tantivy index with the index's own schema and
analyzers, so it is exact by construction (~10 ms for each value not seen before).

Answers are kept per (clause, value of its field): builds share their
``tags``, ``filename`` and job values, so a new build mostly costs lookups.
"""

from __future__ import annotations

import json
import re
from typing import Any

import tantivy

from . import lucene
from .analysis import ANALYZER_NAME, PRETOKENIZED_NAME, analyze, build_analyzer, build_pretokenized_analyzer
from .percolate_plan import MAX_TOKEN_BYTES, NotNative
from .search import schema as sch
from .search.translate import Translator

# Answers kept across builds; past this the cache starts again (a deployment's
# distinct tags/filename/job values are a few thousand).
_CACHE_LIMIT = 200_000
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_\-]+\Z")


def _plain_field(name: str) -> bool:
    """A standard field, or another whose name tantivy cannot read as a JSON
    path into something else: its answer depends on its own value alone."""
    return sch.is_indexed_field(name) or bool(_PLAIN_NAME.match(name))


def _native(clause: lucene.Node) -> bool:
    if isinstance(clause, lucene.Exists):
        return _plain_field(clause.field)
    if not isinstance(clause, (lucene.Term, lucene.Phrase)):
        return False
    if isinstance(clause, lucene.Phrase) and clause.slop and len(analyze(clause.text)) > 1:
        return False
    return _plain_field(clause.field)


def _values(value: Any) -> list[str]:
    """The text values the index analyses for one field, each on its own."""
    if isinstance(value, list):
        return [sch.facet_value(v) for v in value]
    return [sch.facet_value(value)]


def _tokens(value: Any) -> list[tuple[str, ...]]:
    return [tuple(t for t in analyze(text) if len(t.encode("utf-8", "surrogatepass")) <= MAX_TOKEN_BYTES)
            for text in _values(value)]


def _contains(values: list[tuple[str, ...]], phrase: tuple[str, ...]) -> bool:
    n = len(phrase)
    return any(
        tokens[i : i + n] == phrase for tokens in values for i in range(len(tokens) - n + 1)
    )


class ContextLeaves:
    """The context leaves of every compiled query, answered per context."""

    def __init__(self, leaves: list[lucene.Node]) -> None:
        self.leaves = leaves
        self.schema = sch.context_schema()
        self._queries: dict[int, tantivy.Query] = {}
        translator = Translator(self.schema, "")
        for index, clause in enumerate(leaves):
            if not _native(clause):
                query = translator._node(clause)  # raises UnsupportedQueryError as the index would
                self._queries[index] = query if query is not None else tantivy.Query.empty_query()
        self._cache: dict[tuple[int, str], bool] = {}

    def check(self, clause: lucene.Node) -> None:
        """Raise NotNative for a clause the index refuses (said in its words),
        or whose answer depends on other contexts than the line's own."""
        if _native(clause):
            return
        if isinstance(clause, lucene.Fuzzy):
            raise NotNative("a fuzzy term keeps the 50 best terms of the whole index (max_expansions)")
        try:
            Translator(self.schema, "")._node(clause)
        except Exception as exc:  # the index refuses it: so does the matcher
            raise NotNative(" ".join(str(exc).split())) from None

    def values(self, canonical: str) -> bytes:
        """One byte per leaf, 1 where it holds for the context ``canonical``
        (``schema.canonical_context``: what the index stores)."""
        fields = json.loads(canonical)
        keys = {name: json.dumps(value, sort_keys=True) for name, value in fields.items()}
        out = bytearray(len(self.leaves))
        for index, clause in enumerate(self.leaves):
            plain = _plain_field(clause.field)
            key = (index, keys.get(clause.field, "") if plain else canonical)
            known = self._cache.get(key)
            if known is None:
                if index in self._queries:
                    # A one-document index of the field alone, so the answer
                    # serves every context with this value.
                    value = fields.get(clause.field)
                    document = canonical if not plain else sch.canonical_context(
                        {clause.field: value} if value is not None else {})
                    known = self._search(index, document)
                else:
                    known = self._answer(clause, fields.get(clause.field))
                self._remember(key, known)
            out[index] = known
        return bytes(out)

    def _remember(self, key: tuple[int, str], answer: bool) -> bool:
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = answer
        return answer

    @staticmethod
    def _answer(clause: lucene.Node, value: Any) -> bool:
        if not sch.has_value(value):  # absent, or an empty list: no value indexed
            return False
        if isinstance(clause, lucene.Exists):  # any value, an empty string too
            return True
        values = _tokens(value)
        wanted = analyze(clause.text)
        if isinstance(clause, lucene.Term):
            present = {t for tokens in values for t in tokens}
            return any(t in present for t in wanted)
        if len(wanted) == 1:
            return any(wanted[0] in tokens for tokens in values)
        return _contains(values, tuple(wanted))

    def _search(self, index: int, canonical: str) -> bool:
        """The leaf run over a one-document index of this context."""
        memory = self._memory_index(canonical)
        return memory.searcher().search(self._queries[index], limit=1, count=True).count > 0

    def _memory_index(self, canonical: str) -> tantivy.Index:
        cached = getattr(self, "_memory", None)
        if cached is not None and cached[0] == canonical:
            return cached[1]
        memory = tantivy.Index(self.schema)
        memory.register_tokenizer(ANALYZER_NAME, build_analyzer())
        memory.register_tokenizer(PRETOKENIZED_NAME, build_pretokenized_analyzer())
        writer = memory.writer(15_000_000, 1)
        writer.add_json(sch.context_json(0, canonical))
        writer.commit()
        writer.wait_merging_threads()
        memory.reload()
        self._memory = (canonical, memory)
        return memory
