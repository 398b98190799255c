"""A build's logs fetched from its log server into a spool directory.

The daemon fetches many builds at once but has one index writer: fetching
writes each build's files to local disk, and the writer indexes that
directory as ``ingest --logs DIR`` would (:func:`spool_logs`), so a slow log
server never holds the writer. Every byte still passes through the stream
layers of ingest, so every ``ingest:`` limit holds on the way in; a ``.gz``
file is stored decompressed, under its name without ``.gz``. ``fetch.json``,
written last and atomically, says the fetch finished: a directory without it
was cut off (a kill -9) and is fetched again.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..builds import Build
from ..config import IngestSettings
from ..errors import IngestError
from . import _console_first, cut_marker
from .fetch import ConnectionPool, FetchStopped, HttpError, HttpRetry, LogHosts, Unreachable, require_http
from .sources import MAX_LISTING_PAGES, HttpLogs, Listing, LocalLogs, is_log_file, logical_name
from .streams import BuildBudget, LogStream

FETCH_JSON = "fetch.json"  # the fetch's report; its presence says the fetch finished
BUILD_JSON = "build.json"  # the build's fields, as ``ingest --builds`` reads them
RESERVED = (FETCH_JSON, BUILD_JSON)
ABSENT = (404, 410)
MARKER_ROOM = 4096  # what a spooled file may hold beyond the bytes kept: a line end, the cut marker


@dataclass(frozen=True)
class SpooledFile:
    name: str  # its path in the spool, which is the ``filename`` it is indexed under
    url: str  # where it was fetched from
    bytes: int  # as stored (decompressed)
    cut: str = ""  # why the rest of it is missing; "" when it is whole


@dataclass
class FetchReport:
    """What fetching a build did. ``errors``: input that is broken (a file
    cut short, a server error); ``warnings``: input left out on purpose (a
    limit reached). The files listed are in the spool either way."""

    log_url: str
    discovery: str = ""  # "zuul-manifest.json" or "patterns"
    files: list[SpooledFile] = field(default_factory=list)
    errors: list[IngestError] = field(default_factory=list)
    warnings: list[IngestError] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(spooled.bytes for spooled in self.files)

    def as_json(self) -> dict[str, Any]:
        return {
            "log_url": self.log_url, "discovery": self.discovery, "bytes": self.bytes,
            "files": [dataclasses.asdict(spooled) for spooled in self.files],
            "errors": [_error_json(error) for error in self.errors],
            "warnings": [_error_json(error) for error in self.warnings],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "FetchReport":
        """A report this module wrote (a spool's own ``fetch.json``, not outside input)."""
        return cls(
            log_url=data["log_url"], discovery=data.get("discovery", ""),
            files=[SpooledFile(**item) for item in data["files"]],
            errors=[IngestError(**item) for item in data["errors"]],
            warnings=[IngestError(**item) for item in data["warnings"]],
        )


def _error_json(error: IngestError) -> dict[str, Any]:
    return {"source": error.source, "message": _message(error), "line": error.line}


def _message(error: IngestError) -> str:
    """What went wrong, without the place ``str(error)`` starts with."""
    where = f"{error.source}:{error.line}" if error.line else error.source
    return str(error)[len(where) + 2:]


def read_fetch_report(destination: Path) -> FetchReport | None:
    """The report of a finished fetch; None when ``destination`` holds none
    (the fetch did not finish: discard the directory and fetch again)."""
    try:
        with open(destination / FETCH_JSON, encoding="utf-8") as handle:
            return FetchReport.from_json(json.load(handle))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IngestError(str(destination / FETCH_JSON), f"unreadable: {exc}") from None


def spool_limits(settings: IngestSettings) -> IngestSettings:
    """The limits to index a spool with. The files in it are within the
    ``ingest:`` limits already, but stored decompressed and with a cut
    marker at a cut: read with the same limits, a file kept to the last
    byte allowed would be cut a second time."""
    return dataclasses.replace(
        settings,
        max_file_bytes=max(settings.max_file_bytes, settings.max_decompressed_bytes) + MARKER_ROOM,
        max_decompressed_bytes=settings.max_decompressed_bytes + MARKER_ROOM,
        max_build_bytes=settings.max_build_bytes + settings.max_files * MARKER_ROOM,
        max_line_bytes=max(settings.max_line_bytes, MARKER_ROOM),
    )


def spool_logs(destination: Path, settings: IngestSettings) -> LocalLogs:
    """A fetched build's spool as ingest reads a local build directory."""
    return LocalLogs(str(destination), spool_limits(settings))


# -- which files ---------------------------------------------------------------

def selected(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether ``name`` (relative to the log URL) matches one of the
    ``ingest.files`` patterns, itself or its ``.gz`` form. ``*``, ``?`` and
    ``[...]`` match within one directory level, never across a "/"."""
    plain = logical_name(name)
    return any(_matches(pattern, name) or _matches(pattern, plain) for pattern in patterns)


def _matches(pattern: str, name: str) -> bool:
    parts, names = pattern.split("/"), name.split("/")
    return len(parts) == len(names) and all(fnmatch.fnmatchcase(n, p) for n, p in zip(names, parts))


def _is_glob(part: str) -> bool:
    return any(char in part for char in "*?[")


@dataclass(frozen=True)
class _Candidate:
    name: str  # as named on the server
    listed: bool  # named by a manifest or a listing (absent then is an error), or a pattern's literal name
    fallback: str = ""  # tried when ``name`` is absent: its .gz form


def _from_manifest(manifest: Listing, patterns: tuple[str, ...]) -> list[_Candidate]:
    return [_Candidate(name, True) for name in manifest.names if selected(name, patterns)]


def _from_patterns(logs: HttpLogs, patterns: tuple[str, ...], report: FetchReport) -> list[_Candidate]:
    """Each pattern, a level at a time: a literal level is taken as named
    (fetched directly; a 404 means absent), a glob level is read from the
    index page of the directory it is in."""
    pages: dict[str, list[str]] = {}

    def directory(prefix: str) -> list[str]:
        if prefix not in pages:
            try:
                pages[prefix] = logs.directory(prefix)
            except HttpError as exc:
                if exc.status not in ABSENT:
                    report.warnings.append(exc)
                pages[prefix] = []
            except (FetchStopped, Unreachable):
                raise
            except IngestError as exc:
                report.warnings.append(exc)
                pages[prefix] = []
        return pages[prefix]

    found: list[_Candidate] = []
    for pattern in patterns:
        parts = pattern.split("/")
        prefixes = [""]
        for level, part in enumerate(parts):
            last = level == len(parts) - 1
            if not _is_glob(part):
                if last:
                    found.extend(_Candidate(prefix + part, False, prefix + part + ".gz") for prefix in prefixes)
                else:
                    prefixes = [prefix + part + "/" for prefix in prefixes]
                continue
            deeper = []
            for prefix in prefixes:
                for entry in directory(prefix):
                    leaf = entry[len(prefix):] if entry.startswith(prefix) else ""
                    is_dir = leaf.endswith("/")
                    leaf = leaf.rstrip("/")
                    if not leaf or "/" in leaf:
                        continue
                    if last and not is_dir and (fnmatch.fnmatchcase(leaf, part)
                                                or fnmatch.fnmatchcase(logical_name(leaf), part)):
                        found.append(_Candidate(entry, True))
                    elif not last and is_dir and fnmatch.fnmatchcase(leaf, part):
                        deeper.append(entry)
            if len(deeper) > MAX_LISTING_PAGES:
                report.warnings.append(IngestError(logs.location, f"{pattern}: more than {MAX_LISTING_PAGES} "
                                                                  "directories match; the rest are not read"))
                deeper = deeper[:MAX_LISTING_PAGES]
            prefixes = deeper
    return found


def _one_per_name(candidates: list[_Candidate]) -> list[_Candidate]:
    """One candidate for each name in the spool: ``x.txt`` and ``x.txt.gz``
    are both stored as ``x.txt``; the first listed wins, a plain one over a .gz."""
    chosen: dict[str, _Candidate] = {}
    for candidate in sorted(candidates, key=lambda c: (not c.listed, c.name.endswith(".gz"), c.name)):
        chosen.setdefault(logical_name(candidate.name), candidate)
    by_name = {candidate.name: candidate for candidate in chosen.values()}
    return [by_name[name] for name in _console_first(list(by_name))]


# -- fetching ------------------------------------------------------------------

def fetch_build(build: Build, destination: Path, settings: IngestSettings,
                connections: ConnectionPool | None = None, *, retry: HttpRetry = HttpRetry()) -> FetchReport:
    """Fetch ``build``'s log files (``ingest.files``) from its log URL into
    ``destination``, a fresh directory (whatever was there is removed).

    Raises :class:`IngestError` when the build cannot be fetched (no log
    URL, a host not in ``ingest.log_hosts``, a log server that does not
    answer, this machine's disk refusing): the directory is removed then, to
    be fetched again later if the caller wants. :class:`FetchStopped` when
    ``connections`` was closed part way: the directory is left without
    ``fetch.json``, for the caller to discard."""
    destination = Path(destination)
    hosts = connections.hosts if connections is not None else LogHosts(settings.log_hosts)
    if not build.log_url:
        raise IngestError(build.key, "the build has no log URL: nothing to fetch")
    require_http(build.log_url, build.key)
    hosts.check(build.log_url, build.log_url)
    if destination.exists():
        shutil.rmtree(destination)
    destination.mkdir(parents=True)
    own = connections is None
    pool = ConnectionPool(hosts) if connections is None else connections
    try:
        logs = HttpLogs(build.log_url, retry, settings, pool)
        report = _spool(logs, destination, settings)
        if pool.stopped:  # a file cut off by the stop is not the build's fault: not a finished fetch
            raise FetchStopped(build.log_url, "not fetched: fetching is stopping")
        _write_json(destination / BUILD_JSON, build.metadata().fields())
        _write_json(destination / FETCH_JSON, report.as_json())
        return report
    except FetchStopped:
        raise
    except Unreachable as exc:  # the server is gone: every other file would cost the same retries
        shutil.rmtree(destination, ignore_errors=True)
        raise IngestError(exc.source, f"{_message(exc)}; the log server does not answer: the build is not "
                                      "fetched") from None
    except IngestError:
        shutil.rmtree(destination, ignore_errors=True)
        raise
    except OSError as exc:  # this machine's disk, not the build: full, or not writable
        shutil.rmtree(destination, ignore_errors=True)
        raise IngestError(str(destination), f"cannot write the fetched logs: {exc.strerror or exc}") from None
    finally:
        if own:
            pool.close()


def _spool(logs: HttpLogs, destination: Path, settings: IngestSettings) -> FetchReport:
    report = FetchReport(log_url=logs.base)
    manifest = logs.manifest()
    if manifest is not None:
        report.discovery = "zuul-manifest.json"
        report.warnings.extend(manifest.skipped)
        candidates = _from_manifest(manifest, settings.files)
    else:
        report.discovery = "patterns"
        candidates = _from_patterns(logs, settings.files, report)
    budget = BuildBudget(settings.max_build_bytes)
    candidates = _one_per_name(candidates)
    for position, candidate in enumerate(candidates):
        if logs.connections is not None and logs.connections.stopped:
            break
        left = len(candidates) - position
        if len(report.files) >= settings.max_files:
            report.warnings.append(IngestError(logs.location, f"more than {settings.max_files} log files "
                                                              f"(ingest.max_files): {left} more are not fetched"))
            break
        if budget.left <= 0:
            report.warnings.append(IngestError(
                logs.location, f"{left} files not fetched, from {candidate.name} on: the build's {budget.limit} "
                               "bytes (ingest.max_build_bytes) are used up"))
            break
        _fetch_file(logs, candidate, destination, budget, report)
    if not report.files and not report.errors:
        report.errors.append(IngestError(logs.location, "no log files found matching ingest.files "
                                                        f"({', '.join(settings.files[:4])}, ...)"))
    return report


def _fetch_file(logs: HttpLogs, candidate: _Candidate, destination: Path, budget: BuildBudget,
                report: FetchReport) -> None:
    """One file into the spool, or the reason it is not there in the report."""
    name = logical_name(candidate.name)
    if name in RESERVED:
        report.warnings.append(IngestError(logs.describe(candidate.name), "skipped: the spool keeps its own "
                                                                           f"{name} there"))
        return
    stream = None
    for remote in (candidate.name, candidate.fallback):
        if not remote:
            break
        try:
            stream = logs.open(remote, budget)
            break
        except HttpError as exc:
            if exc.status not in ABSENT:
                report.errors.append(exc)
                return
            if candidate.listed:  # named by the manifest or a listing, so it should be there
                report.errors.append(exc)
                return
        except (FetchStopped, Unreachable):
            raise  # not this file's fault: the build's (see fetch_build)
        except IngestError as exc:
            report.errors.append(exc)
            return
    if stream is None:
        return  # a pattern's literal name the build does not have
    path = destination.joinpath(*name.split("/"))
    url = logs.describe(remote)
    with stream:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path, "xb")
        except (FileExistsError, NotADirectoryError):  # "logs" a file and "logs/x.txt" too
            report.errors.append(IngestError(url, f"skipped: {name} clashes with another file of the build"))
            return
        with handle:
            if is_log_file(name):
                _write_lines(stream, handle)
            else:
                handle.writelines(stream.chunks())
            stored = handle.tell()
    cut = stream.cut
    report.files.append(SpooledFile(name, url, stored, cut.reason if cut else ""))
    if cut is not None:
        gap = IngestError(url, f"{cut.reason}; the first {stream.kept} bytes are kept")
        (report.errors if cut.broken else report.warnings).append(gap)


def _write_lines(stream: LogStream, handle: Any) -> None:
    """The file's lines as ingest reads them: none longer than
    ``max_line_bytes`` (a longer one ends with its truncation marker), and at
    a cut, a last line that says why the rest is missing."""
    write = handle.write
    for block in stream.text():  # a block at a time: no Python call per line
        write(block)
    if stream.cut is not None:
        write(cut_marker(stream.cut).encode() + b"\n")


def _write_json(path: Path, data: Any) -> None:
    """Written whole or not at all: a reader never sees half of it."""
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


__all__ = ["FETCH_JSON", "FetchReport", "SpooledFile", "fetch_build", "read_fetch_report", "selected",
           "spool_limits", "spool_logs"]
