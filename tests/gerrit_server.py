"""A real SSH server speaking Gerrit's ``stream-events`` and ``review`` commands
(paramiko's server API), on 127.0.0.1, for the real-time path's tests."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import paramiko


def gerrit_split(command: str) -> list[str]:
    """A command line split the way Gerrit's SSH daemon splits it
    (``CommandFactoryProvider.split``), which is close to but not a POSIX
    shell: only space and tab separate; single quotes make everything
    literal; a backslash outside them takes the next character as it is (in
    double quotes too); empty arguments are dropped."""
    argv: list[str] = []
    word: list[str] = []
    single = double = False
    chars = iter(command)
    for char in chars:
        if char in " \t" and not (single or double):
            if word:
                argv.append("".join(word))
                word = []
        elif char == '"' and not single:
            double = not double
        elif char == "'" and not double:
            single = not single
        elif char == "\\" and not single:
            word.append(next(chars, "\\"))
        else:
            word.append(char)
    if word:
        argv.append("".join(word))
    return argv


class _Handler(paramiko.ServerInterface):
    def __init__(self, server: "GerritServer") -> None:
        self.server = server

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        with self.server.lock:
            if self.server.refuse_logins > 0:
                self.server.refuse_logins -= 1
                return paramiko.AUTH_FAILED
        if username == self.server.user and key.get_base64() == self.server.client_key.get_base64():
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        threading.Thread(target=self.server._command, args=(channel, command.decode()), daemon=True).start()
        return True


class GerritServer:
    def __init__(self, directory: Path, user: str = "elastic-recheck", command_delay: float = 0.1) -> None:
        self.user = user
        self.command_delay = command_delay
        self.host_key = paramiko.ECDSAKey.generate()
        self.client_key = paramiko.ECDSAKey.generate()
        self.key_file = directory / "id_ecdsa"
        self.client_key.write_private_key_file(str(self.key_file))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.known_hosts = directory / "known_hosts"
        self.known_hosts.write_text(
            f"[127.0.0.1]:{self.port} {self.host_key.get_name()} {self.host_key.get_base64()}\n"
        )
        self.reviews: list[dict[str, Any]] = []
        self.streams: list[paramiko.Channel] = []
        self.backlog: list[str] = []
        self.fail_reviews = 0
        self.refuse_logins = 0  # refuse the next N logins, as a Gerrit starting up or overloaded does
        self.refuse_streams = 0  # answer the next N stream-events commands with an error, then exit 1
        self.stream_requests = 0
        self.vanish_after_reviews = 0  # record a review, then drop the connection before answering
        self.connections = 0  # TCP connections accepted: a client's attempts, whether or not they log in
        self.lock = threading.Lock()
        self.stopping = False
        self.transports: list[paramiko.Transport] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            # Each handshake in its own thread: start_server() blocks until key
            # exchange is done, and one connection cut off mid-handshake (the
            # tests drop connections at random moments) must neither hold up
            # nor end the accept loop.
            threading.Thread(target=self._negotiate, args=(conn,), daemon=True).start()

    def _negotiate(self, conn: socket.socket) -> None:
        try:
            transport = paramiko.Transport(conn)
            transport.add_server_key(self.host_key)
            with self.lock:
                self.transports.append(transport)
            transport.start_server(server=_Handler(self))
        except Exception:  # noqa: BLE001 - whatever a half-open connection raises, the server goes on
            conn.close()

    def _command(self, channel: paramiko.Channel, command: str) -> None:
        time.sleep(self.command_delay)  # let the transport acknowledge the exec request first
        argv = gerrit_split(command)
        if argv[:2] == ["gerrit", "stream-events"]:
            with self.lock:
                self.stream_requests += 1
                refuse = self.refuse_streams > 0
                self.refuse_streams -= refuse
            if refuse:  # as Gerrit answers an account without the streamEvents capability
                channel.sendall_stderr(b"fatal: elastic-recheck does not have \"Stream Events\" capability.\n")
                channel.send_exit_status(1)
                channel.close()
                return
            with self.lock:
                self.streams.append(channel)
                backlog, self.backlog = self.backlog, []
            for line in backlog:
                channel.sendall(line.encode() + b"\n")
            return  # stays open until the test drops it
        if argv[:2] == ["gerrit", "review"]:
            with self.lock:
                if self.fail_reviews:
                    self.fail_reviews -= 1
                    channel.sendall_stderr(b"fatal: internal server error\n")
                    channel.send_exit_status(1)
                    channel.close()
                    return
                options = dict(zip(argv[3::2], argv[4::2]))
                change, patchset = argv[2].split(",")
                self.reviews.append({"change": int(change), "patchset": int(patchset), "argv": argv,
                                     "project": options.get("--project", ""), "message": options.get("--message")})
                vanish = self.vanish_after_reviews > 0
                self.vanish_after_reviews -= vanish
            if vanish:
                channel.get_transport().close()
                return
            channel.send_exit_status(0)
            channel.close()
            return
        channel.sendall_stderr(f"fatal: unknown command {command}\n".encode())
        channel.send_exit_status(127)
        channel.close()

    def push(self, event: Any) -> None:
        """Send an event to every connected stream (or keep it for the next one)."""
        line = event if isinstance(event, str) else json.dumps(event)
        with self.lock:
            live = [c for c in self.streams if not c.closed]
            if not live:
                self.backlog.append(line)
            for channel in live:
                channel.sendall(line.encode() + b"\n")

    def wait_for_stream(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if any(not c.closed for c in self.streams):
                    return
            time.sleep(0.05)
        raise AssertionError("no client is streaming events")

    def drop_streams(self) -> None:
        """The network drops: close every stream-events connection."""
        with self.lock:
            streams, self.streams = self.streams, []
        for channel in streams:
            channel.get_transport().close()

    def drop_all(self) -> None:
        """The network drops: close every SSH connection, reviews' included."""
        with self.lock:
            self.streams = []
            transports, self.transports = self.transports, []
        for transport in transports:
            transport.close()

    def wait_for_reviews(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.reviews) >= count:
                    return list(self.reviews)
            time.sleep(0.05)
        raise AssertionError(f"expected {count} reviews, got {self.reviews}")

    def close(self) -> None:
        self.stopping = True
        self.sock.close()
        with self.lock:
            transports = list(self.transports)
        for transport in transports:
            transport.close()
