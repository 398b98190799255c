"""Zuul's builds API, polled for builds that finished: the way OpenStack's
``logscraper`` finds new builds, with a checkpoint so a restart misses and
repeats nothing.

Zuul lists a tenant's builds newest first by its database id
(``/api/tenant/{tenant}/builds?limit=&skip=``), and records a build when it
*starts* (``result`` null until it ends). So a long build that ends now sits
below shorter ones already read. This source therefore asks for every build,
running ones too, and keeps three numbers in its checkpoint:

- ``top``: the highest id it has read;
- ``pending``: the ids it saw running (with their start times);
- ``horizon``: the lowest pending id (``top + 1`` when none is running).

Every id from ``horizon`` to ``top`` that is not pending has been handled,
so a poll pages down (``skip``) only until it meets an id below the horizon:
what is above ``top`` is new, and a pending id now with a result has just
finished. New builds listed while it pages shift the list down, so a record
can come twice: it is taken once. A build still "running" after
``zuul.running_timeout`` (its executor died and nothing set a result) is
given up with a warning, so it cannot hold the horizon down for ever.

``since`` is for the first run and for a backfill: builds that started at or
after it (and builds seen still running) are read, however deep the list
goes, up to ``zuul.max_pages`` pages. Without a checkpoint and without
``since`` the source starts from now.

Every record is hostile: one that is not a build (no uuid or id, wrong types,
a ``log_url`` that is not http(s)) is skipped with a one-line warning naming
the API URL; an answer that is not a JSON list, or an API that fails, stops
the poll with an error naming the URL, and the checkpoint does not move.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..builds import Build
from ..config import IngestSettings, Settings, ZuulSettings
from ..errors import IngestError, RecheckError
from ..ingest.fetch import HttpRetry, fetch_document, require_http
from ..private_paths import FILE_MODE, private_dir
from .gerrit import clean_text
from .zuul_api import ZuulRecord, build_id, parse_json, read_record, utc

log = logging.getLogger(__name__)
UTC = dt.timezone.utc
CHECKPOINT_VERSION = 1
CHECKPOINT_NAME = "zuul-builds.json"  # in the data directory
MAX_CHECKPOINT_BYTES = 64 << 20


def checkpoint_path(data_dir: Path) -> Path:
    """Where ``watch`` keeps the Zuul source's checkpoint."""
    return data_dir / CHECKPOINT_NAME


@dataclass
class _State:
    horizon: int = 0
    top: int = -1
    pending: dict[int, float] = field(default_factory=dict)  # id -> start, or first seen (epoch seconds)

    def handled(self, number: int) -> bool:
        return self.horizon <= number <= self.top and number not in self.pending


