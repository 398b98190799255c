"""One exception tree, so the CLI can turn any of them into a one-line message."""

from __future__ import annotations


class RecheckError(Exception):
    """Base of every error a user can act on."""


class ConfigError(RecheckError):
    """The configuration (file or environment) is unusable."""


class FingerprintError(RecheckError):
    """A fingerprint file is unreadable or invalid; names the file and line."""

    def __init__(self, path: str, message: str, line: int | None = None) -> None:
        self.path = path
        self.line = line
        self.detail = message
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {message}")


class FingerprintQueryError(FingerprintError):
    """The file is a valid fingerprint but the search engine refuses its query.
    Carries the fingerprint, so a page can still show its row with the error."""

    def __init__(self, path: str, message: str, line: int | None, fingerprint: object) -> None:
        super().__init__(path, message, line)
        self.fingerprint = fingerprint


class QuerySyntaxError(RecheckError):
    """A query does not parse, or uses syntax the engine cannot run."""

    def __init__(self, query: str, detail: str, engine: str = "lucene") -> None:
        self.query = query
        self.engine = engine
        self.detail = detail
        super().__init__(f"{detail} (query: {_shorten(query)})")


class UnsupportedQueryError(QuerySyntaxError):
    """Elasticsearch would accept the query, but this engine cannot run it exactly.

    Raised instead of silently giving a different answer.
    """


class IngestError(RecheckError):
    """Input to ingest is malformed; names the source and line."""

    def __init__(self, source: str, message: str, line: int | None = None) -> None:
        self.source = source
        self.line = line
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {message}")


class BackendError(RecheckError):
    """The search backend failed or is unavailable."""


class IndexBusy(BackendError):
    """Another process holds the embedded index's single writer."""


class EventError(RecheckError):
    """A Gerrit event is malformed; the daemon logs it and skips it."""


class ReportError(RecheckError):
    """Posting a review (or another report) failed. ``retry``: it certainly
    did not arrive, so trying again cannot post it twice. ``answered``:
    Gerrit itself answered with a refusal (rather than being unreachable), so
    trying for ever would only repeat it."""

    def __init__(self, message: str, retry: bool = True, answered: bool = False) -> None:
        super().__init__(message)
        self.retry = retry
        self.answered = answered


def _shorten(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
