"""The items of a JSON list found without parsing the whole document.

A replay file or an export holding one item that the parser refuses (nested
too deep, a number past Python's 4,300-digit limit) would otherwise cost every
other item in it: here each item's text is located by its brackets and strings
alone — no parser, no recursion — so each can be parsed, and refused, alone.
"""

from __future__ import annotations

import re
from typing import Iterator, Sequence

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},:]', re.S)


def item_spans(text: str, *paths: Sequence[str]) -> list[tuple[int, int]] | None:
    """``(start, end)`` of each item of the first list found at one of
    ``paths`` (the keys leading to it from the top-level object; ``()``, the
    default: the document is the list). None when the document has no such list."""
    wanted = {(("{",) * len(path) + ("[",), (None, *path)) for path in (paths or ((),))}
    stack: list[str] = []  # the open containers, "{" or "["
    keys: list[str | None] = []  # the key each open container is the value of
    key: str | None = None
    expect_key = False
    depth_of_items = 0
    begin = 0
    spans: list[tuple[int, int]] = []
    for match in _TOKEN.finditer(text):
        token = match.group()
        char = token[0]
        depth = len(stack)
        if char == '"':
            if expect_key:
                key, expect_key = token[1:-1], False
        elif char == ",":
            if depth_of_items and depth == depth_of_items:
                spans.append((begin, match.start()))
                begin = match.end()
            expect_key = bool(stack) and stack[-1] == "{"
        elif char in "[{":
            keys.append(key if stack and stack[-1] == "{" else None)
            stack.append(char)
            key, expect_key = None, char == "{"
            if not depth_of_items and (tuple(stack), tuple(keys)) in wanted:
                depth_of_items, begin = len(stack), match.end()
        elif char in "]}":
            if depth_of_items and depth == depth_of_items:
                if text[begin:match.start()].strip():
                    spans.append((begin, match.start()))
                return spans
            if not stack:
                return None
            stack.pop()
            keys.pop()
            key, expect_key = None, False
    return None


def numbered(text: str, spans: Sequence[tuple[int, int]]) -> Iterator[tuple[int, str]]:
    """Each span's text with the 1-based line its first character is on,
    counted in one pass over ``text`` (not once per item)."""
    line, counted = 1, 0
    for start, end in spans:
        line += text.count("\n", counted, start)
        counted = start
        item = text[start:end]
        offset = len(item) - len(item.lstrip())
        yield line + item.count("\n", 0, offset), item


__all__ = ["item_spans", "numbered"]
