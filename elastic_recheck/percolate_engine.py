"""The percolator's per-line matcher in pure Python.

``_percolate.c`` is the same algorithm in C (the one the pipeline runs: this
work is done for every indexed line); this module is used where the extension
is not built, and the tests hold the two to the same answers.

Per line: the analysed tokens are split the way the index's whitespace
tokenizer splits them; an atom some query is anchored by is registered under
one key (a term under its token, a phrase under one pair of adjacent tokens
and the pair's offset in it) and compared in place wherever its key is found;
the queries anchored by an atom found, and the context's anchorless ones, are
run as postfix programs over the facts of the line; an atom no query is
anchored by is looked for in the line only when a program asks for it.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from .percolate_plan import (
    OP_AND, OP_ATOM, OP_CTX, OP_FALSE, OP_NOT, OP_TRUE, OP_TS,
)

# tantivy's whitespace tokenizer splits on ASCII whitespace only.
_TOKEN = re.compile(r"[^ \t\n\x0c\r]+")
MIN_MICROS = -(2**63)


class Matcher:
    """The tables every build's run shares, built once per query set."""

    def __init__(
        self,
        vocab: Sequence[str],
        atoms: Sequence[Sequence[int]],
        atom_anchor: Sequence[int],
        atom_queries: Sequence[Sequence[int]],
        code: Sequence[Sequence[int]],
        leaves: int,
    ) -> None:
        self.atoms = [tuple(vocab[t] for t in a) for a in atoms]
        self.atom_queries = [tuple(q) for q in atom_queries]
        # atoms by their key: a term's token, a phrase's pair of adjacent tokens
        self.by_key: dict[tuple[str, ...], list[tuple[int, int]]] = {}
        for atom, (tokens, offset) in enumerate(zip(self.atoms, atom_anchor)):
            if self.atom_queries[atom]:  # indexed: some query is anchored by it
                key = tokens[offset : offset + 2]
                self.by_key.setdefault(key, []).append((atom, offset))
        self.code = [tuple(c) for c in code]
        self.leaves = leaves

    def start(self, bounds: Sequence[tuple[int, int]]) -> "Run":
        return Run(self, list(bounds))


class Run:
    """One build's matching state."""

    def __init__(self, matcher: Matcher, bounds: list[tuple[int, int]]) -> None:
        self.m = matcher
        self.bounds = bounds
        self.hits: dict[int, list[Any]] = {}  # query -> [hits, newest micros, newest message]
        self.contexts: list[tuple[bytes, tuple[int, ...], bool]] = []
        self.stats: list[list[Any]] = []  # per context: [lines, newest micros, newest message]

    def add_context(self, values: bytes, per_line: Sequence[int], track: bool) -> int:
        """``track``: count the context's lines and keep its newest (it has
        queries true on every line of it)."""
        if len(values) != self.m.leaves:
            raise ValueError(f"{len(values)} context values for {self.m.leaves} leaves")
        self.contexts.append((bytes(values), tuple(per_line), track))
        self.stats.append([0, MIN_MICROS, None])
        return len(self.contexts) - 1

    def lines(self, context: int, micros: Sequence[int], messages: Sequence[str], tokens: Sequence[str]) -> None:
        if not len(micros) == len(messages) == len(tokens):
            raise ValueError("micros, messages and tokens differ in length")
        for when, message, text in zip(micros, messages, tokens):
            self.line(context, when, message, text)

    def line(self, context: int, micros: int, message: str, tokens: str) -> None:
        values, per_line, track = self.contexts[context]
        if track:
            stat = self.stats[context]
            stat[0] += 1
            if micros >= stat[1]:
                stat[1], stat[2] = micros, message
        m = self.m
        seq = _TOKEN.findall(tokens)
        present: set[int] = set()
        for position, token in enumerate(seq):
            keys = [(token,), (token, seq[position + 1])] if position + 1 < len(seq) else [(token,)]
            for key in keys:
                for atom, offset in m.by_key.get(key, ()):
                    if atom not in present and _at(seq, m.atoms[atom], position - offset):
                        present.add(atom)
        candidates: dict[int, None] = {}
        for atom in sorted(present):
            for query in m.atom_queries[atom]:
                candidates[query] = None
        for query in per_line:
            candidates[query] = None
        for query in candidates:
            if self._holds(query, present, seq, values, micros):
                found = self.hits.get(query)
                if found is None:
                    self.hits[query] = [1, micros, message]
                else:
                    found[0] += 1
                    if micros >= found[1]:
                        found[1], found[2] = micros, message

    def _holds(self, query: int, present: set[int], seq: list[str], values: bytes, micros: int) -> bool:
        stack: list[bool] = []
        code = self.m.code[query]
        for i in range(0, len(code), 2):
            op, arg = code[i], code[i + 1]
            if op == OP_ATOM:
                if not self.m.atom_queries[arg] and arg not in present:  # unindexed: looked for when asked
                    want = self.m.atoms[arg]
                    if any(_at(seq, want, start) for start in range(len(seq))):
                        present.add(arg)
                stack.append(arg in present)
            elif op == OP_CTX:
                stack.append(bool(values[arg]))
            elif op == OP_TS:
                low, high = self.bounds[arg]
                stack.append(low <= micros <= high)
            elif op == OP_TRUE:
                stack.append(True)
            elif op == OP_FALSE:
                stack.append(False)
            elif op == OP_NOT:
                stack[-1] = not stack[-1]
            else:  # OP_AND or OP_OR over the last ``arg`` values
                parts = stack[len(stack) - arg :]
                del stack[len(stack) - arg :]
                stack.append(all(parts) if op == OP_AND else any(parts))
        return stack[-1]

    def results(self) -> list[tuple[int, int, int, str]]:
        return [(query, hits, newest, message) for query, (hits, newest, message) in self.hits.items()]

    def context_stats(self) -> list[tuple[int, int, str | None]]:
        return [tuple(s) for s in self.stats]  # type: ignore[misc]


class Build:
    """One build's contexts, each on the run of its matcher: the percolator
    compiles a matcher per kind of context, so a line is only checked against
    the queries that can match in its context."""

    def __init__(self) -> None:
        self.targets: list[tuple[Run, int]] = []

    def add(self, run: Run, context: int) -> int:
        if not 0 <= context < len(run.contexts):
            raise IndexError(f"no context {context} in that run")
        self.targets.append((run, context))
        return len(self.targets) - 1

    def line(self, handle: int, micros: int, message: str, tokens: str) -> None:
        run, context = self.targets[_index(handle, len(self.targets))]
        run.line(context, micros, message, tokens)

    def lines(self, handle: int, micros: Sequence[int], messages: Sequence[str], tokens: Sequence[str]) -> None:
        run, context = self.targets[_index(handle, len(self.targets))]
        run.lines(context, micros, messages, tokens)


def _at(seq: list[str], atom: tuple[str, ...], start: int) -> bool:
    """Whether the line's tokens from ``start`` on are the atom's."""
    return start >= 0 and tuple(seq[start : start + len(atom)]) == atom


def _index(handle: int, size: int) -> int:
    if not 0 <= handle < size:
        raise IndexError(f"no context {handle} in this build")
    return handle
