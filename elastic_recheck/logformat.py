"""The daemons' log lines: one record, one physical line.

Log messages quote text from outside (job names, project names, server
answers, exception texts). A CR or LF in it would start a line of its own, so
an event could forge a log line ("\\nERROR ..."), and an ESC sequence could
rewrite the operator's terminal. The message part of every record is escaped
here, once, instead of at each logging call; a traceback (``--debug``) that
follows the message is left as it is, so it stays readable.
"""

from __future__ import annotations

import copy
import logging
import re
import sys

# C0 controls, DEL, C1 controls (NEL and CSI among them), the Unicode line and
# paragraph separators, and lone surrogates (not encodable as UTF-8).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with line breaks and other control characters written as
    escapes (``\\n``, ``\\x1b``, ``\\u2028``); backslashes are kept as they
    are, so paths and regexes stay readable."""
    return _UNSAFE.sub(_escape, text)


class EscapingFormatter(logging.Formatter):
    """A Formatter whose message part never holds a line break or a control character."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - the logging API
        escaped = copy.copy(record)  # other handlers see the record as it was
        escaped.message = escape_controls(record.message)
        return super().formatMessage(escaped)


def configure_logging(level: int, fmt: str, force: bool = False) -> None:
    """``logging.basicConfig`` to stderr, with the escaping formatter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(EscapingFormatter(fmt))
    logging.basicConfig(level=level, handlers=[handler], force=force)


__all__ = ["EscapingFormatter", "configure_logging", "escape_controls"]
