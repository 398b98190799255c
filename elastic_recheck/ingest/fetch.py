"""Fetching from log servers and Zuul's API: http(s) only, within a deadline.

A URL reaches ingest from the command line, from a Zuul API answer or from
a listing a log server wrote; only the operator's ``--logs`` may name a local
directory. So nothing here opens anything but http(s): no file:, ftp: or
data: URL, and no redirect to one. The daemon fetches too: from the hosts of
``ingest.log_hosts`` only (a report or a Zuul answer names the URL, so
without that list anyone could make it fetch from anywhere), over
connections kept open per host (:class:`ConnectionPool`).
"""

from __future__ import annotations

import collections
import functools
import http.client
import io
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import IO, Any, Callable

from ..config import log_host_pattern
from ..errors import IngestError
from ..sanitize import strip_controls
from .streams import CHUNK, Cut, Gunzip, StopReading

HTTP_SCHEMES = ("http", "https")
HTTP_TIMEOUT = 60  # seconds one socket operation may wait (capped by the file's deadline)
HTTP_RETRY_STATUSES = (429, 500, 502, 503, 504)
MAX_RETRY_AFTER = 30
MAX_DOCUMENT_BYTES = 32 * 1024 * 1024  # a Zuul API answer, a zuul-manifest.json, a listing page
TRANSFER_ENCODINGS = ("", "identity", "gzip", "x-gzip")
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 10  # as urllib
MAX_DRAINED_BYTES = 64 * 1024  # an error or redirect body read to keep its connection; a longer one closes it
MAX_KEPT_SERVERS = 8  # idle connections one fetching thread keeps (a build's logs are on one server or two)


@dataclass(frozen=True)
class HttpRetry:
    """How a log server that is busy (429/5xx) or drops the connection is asked again."""

    attempts: int = 3
    delay: float = 0.5  # seconds before the second attempt, doubling


class HttpError(IngestError):
    """The server answered with an error status (``status``): a 404 says the file is absent."""

    def __init__(self, source: str, message: str, status: int) -> None:
        super().__init__(source, message)
        self.status = status


class Unreachable(IngestError):
    """The server could not be reached or dropped every connection, all attempts over."""


class TimedOut(IngestError):
    """The file's time (``ingest.file_timeout``) ran out: a slow server, which may answer in time later."""


class FetchStopped(IngestError):
    """The fetching was stopped (the daemon is shutting down): not the build's fault."""


class LogHosts:
    """The hosts logs may be fetched from (``ingest.log_hosts``): names, IP
    addresses, or ``*.example.org`` for every host under example.org. A
    build's log URL comes from a report or a Zuul answer, and a redirect from
    the log server: each host is checked before it is asked anything."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        for pattern in patterns:
            if not log_host_pattern(pattern):
                raise IngestError("ingest.log_hosts", f"{pattern!r} is not a host name")
        self.patterns = patterns
        self._names = {p.lower().strip("[]") for p in patterns if not p.startswith("*.")}
        self._domains = tuple(p[1:].lower() for p in patterns if p.startswith("*."))

    def allows(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return bool(host) and (host in self._names or host.endswith(self._domains))

    def refusal(self, url: str) -> str | None:
        """Why ``url`` may not be fetched, or None when it may."""
        try:
            host = urllib.parse.urlsplit(url).hostname or ""
        except ValueError:
            host = ""
        if self.allows(host):
            return None
        if not self.patterns:
            return f"host {_shown(host)} is not fetched from: ingest.log_hosts is empty"
        return f"host {_shown(host)} is not one of ingest.log_hosts"

    def check(self, url: str, where: str) -> None:
        refusal = self.refusal(url)
        if refusal:
            raise IngestError(where, f"{refusal}; refused")


def is_http_url(location: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(location)
        return parts.scheme.lower() in HTTP_SCHEMES and bool(parts.hostname)
    except ValueError:  # "http://[::1" and the like
        return False


def require_http(location: str, where: str) -> str:
    """``location`` when it is an http(s) URL; anything else (a path, file:,
    ftp:, data:) came from outside and is refused, naming ``where``."""
    if not is_http_url(location):
        raise IngestError(where, f"log location {_shown(location)} is not an http(s) URL; refused")
    return location


def _shown(text: str, limit: int = 200) -> str:
    """A value from outside, as one short line in a message."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


