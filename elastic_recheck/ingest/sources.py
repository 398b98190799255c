"""Where a build's logs and metadata come from: a local directory or a log
server over http(s); metadata from a JSON file, options, or Zuul's build API."""

from __future__ import annotations

import html.parser
import json
import os
import stat
import urllib.parse
from dataclasses import dataclass, field, fields
from typing import Any

from ..config import IngestSettings
from ..errors import IngestError
from .documents import replace_surrogates
from .fetch import (HTTP_RETRY_STATUSES, MAX_DOCUMENT_BYTES, ConnectionPool, FetchStopped, HttpError, HttpRetry,
                    Unreachable, fetch_document, is_http_url, open_url, require_http)
from .streams import BuildBudget, Cut, LogStream, StopReading

LOG_SUFFIXES = (".txt", ".log", ".html", ".out", ".err")
LOG_NAMES = ("syslog", "messages", "kern.log")
MAX_LISTING_DEPTH = 6
MAX_LISTING_PAGES = 5_000  # directory pages crawled per build when there is no zuul-manifest.json
MAX_MANIFEST_DEPTH = 32  # directory levels read from a zuul-manifest.json


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
    values = {name: replace_surrogates(value) for name, value in values.items()}
    if not values.get("build_uuid"):
        raise IngestError(source, "build metadata has no build_uuid (or Zuul 'uuid')")
    known = {k: v for k, v in values.items() if k in BuildMetadata.__dataclass_fields__}
    return BuildMetadata(**known)


def load_metadata_file(path: str) -> BuildMetadata:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise IngestError(path, f"cannot read build metadata: {exc.strerror}") from None
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise IngestError(path, f"build metadata is larger than {MAX_DOCUMENT_BYTES} bytes")
    return metadata_from_mapping(_json_object(raw, path, "build metadata"), path)


