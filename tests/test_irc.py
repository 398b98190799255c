"""IRC notifications: what is said to which channel, and a bot that delivers
it to a real IRC server (ngircd) through restarts, nick collisions, long
lines and injection attempts."""

from __future__ import annotations

import datetime as dt
import time
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from elastic_recheck.config import IRCSettings
from elastic_recheck.errors import ConfigError
from elastic_recheck.gerrit_events import FailedJob, FailureReport
from elastic_recheck.irc_bot import IRCBot
from elastic_recheck.irc_messages import (ChannelRule, announcements, line_budget, load_channels, route,
                                          split_text)
from elastic_recheck.reporting import JobResult, Review

from .conftest import KEEP_ALL
from .irc_server import IRCServer, Listener

ROOT = Path(__file__).resolve().parents[1]
BUG = "https://bugs.launchpad.net/bugs/%s"


def review(project: str = "openstack/nova", jobs: tuple = (("tempest-full", ("2000001",), False),),
           url: str = "https://review.example.org/864201", pipeline: str = "gate") -> Review:
    report = FailureReport(864201, 3, project, "master", url, pipeline, dt.datetime.now(dt.timezone.utc))
    return Review(report, [JobResult(FailedJob(name, "", pipeline), "u" * 32, bugs, timed_out)
                           for name, bugs, timed_out in jobs])


# -- messages and routing ------------------------------------------------------------


def test_known_bugs_unrecognized_jobs_and_timeouts_read_as_specified():
    mixed = review(jobs=(("tempest-full", ("2000001", "2000004"), False), ("grenade", (), False),
                         ("nova-next", (), True)))
    positive, negative, late = announcements(mixed, BUG, {}, 1200)
    assert positive.text == ("openstack/nova change https://review.example.org/864201 failed because of: "
                             "tempest-full: https://bugs.launchpad.net/bugs/2000001, "
                             "tempest-full: https://bugs.launchpad.net/bugs/2000004")
    assert negative.text == ("openstack/nova change https://review.example.org/864201 failed grenade in the gate "
                             "pipeline with an unrecognized error")
    assert (positive.kind, negative.kind, late.kind) == ("positive", "negative", "negative")
    assert "logs of nova-next (gate pipeline) were not indexed within 20 minutes" in late.text


def test_channels_hear_the_kinds_and_projects_they_asked_for():
    rules = [ChannelRule("#qa", None, frozenset({"positive", "negative"})),
             ChannelRule("#nova", frozenset({"openstack/nova"}), frozenset({"positive"})),
             ChannelRule("#oslo", frozenset({"openstack/oslo.messaging"}), frozenset({"positive", "negative"}))]
    found = announcements(review(), BUG, {"2000001": ("openstack/oslo.messaging",)}, 1200)
    assert [c for c, _ in route(found, rules)] == ["#qa", "#nova", "#oslo"]  # the bug's projects count too
    unknown = announcements(review(jobs=(("grenade", (), False),)), BUG, {}, 1200)
    assert [c for c, _ in route(unknown, rules)] == ["#qa"]


def test_channel_config_errors_name_the_file_and_channel(tmp_path):
    path = tmp_path / "channels.yaml"
    path.write_text('"#qa": {projects: all, events: [positive, sideways]}\n')
    with pytest.raises(ConfigError, match=r"channels.yaml: #qa: events must be"):
        load_channels(path)
    path.write_text('"qa": {projects: all}\n')
    with pytest.raises(ConfigError, match="not a channel name"):
        load_channels(path)
    path.write_text('"#nova": {projects: [openstack/nova], events: [positive]}\n"#qa": {}\n')
    assert load_channels(path) == [ChannelRule("#nova", frozenset({"openstack/nova"}), frozenset({"positive"})),
                                   ChannelRule("#qa", None, frozenset({"positive", "negative"}))]


def test_long_lines_split_on_words_within_512_bytes_and_never_inside_a_character():
    budget = line_budget("elastic-recheck", "#openstack-qa")
    text = " ".join(["échec-ĳ-ü"] * 200) + " " + "x" * 1000 + " fin"
    lines = split_text(text, budget)
    assert all(len(line.encode()) <= budget for line in lines)
    assert " ".join(lines).replace(" ", "") == text.replace(" ", "")  # nothing lost
    assert all(not line.startswith(" ") and not line.endswith(" ") for line in lines)
    assert budget + len(":elastic-recheck!uuuuuuuuuu@" + "h" * 63 + " PRIVMSG #openstack-qa :\r\n") == 512
    cut = split_text("é" * 400, 101)
    assert all(len(line.encode()) <= 101 for line in cut) and "".join(cut) == "é" * 400