class Deadline:
    """One file's time (``ingest.file_timeout``), from its request to its
    last byte. A server that sends a byte a second defeats every per-read
    socket timeout, so when the time is up the sockets of the file's
    connections are shut down under whatever read is waiting."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expires = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        return max(self.expires - time.monotonic(), 0.0)

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            if self._closed:
                return
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)

    def close(self) -> None:
        """Before the connection closes, so no socket is shut after it is gone."""
        with self._lock:
            self._closed = True
            self._sockets.clear()
        self._timer.cancel()

    def cut(self) -> Cut:
        return Cut(f"gave up after {self.seconds:g} s (ingest.file_timeout)", True)


def _shut(sock: socket.socket) -> None:
    # The plain socket method: an SSL socket's own refuses once urllib has
    # marked it closed, while the response still reads from its descriptor.
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


class _RefusedRedirect(Exception):
    def __init__(self, target: str, why: str = "only http(s) is followed") -> None:
        super().__init__(target)
        self.target = target
        self.why = why


def _check_redirect(target: str, hosts: LogHosts | None) -> None:
    if urllib.parse.urlsplit(target).scheme.lower() not in HTTP_SCHEMES:
        raise _RefusedRedirect(target)
    refusal = hosts.refusal(target) if hosts is not None else None
    if refusal:
        raise _RefusedRedirect(target, f"{refusal}; refused")


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects are followed to http(s) only (urllib would follow one to ftp:),
    and to the allowed hosts only when there is a list of them."""

    def __init__(self, hosts: LogHosts | None = None) -> None:
        super().__init__()
        self._hosts = hosts

    def http_error_302(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                       headers: Any) -> Any:
        target = headers.get("location") or headers.get("uri")
        if target is not None:
            try:
                _check_redirect(urllib.parse.urljoin(req.full_url, target), self._hosts)
            except _RefusedRedirect:
                fp.close()
                raise
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302  # type: ignore[assignment]


class _Watched:
    """A connection whose socket its file's deadline may shut (see :class:`Deadline`)."""

    sock: socket.socket

    def __init__(self, *args: Any, deadline: Deadline, **kwargs: Any) -> None:
        self._deadline = deadline
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self._deadline.watch(self.sock)


class _WatchedHTTPConnection(_Watched, http.client.HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, http.client.HTTPSConnection):
    pass


class _WatchedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(functools.partial(_WatchedHTTPConnection, deadline=self._deadline), req)


class _WatchedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def https_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(functools.partial(_WatchedHTTPSConnection, deadline=self._deadline), req,
                            context=self._context)


