"""Gerrit over SSH (``gerritlib``): the event stream in, reviews out.

What is taken from gerritlib is its connection (``GerritConnection``:
paramiko set up with keepalives and connection attempts) and the ``Gerrit``
object that holds it; its stream and review helpers are not used, for
reasons that matter to a daemon fed by hostile input:

* its connection accepts unknown host keys with a warning; ours rejects any
  host key that is not in the configured known_hosts file;
* its watcher (``GerritWatcher``) reads each event with an unbounded
  ``readline`` (one huge line is held whole in memory), drops a line it
  cannot parse with a debug message nobody sees, and retries at a fixed
  delay; ``EventStream`` caps an event at ``MAX_EVENT_BYTES``, reports a bad
  one as an error naming it, and backs off exponentially;
* its ``review()`` builds the command by pasting the message into double
  quotes (a message with a quote or ``$(...)`` from a log line is run by the
  remote shell) and cannot tell "Gerrit refused" from "the connection dropped
  mid-command"; ``SSHReviewer`` quotes every argument and never resends a
  review whose outcome is unknown, so a comment is never doubled.
"""

from __future__ import annotations

import logging
import os
import queue
import shlex
import threading
import time
from typing import Any

import paramiko
from gerritlib import gerrit as gerritlib

from .config import GerritSettings
from .errors import ConfigError, EventError, ReportError
from .gerrit_events import MAX_EVENT_BYTES, decode_event
from .sanitize import exception_line

log = logging.getLogger(__name__)


