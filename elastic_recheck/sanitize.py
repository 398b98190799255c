"""Text from logs and events on its way to a terminal or a chat line."""

from __future__ import annotations

import re

# C0 and C1 control characters, DEL included: terminal escapes, CR/LF injection.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
# For escaping, also the Unicode line and paragraph separators (line breaks to
# some viewers) and lone surrogates (not encodable as UTF-8).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def strip_controls(text: object, replacement: str = " ") -> str:
    """The text with every run of control characters replaced (tabs and newlines too)."""
    return _CONTROLS.sub(replacement, str(text))


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with line breaks and other control characters written as
    escapes (``\\n``, ``\\x1b``, ``\\u2028``), for a log line: nothing is lost,
    nothing breaks the line. Backslashes are kept as they are, so paths and
    regexes stay readable."""
    return _UNSAFE.sub(_escape, text)


def exception_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one short line for a log: its type, and its text with
    every run of whitespace (line breaks included) folded to one space."""
    text = " ".join(str(exc).split())[:limit]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


__all__ = ["escape_controls", "exception_line", "strip_controls"]