def _opener(deadline: Deadline, hosts: LogHosts | None = None) -> urllib.request.OpenerDirector:
    """http and https, nothing else: no file:, ftp: or data: handler to reach."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(), urllib.request.UnknownHandler(), _WatchedHTTPHandler(deadline),
        _WatchedHTTPSHandler(deadline), urllib.request.HTTPDefaultErrorHandler(), _HttpOnlyRedirects(hosts),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


Server = tuple[str, str, int]  # scheme, host, port


class ConnectionPool:
    """One fetching thread's keep-alive connections, one per server: a
    build's files are many small requests to the same log server, and a new
    TCP (and TLS) handshake for each would cost more than the file. A
    connection is closed, not kept, after an error, a cut or a deadline, so
    a half-read answer never meets the next request. The owner thread takes
    and gives back; :meth:`close` may come from any thread (the daemon
    stopping): it shuts the sockets under whatever read is waiting, and every
    request after it fails at once with :class:`FetchStopped`."""

    def __init__(self, hosts: LogHosts, max_servers: int = MAX_KEPT_SERVERS) -> None:
        self.hosts = hosts
        self.max_servers = max_servers
        self.opened = 0  # connections made, for tests and metrics
        self.stopped = False
        self._idle: collections.OrderedDict[Server, http.client.HTTPConnection] = collections.OrderedDict()
        self._busy: set[http.client.HTTPConnection] = set()
        self._lock = threading.Lock()

    def take(self, server: Server, url: str, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        """A connection to ``server``, and whether it served a request before
        (the server may have closed it since: a failure on it is tried again on
        a new one)."""
        with self._lock:
            if self.stopped:
                raise FetchStopped(url, "not fetched: fetching is stopping")
            connection = self._idle.pop(server, None)
            if connection is not None and connection.sock is not None:
                self._busy.add(connection)
                return connection, True
        scheme, host, port = server
        kind = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        connection = kind(host, port, timeout=timeout)
        with self._lock:
            self._busy.add(connection)
        self.opened += 1
        return connection, False

    def give_back(self, server: Server, connection: http.client.HTTPConnection) -> None:
        """A connection whose last answer was read to its end, for the next request."""
        with self._lock:
            self._busy.discard(connection)
            if not self.stopped and connection.sock is not None:
                self._idle[server] = connection
                self._idle.move_to_end(server)
                if len(self._idle) <= self.max_servers:
                    return
                server, connection = self._idle.popitem(last=False)
        connection.close()

    def discard(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            self._busy.discard(connection)
        connection.close()

    def close(self) -> None:
        """Idle connections closed, busy ones shut under their reads; no request after this."""
        with self._lock:
            self.stopped = True
            idle = list(self._idle.values())
            self._idle.clear()
            busy = [connection.sock for connection in self._busy if connection.sock is not None]
        for sock in busy:
            _shut(sock)
        for connection in idle:
            connection.close()


def _read_to_end(raw: http.client.HTTPResponse) -> bool:
    """Whether the whole answer was read, so its connection can take another request."""
    return raw.isclosed() or (not raw.chunked and raw.length == 0)


class Response:
    """An answer being read, with its deadline running until :meth:`close`."""

    def __init__(self, url: str, raw: http.client.HTTPResponse, deadline: Deadline,
                 release: Callable[[bool], None] | None = None) -> None:
        """``release(whole)``: called once at :meth:`close`, ``whole`` when the
        answer was read to its end (its connection may serve another request)."""
        self.url = url
        self._raw = raw
        self.deadline = deadline
        self._release = release
        self.announced = raw.length  # Content-Length, when the server gave one
        encoding = (raw.headers.get("Content-Encoding") or "").strip().lower()
        if encoding not in TRANSFER_ENCODINGS:
            self.close()
            raise IngestError(url, f"the server sent Content-Encoding {_shown(encoding)}, which ingest cannot read")
        self.transfer_gzip = encoding in ("gzip", "x-gzip")

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes as they arrive (never waiting for all of them);
        b"" at the end. A failure part way raises :class:`StopReading`."""
        if self.deadline.expired:
            raise StopReading(self.deadline.cut())
        try:
            data = self._raw.read1(size)
        except (OSError, http.client.HTTPException, ValueError) as exc:  # ValueError: a chunk size that is no number
            if self.deadline.expired:
                raise StopReading(self.deadline.cut()) from None
            raise StopReading(Cut(f"the connection failed part way ({_reason(exc)})", True)) from None
        if not data:
            if self.deadline.expired:
                raise StopReading(self.deadline.cut())
            short = self._raw.length
            if short:  # http.client ends quietly when the server closes early
                raise StopReading(Cut(f"the server closed the connection {short} bytes short of the "
                                      f"{self.announced} bytes it announced", True))
        return data

    def close(self) -> None:
        self.deadline.close()
        whole = _read_to_end(self._raw) and not self.deadline.expired
        self._raw.close()
        release, self._release = self._release, None
        if release is not None:
            release(whole)