class VerifiedConnection(gerritlib.GerritConnection):
    """A GerritConnection that verifies the host key against known_hosts."""

    def __init__(self, settings: GerritSettings, connection_attempts: int = 1) -> None:
        if not settings.host:
            raise ConfigError("gerrit.host is not set (config file or ER_GERRIT_HOST)")
        super().__init__(
            settings.user, settings.host, settings.port, os.path.expanduser(settings.key_file) or None,
            keep_alive=30, connection_attempts=connection_attempts, retry_delay=0,
        )
        self.known_hosts = os.path.expanduser(settings.known_hosts)

    def check_files(self) -> None:
        """The files a connection needs, checked once at start: a missing
        known_hosts or key file is a configuration error, not an outage."""
        try:
            keys = paramiko.HostKeys(self.known_hosts)
        except OSError as exc:
            raise ConfigError(f"{self.known_hosts}: cannot read known_hosts: {exc.strerror}") from None
        except Exception as exc:  # noqa: BLE001 - paramiko's parser raises several kinds
            raise ConfigError(f"{self.known_hosts}: not a known_hosts file: {exc}") from None
        host = self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"
        if keys.lookup(host) is None and keys.lookup(self.hostname) is None:
            raise ConfigError(f"{self.known_hosts}: no host key for {host}: every connection would be refused "
                              f"(add it, e.g. ssh-keyscan -p {self.port} {self.hostname})")
        if self.keyfile:
            try:
                with open(self.keyfile, "rb") as handle:
                    handle.read(1)
            except OSError as exc:
                raise ConfigError(f"{self.keyfile}: cannot read the SSH key (gerrit.key_file): "
                                  f"{exc.strerror}") from None

    def connect(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        try:
            client.load_host_keys(self.known_hosts)
        except OSError as exc:
            raise ConfigError(f"{self.known_hosts}: cannot read known_hosts: {exc.strerror}") from None
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(
                self.hostname, port=self.port, username=self.username, key_filename=self.keyfile,
                timeout=30, banner_timeout=30, auth_timeout=30, allow_agent=False, look_for_keys=False,
            )
        except Exception:
            client.close()
            raise
        if self.keep_alive:
            client.get_transport().set_keepalive(self.keep_alive)
        return client


class EventStream(threading.Thread):
    """``gerrit stream-events``, reconnecting with exponential backoff, onto a queue.

    The thread never dies while the daemon runs: a line it cannot read is put
    on the queue as an EventError (the daemon logs and counts it), and any
    other failure, even one nobody foresaw, is logged and followed by a
    reconnect. Configuration that cannot work at all is caught before the
    thread starts (:meth:`preflight`), so ``watch`` exits with one clear line.
    """

    def __init__(
        self, settings: GerritSettings, events: "queue.Queue[Any]", backoff: float = 1.0, backoff_max: float = 60.0
    ) -> None:
        super().__init__(name="gerrit-stream", daemon=True)
        self.connection = VerifiedConnection(settings)
        self.events = events
        self.backoff = min(backoff, backoff_max)  # the first retry too waits at most the cap (watch.retry_max)
        self.backoff_max = backoff_max
        self.stopping = threading.Event()
        self.connected = threading.Event()
        self.reconnects = 0

    def preflight(self) -> None:
        """Raise ConfigError for what no reconnect can mend: a known_hosts file
        or a key file that cannot be read, or a known_hosts without the host."""
        self.connection.check_files()

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        delay = self.backoff
        while not self.stopping.is_set():
            try:
                client = self.connection.connect()
            except Exception as exc:  # noqa: BLE001 - wrong host, refused login, files gone: retry, never die
                log.warning("gerrit: cannot connect to %s:%s (%s); retrying in %.0fs",
                            self.connection.hostname, self.connection.port, exception_line(exc), delay)
                self.stopping.wait(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            try:
                if self._consume(client):
                    delay = self.backoff  # it streamed: the next break starts the backoff afresh
            except Exception as exc:  # noqa: BLE001 - a broken stream, or a bug: log it, reconnect
                log.warning("gerrit: event stream broke (%s); reconnecting", exception_line(exc))
            finally:
                self.connected.clear()
                try:
                    client.close()
                except Exception:  # noqa: BLE001 - closing what already broke
                    pass
            if not self.stopping.is_set():
                self.reconnects += 1
                self.stopping.wait(delay)
                delay = min(delay * 2, self.backoff_max)

    def _consume(self, client: paramiko.SSHClient) -> bool:
        """Put events on the queue until the stream ends; whether any came.
        A stream Gerrit ends at once (an account without the stream-events
        capability) is not a healthy one: its reason is logged and the
        reconnects back off as after a failed login."""
        _, stdout, _ = client.exec_command("gerrit stream-events")
        stdout.channel.settimeout(1.0)
        self.connected.set()
        log.info("gerrit: streaming events from %s:%s", self.connection.hostname, self.connection.port)
        buffer = b""
        received = False
        discarding = False  # inside a line too long to keep: drop it up to its newline
        while not self.stopping.is_set():
            try:
                chunk = stdout.channel.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                if "timed out" in str(exc):
                    continue
                raise
            if not chunk:
                log.warning("gerrit: the event stream ended%s", _why_ended(stdout.channel))
                return received
            received = True
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if discarding:
                    discarding = False
                    continue
                if line.strip():
                    self.events.put(decode_event(line, "gerrit stream-events"))
            if len(buffer) > MAX_EVENT_BYTES:
                self.events.put(EventError(f"gerrit stream-events: a line of more than {MAX_EVENT_BYTES} bytes "
                                           "skipped"))
                buffer, discarding = b"", True
        return received


def _why_ended(channel: paramiko.Channel) -> str:
    """What Gerrit said when it ended the stream (exit status, its error text)."""
    error = b""
    while channel.recv_stderr_ready() and len(error) < 1000:
        error += channel.recv_stderr(1000)
    text = " ".join(error.decode("utf-8", "replace").split())[:300]
    status = channel.exit_status if channel.exit_status_ready() else None
    parts = [f"exit {status}" if status is not None else "", text]
    return f" ({'; '.join(p for p in parts if p)})" if any(parts) else ""


def quote_argument(argument: str) -> str:
    """One argument of Gerrit's SSH command line, in POSIX shell single quotes.

    Gerrit splits the command line itself (``CommandFactoryProvider.split``):
    spaces and tabs separate arguments; inside single quotes every character,
    backslash and newline included, is literal; a single quote is written as
    ``'"'"'`` (close, a double-quoted quote, reopen), which Gerrit reads the same
    way a shell does. So ``shlex.quote`` output means one and the same argument
    to Gerrit and to a shell. Gerrit drops empty arguments, so an empty one
    cannot be passed at all: the caller must leave such an option out.
    """
    return shlex.quote(argument)


def review_command(project: str, change: int, patchset: int, message: str) -> str:
    """``gerrit review`` with every argument quoted: a project name with spaces
    or ``;`` and any message text arrive as one argument each."""
    words = ["gerrit", "review", f"{int(change)},{int(patchset)}"]
    if project:  # legacy events may lack the project; Gerrit finds the change without it
        words += ["--project", project]
    words += ["--message", message]
    return " ".join(quote_argument(word) for word in words)


class SSHReviewer:
    """Posts reviews with ``gerrit review`` over a verified SSH connection."""

    def __init__(self, settings: GerritSettings) -> None:
        self.gerrit = gerritlib.Gerrit(settings.host, settings.user, settings.port, settings.key_file or None)
        self.gerrit.connection = VerifiedConnection(settings)

    def review(self, project: str, change: int, patchset: int, message: str) -> None:
        """Post one review. Raises ReportError with ``retry`` only when the
        command certainly did not take effect, so a comment is never doubled."""
        what = f"gerrit review {change},{patchset}"
        if not message:  # Gerrit drops an empty argument: `--message` would take none, and fail the same every time
            raise ReportError(f"{what}: empty review message; nothing posted", retry=False)
        client = self.gerrit.client
        transport = client.get_transport() if client is not None else None
        if transport is None or not transport.is_active():  # never connected, or the connection dropped:
            self._forget_connection()                       # nothing was sent on it, so reconnect
            try:
                self.gerrit.client = client = self.gerrit.connection.connect()
            except (OSError, EOFError, paramiko.SSHException) as exc:
                raise ReportError(f"{what}: cannot connect: {exc}") from None
            transport = client.get_transport()
        # Text Gerrit's UTF-8 cannot carry (a lone surrogate from an event) becomes "?" rather than failing the post.
        command = review_command(project, change, patchset, message).encode("utf-8", "replace")
        try:
            channel = transport.open_session(timeout=30)
        except (OSError, EOFError, paramiko.SSHException) as exc:  # no command was sent
            self._forget_connection()
            raise ReportError(f"{what}: cannot open an SSH channel: {exc}") from None
        try:
            channel.exec_command(command)
            channel.makefile("rb").read()
            status = channel.recv_exit_status()
            error = channel.makefile_stderr("rb").read().decode("utf-8", "replace").strip()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            status, error = -1, str(exc)
        finally:
            channel.close()
        if status == 0:
            return
        if status > 0:  # Gerrit answered and refused: nothing was posted
            raise ReportError(f"{what}: Gerrit refused the review (exit {status}: {error[:200]})", answered=True)
        # The connection went away mid-command: it may or may not have reached Gerrit. Never send it twice.
        self._forget_connection()
        raise ReportError(f"{what}: outcome unknown (connection lost: {error[:200] or 'no exit status'})",
                          retry=False)

    def _forget_connection(self) -> None:
        if self.gerrit.client is not None:
            self.gerrit.client.close()
        self.gerrit.client = None


def wait_connected(stream: EventStream, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stream.connected.wait(0.1):
            return True
    return False
