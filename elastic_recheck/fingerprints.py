"""Fingerprints: ``queries/<bug>.yaml``, one known bug each (DESIGN §4)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import lucene
from .errors import FingerprintError, QuerySyntaxError

KNOWN_KEYS = {
    "query": str,
    "suppress-graph": bool,
    "suppress-notification": bool,
    "allow-nonvoting": bool,
    "test_ids": list,
    "title": str,
    "projects": list,
}


@dataclass(frozen=True)
class Fingerprint:
    bug: str
    path: Path
    query: str
    suppress_graph: bool = False
    suppress_notification: bool = False
    allow_nonvoting: bool = False
    test_ids: tuple[str, ...] = ()
    title: str | None = None
    projects: tuple[str, ...] = ()
    unknown_keys: tuple[str, ...] = field(default=(), compare=False)
    query_line: int | None = field(default=None, compare=False)

    @property
    def voting_query(self) -> str:
        """The query the classifier runs: voting jobs only unless allowed."""
        if self.allow_nonvoting:
            return self.query
        return f"({self.query}) AND voting:1"


def load_fingerprint(path: str | Path) -> Fingerprint:
    """Read and validate one file; errors name the file and, where known, the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FingerprintError(str(path), f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise FingerprintError(str(path), f"not UTF-8 text: {exc.reason}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise FingerprintError(str(path), f"YAML error: {problem}", mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise FingerprintError(str(path), f"YAML error: {exc}") from None
    if not isinstance(data, dict):
        raise FingerprintError(str(path), "a fingerprint must be a mapping with a 'query' key", 1)
    lines = _key_lines(node)
    if "query" not in data:
        raise FingerprintError(str(path), "missing required key 'query'", 1)
    for key, kind in KNOWN_KEYS.items():
        if key in data and data[key] is not None and not isinstance(data[key], kind):
            raise FingerprintError(
                str(path), f"'{key}' must be a {kind.__name__}, not {type(data[key]).__name__}", lines.get(key)
            )
    query = data["query"]
    if not query or not query.strip():
        raise FingerprintError(str(path), "'query' is empty", lines.get("query"))
    try:
        lucene.parse(query)
    except QuerySyntaxError as exc:
        raise FingerprintError(str(path), f"query does not parse: {exc.detail}", lines.get("query")) from None
    return Fingerprint(
        bug=path.stem,
        path=path,
        query=query.strip(),
        suppress_graph=bool(data.get("suppress-graph") or False),
        suppress_notification=bool(data.get("suppress-notification") or False),
        allow_nonvoting=bool(data.get("allow-nonvoting") or False),
        test_ids=tuple(str(t) for t in data.get("test_ids") or ()),
        title=data.get("title"),
        projects=tuple(str(p) for p in data.get("projects") or ()),
        unknown_keys=tuple(sorted(str(k) for k in data if k not in KNOWN_KEYS)),
        query_line=lines.get("query"),
    )


def _key_lines(node: Any) -> dict[str, int]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {key.value: key.start_mark.line + 1 for key, _ in node.value if isinstance(key, yaml.ScalarNode)}


def fingerprint_files(directory: str | Path) -> list[Path]:
    directory = Path(directory)
    if not directory.is_dir():
        raise FingerprintError(str(directory), "not a directory of fingerprints")
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def load_fingerprints(directory: str | Path) -> tuple[list[Fingerprint], list[FingerprintError]]:
    """Every valid fingerprint, and an error for each bad one (skipped, not fatal)."""
    good: list[Fingerprint] = []
    bad: list[FingerprintError] = []
    for path in fingerprint_files(directory):
        try:
            good.append(load_fingerprint(path))
        except FingerprintError as exc:
            bad.append(exc)
    return good, bad


@dataclass(frozen=True)
class LintWarning:
    fingerprint: Fingerprint
    message: str

    def __str__(self) -> str:
        where = f"{self.fingerprint.path}:{self.fingerprint.query_line}" if self.fingerprint.query_line else str(
            self.fingerprint.path
        )
        return f"{where}: warning: {self.message}"


def lint_warnings(fingerprint: Fingerprint) -> list[LintWarning]:
    """Patterns that hurt the search engine or precision."""
    tree = lucene.parse(fingerprint.query)
    warnings = [LintWarning(fingerprint, f"unknown key '{key}'") for key in fingerprint.unknown_keys]
    restricted = False
    for leaf in lucene.iter_leaves(tree):
        if isinstance(leaf, lucene.Wildcard):
            if leaf.pattern[:1] in ("*", "?"):
                warnings.append(LintWarning(fingerprint, f"leading wildcard in {leaf.field}:{leaf.pattern} scans every term"))
            if leaf.field == "build_name":
                warnings.append(LintWarning(fingerprint, f"wildcard on build_name ({leaf.pattern}): name the jobs instead"))
        if isinstance(leaf, lucene.Regexp) and leaf.pattern.startswith((".*", ".+")):
            warnings.append(LintWarning(fingerprint, f"regular expression /{leaf.pattern}/ starts with a wildcard"))
        if getattr(leaf, "field", lucene.DEFAULT_FIELD) != lucene.DEFAULT_FIELD:
            restricted = True
    if not restricted:
        warnings.append(
            LintWarning(fingerprint, "no field restriction besides message: add tags:, filename: or build_name:")
        )
    return warnings