def test_control_characters_are_removed_from_everything_interpolated():
    hostile = review(project="openstack/nova\r\nQUIT :pwned", url="https://x/1\x01ACTION\x01",
                     jobs=(("tempest\nPRIVMSG #ops :spam", ("2000001",), False),))
    [message] = announcements(hostile, BUG, {}, 1200)
    assert not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in message.text)
    assert "QUIT :pwned" in message.text  # kept as harmless text on the same line


# -- a bot on a real server -----------------------------------------------------------


@pytest.fixture
def ircd(tmp_path):
    server = IRCServer(tmp_path)
    yield server
    server.stop()


def _bot(ircd: IRCServer, **overrides) -> IRCBot:
    settings = IRCSettings(server="127.0.0.1", port=ircd.port, rate=20, burst=20, **overrides)
    bot = IRCBot(settings, ["#qa", "#nova"])
    bot.start()
    return bot


def test_lines_arrive_whole_split_and_uninjected(ircd):
    listener = Listener(ircd.port, "watcher", ["#qa", "#nova"])
    bot = _bot(ircd)
    try:
        [(channel, text)] = route(announcements(review(), BUG, {}, 1200),
                                  [ChannelRule("#nova", None, frozenset({"positive"}))])
        bot.send(channel, text)
        listener.wait_for(lambda: listener.texts("#nova"))
        assert listener.texts("#nova") == [text]
        long = "word " * 300 + "end"
        bot.send("#qa", long)
        hostile = announcements(review(jobs=(("job\r\nQUIT :bye", (), False),), url="https://x/\x01VERSION\x01"),
                                BUG, {}, 1200)[0].text
        bot.send("#qa", hostile)
        listener.wait_for(lambda: any("QUIT :bye" in t for t in listener.texts("#qa")))
        received = listener.texts("#qa")
        assert " ".join(received[:-1]) == long.strip() and len(received) > 2
        assert all(len(raw) + 2 <= 512 for raw in listener.raw)
        assert received[-1] == hostile and bot.connection.is_connected()  # the bot did not quit
    finally:
        bot.stop()
        bot.join(10)
        listener.close()


def test_a_taken_nick_is_worked_around(ircd):
    squatter = Listener(ircd.port, "elastic-recheck", ["#qa"])
    bot = _bot(ircd)
    try:
        bot.send("#qa", "still delivered")
        squatter.wait_for(lambda: squatter.messages)
        assert squatter.messages[0][0] == "elastic-recheck_" and squatter.messages[0][2] == "still delivered"
    finally:
        bot.stop()
        bot.join(10)
        squatter.close()


def test_lines_queued_while_the_server_restarts_arrive_after_reconnecting_up_to_a_bound(ircd):
    bot = _bot(ircd, queue_max=3, reconnect_max=1)
    listener = Listener(ircd.port, "watcher", ["#qa"])
    try:
        bot.send("#qa", "before")
        listener.wait_for(lambda: listener.texts("#qa") == ["before"])
        listener.close()
        ircd.stop()
        for n in range(5):
            bot.send("#qa", f"during {n}")
        assert bot.dropped == 2  # the bound: the rest is counted (and logged)
        ircd.start()
        listener = Listener(ircd.port, "watcher", ["#qa"])
        listener.wait_for(lambda: len(listener.texts("#qa")) == 3, timeout=60)
        assert listener.texts("#qa") == ["during 0", "during 1", "during 2"]
    finally:
        bot.stop()
        bot.join(10)
        listener.close()


