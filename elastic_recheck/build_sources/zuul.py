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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from ..builds import Build
from ..config import IngestSettings
from ..errors import IngestError, RecheckError
from ..ingest.fetch import HttpRetry, fetch_document, is_http_url, require_http
from ..private_paths import FILE_MODE, private_dir
from .gerrit import MAX_NUMBER, clean_text

log = logging.getLogger(__name__)
UTC = dt.timezone.utc
CHECKPOINT_VERSION = 1
CHECKPOINT_NAME = "zuul-builds.json"  # in the data directory
MAX_ID = 2**63 - 1  # Zuul's build ids are SQL integers
MAX_NAME_CHARS = 255  # Zuul's own column width for job, project, branch and pipeline names
MAX_CHECKPOINT_BYTES = 64 << 20
MAX_URL_CHARS = 2_000  # a build page URL; Zuul's are under 200
DEFAULT_RUNNING_TIMEOUT = 86_400.0  # seconds a build may stay "running" before it is given up
DEFAULT_MAX_PAGES = 1_000  # pages one poll reads at most (100,000 builds at the default page size)
_UUID = re.compile(r"[0-9A-Za-z_-]{1,64}")
_RESULT = re.compile(r"[A-Z][A-Z_]{0,39}")
_DIGITS = re.compile(r"[0-9]{1,10}")
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:?[0-9]{2})?")


def checkpoint_path(data_dir: Path) -> Path:
    """Where ``watch`` keeps the Zuul source's checkpoint."""
    return data_dir / CHECKPOINT_NAME


@dataclass(frozen=True)
class _Record:
    """One build record, checked: its id, and the Build when it has finished."""

    id: int
    uuid: str
    start: dt.datetime | None
    build: Build | None  # None while it runs

    @property
    def when(self) -> dt.datetime | None:
        return self.start or (self.build.end if self.build else None)


