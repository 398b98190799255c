"""Ingest: CI build logs and exported documents into the search backend."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterator

from ..errors import BackendError, IngestError, RecheckError
from ..search import IndexWriter, SearchBackend
from .documents import parse_timestamp, read_documents
from .logparse import parse_lines
from .sources import BuildMetadata, HttpLogs, LocalLogs, load_metadata_file, logical_name

CONSOLE_LOGS = ("job-output.txt", "console.html")
COMMIT_EVERY = 100_000  # log events per commit when many builds are ingested at once
UTC = dt.timezone.utc

Progress = Callable[[int], None]


@dataclass
class IngestReport:
    documents: int = 0
    files: int = 0
    skipped_debug: int = 0
    builds: int = 0
    errors: list[IngestError] = field(default_factory=list)


def _lines(handle: IO[bytes]) -> Iterator[bytes]:
    with handle:
        yield from handle


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
    never both and never half.
    """
    files = _log_files(logs)
    with backend.writer() as writer:
        return _write_build(writer, logs, files, metadata, keep_debug, default_time, progress)


def _log_files(logs: LocalLogs | HttpLogs) -> list[str]:
    files = logs.files()
    if not files:
        raise IngestError(logs.location, "no log files found (expected job-output.txt, console.html, *.txt, *.log)")
    return files


def _write_build(
    writer: IndexWriter,
    logs: LocalLogs | HttpLogs,
    files: list[str],
    metadata: BuildMetadata,
    keep_debug: bool,
    default_time: dt.datetime | None,
    progress: Progress | None,
) -> IngestReport:
    """One build into a writer batch: its old documents dropped, its logs added."""
    report = IngestReport(builds=1)
    default_time = default_time or dt.datetime.now(UTC)
    base_fields = metadata.fields()
    log_url = (metadata.log_url or (logs.location if isinstance(logs, HttpLogs) else "")).rstrip("/")
    writer.replace_build(metadata.build_uuid)
    for relative in files:
        name = logical_name(relative)
        base = name.rsplit("/", 1)[-1]
        is_console = base in CONSOLE_LOGS
        file_fields = dict(base_fields)
        file_fields["filename"] = name
        if log_url:
            file_fields["log_url"] = f"{log_url}/{name}"
        base_tags = [base, "console"] if is_console else [base]
        # One context per level: build and file fields are stored once, not per line.
        contexts: dict[str | None, object] = {}
        try:
            handle = logs.open(relative)
        except (IngestError, OSError) as exc:
            report.errors.append(exc if isinstance(exc, IngestError) else IngestError(relative, str(exc)))
            continue
        report.files += 1
        try:
            for event in parse_lines(_lines(handle), default_time, detect_level=not is_console):
                level = event.level
                if level == "DEBUG" and not keep_debug:
                    report.skipped_debug += 1
                    continue
                context = contexts.get(level)
                if context is None:
                    fields = dict(file_fields)
                    if level:
                        fields["loglevel"] = level
                    fields["tags"] = [*base_tags, level] if level else base_tags
                    context = contexts[level] = writer.context(fields)
                writer.add_line(context, event.micros, event.message)
                report.documents += 1
                if progress and report.documents % 1000 == 0:
                    progress(1000)
        except (OSError, EOFError) as exc:  # truncated .gz, dropped connection
            report.errors.append(IngestError(relative, f"read failed part way: {exc}"))
    return report


def ingest_build_dirs(
    backend: SearchBackend,
    root: Path,
    *,
    keep_debug: bool = False,
    progress: Progress | None = None,
    commit_every: int = COMMIT_EVERY,
) -> IngestReport:
    """Every build under ``root``: a directory per build holding its logs and
    a ``build.json`` (a backfill). Builds are committed together, a commit
    once ``commit_every`` log events are in: each build is still replaced
    whole (its old documents go in the commit that brings the new), and a
    commit per build would have tantivy merge its small segments over and
    over, half of the CPU of an ingest (measured). A build that cannot be
    read is reported and the others are indexed all the same."""
    try:
        build_dirs = sorted(path for path in root.iterdir() if (path / "build.json").is_file())
    except OSError as exc:
        raise IngestError(str(root), f"cannot list builds: {exc.strerror}") from None
    if not build_dirs:
        raise IngestError(str(root), "no builds found (expected a directory per build, each with a build.json)")
    total = IngestReport()
    pending = iter(build_dirs)
    with backend.ingest_session():
        while _commit_group(backend, pending, total, keep_debug, progress, commit_every):
            pass
    return total


def _commit_group(
    backend: SearchBackend,
    pending: Iterator[Path],
    total: IngestReport,
    keep_debug: bool,
    progress: Progress | None,
    commit_every: int,
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
                    logs = LocalLogs(str(build_dir))
                    files = _log_files(logs)
                except IngestError as exc:  # nothing of this build was written
                    total.errors.append(exc)
                    continue
                group.append(_write_build(writer, logs, files, metadata, keep_debug, None, progress))
                if sum(report.documents for report in group) >= commit_every:
                    break
    except RecheckError as exc:  # the backend refused: the builds after these would fare no better
        raise BackendError(
            f"{first}: {exc} (the {total.builds} builds before {first.name} are indexed; "
            f"{first.name} and the builds after it are not)"
        ) from exc
    for report in group:
        total.builds += 1
        total.documents += report.documents
        total.files += report.files
        total.skipped_debug += report.skipped_debug
        total.errors.extend(report.errors)
    return True


def ingest_documents(
    backend: SearchBackend, handle: IO[str], source: str, progress: Progress | None = None
) -> IngestReport:
    """Index exported documents. Bad ones are reported with their line; the
    good ones are committed all the same."""
    report = IngestReport()
    with backend.writer() as writer:
        for number, item in read_documents(handle, source):
            if isinstance(item, IngestError):
                report.errors.append(item)
                continue
            try:
                timestamp = parse_timestamp(item.get("@timestamp"))
            except ValueError as exc:
                report.errors.append(IngestError(source, f"bad @timestamp: {exc}", number))
                continue
            writer.add(item, timestamp)
            report.documents += 1
            if progress and report.documents % 1000 == 0:
                progress(1000)
    return report