def test_watch_announces_on_irc_while_commenting_on_gerrit(ircd, tmp_path):
    """The real daemon: --dry-run prints the IRC lines; otherwise they reach the channels."""
    from elastic_recheck.search.embedded import EmbeddedBackend

    from .gerrit_server import GerritServer
    from .test_watch import GRENADE, TEMPEST, TOX, ZUUL, _ingest, failure

    backend = EmbeddedBackend(tmp_path / "data" / "index")
    for build in (TEMPEST, TOX):
        _ingest(backend, build)
    channels = tmp_path / "channels.yaml"
    channels.write_text('"#qa": {projects: all, events: [positive, negative]}\n'
                        '"#nova": {projects: [openstack/nova], events: [positive]}\n')
    events = tmp_path / "events.json"
    events.write_text(json.dumps([
        failure(864201, 3, [("tempest-full", ZUUL + TEMPEST, "FAILURE")]),
        failure(864455, 2, [("openstack-tox-py312", ZUUL + TOX, "FAILURE")], project="openstack/cinder"),
        failure(864377, 1, [("grenade", ZUUL + GRENADE, "FAILURE")], pipeline="check"),  # not announced
    ]))
    gerrit = GerritServer(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({
        "irc": {"server": "127.0.0.1", "port": ircd.port, "channels": str(channels), "rate": 10},
        "gerrit": {"host": "127.0.0.1", "port": gerrit.port, "user": gerrit.user, "key_file": str(gerrit.key_file),
                   "known_hosts": str(gerrit.known_hosts)},
        "watch": {"log_timeout": 1},
    }))
    listener = Listener(ircd.port, "watcher", ["#qa", "#nova"])
    env = {**os.environ, "ER_DATA_DIR": str(tmp_path / "data"), "ER_INGEST_FETCH": "false", **KEEP_ALL}
    command = [str(Path(sys.executable).parent / "elastic-recheck"), "watch", "--config", str(config),
               "--queries", str(ROOT / "queries"), "--events", str(events)]
    try:
        dry = subprocess.run([*command, "--dry-run"], capture_output=True, text=True, env=env, timeout=120)
        assert dry.returncode == 0, dry.stderr
        printed = [line for line in dry.stdout.splitlines() if line.startswith("irc ")]
        assert printed[0].startswith("irc #qa: openstack/nova change https://review.example.org/864201 failed "
                                     "because of: tempest-full: https://bugs.launchpad.net/bugs/2000001")
        assert [line.split(":")[0] for line in printed] == ["irc #qa", "irc #nova", "irc #qa"]
        assert printed[2] == ("irc #qa: openstack/cinder change https://review.example.org/864455 failed "
                              "openstack-tox-py312 in the gate pipeline with an unrecognized error")
        assert listener.messages == [] and gerrit.reviews == []  # a dry run sends nothing
        (tmp_path / "data" / "state.sqlite3").unlink()
        real = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        assert real.returncode == 0, real.stderr
        listener.wait_for(lambda: len(listener.messages) == 3)
        assert [f"irc {channel}: {text}" for _, channel, text in listener.messages] == printed
        assert [r["change"] for r in gerrit.reviews] == [864201]  # grenade's logs never came: no comment
    finally:
        listener.close()
        gerrit.close()


def test_gerrit_comments_go_on_while_irc_is_down(ircd, tmp_path):
    from elastic_recheck.search.embedded import EmbeddedBackend

    from .gerrit_server import GerritServer
    from .test_watch import TEMPEST, ZUUL, _ingest, failure

    _ingest(EmbeddedBackend(tmp_path / "data" / "index"), TEMPEST)
    channels = tmp_path / "channels.yaml"
    channels.write_text('"#qa": {projects: all}\n')
    events = tmp_path / "events.json"
    events.write_text(json.dumps([failure(864201, 3, [("tempest-full", ZUUL + TEMPEST, "FAILURE")])]))
    ircd.stop()
    gerrit = GerritServer(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({
        # exit_wait: the line queued for the absent server is given a short moment, then counted
        "irc": {"server": "127.0.0.1", "port": ircd.port, "channels": str(channels), "exit_wait": 0.5},
        "gerrit": {"host": "127.0.0.1", "port": gerrit.port, "user": gerrit.user, "key_file": str(gerrit.key_file),
                   "known_hosts": str(gerrit.known_hosts)},
    }))
    try:
        result = subprocess.run(
            [str(Path(sys.executable).parent / "elastic-recheck"), "watch", "--config", str(config),
             "--queries", str(ROOT / "queries"), "--events", str(events)],
            capture_output=True, text=True, env={**os.environ, "ER_DATA_DIR": str(tmp_path / "data"), "ER_INGEST_FETCH": "false", **KEEP_ALL}, timeout=120)
    finally:
        gerrit.close()
    assert result.returncode == 0, result.stderr
    assert [r["change"] for r in gerrit.reviews] == [864201]
    assert "IRC: cannot connect" in result.stderr
    assert "IRC: 1 queued lines not sent at exit" in result.stderr  # counted and logged, not silently lost


def test_tls_with_a_server_password_and_a_steady_send_rate(tmp_path):
    ircd = IRCServer(tmp_path, password="s3cret", tls=True)
    listener = Listener(ircd.port, "watcher", ["#qa"], password="s3cret")
    untrusted = IRCBot(IRCSettings(server="127.0.0.1", port=ircd.tls_port, tls=True, nick="untrusting",
                                   server_password="s3cret"), ["#qa"])
    bot = IRCBot(IRCSettings(server="127.0.0.1", port=ircd.tls_port, tls=True, tls_ca=str(ircd.cert),
                             server_password="s3cret", rate=4, burst=2), ["#qa"])
    untrusted.start()
    bot.start()
    try:
        for n in range(8):
            bot.send("#qa", f"line {n}")
        listener.wait_for(lambda: len(listener.texts("#qa")) == 8)
        listener.messages.clear()
        start = time.monotonic()
        for n in range(6):
            bot.send("#qa", f"paced {n}")
        listener.wait_for(lambda: len(listener.texts("#qa")) == 6)
        assert time.monotonic() - start >= (6 - 2) / 4 - 0.1  # a burst of 2, then 4 lines a second
        assert untrusted.errors >= 1 and not untrusted.joined  # an unverifiable certificate is refused
    finally:
        for b in (bot, untrusted):
            b.stop()
            b.join(10)
        listener.close()
        ircd.stop()