class ZuulBuilds:
    """A tenant's builds API as a source of finished builds.

    ``poll()`` returns the builds that finished since the last poll (oldest
    first) and keeps its place in memory; ``commit()`` writes that place to
    the checkpoint. Commit once the builds are safely queued: a crash
    between the two repeats them on restart (the queue drops a build it
    already has) rather than missing them. ``checkpoint=None`` keeps no file
    (``elastic-recheck builds`` looks without moving the daemon's place).
    """

    def __init__(self, api_url: str, checkpoint: Path | None, retry: HttpRetry = HttpRetry(),
                 limits: IngestSettings = IngestSettings(), page_size: int = ZuulSettings.page_size,
                 since: dt.datetime | None = None, clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(UTC),
                 *, pipelines: str = "", jobs: str = "", max_pages: int = ZuulSettings.max_pages,
                 running_timeout: float = ZuulSettings.running_timeout,
                 on_skip: Callable[[RecheckError], None] | None = None) -> None:
        require_http(api_url, "zuul.api")
        if page_size < 1 or max_pages < 1:
            raise ValueError("page_size and max_pages must be at least 1")
        self.api_url = api_url.rstrip("/")
        self.checkpoint = checkpoint
        self.retry = retry
        self.limits = limits
        self.page_size = page_size
        self.max_pages = max_pages
        self.running_timeout = running_timeout
        self.clock = clock
        self._pipelines = re.compile(pipelines) if pipelines else None
        self._jobs = re.compile(jobs) if jobs else None
        self._on_skip = on_skip or (lambda error: log.warning("skipped: %s", error))
        self._state = self._load() if checkpoint is not None else None
        self._since = utc(since) if since is not None else None
        self._before: tuple[_State | None, dt.datetime | None] | None = None  # the place before the last poll

    @classmethod
    def from_settings(cls, settings: Settings, since: dt.datetime | None = None, retry: HttpRetry = HttpRetry(),
                      on_skip: Callable[[RecheckError], None] | None = None) -> "ZuulBuilds":
        """The daemon's source: ``zuul:``'s API and filters, ``ingest:``'s
        limits, the checkpoint in the data directory."""
        zuul = settings.zuul
        return cls(zuul.api, checkpoint_path(settings.data_dir), retry, settings.ingest, zuul.page_size, since,
                   pipelines=zuul.pipelines, jobs=zuul.jobs, max_pages=zuul.max_pages,
                   running_timeout=zuul.running_timeout, on_skip=on_skip)

    # -- the checkpoint ---------------------------------------------------------

    def _load(self) -> _State | None:
        """The checkpoint, None when there is none yet. One that cannot be
        read is an error, not a fresh start: starting afresh would miss every
        build since it was written."""
        assert self.checkpoint is not None
        where = str(self.checkpoint)
        try:
            with open(self.checkpoint, "rb") as handle:
                raw = handle.read(MAX_CHECKPOINT_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise IngestError(where, f"cannot read the Zuul checkpoint: {exc.strerror}") from None
        hint = "; remove it to start from now (with --since for a backfill)"
        try:
            data = json.loads(raw.decode("utf-8"))
            if len(raw) > MAX_CHECKPOINT_BYTES or not isinstance(data, dict) or \
                    data.get("version") != CHECKPOINT_VERSION:
                raise ValueError("not a checkpoint this version wrote")
            state = _State(build_id(data["horizon"]), build_id(data["top"], allow_minus_one=True),
                           {build_id(i): _seconds(s) for i, s in data["pending"]})
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError) as exc:
            raise IngestError(where, f"not a readable Zuul checkpoint ({exc}){hint}") from None
        if data.get("api") != self.api_url:
            raise IngestError(where, f"the Zuul checkpoint is for {clean_text(data.get('api'))[:200]!r}, "
                                     f"not zuul.api {self.api_url!r}{hint}")
        return state

    def commit(self) -> None:
        """Write where the last poll got to: atomically (a crash leaves the old
        checkpoint or the new one, never half of one) and owner-only."""
        if self.checkpoint is None or self._state is None:
            return
        state = self._state
        data = {"version": CHECKPOINT_VERSION, "api": self.api_url, "horizon": state.horizon, "top": state.top,
                "pending": sorted([i, s] for i, s in state.pending.items())}
        private_dir(self.checkpoint.parent)
        fd, temporary = tempfile.mkstemp(prefix=self.checkpoint.name + ".", dir=self.checkpoint.parent)
        try:
            os.fchmod(fd, FILE_MODE)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.checkpoint)
        except BaseException:
            try:
                os.unlink(temporary)
            except OSError:
                pass
            raise
        directory = os.open(self.checkpoint.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    # -- polling ----------------------------------------------------------------

    def poll(self) -> list[Build]:
        """The builds that finished since the last poll, oldest first. Raises
        IngestError (naming the URL) when the API fails; nothing moves then."""
        builds, state = self._scan(limit=None)
        self._before = (self._state, self._since)
        self._state = state
        self._since = None
        return builds

    def rewind(self) -> None:
        """The last poll's builds were not taken: the next poll returns them again."""
        if self._before is not None:
            self._state, self._since = self._before
            self._before = None

    def peek(self, limit: int) -> list[Build]:
        """What ``poll`` would return now, at most the ``limit`` newest of it,
        without moving anything."""
        return self._scan(limit=limit)[0]

    def _scan(self, limit: int | None) -> tuple[list[Build], _State]:
        now = utc(self.clock())
        old = self._state
        since = self._since if (self._since is not None or old is not None) else now
        found: dict[int, Build] = {}
        uuids: set[str] = set()
        pending: dict[int, float] = {}
        top = old.top if old else -1
        lowest: int | None = None
        skip = 0
        for page in range(self.max_pages + 1):
            if page == self.max_pages:
                self._on_skip(IngestError(self.api_url, f"stopped after {self.max_pages} pages (zuul.max_pages); "
                                                        f"builds below id {lowest} are not read"))
                break
            url = f"{self.api_url}/builds?" + urllib.parse.urlencode({"limit": self.page_size, "skip": skip})
            records = self._page(url)
            if not records:
                break
            skip += len(records)
            before, page_lowest = lowest, None
            reached = False
            for raw in records:
                record = self._record(raw, url)
                if record is None:
                    continue
                top = max(top, record.id)
                lowest = record.id if lowest is None else min(lowest, record.id)
                page_lowest = record.id if page_lowest is None else min(page_lowest, record.id)
                if self._boundary(record, old, since):
                    reached = True
                    if old is None and record.build is None:
                        self._wait_for(record, old, pending, now)  # running when first looked at: read when it ends
                    continue
                if (old is not None and old.handled(record.id)) or record.id in found or record.uuid in uuids:
                    continue  # handled by an earlier poll, or listed twice as the list shifted
                if record.build is None:
                    self._wait_for(record, old, pending, now)
                elif self._wanted(record.build):
                    found[record.id] = record.build
                    uuids.add(record.uuid)
                    if limit is not None and len(found) >= limit:
                        reached = True
                        break
            if reached:
                break
            if before is not None and page_lowest is not None and page_lowest >= before:
                raise IngestError(url, "the builds API answered no older build for this page: it does not "
                                       "page with skip; nothing read")
        horizon = min(pending) if pending else top + 1
        builds = sorted(found.items(), key=lambda item: (item[1].end is None, item[1].end or now, item[0]))
        return [build for _, build in builds], _State(horizon, top, pending)

    @staticmethod
    def _boundary(record: ZuulRecord, old: _State | None, since: dt.datetime | None) -> bool:
        """Is ``record`` past where this poll needs to read? Below the
        horizon (every build there was handled), and, for a first run or a
        backfill, started before ``since``."""
        before_since = since is not None and record.when is not None and record.when < since
        if old is None:
            return before_since
        below_horizon = record.id < old.horizon
        return below_horizon and (since is None or before_since)

    def _wait_for(self, record: ZuulRecord, old: _State | None, pending: dict[int, float],
                  now: dt.datetime) -> None:
        """A running build: read it when it ends, unless it has run for longer
        than any build can (its result will never be set). One without a
        start time counts from when it was first seen running."""
        started = record.start.timestamp() if record.start else (old.pending.get(record.id) if old else None)
        started = now.timestamp() if started is None else started
        if now.timestamp() - started > self.running_timeout:
            when = dt.datetime.fromtimestamp(started, UTC)
            self._on_skip(IngestError(self.api_url, f"build {record.uuid} has been running since {when:%Y-%m-%d %H:%M} "
                                                    f"UTC, longer than zuul.running_timeout "
                                                    f"({self.running_timeout:g} s); given up"))
            return
        pending.setdefault(record.id, started)

    def _wanted(self, build: Build) -> bool:
        return (self._pipelines is None or bool(self._pipelines.search(build.pipeline))) and (
            self._jobs is None or bool(self._jobs.search(build.job)))

    def _page(self, url: str) -> list[Any]:
        data = parse_json(fetch_document(url, self.retry, self.limits.file_timeout), url)
        if not isinstance(data, list):
            raise IngestError(url, f"the builds API answered a JSON {type(data).__name__}, not a list of builds")
        return data

    def _record(self, raw: Any, url: str) -> ZuulRecord | None:
        try:
            return read_record(raw, url)
        except IngestError as exc:
            self._on_skip(exc)
            return None


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ValueError(f"{value} is not a time")
    return float(value)


__all__ = ["CHECKPOINT_NAME", "ZuulBuilds", "checkpoint_path"]
