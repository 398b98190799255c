"""Fetching from log servers and Zuul's API: http(s) only, within a deadline.

A URL reaches ingest from the command line, from a Zuul API answer or from
a listing a log server wrote; only the operator's ``--logs`` may name a local
directory. So nothing here opens anything but http(s): no file:, ftp: or
data: URL, and no redirect to one.
"""

from __future__ import annotations

import functools
import http.client
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import IO, Any

from ..errors import IngestError
from ..sanitize import strip_controls
from .streams import CHUNK, Cut, Gunzip, StopReading

HTTP_SCHEMES = ("http", "https")
HTTP_TIMEOUT = 60  # seconds one socket operation may wait (capped by the file's deadline)
HTTP_RETRY_STATUSES = (429, 500, 502, 503, 504)
MAX_RETRY_AFTER = 30
MAX_DOCUMENT_BYTES = 32 * 1024 * 1024  # a Zuul API answer, a zuul-manifest.json, a listing page
TRANSFER_ENCODINGS = ("", "identity", "gzip", "x-gzip")


@dataclass(frozen=True)
class HttpRetry:
    """How a log server that is busy (429/5xx) or drops the connection is asked again."""

    attempts: int = 3
    delay: float = 0.5  # seconds before the second attempt, doubling


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
    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects are followed to http(s) only (urllib would follow one to ftp:)."""

    def http_error_302(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                       headers: Any) -> Any:
        target = headers.get("location") or headers.get("uri")
        if target is not None:
            absolute = urllib.parse.urljoin(req.full_url, target)
            if urllib.parse.urlsplit(absolute).scheme.lower() not in HTTP_SCHEMES:
                fp.close()
                raise _RefusedRedirect(absolute)
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


def _opener(deadline: Deadline) -> urllib.request.OpenerDirector:
    """http and https, nothing else: no file:, ftp: or data: handler to reach."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(), urllib.request.UnknownHandler(), _WatchedHTTPHandler(deadline),
        _WatchedHTTPSHandler(deadline), urllib.request.HTTPDefaultErrorHandler(), _HttpOnlyRedirects(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


class Response:
    """An answer being read, with its deadline running until :meth:`close`."""

    def __init__(self, url: str, raw: http.client.HTTPResponse, deadline: Deadline) -> None:
        self.url = url
        self._raw = raw
        self.deadline = deadline
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
        self._raw.close()


def open_url(url: str, retry: HttpRetry, timeout: float) -> Response:
    """An http(s) URL's answer. Log servers under load answer 429/5xx or drop
    connections now and then: those are tried again (backing off, honouring a
    short Retry-After), within ``timeout`` seconds for the whole file;
    anything else, a 404 say, fails at once."""
    require_http(url, url)
    deadline = Deadline(timeout)
    opener = _opener(deadline)
    request = urllib.request.Request(url, headers={"User-Agent": "elastic-recheck", "Accept-Encoding": "gzip"})
    attempts = max(retry.attempts, 1)
    try:
        for attempt in range(1, attempts + 1):
            delay = retry.delay * 2 ** (attempt - 1)
            try:
                raw = opener.open(request, timeout=min(HTTP_TIMEOUT, timeout))
                if deadline.expired:  # the headers came a byte at a time until the sockets were shut
                    raw.close()
                    raise IngestError(url, deadline.cut().reason)
                return Response(url, raw, deadline)
            except _RefusedRedirect as exc:
                raise IngestError(url, f"redirected to {_shown(exc.target)}: only http(s) is followed") from None
            except ValueError as exc:  # a URL http.client cannot send, a header it cannot read
                raise IngestError(url, f"cannot fetch: {_reason(exc)}") from None
            except urllib.error.HTTPError as exc:
                exc.close()
                failure = f"HTTP {exc.code} {_reason(exc)}"
                if exc.code not in HTTP_RETRY_STATUSES or attempt == attempts:
                    raise IngestError(url, failure + _after(attempt)) from None
                retry_after = exc.headers.get("Retry-After", "") if exc.headers else ""
                if retry_after.isdigit() and int(retry_after) <= MAX_RETRY_AFTER:
                    delay = max(delay, int(retry_after))
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                if deadline.expired:
                    raise IngestError(url, deadline.cut().reason) from None
                failure = f"cannot fetch: {_reason(exc)}"
                if attempt == attempts:
                    raise IngestError(url, failure + _after(attempt)) from None
            if delay >= deadline.remaining():
                raise IngestError(url, f"{failure}{_after(attempt)}; no time left to ask again "
                                       f"within {timeout:g} s (ingest.file_timeout)")
            time.sleep(delay)
    except BaseException:
        deadline.close()
        raise
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def fetch_document(url: str, retry: HttpRetry, timeout: float, limit: int = MAX_DOCUMENT_BYTES) -> bytes:
    """A whole small answer (API record, manifest, listing page), at most
    ``limit`` bytes after decompression."""
    response = open_url(url, retry, timeout)
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
        raise IngestError(url, stop.cut.reason) from None
    finally:
        response.close()


def _reason(exc: BaseException) -> str:
    """What went wrong, as one short line (a server's reason phrase is its own text)."""
    reason = getattr(exc, "reason", None) or exc
    return " ".join(strip_controls(reason).split())[:300] or type(exc).__name__


def _after(attempts: int) -> str:
    return f" (after {attempts} attempts)" if attempts > 1 else ""
