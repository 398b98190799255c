"""Zuul's API, one record at a time: a build record read into a Build, a
build looked up by uuid, and the tenant API a build page's URL implies.

Every record is hostile: one that is not a build (no uuid or ``_id``, wrong
types, control characters in names, a ``log_url`` that is not http(s)) is an
IngestError naming where it came from and the build, in one line.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import urllib.parse
from dataclasses import dataclass, replace
from typing import Any

from ..builds import Build
from ..config import IngestSettings
from ..errors import IngestError
from ..ingest.fetch import ConnectionPool, HttpRetry, fetch_document, is_http_url, require_http
from .gerrit import MAX_NUMBER, clean_text

UTC = dt.timezone.utc
MAX_ID = 2**63 - 1  # Zuul's build ids are SQL integers
MAX_NAME_CHARS = 255  # Zuul's own column width for job, project, branch and pipeline names
MAX_URL_CHARS = 2_000  # a build page URL; Zuul's are under 200
_UUID = re.compile(r"[0-9A-Za-z_-]{1,64}")
_RESULT = re.compile(r"[A-Z][A-Z_]{0,39}")
_DIGITS = re.compile(r"[0-9]{1,10}")
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
                   r"(?:Z|[+-][0-9]{2}:?[0-9]{2})?")


class NotFinished(IngestError):
    """Zuul's API has the build without a result yet: its report may come
    before its database has the result, so it is worth asking again."""


@dataclass(frozen=True)
class ZuulRecord:
    """One build record, checked: its id, and the Build when it has finished."""

    id: int
    uuid: str
    start: dt.datetime | None
    build: Build | None  # None while it runs

    @property
    def when(self) -> dt.datetime | None:
        return self.start or (self.build.end if self.build else None)


def resolve_build(api_url: str, uuid: str, retry: HttpRetry = HttpRetry(),
                  limits: IngestSettings = IngestSettings(), connections: ConnectionPool | None = None) -> Build:
    """One finished build from Zuul's API (``{api_url}/build/{uuid}``): what a
    Zuul v3 report's build URL leads to, with the build's ``log_url``.
    ``connections``: asked through them, so the API's host and any redirect
    it answers must be one of their allowed hosts."""
    if not _UUID.fullmatch(uuid):
        raise IngestError(api_url, f"{clean_text(uuid)[:80]!r} is not a Zuul build uuid")
    url = f"{require_http(api_url, 'zuul.api').rstrip('/')}/build/{uuid}"
    record = read_record(parse_json(fetch_document(url, retry, limits.file_timeout, connections=connections), url), url)
    if record.uuid != uuid:
        raise IngestError(url, f"the API answered with build {record.uuid}, not {uuid}")
    if record.build is None:
        raise NotFinished(url, f"build {uuid} has not finished (no result yet)")
    return record.build


def resolve_report_build(build: Build, api_url: str = "", retry: HttpRetry = HttpRetry(),
                         limits: IngestSettings = IngestSettings(), connections: ConnectionPool | None = None) -> Build:
    """A Gerrit report's Zuul v3 build (a ``build_url``, no ``log_url``) with
    what Zuul knows of it: its log URL, times and ref. ``api_url`` is
    ``zuul.api``; empty, it is derived from the build URL (see
    :func:`tenant_api_url`; then pass ``connections`` that allow only the
    log hosts: the report chose that host, and a redirect from it must not
    lead anywhere else). The report's own fields (change, job, status,
    voting) stay as the report said them."""
    if build.log_url or not build.build_url:
        return build
    derived, uuid = tenant_api_url(build.build_url)
    record = resolve_build(api_url or derived, build.uuid or uuid, retry, limits, connections)
    return replace(build, log_url=record.log_url, start=record.start, end=record.end, ref=build.ref or record.ref,
                   branch=build.branch or record.branch, project=build.project or record.project,
                   pipeline=build.pipeline or record.pipeline)


_BUILD_PAGE = re.compile(r"^(?P<root>.*?)(?:/t/(?P<tenant>[^/]+))?/build/(?P<uuid>[0-9A-Za-z_-]{1,64})/?$")


def tenant_api_url(build_url: str) -> tuple[str, str]:
    """The tenant API URL and build uuid a Zuul build page's URL implies, for
    when ``zuul.api`` is not set. It assumes Zuul's web layout:
    ``{root}/t/{tenant}/build/{uuid}`` → ``{root}/api/tenant/{tenant}``, and on
    a white-labelled tenant ``{root}/build/{uuid}`` → ``{root}/api``; a query
    or fragment is dropped. Anything else is an IngestError: set ``zuul.api``.
    The host is the report's, and a report is outside input: with
    ``zuul.api`` set, that is asked instead, whatever a report names."""
    if len(build_url) > MAX_URL_CHARS or not is_http_url(build_url):
        raise IngestError(_shown(build_url, 200), f"not an http(s) build URL (of at most {MAX_URL_CHARS} characters)")
    parts = urllib.parse.urlsplit(build_url)
    match = _BUILD_PAGE.match(parts.path)
    if not match or match["tenant"] in (".", ".."):
        raise IngestError(build_url, "not a Zuul build page URL (…/t/TENANT/build/UUID); set zuul.api")
    root = urllib.parse.urlunsplit((parts.scheme, parts.netloc, match["root"], "", ""))
    tenant = match["tenant"]
    return (f"{root}/api/tenant/{tenant}" if tenant else f"{root}/api"), match["uuid"]


# -- one record ----------------------------------------------------------------

def read_record(raw: Any, where: str) -> ZuulRecord:
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
        number = build_id(raw.get("_id"))
    except (TypeError, ValueError):
        raise IngestError(where, f"no usable _id ({_shown(raw.get('_id'))})") from None
    ref = raw.get("ref") if isinstance(raw.get("ref"), dict) else raw
    buildset = raw.get("buildset") if isinstance(raw.get("buildset"), dict) else {}
    result = raw.get("result")
    start = _time(raw.get("start_time"), "start_time", where)
    if result is None:
        return ZuulRecord(number, uuid, start, None)
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
    return ZuulRecord(number, uuid, start, build)


def build_id(value: Any, allow_minus_one: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not (-allow_minus_one <= value <= MAX_ID):
        raise ValueError(f"{_shown(value)} is not a build id")
    return value


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
        return utc(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        raise IngestError(where, f"{what} {_shown(value)} is not a time") from None


def utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_json(raw: bytes, url: str) -> Any:
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
    "NotFinished", "ZuulRecord", "build_id", "parse_json", "read_record", "resolve_build", "resolve_report_build",
    "tenant_api_url", "utc",
]
