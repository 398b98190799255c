"""The IRC bot: one thread owning the connection, fed through a bounded outbox.

The daemon never waits on IRC: ``send`` only queues. The bot's thread
connects (reconnecting with backoff), identifies, joins its channels and
sends what is queued at a steady rate, so a flood kick cannot happen and
Gerrit commenting never stalls. Lines produced while disconnected wait in
the outbox, up to a bound; the rest are counted and logged, never dropped
silently.
"""

from __future__ import annotations

import collections
import logging
import ssl
import threading
import time
from typing import IO, Any, Sequence

import irc.client
import irc.connection
from jaraco.stream import buffer  # the irc library's own line buffers

from .config import IRCSettings
from .irc_messages import line_budget, split_text
from .sanitize import strip_controls

log = logging.getLogger(__name__)


class PrintingNotifier:
    """``--dry-run``: each line it would send, as ``irc <#channel>: <text>``."""

    def __init__(self, out: IO[str], nick: str = "elastic-recheck") -> None:
        self.out = out
        self.nick = nick

    def send(self, channel: str, text: str) -> None:
        for line in split_text(text, line_budget(self.nick, channel)):
            self.out.write(f"irc {channel}: {line}\n")
        self.out.flush()


class IRCBot(threading.Thread):
    def __init__(self, settings: IRCSettings, channels: Sequence[str]) -> None:
        super().__init__(name="irc", daemon=True)
        # The irc library logs raw traffic at DEBUG, PASS and IDENTIFY included: secrets stay out of logs.
        logging.getLogger("irc.client").setLevel(logging.INFO)
        self.settings = settings
        self.channels = sorted(set(channels))
        self.reactor = irc.client.Reactor()
        self.connection = self.reactor.server()
        # Anyone in a channel can send bytes that are not UTF-8; the default buffer
        # raises on them out of the reactor. Lines that are not UTF-8 are read as latin-1.
        self.connection.buffer_class = buffer.LenientDecodingLineBuffer
        self.outbox: collections.deque[tuple[str, str]] = collections.deque()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.joined: set[str] = set()
        self.nick = settings.nick
        self.dropped = 0
        self.sent = 0
        self.errors = 0
        self._tokens = float(settings.burst)
        self._last = time.monotonic()
        for event, handler in (("welcome", self._on_welcome), ("join", self._on_join), ("kick", self._on_kick),
                               ("nicknameinuse", self._on_nick_taken), ("nickcollision", self._on_nick_taken),
                               ("erroneusnickname", self._on_nick_taken), ("disconnect", self._on_disconnect),
                               ("error", self._on_server_error)):
            self.reactor.add_global_handler(event, handler)

    # -- the daemon's side ------------------------------------------------------

    def send(self, channel: str, text: str) -> None:
        """Queue a message (split into lines that fit); never blocks."""
        lines = split_text(text, line_budget(self.settings.nick.ljust(30, "_"), channel))  # any nick we may take
        with self.lock:
            for line in lines:
                if len(self.outbox) >= self.settings.queue_max:
                    self.dropped += 1
                    log.warning("IRC outbox full (%d lines): dropped a line for %s (%d dropped so far)",
                                self.settings.queue_max, channel, self.dropped)
                    continue
                self.outbox.append((channel, line))

    def stop(self) -> None:
        self.stopping.set()

    @property
    def pending(self) -> int:
        with self.lock:
            return len(self.outbox)

    # -- the bot's thread -----------------------------------------------------

    def run(self) -> None:
        delay = 1.0
        while not self.stopping.is_set():
            try:
                self._connect()
            except Exception as exc:  # noqa: BLE001 - ServerConnectionError, OSError (ssl too), anything: retry
                self.errors += 1
                log.warning("IRC: cannot connect to %s:%d (%s); retrying in %.0fs",
                            self.settings.server, self.settings.port, exc, delay)
                self.stopping.wait(delay)
                delay = min(delay * 2, self.settings.reconnect_max)
                continue
            connected_at = time.monotonic()
            try:
                while not self.stopping.is_set() and self.connection.is_connected():
                    self.reactor.process_once(0.1)
                    self._drain()
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any line a server sends
                self.errors += 1
                log.error("IRC: unexpected %s from the connection to %s: %s; reconnecting", type(exc).__name__,
                          self.settings.server, strip_controls(str(exc))[:300])
                self._hang_up()
            if self.stopping.is_set():
                break
            if time.monotonic() - connected_at > 60:
                delay = 1.0  # a connection that held up: start the backoff over
            log.warning("IRC: disconnected from %s; reconnecting in %.0fs", self.settings.server, delay)
            self.stopping.wait(delay)
            delay = min(delay * 2, self.settings.reconnect_max)
        if self.connection.is_connected():
            self.connection.quit("elastic-recheck stopping")
            self.connection.disconnect()

    def _hang_up(self) -> None:
        try:
            self.connection.disconnect("elastic-recheck reconnecting")
        except Exception as exc:  # noqa: BLE001 - the socket is dropped either way
            log.warning("IRC: could not close the connection cleanly: %s", strip_controls(str(exc))[:300])
        self.joined.clear()

    def _connect(self) -> None:
        settings = self.settings
        factory = irc.connection.Factory()
        if settings.tls:
            context = ssl.create_default_context(cafile=settings.tls_ca or None)
            if not settings.tls_verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            factory = irc.connection.Factory(
                wrapper=lambda sock: context.wrap_socket(sock, server_hostname=settings.server))
        self.joined.clear()
        self.nick = settings.nick
        sasl = bool(settings.sasl_password)
        self.connection.connect(settings.server, settings.port, settings.nick,
                                password=(settings.sasl_password if sasl else settings.server_password) or None,
                                sasl_login=settings.nick if sasl else None,
                                username="recheck", ircname="elastic-recheck", connect_factory=factory)
        log.info("IRC: connected to %s:%d as %s", settings.server, settings.port, settings.nick)

    def _drain(self) -> None:
        now = time.monotonic()
        self._tokens = min(float(self.settings.burst), self._tokens + (now - self._last) * self.settings.rate)
        self._last = now
        while self._tokens >= 1:
            with self.lock:
                item = next((m for m in self.outbox if m[0] in self.joined), None)
                if item is None:
                    return
                self.outbox.remove(item)
            channel, line = item
            try:
                self.connection.privmsg(channel, line)
            except irc.client.MessageTooLong:  # would fail again after any reconnect: count it, go on
                self.dropped += 1
                log.warning("IRC: a line for %s is too long to send; dropped (%d dropped so far)",
                            channel, self.dropped)
                continue
            except (irc.client.ServerNotConnectedError, OSError) as exc:
                self.errors += 1
                log.warning("IRC: could not send to %s (%s); kept for after reconnecting", channel, exc)
                with self.lock:
                    self.outbox.appendleft(item)
                return
            self.sent += 1
            self._tokens -= 1

    # -- events -----------------------------------------------------------------

    def _on_welcome(self, connection: Any, event: Any) -> None:
        if self.settings.nickserv_password:
            connection.privmsg("NickServ", f"IDENTIFY {self.settings.nickserv_password}")
        for channel in self.channels:
            connection.join(channel)

    def _on_join(self, connection: Any, event: Any) -> None:
        if irc.client.NickMask(event.source).nick == connection.get_nickname():
            self.joined.add(event.target)
            log.info("IRC: joined %s", strip_controls(event.target))

    def _on_kick(self, connection: Any, event: Any) -> None:
        if event.arguments and event.arguments[0] == connection.get_nickname():
            self.joined.discard(event.target)
            log.warning("IRC: kicked from %s; joining again", strip_controls(event.target))
            connection.join(event.target)

    def _on_nick_taken(self, connection: Any, event: Any) -> None:
        taken = self.nick
        self.nick = (self.settings.nick + "_" * (1 + len(self.nick) - len(self.settings.nick)))[:30]
        log.warning("IRC: nick %s is taken; using %s", taken, self.nick)
        connection.nick(self.nick)

    def _on_disconnect(self, connection: Any, event: Any) -> None:
        self.joined.clear()

    def _on_server_error(self, connection: Any, event: Any) -> None:
        """``ERROR`` is the server closing the link ("Server going down"): a
        line written after it would go into a dead connection and be lost, so
        nothing more is sent until the bot has reconnected and joined again."""
        self.joined.clear()
        log.warning("IRC: the server is closing the connection: %s",
                    strip_controls(" ".join(event.arguments or [])))


__all__ = ["IRCBot", "PrintingNotifier"]
