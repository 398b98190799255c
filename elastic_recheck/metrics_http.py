"""A small GET-only HTTP server for the metrics port that no client can exhaust.

One thread serves every connection with non-blocking sockets (``selectors``):
an idle or slow client costs a file descriptor and a buffer, never a thread.
Three limits keep even that bounded:

- ``max_connections`` open at once. When one more arrives, the connection open
  the longest is closed to make room: a scraper sends its request within
  milliseconds, so the oldest is the one idling or dripping. A flood of new
  connections therefore cannot lock a scraper out until the flood's own
  connections time out.
- ``timeout`` seconds for a connection's whole life, request and answer
  together, then ``408`` and closed. A deadline, not a timeout per read: a
  client dripping one header byte a second would reset a per-read timeout
  forever.
- ``max_request_bytes`` for the request line and headers; beyond that
  ``431`` and closed, without reading the rest.

Every answer closes the connection (no keep-alive), after a short wait for
the client to close first, so the answer is not lost to a reset.
"""

from __future__ import annotations

import logging
import re
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from .errors import ConfigError

log = logging.getLogger(__name__)
# (method, path without the query) -> (status, content type, body)
Answer = tuple[int, str, bytes]
Handler = Callable[[str, str], Answer]
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
           431: "Request Header Fields Too Large"}
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_LINGER = 1.0  # seconds to wait for the client to close after the answer
_REPORT_EVERY = 60.0  # seconds between log lines about refused connections
_POLL = 0.2  # seconds: how soon stop() and the deadlines are noticed


@dataclass(eq=False)
class _Connection:
    sock: socket.socket
    deadline: float
    received: bytearray = field(default_factory=bytearray)
    outgoing: bytes = b""
    answered: bool = False
    closed: bool = False


