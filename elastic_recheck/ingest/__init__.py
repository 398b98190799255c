"""Ingest: CI build logs and exported documents into the search backend."""

from __future__ import annotations

import datetime as dt
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from ..config import IngestSettings
from ..errors import BackendError, IngestError, RecheckError
from ..search import IndexWriter, SearchBackend
from .documents import read_documents, replace_surrogates
from .logparse import Events, event_parser
from .sources import BuildMetadata, HttpLogs, Listing, LocalLogs, load_metadata_file, logical_name
from .streams import BuildBudget, Cut

CONSOLE_LOGS = ("job-output.txt", "console.html")
COMMIT_EVERY = 100_000  # log events per commit when many builds are ingested at once
UTC = dt.timezone.utc

Progress = Callable[[int], None]


@dataclass
class IngestReport:
    """What an ingest did. ``errors``: input that is broken (a truncated
    file, a server too slow, a bad document); ``warnings``: input left out on
    purpose (a limit reached, a symlink out of the build). Either way the
    rest was indexed."""

    documents: int = 0
    files: int = 0
    skipped_debug: int = 0
    builds: int = 0
    # ``--docs``: the builds its documents went to (whose stored results no longer hold)
    build_uuids: set[str] = field(default_factory=set)
    errors: list[IngestError] = field(default_factory=list)
    warnings: list[IngestError] = field(default_factory=list)

    def add_build(self, report: "IngestReport") -> None:
        """One more build's report into a total."""
        self.builds += 1
        self.documents += report.documents
        self.files += report.files
        self.skipped_debug += report.skipped_debug
        self.errors.extend(report.errors)
        self.warnings.extend(report.warnings)


def cut_marker(cut: Cut) -> str:
    """The line indexed where a file was cut, so whoever reads its lines sees the gap."""
    return f"[elastic-recheck] the rest of this file is not indexed: {cut.reason}"