@dataclass
class _State:
    horizon: int = 0
    top: int = -1
    pending: dict[int, float] = field(default_factory=dict)  # id -> start, or first seen (epoch seconds)

    def handled(self, build_id: int) -> bool:
        return self.horizon <= build_id <= self.top and build_id not in self.pending


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
                 limits: IngestSettings = IngestSettings(), page_size: int = 100, since: dt.datetime | None = None,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(UTC), *, pipelines: str = "",
                 jobs: str = "", max_pages: int = DEFAULT_MAX_PAGES,
                 running_timeout: float = DEFAULT_RUNNING_TIMEOUT,
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
        self._since = _utc(since) if since is not None else None

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
            state = _State(_id(data["horizon"]), _id(data["top"], allow_minus_one=True),
                           {_id(i): _seconds(s) for i, s in data["pending"]})
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
        self._state = state
        self._since = None
        return builds

    def peek(self, limit: int) -> list[Build]:
        """What ``poll`` would return now, at most the ``limit`` newest of it,
        without moving anything."""
        return self._scan(limit=limit)[0]

    def _scan(self, limit: int | None) -> tuple[list[Build], _State]:
        now = _utc(self.clock())
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
    def _boundary(record: _Record, old: _State | None, since: dt.datetime | None) -> bool:
        """Is ``record`` past where this poll needs to read? Below the
        horizon (every build there was handled), and, for a first run or a
        backfill, started before ``since``."""
        before_since = since is not None and record.when is not None and record.when < since
        if old is None:
            return before_since
        below_horizon = record.id < old.horizon
        return below_horizon and (since is None or before_since)

    def _wait_for(self, record: _Record, old: _State | None, pending: dict[int, float],
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
        data = _json(fetch_document(url, self.retry, self.limits.file_timeout), url)
        if not isinstance(data, list):
            raise IngestError(url, f"the builds API answered a JSON {type(data).__name__}, not a list of builds")
        return data

    def _record(self, raw: Any, url: str) -> _Record | None:
        try:
            return read_record(raw, url)
        except IngestError as exc:
            self._on_skip(exc)
            return None


def resolve_build(api_url: str, uuid: str, retry: HttpRetry = HttpRetry(),
                  limits: IngestSettings = IngestSettings()) -> Build:
    """One finished build from Zuul's API (``{api_url}/build/{uuid}``): what a
    Zuul v3 report's build URL leads to, with the build's ``log_url``."""
    if not _UUID.fullmatch(uuid):
        raise IngestError(api_url, f"{clean_text(uuid)[:80]!r} is not a Zuul build uuid")
    url = f"{require_http(api_url, 'zuul.api').rstrip('/')}/build/{uuid}"
    record = read_record(_json(fetch_document(url, retry, limits.file_timeout), url), url)
    if record.uuid != uuid:
        raise IngestError(url, f"the API answered with build {record.uuid}, not {uuid}")
    if record.build is None:
        raise IngestError(url, f"build {uuid} has not finished (no result yet)")
    return record.build


def resolve_report_build(build: Build, api_url: str = "", retry: HttpRetry = HttpRetry(),
                         limits: IngestSettings = IngestSettings()) -> Build:
    """A Gerrit report's Zuul v3 build (a ``build_url``, no ``log_url``) with
    what Zuul knows of it: its log URL, times and ref. ``api_url`` is
    ``zuul.api``; empty, it is derived from the build URL (see
    :func:`tenant_api_url`). The report's own fields (change, job, status,
    voting) stay as the report said them."""
    if build.log_url or not build.build_url:
        return build
    derived, uuid = tenant_api_url(build.build_url)
    record = resolve_build(api_url or derived, build.uuid or uuid, retry, limits)
    return replace(build, log_url=record.log_url, start=record.start, end=record.end, ref=build.ref or record.ref,
                   branch=build.branch or record.branch, project=build.project or record.project,
                   pipeline=build.pipeline or record.pipeline)


_BUILD_PAGE = re.compile(r"^(?P<root>.*?)(?:/t/(?P<tenant>[^/]+))?/build/(?P<uuid>[0-9A-Za-z_-]{1,64})/?$")


def tenant_api_url(build_url: str) -> tuple[str, str]:
    """The tenant API URL and build uuid a Zuul build page's URL implies, for
    when ``zuul.api`` is not set. It assumes Zuul's web layout:
    ``{root}/t/{tenant}/build/{uuid}`` → ``{root}/api/tenant/{tenant}``, and on
    a white-labelled tenant ``{root}/build/{uuid}`` → ``{root}/api``; a query
    or fragment is dropped. Anything else is an IngestError: set ``zuul.api``."""
    if len(build_url) > MAX_URL_CHARS or not is_http_url(build_url):
        raise IngestError(_shown(build_url, 200), f"not an http(s) build URL (of at most {MAX_URL_CHARS} characters)")
    parts = urllib.parse.urlsplit(build_url)
    match = _BUILD_PAGE.match(parts.path)
    if not match:
        raise IngestError(build_url, "not a Zuul build page URL (…/t/TENANT/build/UUID); set zuul.api")
    root = urllib.parse.urlunsplit((parts.scheme, parts.netloc, match["root"], "", ""))
    tenant = match["tenant"]
    return (f"{root}/api/tenant/{tenant}" if tenant else f"{root}/api"), match["uuid"]


# -- one record ----------------------------------------------------------------

def read_record(raw: Any, where: str) -> _Record:
    """A Zuul build record, old (flat ``project``, ``change``...) or new
    (nested ``ref``), as a checked record; IngestError naming ``where`` and
    the build when it is not one."""
    if not isinstance(raw, dict):
        raise IngestError(where, f"a build record that is a JSON {type(raw).__name__}, not an object")
    uuid = raw.get("uuid")
    if not isinstance(uuid, str) or not _UUID.fullmatch(uuid):
        raise IngestError(where, f"a build record with no usable uuid ({_shown(uuid)})")
    where = f"{where} (build {uuid})"
    try:
        build_id = _id(raw.get("_id"))
    except (TypeError, ValueError):
        raise IngestError(where, f"no usable _id ({_shown(raw.get('_id'))})") from None
    ref = raw.get("ref") if isinstance(raw.get("ref"), dict) else raw
    buildset = raw.get("buildset") if isinstance(raw.get("buildset"), dict) else {}
    result = raw.get("result")
    start = _time(raw.get("start_time"), "start_time", where)
    if result is None:
        return _Record(build_id, uuid, start, None)
    if not isinstance(result, str) or not _RESULT.fullmatch(result):
        raise IngestError(where, f"result {_shown(result)} is not a Zuul result")
    log_url = raw.get("log_url") or ""
    if not isinstance(log_url, str) or (log_url and not is_http_url(log_url)):
        raise IngestError(where, f"log_url {_shown(log_url)} is not an http(s) URL; refused")
    voting = raw.get("voting", True)
    if voting not in (True, False, 0, 1):
        raise IngestError(where, f"voting {_shown(voting)} is not true or false")
    build = Build(
        job=_name(raw.get("job_name"), "job_name", where, required=True),
        status=result,
        uuid=uuid,
        short_uuid=uuid[:7],
        change=_number(ref.get("change"), "change", where),
        patchset=_number(ref.get("patchset"), "patchset", where),
        project=_name(ref.get("project"), "project", where),
        branch=_name(ref.get("branch"), "branch", where),
        pipeline=_name(raw.get("pipeline") or buildset.get("pipeline"), "pipeline", where),
        ref=_name(ref.get("ref"), "ref", where),
        voting=bool(voting),
        log_url=log_url,
        start=start,
        end=_time(raw.get("end_time"), "end_time", where),
        source="zuul",
    )
    return _Record(build_id, uuid, start, build)


def _id(value: Any, allow_minus_one: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not (-allow_minus_one <= value <= MAX_ID):
        raise ValueError(f"{_shown(value)} is not a build id")
    return value


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ValueError(f"{_shown(value)} is not a time")
    return float(value)


def _name(value: Any, what: str, where: str, required: bool = False) -> str:
    if value is None or value == "":
        if required:
            raise IngestError(where, f"no {what}")
        return ""
    if not isinstance(value, str):
        raise IngestError(where, f"{what} {_shown(value)} is not a string")
    if len(value) > MAX_NAME_CHARS or not value.isprintable():
        raise IngestError(where, f"{what} {_shown(value)} is not a name (printable, at most {MAX_NAME_CHARS} "
                                 "characters)")
    return clean_text(value)


def _number(value: Any, what: str, where: str) -> int | None:
    """A change or patchset number. Zuul's records for other kinds of change
    (a GitHub pull request's patchset is a commit sha, a periodic build has
    none) carry no number: None, not an error."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value <= MAX_NUMBER else None
    if isinstance(value, str):
        return int(value) if _DIGITS.fullmatch(value) and 0 < int(value) <= MAX_NUMBER else None
    raise IngestError(where, f"{what} {_shown(value)} is not a number")


def _time(value: Any, what: str, where: str) -> dt.datetime | None:
    """Zuul writes times as ``2026-11-01T10:00:00`` in UTC, without a zone."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _TIME.fullmatch(value):
        raise IngestError(where, f"{what} {_shown(value)} is not a time")
    try:
        return _utc(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        raise IngestError(where, f"{what} {_shown(value)} is not a time") from None


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _json(raw: bytes, url: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise IngestError(url, f"the API answer is not UTF-8 (byte {exc.start + 1})") from None
    except json.JSONDecodeError as exc:
        raise IngestError(url, f"the API answer is not JSON: {exc.msg}", exc.lineno) from None
    except RecursionError:
        raise IngestError(url, "the API answer is nested too deeply to read") from None


def _shown(value: Any, limit: int = 80) -> str:
    shown = repr(clean_text(value) if isinstance(value, str) else value)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


__all__ = [
    "CHECKPOINT_NAME", "ZuulBuilds", "checkpoint_path", "read_record", "resolve_build", "resolve_report_build",
    "tenant_api_url",
]