HEADERS = {"User-Agent": "elastic-recheck", "Accept-Encoding": "gzip"}


def _proxied(url: str) -> bool:
    """Whether the environment sends ``url`` through a proxy (``http_proxy``
    and the like), which urllib knows how to reach and a kept connection does not."""
    proxies = urllib.request.getproxies()
    parts = urllib.parse.urlsplit(url)
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]  # public, not in the stubs
    return parts.scheme in proxies and not bypass(parts.hostname or "", proxies)


def _pooled_open(url: str, connections: ConnectionPool, deadline: Deadline,
                 timeout: float) -> tuple[http.client.HTTPResponse, Callable[[bool], None]]:
    """``url``'s answer over a kept connection, redirects followed (to allowed
    http(s) hosts only). An error status raises :class:`urllib.error.HTTPError`,
    as urllib's opener does, so both paths share one retry loop."""
    current = url
    redirects = 0
    fresh_tries = 0
    while True:
        parts = urllib.parse.urlsplit(current)
        server = (parts.scheme.lower(), parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection, reused = connections.take(server, current, min(timeout, max(deadline.remaining(), 0.001)))
        try:
            if connection.sock is None:
                connection.connect()
                if connections.stopped:  # close() came while connecting, before there was a socket to shut
                    raise FetchStopped(current, "not fetched: fetching is stopping")
            connection.sock.settimeout(min(timeout, max(deadline.remaining(), 0.001)))
            deadline.watch(connection.sock)
            connection.request("GET", path, headers=HEADERS)
            raw = connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            connections.discard(connection)
            stale = reused and isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError,
                                                BrokenPipeError, http.client.BadStatusLine))
            if stale and not deadline.expired and not connections.stopped and fresh_tries < 1:
                fresh_tries += 1  # the server closed the idle connection: not a failure of this file
                continue
            raise
        fresh_tries = 0

        def release(whole: bool, server: Server = server, connection: http.client.HTTPConnection = connection) -> None:
            if whole:
                connections.give_back(server, connection)
            else:
                connections.discard(connection)

        if raw.status in REDIRECT_STATUSES or raw.status >= 400:
            body = _drain(raw)
            release(_read_to_end(raw) and not deadline.expired)
            if raw.status >= 400:
                raise urllib.error.HTTPError(current, raw.status, raw.reason, raw.headers, io.BytesIO(body))
            location = raw.getheader("Location")
            if location is None:
                raise urllib.error.HTTPError(current, raw.status, "a redirect without a Location",
                                             raw.headers, io.BytesIO())
            redirects += 1
            if redirects > MAX_REDIRECTS:
                raise urllib.error.HTTPError(current, raw.status, f"more than {MAX_REDIRECTS} redirects "
                                                                  "(an infinite loop?)", raw.headers, io.BytesIO())
            target = urllib.parse.urljoin(current, location)
            _check_redirect(target, connections.hosts)
            current = target
            continue
        return raw, release


def _drain(raw: http.client.HTTPResponse) -> bytes:
    """A short error or redirect body, read so its connection can be kept."""
    try:
        return raw.read(MAX_DRAINED_BYTES)
    except (OSError, http.client.HTTPException, ValueError):
        return b""


