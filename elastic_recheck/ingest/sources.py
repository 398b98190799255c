"""Where a build's logs and metadata come from: a local directory or a log
server over http(s); metadata from a JSON file, options, or Zuul's build API."""

from __future__ import annotations

import gzip
import html.parser
import io
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO, Any, Iterator

from ..errors import IngestError

LOG_SUFFIXES = (".txt", ".log", ".html", ".out", ".err")
LOG_NAMES = ("syslog", "messages", "kern.log")
HTTP_TIMEOUT = 60
MAX_LISTING_DEPTH = 6
HTTP_RETRY_STATUSES = (429, 500, 502, 503, 504)
MAX_RETRY_AFTER = 30


@dataclass(frozen=True)
class HttpRetry:
    """How a log server that is busy (429/5xx) or drops the connection is asked again."""

    attempts: int = 3
    delay: float = 0.5  # seconds before the second attempt, doubling


@dataclass(frozen=True)
class BuildMetadata:
    build_uuid: str
    build_name: str = ""
    build_change: str = ""
    build_patchset: str = ""
    build_queue: str = ""
    build_status: str = ""
    build_branch: str = ""
    project: str = ""
    voting: str = "1"
    log_url: str = ""
    build_node: str = ""
    build_ref: str = ""
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def build_short_uuid(self) -> str:
        return self.build_uuid[:7]

    def fields(self) -> dict[str, str]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("extra",)}
        out["build_short_uuid"] = self.build_short_uuid
        out.update(self.extra)
        return {k: v for k, v in out.items() if v != ""}


_ZUUL_KEYS = {
    "uuid": "build_uuid",
    "job_name": "build_name",
    "result": "build_status",
    "pipeline": "build_queue",
    "change": "build_change",
    "patchset": "build_patchset",
    "branch": "build_branch",
    "project": "project",
    "log_url": "log_url",
    "ref": "build_ref",
    "node_name": "build_node",
}


def metadata_from_mapping(data: dict[str, Any], source: str) -> BuildMetadata:
    """Our field names, or a Zuul build API record (old flat or newer nested ``ref``)."""
    values: dict[str, str] = {}
    for key, value in data.items():
        if key == "ref" and isinstance(value, dict):
            for inner, inner_value in value.items():
                name = _ZUUL_KEYS.get(inner)
                if name and inner_value not in (None, ""):
                    values.setdefault(name, str(inner_value))
            continue
        if key == "buildset" and isinstance(value, dict) and value.get("pipeline"):
            values.setdefault("build_queue", str(value["pipeline"]))
            continue
        name = key if key in BuildMetadata.__dataclass_fields__ else _ZUUL_KEYS.get(key)
        if name is None or value is None or isinstance(value, (dict, list)):
            continue
        if key == "voting" or name == "voting":
            value = "1" if value in (True, 1, "1", "true", "True") else "0"
        values[name] = str(value)
    if not values.get("build_uuid"):
        raise IngestError(source, "build metadata has no build_uuid (or Zuul 'uuid')")
    known = {k: v for k, v in values.items() if k in BuildMetadata.__dataclass_fields__}
    return BuildMetadata(**known)


