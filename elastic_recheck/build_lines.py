"""A build's newest lines, file by file: what explain reads of a build.

The cap is per log file, not per build. A cap per build keeps the end of
whichever files wrote most at the end of the job: in a 500k-line build the
newest 50,000 lines are its last minutes, and the exception a service log
printed an hour before the job gave up is not among them. The newest lines
of *each* file keep every log's end, the console log's (where the job says
what failed) always among them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Mapping

from .lucene import quote
from .search import Hit, SearchBackend, epoch_micros, from_epoch_micros


@dataclass
class FileLines:
    """One log file of a build: ``messages`` its newest lines, newest first,
    at most the cap. When the fields were asked for, ``micros`` holds each
    line's time (microseconds since the epoch, None for none) and ``fields``
    its other fields (filename, tags, loglevel, build fields: shared by the
    lines of a context, not copied), and ``hit(i)`` makes line i's Hit. A
    build's million lines are read as these lists; a Hit is made only for
    the few lines explain shows."""

    filename: str
    total: int  # the file's lines in the index
    messages: list[str]
    micros: list[int | None] = field(default_factory=list)
    fields: list[Mapping[str, Any]] = field(default_factory=list)

    @property
    def capped(self) -> bool:
        return self.total > len(self.messages)

    def hit(self, i: int) -> Hit:
        at = self.micros[i]
        return Hit(None if at is None else from_epoch_micros(at), {**self.fields[i], "message": self.messages[i]})


def newest_lines(backend: SearchBackend, build_uuid: str, per_file: int, fields: bool = True) -> list[FileLines]:
    """Each file of the build with its newest ``per_file`` lines, by file
    name. ``fields``: also the lines' fields (what a template set does not
    need, and the embedded index reads faster without)."""
    native = getattr(backend, "newest_file_lines", None)
    if native is not None:
        return native(build_uuid, per_file, fields)
    return scanned_lines(backend, build_uuid, per_file)


def scanned_lines(backend: SearchBackend, build_uuid: str, per_file: int) -> list[FileLines]:
    """``newest_lines`` through the queries every backend answers (a
    cluster's): the build's files, then each file's lines, newest first."""
    build = f"build_uuid:{quote(build_uuid)}"
    files = {name: total for name, total in backend.build_files(build_uuid).items() if total}
    found: list[FileLines] = []
    for name, total in sorted(files.items()):
        # A phrase on an analysed file name also finds longer names
        # ("job-output.txt" in "job-output.txt.gz"): those lines are dropped.
        wanted = (hit for hit in backend.scan(f"{build} AND filename:{quote(name)}") if _filename(hit) == name)
        found.append(_file_lines(name, total, list(itertools.islice(wanted, per_file))))
    unnamed = backend.count(build) - sum(files.values())
    if unnamed > 0:  # lines with no file name (documents ingested as such)
        hits = list(itertools.islice(backend.scan(f"{build} AND NOT _exists_:filename"), per_file))
        found.append(_file_lines("", unnamed, hits))
    return found


def _file_lines(name: str, total: int, hits: list[Hit]) -> FileLines:
    return FileLines(name, max(total, len(hits)), [_message(hit) for hit in hits],
                     [None if hit.timestamp is None else epoch_micros(hit.timestamp) for hit in hits],
                     [hit.source for hit in hits])


def _filename(hit: Hit) -> str:
    value: Any = hit.source.get("filename")
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value or "")


def _message(hit: Hit) -> str:
    value = hit.source.get("message")
    if isinstance(value, list):
        value = value[0] if value else ""
    return value if isinstance(value, str) else str(value or "")