def ingest_build(
    backend: SearchBackend,
    logs: LocalLogs | HttpLogs,
    metadata: BuildMetadata,
    *,
    keep_debug: bool = False,
    default_time: dt.datetime | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Index one build's logs, replacing whatever was indexed for it before.

    The replacement is one commit: readers see the old build or the new one,
    never both and never half. What one file and the build may cost is
    ``logs.limits`` (the ``ingest:`` settings).
    """
    listing = _log_files(logs)
    with backend.writer() as writer:
        return _write_build(writer, logs, listing, metadata, keep_debug, default_time, progress)


def write_build(writer: IndexWriter, logs: LocalLogs | HttpLogs, metadata: BuildMetadata, *,
                keep_debug: bool = False, default_time: dt.datetime | None = None,
                progress: Progress | None = None) -> IngestReport:
    """One build into a writer batch that the caller commits (the index
    pipeline batches builds that arrive together)."""
    return _write_build(writer, logs, _log_files(logs), metadata, keep_debug, default_time, progress)


def add_lines(writer: IndexWriter, handles: list[Any], micros: list[int], messages: list[str]) -> None:
    """Many log events, each with its context's handle, in order: the
    writer's batch method when it has one (no Python call per line)."""
    batch = getattr(writer, "add_lines", None)
    if batch is not None:
        batch(handles, micros, messages)
        return
    for handle, when, message in zip(handles, micros, messages):
        writer.add_line(handle, when, message)


def _log_files(logs: LocalLogs | HttpLogs) -> Listing:
    listing = logs.files()
    if not listing.names:
        skipped = f"; {len(listing.skipped)} skipped, the first: {listing.skipped[0]}" if listing.skipped else ""
        raise IngestError(logs.location,
                          f"no log files found (expected job-output.txt, console.html, *.txt, *.log){skipped}")
    return listing


def _console_first(names: list[str]) -> list[str]:
    """Console logs first: when the build's byte budget runs out, what goes
    is a service log, not the log most fingerprints read."""
    return sorted(names, key=lambda name: (logical_name(name).rsplit("/", 1)[-1] not in CONSOLE_LOGS, name))


def _write_build(
    writer: IndexWriter,
    logs: LocalLogs | HttpLogs,
    listing: Listing,
    metadata: BuildMetadata,
    keep_debug: bool,
    default_time: dt.datetime | None,
    progress: Progress | None,
) -> IngestReport:
    """One build into a writer batch: its old documents dropped, its logs added."""
    limits = logs.limits
    report = IngestReport(builds=1, warnings=list(listing.skipped))
    default_time = default_time or dt.datetime.now(UTC)
    base_fields = metadata.fields()
    log_url = (metadata.log_url or (logs.location if isinstance(logs, HttpLogs) else "")).rstrip("/")
    budget = BuildBudget(limits.max_build_bytes)
    names = _console_first(listing.names)
    if len(names) > limits.max_files:
        report.warnings.append(IngestError(logs.location, f"{len(names)} log files, more than {limits.max_files} "
                                                          f"(ingest.max_files): {len(names) - limits.max_files} "
                                                          "are not indexed"))
        names = names[: limits.max_files]
    writer.replace_build(metadata.build_uuid)
    for position, relative in enumerate(names):
        if budget.left <= 0:
            report.warnings.append(IngestError(
                logs.location, f"{len(names) - position} files not indexed, from {relative} on: the build's "
                               f"{budget.limit} bytes (ingest.max_build_bytes) are used up"))
            break
        name = replace_surrogates(logical_name(relative))  # a file name in bytes that are not UTF-8
        base = name.rsplit("/", 1)[-1]
        is_console = base in CONSOLE_LOGS
        file_fields = dict(base_fields)
        file_fields["filename"] = name
        if log_url:
            file_fields["log_url"] = f"{log_url}/{name}"
        base_tags = [base, "console"] if is_console else [base]
        # One context per level: build and file fields are stored once, not per line.
        contexts: dict[str | None, object] = {}

        def context(level: str | None) -> object:
            found = contexts.get(level)
            if found is None:
                fields = dict(file_fields)
                if level:
                    fields["loglevel"] = level
                fields["tags"] = [*base_tags, level] if level else base_tags
                found = contexts[level] = writer.context(fields)
            return found

        try:
            stream = logs.open(relative, budget)
        except IngestError as exc:
            report.errors.append(exc)
            continue
        report.files += 1
        before = report.documents
        parser = event_parser(default_time, detect_level=not is_console, keep_debug=keep_debug)

        def add(events: Events) -> None:
            micros, levels, messages = events
            if not micros:
                return
            handles = {level: context(level) for level in dict.fromkeys(levels)}
            add_lines(writer, list(map(handles.__getitem__, levels)), micros, messages)
            done = report.documents
            report.documents += len(micros)
            if progress:
                for _ in range(report.documents // 1000 - done // 1000):
                    progress(1000)

        with stream:
            for batch in stream.line_batches():
                add(parser.feed(batch))
            add(parser.finish())
        report.skipped_debug += parser.skipped_debug
        last = parser.last
        cut = stream.cut
        if cut is not None:
            writer.add_line(context(None), last, cut_marker(cut))
            report.documents += 1
            events = report.documents - before - 1
            gap = IngestError(logs.describe(relative), f"{cut.reason}; the first {stream.kept} bytes "
                                                       f"({events} log event{'' if events == 1 else 's'}) are indexed")
            (report.errors if cut.broken else report.warnings).append(gap)
    return report


def ingest_build_dirs(
    backend: SearchBackend,
    root: Path,
    *,
    keep_debug: bool = False,
    progress: Progress | None = None,
    commit_every: int = COMMIT_EVERY,
    limits: IngestSettings = IngestSettings(),
) -> IngestReport:
    """Every build under ``root``: a directory per build holding its logs and
    a ``build.json`` (a backfill). Builds are committed together, a commit
    once ``commit_every`` log events are in: each build is still replaced
    whole (its old documents go in the commit that brings the new), and a
    commit per build would have tantivy merge its small segments over and
    over, half of the CPU of an ingest (measured). A build that cannot be
    read is reported and the others are indexed all the same. A build
    directory that is a link out of ``root`` is skipped with a warning."""
    total = IngestReport()
    build_dirs = list_build_dirs(root, total)
    pending = iter(build_dirs)
    with backend.ingest_session():
        while _commit_group(backend, pending, total, keep_debug, progress, commit_every, limits):
            pass
    return total


def list_build_dirs(root: Path, report: IngestReport) -> list[Path]:
    """The build directories of a backfill: each holds a ``build.json``. One
    that is a link out of ``root`` is skipped with a warning in ``report``."""
    try:
        real_root = os.path.realpath(root)
        build_dirs = []
        for path in sorted(root.iterdir()):
            if not (path / "build.json").is_file():
                continue
            if os.path.commonpath([real_root, os.path.realpath(path / "build.json")]) != real_root:
                report.warnings.append(IngestError(str(path), "skipped: a link to a build outside the directory"))
                continue
            build_dirs.append(path)
    except OSError as exc:
        raise IngestError(str(root), f"cannot list builds: {exc.strerror}") from None
    if not build_dirs:
        raise IngestError(str(root), "no builds found (expected a directory per build, each with a build.json)")
    return build_dirs


def _commit_group(
    backend: SearchBackend,
    pending: Iterator[Path],
    total: IngestReport,
    keep_debug: bool,
    progress: Progress | None,
    commit_every: int,
    limits: IngestSettings,
) -> bool:
    """The next builds, up to ``commit_every`` log events, in one commit.
    False when there were none left."""
    group: list[IngestReport] = []
    first = next(pending, None)
    if first is None:
        return False
    try:
        with backend.writer() as writer:
            for build_dir in itertools.chain([first], pending):
                try:
                    metadata = load_metadata_file(str(build_dir / "build.json"))
                    logs = LocalLogs(str(build_dir), limits)
                    listing = _log_files(logs)
                except IngestError as exc:  # nothing of this build was written
                    total.errors.append(exc)
                    continue
                group.append(_write_build(writer, logs, listing, metadata, keep_debug, None, progress))
                if sum(report.documents for report in group) >= commit_every:
                    break
    except RecheckError as exc:  # the backend refused: the builds after these would fare no better
        raise BackendError(
            f"{first}: {exc} (the {total.builds} builds before {first.name} are indexed; "
            f"{first.name} and the builds after it are not)"
        ) from exc
    for report in group:
        total.add_build(report)
    return True


def ingest_documents(
    backend: SearchBackend, handle: IO[str], source: str, progress: Progress | None = None
) -> IngestReport:
    """Index exported documents. A bad one is reported with its line and the
    reason, and skipped; the good ones are committed all the same."""
    report = IngestReport()
    with backend.writer() as writer:
        for place, item in read_documents(handle, source):
            if isinstance(item, IngestError):
                report.errors.append(item)
                continue
            try:
                writer.add(item.fields, item.timestamp)
            except BackendError:
                raise
            except RecheckError as exc:  # the index refused this one document
                report.errors.append(place.error(source, str(exc)))
                continue
            report.documents += 1
            uuid = item.fields.get("build_uuid")
            if isinstance(uuid, str):
                report.build_uuids.add(uuid)
            if progress and report.documents % 1000 == 0:
                progress(1000)
    return report