def _json_object(raw: bytes, source: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(raw.decode("utf-8", "replace"))
    except json.JSONDecodeError as exc:
        raise IngestError(source, f"{what} is not JSON: {exc.msg}", exc.lineno) from None
    except RecursionError:
        raise IngestError(source, f"{what} is nested too deeply to read") from None
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if not isinstance(data, dict):
        raise IngestError(source, f"{what} must be a JSON object")
    return data


def fetch_zuul_build(url: str, retry: HttpRetry = HttpRetry(), limits: IngestSettings = IngestSettings()
                     ) -> BuildMetadata:
    """A build record from Zuul's API. Its ``log_url`` is where the logs will
    be fetched from, so it must be an http(s) URL: a ``file:`` URL or a path
    in an answer from a server would have ingest read local files."""
    data = _json_object(fetch_document(url, retry, limits.file_timeout), url, "the Zuul build API answer")
    metadata = metadata_from_mapping(data, url)
    if metadata.log_url:
        require_http(metadata.log_url, url)
    return metadata


def is_log_file(name: str) -> bool:
    base = name[:-3] if name.endswith(".gz") else name
    base = base.rsplit("/", 1)[-1]
    return base.endswith(LOG_SUFFIXES) or base in LOG_NAMES or base.startswith(LOG_NAMES)


def logical_name(relative: str) -> str:
    """``logs/screen-n-cpu.txt.gz`` is indexed as ``logs/screen-n-cpu.txt``."""
    return relative[:-3] if relative.endswith(".gz") else relative


def plain_path(name: str) -> bool:
    """A relative path that stays where it starts: no empty, ``.`` or ``..`` part, not absolute."""
    return bool(name) and all(part not in ("", ".", "..") for part in name.split("/"))


def safe_relative(name: str) -> bool:
    """A path from a server's manifest or listing: a :func:`plain_path`, with
    no control character and nothing that is not text (a lone surrogate)."""
    return plain_path(name) and name.isprintable() and replace_surrogates(name) == name


@dataclass
class Listing:
    """A build's log files, and what was left out with the reason (warnings)."""

    names: list[str] = field(default_factory=list)
    skipped: list[IngestError] = field(default_factory=list)


class LocalLogs:
    """A build's log directory on this machine, given by the operator.
    Nothing outside it is read: a symlink that leads out of it (to
    ``/etc/passwd``, to ``../``) is skipped with a warning, and linked
    directories are not walked."""

    def __init__(self, root: str, limits: IngestSettings = IngestSettings()) -> None:
        if not os.path.isdir(root):
            raise IngestError(root, "log directory does not exist")
        self.root = os.path.realpath(root)
        self.location = str(root)
        self.limits = limits

    def describe(self, relative: str) -> str:
        return os.path.join(self.location, relative)

    def _inside(self, path: str) -> bool:
        return os.path.commonpath([self.root, path]) == self.root

    def files(self) -> Listing:
        listing = Listing()

        def unreadable(exc: OSError) -> None:
            where = self._relative_location(exc.filename) if exc.filename else self.location
            listing.skipped.append(IngestError(where, f"skipped: cannot list it: {exc.strerror}"))

        for dirpath, dirnames, filenames in os.walk(self.root, onerror=unreadable):  # never follows a linked dir
            for name in dirnames:
                path = os.path.join(dirpath, name)
                if os.path.islink(path) and not self._inside(os.path.realpath(path)):
                    listing.skipped.append(IngestError(self._relative_location(path),
                                                       "skipped: a link to a directory outside the build"))
            for name in filenames:
                path = os.path.join(dirpath, name)
                relative = os.path.relpath(path, self.root).replace(os.sep, "/")
                if not is_log_file(relative):
                    continue
                problem = self._unreadable(path)
                if problem:
                    listing.skipped.append(IngestError(self.describe(relative), f"skipped: {problem}"))
                else:
                    listing.names.append(relative)
        listing.names.sort()
        return listing

    def _relative_location(self, path: str) -> str:
        return self.describe(os.path.relpath(path, self.root))

    def _unreadable(self, path: str) -> str | None:
        """Why ingest will not read this file, if it will not."""
        target = os.path.realpath(path)
        if not self._inside(target):
            return "a link to a file outside the build"
        try:
            mode = os.stat(target).st_mode
        except OSError as exc:
            return f"cannot read it: {exc.strerror}"
        if not stat.S_ISREG(mode):
            return "not a regular file"
        return None

    def open(self, relative: str, budget: BuildBudget | None = None) -> LogStream:
        """One file's lines; ``budget``: what is left of the build's bytes."""
        budget = budget or BuildBudget(self.limits.max_build_bytes)
        path = os.path.join(self.root, relative)
        problem = self._unreadable(path) if plain_path(relative) else "not a path inside the build"
        if problem:
            raise IngestError(self.describe(relative), problem)
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(os.path.realpath(path), flags)
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since it was listed
                os.close(fd)
                raise IngestError(self.describe(relative), "not a regular file")
        except OSError as exc:
            raise IngestError(self.describe(relative), f"cannot read: {exc.strerror}") from None

        def read(size: int) -> bytes:
            try:
                return os.read(fd, size)
            except OSError as exc:
                raise StopReading(Cut(f"reading failed part way ({exc.strerror})", True)) from None

        return LogStream(read, gzip_name=relative.endswith(".gz"), limits=self.limits, budget=budget,
                         close=lambda: os.close(fd))


class HttpLogs:
    """A log server directory. Zuul's ``zuul-manifest.json`` lists the tree
    when present; otherwise the server's HTML index pages are followed, only
    to pages and files under the build's URL on the same server."""

    def __init__(self, url: str, retry: HttpRetry = HttpRetry(), limits: IngestSettings = IngestSettings(),
                 connections: ConnectionPool | None = None) -> None:
        """``connections``: kept connections to the allowed hosts (the daemon's
        fetching); without, each request has a connection of its own."""
        require_http(url, url)
        self.base = url if url.endswith("/") else url + "/"
        self.location = self.base
        self.retry = retry
        self.limits = limits
        self.connections = connections
        self._base_parts = urllib.parse.urlsplit(self.base)

    def describe(self, relative: str) -> str:
        return self.base + relative

    def files(self) -> Listing:
        manifest = self.manifest()
        listing = manifest if manifest is not None else self._crawl()
        listing.names = sorted({name for name in listing.names if is_log_file(name)})
        return listing

    def _fetch(self, url: str) -> bytes:
        return fetch_document(url, self.retry, self.limits.file_timeout, connections=self.connections)

    def manifest(self) -> Listing | None:
        """The files ``zuul-manifest.json`` names; None when there is no usable
        one. A server too busy to say (429/5xx after the retries, or gone)
        raises: taken for "no manifest", the build would be fetched by the
        patterns, without what only its manifest names, and look whole."""
        try:
            raw = self._fetch(self.base + "zuul-manifest.json")
        except HttpError as exc:
            if exc.status in HTTP_RETRY_STATUSES:
                raise
            return None
        except (FetchStopped, Unreachable):
            raise
        except IngestError:
            return None
        try:
            tree = json.loads(raw.decode("utf-8", "replace"))["tree"]
        except (ValueError, KeyError, TypeError, RecursionError):
            return None
        if not isinstance(tree, list):
            return None
        listing = Listing()
        pending: list[tuple[list[Any], str, int]] = [(tree, "", 0)]
        while pending:
            nodes, prefix, depth = pending.pop()
            for node in nodes:
                name = node.get("name") if isinstance(node, dict) else None
                if not isinstance(name, str) or "/" in name or not safe_relative(name):
                    continue
                children = node.get("children")
                if isinstance(children, list) or node.get("mimetype") == "application/directory":
                    if isinstance(children, list) and depth < MAX_MANIFEST_DEPTH:
                        pending.append((children, prefix + name + "/", depth + 1))
                else:
                    listing.names.append(prefix + name)
        return listing

    def _crawl(self) -> Listing:
        """The server's index pages, from the build's own down. Links that lead
        elsewhere (``../``, absolute URLs, other hosts) are not followed: a
        listing is the server's text, and it could point anywhere."""
        listing = Listing()
        pending = [("", 0)]
        seen = {""}
        pages = 0
        while pending:
            prefix, depth = pending.pop()
            if pages >= MAX_LISTING_PAGES:
                listing.skipped.append(IngestError(self.base, f"more than {MAX_LISTING_PAGES} directory pages; "
                                                              "the rest are not read"))
                break
            pages += 1
            try:
                entries = self.directory(prefix)
            except IngestError as exc:
                if not prefix:
                    raise
                listing.skipped.append(exc)
                continue
            for relative in entries:
                if relative in seen:
                    continue
                seen.add(relative)
                if relative.endswith("/"):
                    if depth < MAX_LISTING_DEPTH:
                        pending.append((relative, depth + 1))
                else:
                    listing.names.append(relative)
        return listing

    def directory(self, prefix: str) -> list[str]:
        """What the server's index page of the directory ``prefix`` (relative
        to the build's URL, "" or ending in "/") links to under the build's
        URL on the same server: paths relative to the build's URL,
        directories ending in "/"."""
        page_url = self.base + urllib.parse.quote(prefix)
        page = self._fetch(page_url).decode("utf-8", "replace")
        entries = (self._inside(page_url, href) for href in _links(page))
        return [relative for relative in entries if relative is not None]

    def _inside(self, page_url: str, href: str) -> str | None:
        """``href`` as a path relative to the build's URL, if it leads under it
        on the same server; None otherwise."""
        try:
            target = urllib.parse.urlsplit(urllib.parse.urljoin(page_url, href.strip()))
        except ValueError:
            return None
        base = self._base_parts
        if (target.scheme.lower(), target.netloc.lower()) != (base.scheme.lower(), base.netloc.lower()):
            return None
        if not target.path.startswith(base.path) or len(target.path) == len(base.path):
            return None
        relative = urllib.parse.unquote(target.path[len(base.path):])
        if not safe_relative(relative.rstrip("/")):
            return None
        return relative

    def open(self, relative: str, budget: BuildBudget | None = None) -> LogStream:
        """One file's lines; ``budget``: what is left of the build's bytes."""
        budget = budget or BuildBudget(self.limits.max_build_bytes)
        if not safe_relative(relative):
            raise IngestError(self.describe(relative), "not a path inside the build")
        response = open_url(self.base + urllib.parse.quote(relative), self.retry, self.limits.file_timeout,
                            self.connections)
        return LogStream(response.read, gzip_name=relative.endswith(".gz"), limits=self.limits, budget=budget,
                         transfer_gzip=response.transfer_gzip, close=response.close)


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
    parser.close()
    return parser.hrefs


def open_logs(location: str, retry: HttpRetry = HttpRetry(), limits: IngestSettings = IngestSettings()
              ) -> LocalLogs | HttpLogs:
    """The operator's ``--logs``: an http(s) URL or a local directory."""
    if is_http_url(location):
        return HttpLogs(location, retry, limits)
    return LocalLogs(location, limits)


def open_log_url(location: str, origin: str, retry: HttpRetry = HttpRetry(),
                 limits: IngestSettings = IngestSettings()) -> HttpLogs:
    """A log location read from metadata or an API answer (``origin``): only
    an http(s) URL; a path or a ``file:`` URL there is refused."""
    return HttpLogs(require_http(location, origin), retry, limits)


__all__ = [
    "BuildMetadata", "HttpLogs", "HttpRetry", "Listing", "LocalLogs", "fetch_zuul_build", "load_metadata_file",
    "logical_name", "metadata_from_mapping", "open_log_url", "open_logs",
]