class BoundedHTTPServer:
    """Serves ``handler`` on ``address:port`` in one thread of its own (``start``/``stop``)."""

    def __init__(self, handler: Handler, address: str, port: int, *, max_connections: int, timeout: float,
                 max_request_bytes: int, name: str = "http", setting: str = "port") -> None:
        if max_connections < 1 or timeout <= 0 or max_request_bytes < 64:
            raise ConfigError(f"{setting}: limits must be positive (connections {max_connections}, "
                              f"timeout {timeout}, request bytes {max_request_bytes} of at least 64)")
        self.handler = handler
        self.max_connections = max_connections
        self.timeout = timeout
        self.max_request_bytes = max_request_bytes
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        try:
            self.listener = socket.create_server((address, port), family=family, backlog=64)
        except OSError as exc:
            raise ConfigError(f"{setting}: cannot listen on {address}:{port}: {exc.strerror}") from None
        self.listener.setblocking(False)
        self.address = address
        self.port: int = self.listener.getsockname()[1]
        self._open: dict[_Connection, None] = {}  # oldest first
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.listener, selectors.EVENT_READ, None)
        self._stopping = threading.Event()
        self._refused: dict[str, int] = {}
        self._next_report = 0.0
        self.thread = threading.Thread(target=self._serve, name=name, daemon=True)

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> "BoundedHTTPServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        """Closes the port and every connection; returns once the thread has ended."""
        self._stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)
        else:
            self._close_all()

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def _serve(self) -> None:
        try:
            while not self._stopping.is_set():
                for key, events in self._selector.select(timeout=_POLL):
                    if key.data is None:
                        self._accept()
                    elif not key.data.closed:
                        self._serve_one(key.data, events)
                self._expire(time.monotonic())
        except Exception as exc:  # the port must never take the daemon down with it
            log.error("metrics port %s:%d stopped serving: %s: %s", self.address, self.port, type(exc).__name__, exc)
        finally:
            self._close_all()

    def _serve_one(self, conn: _Connection, events: int) -> None:
        """One connection's turn; whatever goes wrong with it ends that connection only."""
        try:
            if events & selectors.EVENT_WRITE:
                self._send(conn)
            elif events & selectors.EVENT_READ:
                self._receive(conn)
        except Exception as exc:  # one connection, whatever went wrong
            log.error("metrics port: a connection failed: %s: %s", type(exc).__name__, exc)
            self._close(conn)

    def _close_all(self) -> None:
        for conn in list(self._open):
            self._close(conn)
        try:
            self._selector.unregister(self.listener)
        except (KeyError, ValueError):
            pass
        self._selector.close()
        self.listener.close()

    # -- connections -------------------------------------------------------------

    def _accept(self) -> None:
        for _ in range(self.max_connections):  # the rest on the next turn: other sockets get served too
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:  # out of file descriptors: make room, try again next turn
                self._refuse(f"cannot accept ({exc.strerror})")
                if self._open:
                    self._close(next(iter(self._open)))
                return
            if len(self._open) >= self.max_connections:
                self._close(next(iter(self._open)))
                self._refuse(f"more than {self.max_connections} open, the oldest closed")
            sock.setblocking(False)
            conn = _Connection(sock, time.monotonic() + self.timeout)
            self._open[conn] = None
            self._selector.register(sock, selectors.EVENT_READ, conn)

    def _receive(self, conn: _Connection) -> None:
        try:
            chunk = conn.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            self._close(conn)
            return
        if not chunk:  # the client closed (or, after the answer, finished reading it)
            self._close(conn)
            return
        if conn.answered:  # lingering: whatever else the client sends is dropped
            return
        start = max(0, len(conn.received) - 3)
        conn.received += chunk
        end = _HEAD_END.search(conn.received, start)
        head_size = end.start() if end else len(conn.received)
        if head_size > self.max_request_bytes:
            self._refuse(f"request head over {self.max_request_bytes} bytes")
            too_long = _error(431, f"the request line and headers are limited to {self.max_request_bytes} bytes")
            self._answer(conn, too_long, head_only=False)
        elif end is not None:
            method, path, answer = self._handle(bytes(conn.received[:end.start()]))
            self._answer(conn, answer, head_only=method == "HEAD")

    def _handle(self, head: bytes) -> tuple[str, str, Answer]:
        parts = head.split(b"\n", 1)[0].decode("latin-1").strip().split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return "", "", _error(400, "not an HTTP request line")
        method, target = parts[0], parts[1]
        if method not in ("GET", "HEAD"):
            return method, target, _error(405, "only GET and HEAD")
        path = target.split("?", 1)[0]
        try:
            return method, path, self.handler(method, path)
        except Exception as exc:  # one bad answer must not stop the port
            log.error("metrics port: the answer to %s failed: %s: %s", ascii(path)[:200], type(exc).__name__, exc)
            return method, path, (500, "text/plain; charset=utf-8", b"internal error\n")

    def _answer(self, conn: _Connection, answer: Answer, head_only: bool) -> None:
        status, content_type, body = answer
        head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\ncontent-type: {content_type}\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n")
        if status == 405:
            head += "allow: GET, HEAD\r\n"
        conn.outgoing = (head + "\r\n").encode("latin-1") + (b"" if head_only else body)
        conn.answered = True
        conn.received = bytearray()
        self._selector.modify(conn.sock, selectors.EVENT_WRITE, conn)
        self._send(conn)

    def _send(self, conn: _Connection) -> None:
        try:
            sent = conn.sock.send(conn.outgoing)
        except BlockingIOError:
            return
        except OSError:
            self._close(conn)
            return
        conn.outgoing = conn.outgoing[sent:]
        if conn.outgoing:
            return
        # All sent: say so, then read until the client closes (or briefly), so closing
        # with unread bytes in our buffer does not reset the answer away.
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.deadline = min(conn.deadline, time.monotonic() + _LINGER)
        self._selector.modify(conn.sock, selectors.EVENT_READ, conn)

    def _expire(self, now: float) -> None:
        for conn in [c for c in self._open if c.deadline <= now]:
            if not conn.answered:
                self._refuse(f"request not complete within {self.timeout:g} s")
                try:  # a courtesy, never waited for
                    conn.sock.send(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                except OSError:
                    pass
            self._close(conn)
        self._report(now)

    def _close(self, conn: _Connection) -> None:
        if conn.closed:
            return
        conn.closed = True
        self._open.pop(conn, None)
        try:
            self._selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    # -- reporting ---------------------------------------------------------------

    def _refuse(self, reason: str) -> None:
        self._refused[reason] = self._refused.get(reason, 0) + 1
        self._report(time.monotonic())

    def _report(self, now: float) -> None:
        """At most one log line a minute about refused clients: a flood must not flood the log."""
        if not self._refused or now < self._next_report:
            return
        reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(self._refused.items()))
        log.warning("metrics port %s:%d closed connections (%s)", self.address, self.port, reasons)
        self._refused.clear()
        self._next_report = now + _REPORT_EVERY


def _error(status: int, why: str) -> Answer:
    return status, "text/plain; charset=utf-8", f"{status} {REASONS[status]}: {why}\n".encode()


__all__ = ["Answer", "BoundedHTTPServer", "Handler"]
