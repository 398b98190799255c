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
import sys

from .sanitize import escape_controls


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


__all__ = ["EscapingFormatter", "configure_logging"]
