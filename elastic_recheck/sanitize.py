"""Text from logs and events on its way to a terminal or a chat line."""

from __future__ import annotations

import re

# C0 and C1 control characters, DEL included: terminal escapes, CR/LF injection.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def strip_controls(text: object, replacement: str = " ") -> str:
    """The text with every run of control characters replaced (tabs and newlines too)."""
    return _CONTROLS.sub(replacement, str(text))


__all__ = ["strip_controls"]
