"""A real IRC server (Debian's ngircd) on a loopback port, and a plain-socket
client that sits in a channel and records what arrives."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class IRCServer:
    def __init__(self, directory: Path, password: str = "", tls: bool = False) -> None:
        binary = shutil.which("ngircd") or "/usr/sbin/ngircd"
        assert Path(binary).exists(), "ngircd is missing: bin/run-tests installs it from bindep.txt"
        self.binary = binary
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.cert = directory / "irc-cert.pem"
        tls_section = ""
        if tls:
            key = directory / "irc-key.pem"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                            "-out", str(self.cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                            "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
            key.chmod(0o644)  # ngircd reads it after dropping root
            tls_section = f"[SSL]\nCertFile = {self.cert}\nKeyFile = {key}\nPorts = {self.tls_port}\n"
        self.config = directory / "ngircd.conf"
        self.log = directory / "ngircd.log"
        self.config.write_text(f"""[Global]
Name = irc.test.local
Info = elastic-recheck test server
AdminInfo1 = test
AdminInfo2 = test
AdminEMail = test@example.org
Listen = 127.0.0.1
Ports = {self.port}
MotdPhrase = test
{f"Password = {password}" if password else ""}
[Limits]
MaxNickLength = 30
# No penalty time: ngircd delays each client's commands by up to 2 s while it
# registers, joins and changes nick, which costs the tests seconds and checks
# nothing of ours (the bot's own send rate is its own setting, tested as such).
MaxPenaltyTime = 0
[Options]
DNS = no
Ident = no
PAM = no
{tls_section}""")
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        with open(self.log, "a") as log:
            self.process = subprocess.Popen([self.binary, "-n", "-f", str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"ngircd did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)

    def restart(self) -> None:
        self.stop()
        self.start()


class Listener:
    """A second client in the channels, recording every PRIVMSG it receives."""

    def __init__(self, port: int, nick: str, channels: list[str], timeout: float = 20, password: str = "") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.nick = nick
        self.messages: list[tuple[str, str, str]] = []  # (sender nick, channel, text)
        self.raw: list[bytes] = []
        self.joined: set[str] = set()
        self.closed = threading.Event()
        self._buffer = b""
        if password:
            self._send(f"PASS {password}")
        self._send(f"NICK {nick}")
        self._send(f"USER {nick} 0 * :listener")
        for channel in channels:
            self._send(f"JOIN {channel}")
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        self.wait_for(lambda: self.joined >= set(channels), timeout)

    def _send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def _read(self) -> None:
        self.sock.settimeout(None)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self._buffer += chunk
                while b"\r\n" in self._buffer:
                    line, self._buffer = self._buffer.split(b"\r\n", 1)
                    self._handle(line)
        except OSError:
            pass
        self.closed.set()

    def _handle(self, line: bytes) -> None:
        self.raw.append(line)
        text = line.decode("utf-8", "replace")
        if text.startswith("PING"):
            self._send("PONG" + text[4:])
            return
        if not text.startswith(":"):
            return
        prefix, _, rest = text[1:].partition(" ")
        command, _, params = rest.partition(" ")
        sender = prefix.split("!", 1)[0]
        if command == "JOIN" and sender == self.nick:
            self.joined.add(params.lstrip(":"))
        elif command == "PRIVMSG":
            target, _, message = params.partition(" :")
            self.messages.append((sender, target, message))

    def wait_for(self, condition, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; received: {self.messages}")
            time.sleep(0.05)

    def texts(self, channel: str) -> list[str]:
        return [text for _, target, text in self.messages if target == channel]

    def close(self) -> None:
        try:
            self._send("QUIT :done")
        except OSError:
            pass
        self.sock.close()