def open_url(url: str, retry: HttpRetry, timeout: float, connections: ConnectionPool | None = None) -> Response:
    """An http(s) URL's answer. Log servers under load answer 429/5xx or drop
    connections now and then: those are tried again (backing off, honouring a
    short Retry-After), within ``timeout`` seconds for the whole file;
    anything else, a 404 say, fails at once. With ``connections`` the
    request goes over a kept connection to an allowed host (see
    :class:`ConnectionPool`), unless the environment names a proxy for it."""
    require_http(url, url)
    if connections is not None:
        connections.hosts.check(url, url)
    deadline = Deadline(timeout)
    pooled = connections is not None and not _proxied(url)
    opener = None if pooled else _opener(deadline, connections.hosts if connections is not None else None)
    request = urllib.request.Request(url, headers=HEADERS)
    attempts = max(retry.attempts, 1)
    try:
        for attempt in range(1, attempts + 1):
            delay = retry.delay * 2 ** (attempt - 1)
            try:
                release = None
                if connections is not None and pooled:
                    raw, release = _pooled_open(url, connections, deadline, min(HTTP_TIMEOUT, timeout))
                else:
                    assert opener is not None
                    raw = opener.open(request, timeout=min(HTTP_TIMEOUT, timeout))
                if deadline.expired:  # the headers came a byte at a time until the sockets were shut
                    raw.close()
                    if release is not None:
                        release(False)
                    raise TimedOut(url, deadline.cut().reason)
                return Response(url, raw, deadline, release)
            except _RefusedRedirect as exc:
                raise IngestError(url, f"redirected to {_shown(exc.target)}: {exc.why}") from None
            except ValueError as exc:  # a URL http.client cannot send, a header it cannot read
                raise IngestError(url, f"cannot fetch: {_reason(exc)}") from None
            except urllib.error.HTTPError as exc:
                exc.close()
                status = exc.code
                failure = f"HTTP {exc.code} {_reason(exc)}"
                if exc.code not in HTTP_RETRY_STATUSES or attempt == attempts:
                    raise HttpError(url, failure + _after(attempt), exc.code) from None
                retry_after = exc.headers.get("Retry-After", "") if exc.headers else ""
                if retry_after.isdigit() and int(retry_after) <= MAX_RETRY_AFTER:
                    delay = max(delay, int(retry_after))
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                if connections is not None and connections.stopped:
                    raise FetchStopped(url, "not fetched: fetching is stopping") from None
                if deadline.expired:
                    raise TimedOut(url, deadline.cut().reason) from None
                status = 0
                failure = f"cannot fetch: {_reason(exc)}"
                if attempt == attempts:
                    raise Unreachable(url, failure + _after(attempt)) from None
            if delay >= deadline.remaining():
                message = (f"{failure}{_after(attempt)}; no time left to ask again within {timeout:g} s "
                           "(ingest.file_timeout)")
                raise HttpError(url, message, status) if status else Unreachable(url, message)
            time.sleep(delay)
    except BaseException:
        deadline.close()
        raise
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def fetch_document(url: str, retry: HttpRetry, timeout: float, limit: int = MAX_DOCUMENT_BYTES,
                   connections: ConnectionPool | None = None) -> bytes:
    """A whole small answer (API record, manifest, listing page), at most
    ``limit`` bytes after decompression."""
    response = open_url(url, retry, timeout, connections)
    try:
        read = response.read
        if response.transfer_gzip:
            read = Gunzip(read).read
        parts: list[bytes] = []
        size = 0
        while True:
            data = read(CHUNK)
            if not data:
                break
            size += len(data)
            if size > limit:
                raise IngestError(url, f"the answer is larger than {limit} bytes; refused")
            parts.append(data)
        return b"".join(parts)
    except StopReading as stop:
        if stop.cut == response.deadline.cut():
            raise TimedOut(url, stop.cut.reason) from None
        raise IngestError(url, stop.cut.reason) from None
    finally:
        response.close()


def _reason(exc: BaseException) -> str:
    """What went wrong, as one short line (a server's reason phrase is its own text)."""
    reason = getattr(exc, "reason", None) or exc
    return " ".join(strip_controls(reason).split())[:300] or type(exc).__name__


def _after(attempts: int) -> str:
    return f" (after {attempts} attempts)" if attempts > 1 else ""
