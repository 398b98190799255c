"""``elastic-recheck lint``: every error and warning of a directory of fingerprints.

Errors are what would make a fingerprint skipped by ``watch``, the dashboard
or ``classify`` (the same ``check`` drops it there); warnings are patterns that
hurt the search engine or precision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection

from .config import FingerprintSettings
from .errors import FingerprintError
from .fingerprints import Fingerprint, LintWarning, QueryCheck, fingerprint_files, inspect_fingerprint, lint_warnings


@dataclass
class LintReport:
    files: int = 0
    errors: list[FingerprintError] = field(default_factory=list)
    warnings: list[LintWarning] = field(default_factory=list)
    fingerprints: list[Fingerprint] = field(default_factory=list)  # the files without errors, for --backtest


def lint_directory(
    directory: str | Path,
    check: QueryCheck,
    limits: FingerprintSettings = FingerprintSettings(),
    known_fields: Collection[str] | None = None,
    fields_source: str = "the index",
) -> LintReport:
    """Every file's errors (all of them, each with its line) and warnings.
    ``known_fields``: what a field name is checked against (``fields_source``
    says where the list comes from)."""
    report = LintReport()
    for path in fingerprint_files(directory):
        found = inspect_fingerprint(path, check, limits)
        report.files += 1
        report.errors.extend(found.errors)
        if found.fingerprint is not None:
            report.warnings.extend(lint_warnings(found.fingerprint, known_fields, fields_source))
            if not found.errors:
                report.fingerprints.append(found.fingerprint)
    return report


__all__ = ["LintReport", "lint_directory"]