def test_the_bot_identifies_to_nickserv_and_never_logs_the_password(ircd, caplog):
    nickserv = Listener(ircd.port, "NickServ", [])  # ngircd has no services: a client plays NickServ
    caplog.set_level("DEBUG")
    bot = _bot(ircd, nickserv_password="hunter2-secret")
    try:
        nickserv.wait_for(lambda: nickserv.messages)
        assert nickserv.messages[0] == ("elastic-recheck", "NickServ", "IDENTIFY hunter2-secret")
    finally:
        bot.stop()
        bot.join(10)
        nickserv.close()
    assert "hunter2-secret" not in caplog.text and "hunter2-secret" not in repr(bot.settings)


def test_a_line_the_library_refuses_as_too_long_is_dropped_not_retried_for_ever(ircd):
    listener = Listener(ircd.port, "watcher", ["#qa"])
    bot = _bot(ircd)
    try:
        with bot.lock:  # past send()'s splitting, as a bug there would
            bot.outbox.append(("#qa", "x" * 600))
        bot.send("#qa", "the next line")
        listener.wait_for(lambda: listener.texts("#qa"))
        assert listener.texts("#qa") == ["the next line"] and bot.dropped == 1
    finally:
        bot.stop()
        bot.join(10)
        listener.close()


def test_a_line_that_is_not_utf8_from_someone_in_the_channel_does_not_stop_the_bot(ircd):
    """Someone's client speaks latin-1: the bot reads the line as latin-1 and
    goes on delivering (it used to die on the UnicodeDecodeError)."""
    listener = Listener(ircd.port, "watcher", ["#qa"])
    bob = Listener(ircd.port, "bob", ["#qa"])
    bot = _bot(ircd)
    try:
        bot.send("#qa", "before")
        listener.wait_for(lambda: listener.texts("#qa") == ["before"])
        bob.sock.sendall(b"PRIVMSG #qa :ol\xe9 caf\xe9\r\nPRIVMSG #qa :marker\r\n")
        listener.wait_for(lambda: "marker" in listener.texts("#qa"))
        assert listener.raw[-1].endswith(b"marker") and any(b"caf\xe9" in raw for raw in listener.raw)  # relayed as is
        time.sleep(0.5)  # the bot has read both lines by now
        bot.send("#qa", "after")
        listener.wait_for(lambda: "after" in listener.texts("#qa"))
        assert bot.is_alive() and bot.errors == 0
    finally:
        bot.stop()
        bot.join(10)
        bob.close()
        listener.close()


class _ChokingIRCServer:
    """A plain-socket IRC server on 127.0.0.1 whose first connection gets a
    malformed ISUPPORT line (``PREFIX=garbage``), on which the irc library
    raises ValueError; later connections are served normally."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.privmsgs: list[str] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(client, self.connections == 1), daemon=True).start()

    def _serve(self, client: socket.socket, choke: bool) -> None:
        nick = "x"
        with client, client.makefile("rb") as lines:
            for raw in lines:
                line = raw.decode().strip()
                if line.startswith("NICK "):
                    nick = line.split()[1]
                elif line.startswith("USER "):
                    client.sendall(f":srv 001 {nick} :Welcome\r\n".encode())
                    if choke:
                        client.sendall(f":srv 005 {nick} PREFIX=garbage :are supported\r\n".encode())
                elif line.startswith("JOIN "):
                    client.sendall(f":{nick}!u@h JOIN {line.split()[1]}\r\n".encode())
                elif line.startswith("PRIVMSG "):
                    self.privmsgs.append(line)

    def close(self) -> None:
        self.sock.close()


def test_a_server_line_the_irc_library_chokes_on_costs_a_reconnect_not_the_bot(caplog):
    server = _ChokingIRCServer()
    bot = IRCBot(IRCSettings(server="127.0.0.1", port=server.port, rate=20, burst=20), ["#qa"])
    bot.start()
    try:
        bot.send("#qa", "delivered after the reconnect")
        deadline = time.monotonic() + 20
        while not server.privmsgs and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.privmsgs == ["PRIVMSG #qa :delivered after the reconnect"]
        assert server.connections == 2 and bot.errors == 1 and bot.is_alive()
    finally:
        bot.stop()
        bot.join(10)
        server.close()
    [logged] = [r.getMessage() for r in caplog.records if "unexpected" in r.getMessage()]
    assert logged.startswith("IRC: unexpected ValueError from the connection to 127.0.0.1: ") and "\n" not in logged