def load_metadata_file(path: str) -> BuildMetadata:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise IngestError(path, f"cannot read build metadata: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise IngestError(path, f"build metadata is not JSON: {exc.msg}", exc.lineno) from None
    if not isinstance(data, dict):
        raise IngestError(path, "build metadata must be a JSON object")
    return metadata_from_mapping(data, path)


def fetch_zuul_build(url: str) -> BuildMetadata:
    with _open_url(url) as response:
        try:
            data = json.load(response)
        except json.JSONDecodeError as exc:
            raise IngestError(url, f"the Zuul build API did not answer JSON: {exc.msg}") from None
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if not isinstance(data, dict):
        raise IngestError(url, "the Zuul build API answer is not a build record")
    return metadata_from_mapping(data, url)


def _open_url(url: str, retry: HttpRetry = HttpRetry()) -> IO[bytes]:
    """Log servers under load answer 429/5xx or drop connections now and then:
    those are tried again (backing off, honouring a short Retry-After);
    anything else, a 404 say, fails at once."""
    request = urllib.request.Request(url, headers={"User-Agent": "elastic-recheck", "Accept-Encoding": "gzip"})
    attempts = max(retry.attempts, 1)
    for attempt in range(1, attempts + 1):
        delay = retry.delay * 2 ** (attempt - 1)
        try:
            response = urllib.request.urlopen(request, timeout=HTTP_TIMEOUT)  # noqa: S310 - http(s) only
            break
        except urllib.error.HTTPError as exc:
            if exc.code not in HTTP_RETRY_STATUSES or attempt == attempts:
                raise IngestError(url, f"HTTP {exc.code} {exc.reason}" + _after(attempt)) from None
            retry_after = exc.headers.get("Retry-After", "") if exc.headers else ""
            if retry_after.isdigit() and int(retry_after) <= MAX_RETRY_AFTER:
                delay = max(delay, int(retry_after))
        except (urllib.error.URLError, OSError) as exc:
            if attempt == attempts:
                raise IngestError(url, f"cannot fetch: {getattr(exc, 'reason', exc)}" + _after(attempt)) from None
        time.sleep(delay)
    if response.headers.get("Content-Encoding") == "gzip":
        return gzip.GzipFile(fileobj=response)  # type: ignore[return-value]
    return response  # type: ignore[no-any-return]


def is_log_file(name: str) -> bool:
    base = name[:-3] if name.endswith(".gz") else name
    base = base.rsplit("/", 1)[-1]
    return base.endswith(LOG_SUFFIXES) or base in LOG_NAMES or base.startswith(LOG_NAMES)


def logical_name(relative: str) -> str:
    """``logs/screen-n-cpu.txt.gz`` is indexed as ``logs/screen-n-cpu.txt``."""
    return relative[:-3] if relative.endswith(".gz") else relative


class LocalLogs:
    def __init__(self, root: str) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise IngestError(root, "log directory does not exist")
        self.location = str(self.root)

    def files(self) -> list[str]:
        found = []
        for dirpath, _, filenames in os.walk(self.root):
            for name in filenames:
                relative = os.path.relpath(os.path.join(dirpath, name), self.root).replace(os.sep, "/")
                if is_log_file(relative):
                    found.append(relative)
        return sorted(found)

    def open(self, relative: str) -> IO[bytes]:
        path = self.root / relative
        handle: IO[bytes] = open(path, "rb")
        return gzip.open(handle) if relative.endswith(".gz") else handle  # type: ignore[return-value]


class HttpLogs:
    """A log server directory. Zuul's ``zuul-manifest.json`` lists the tree
    when present; otherwise the server's HTML index pages are followed."""

    def __init__(self, url: str, retry: HttpRetry = HttpRetry()) -> None:
        self.base = url if url.endswith("/") else url + "/"
        self.location = self.base
        self.retry = retry

    def files(self) -> list[str]:
        manifest = self._manifest()
        found = manifest if manifest is not None else list(self._crawl("", 0))
        return sorted(name for name in found if is_log_file(name))

    def _manifest(self) -> list[str] | None:
        try:
            with _open_url(self.base + "zuul-manifest.json", self.retry) as response:
                tree = json.load(response).get("tree", [])
        except (IngestError, ValueError, AttributeError):
            return None

        def walk(nodes: list[dict[str, Any]], prefix: str) -> Iterator[str]:
            for node in nodes:
                name = prefix + node["name"]
                if node.get("children") is not None or node.get("mimetype") == "application/directory":
                    yield from walk(node.get("children") or [], name + "/")
                else:
                    yield name

        return list(walk(tree, ""))

    def _crawl(self, prefix: str, depth: int) -> Iterator[str]:
        with _open_url(self.base + prefix, self.retry) as response:
            page = response.read().decode("utf-8", "replace")
        for href in _links(page):
            target = urllib.parse.unquote(href.split("?")[0].split("#")[0])
            if not target or target.startswith(("/", "..", ".")) or "://" in target or target.startswith("mailto:"):
                continue
            if target.endswith("/"):
                if depth < MAX_LISTING_DEPTH:
                    yield from self._crawl(prefix + target, depth + 1)
            else:
                yield prefix + target

    def open(self, relative: str) -> IO[bytes]:
        handle = _open_url(self.base + urllib.parse.quote(relative), self.retry)
        if relative.endswith(".gz"):
            data = handle.read()
            return io.BytesIO(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
        return handle


def _after(attempts: int) -> str:
    return f" (after {attempts} attempts)" if attempts > 1 else ""


def _links(page: str) -> list[str]:
    class Parser(html.parser.HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.hrefs: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "a":
                self.hrefs.extend(v for k, v in attrs if k == "href" and v)

    parser = Parser()
    parser.feed(page)
    return parser.hrefs


def open_logs(location: str, retry: HttpRetry = HttpRetry()) -> LocalLogs | HttpLogs:
    if location.startswith(("http://", "https://")):
        return HttpLogs(location, retry)
    return LocalLogs(location)
