"""Secrets stay secret and text from outside cannot inject: a redirected
Gerrit REST post is refused and the credentials stay home; credentials in a
URL are refused at config load; every `gerrit review` argument arrives as
one argument; a forged log line stays on its line; the data dir is private.
Real HTTP and SSH servers on 127.0.0.1, real files."""

from __future__ import annotations

import base64
import http.server
import io
import json
import logging
import os
import shlex
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from elastic_recheck.config import GerritSettings, Settings, WatchSettings, load_settings
from elastic_recheck.errors import ConfigError, ReportError
from elastic_recheck.gerrit_ssh import SSHReviewer, review_command
from elastic_recheck.ingest import ingest_build
from elastic_recheck.ingest.sources import load_metadata_file, open_logs
from elastic_recheck.logformat import EscapingFormatter
from elastic_recheck.reporting import RESTReviewer
from elastic_recheck.search import open_backend
from elastic_recheck.search.cluster_connection import check_urls
from elastic_recheck.search.embedded import EmbeddedBackend
from elastic_recheck.state import StateDB

from .conftest import KEEP_ALL, KEEP_ALL_SETTINGS
from .gerrit_server import GerritServer, gerrit_split

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TEMPEST = "6d1b2f0c9f1e4c3a8e0b6a3f9a1c2d3e"  # hits bugs 2000001 and 2000004
PASSWORD = "pw-7e1d9c0b"  # every secret in this file contains "7e1d9c0b"
SECRETS = {"rest": "rest-" + PASSWORD, "cluster": "cluster-" + PASSWORD, "api_key": "key-" + PASSWORD,
           "irc_server": "pass-" + PASSWORD, "nickserv": "ns-" + PASSWORD, "sasl": "sasl-" + PASSWORD}


def failure(change: int, patchset: int, project: str = "openstack/nova") -> dict[str, Any]:
    """A Zuul "Build failed" comment for the indexed tempest-full build."""
    return {
        "type": "comment-added", "author": {"username": "zuul"},
        "comment": f"Patch Set {patchset}:\n\nBuild failed (gate pipeline).\n\n"
                   f"- tempest-full https://zuul.example.org/t/main/build/{TEMPEST} : FAILURE in 10m 02s\n",
        "change": {"number": str(change), "project": project, "branch": "master"},
        "patchSet": {"number": str(patchset)},
        "eventCreatedOn": 2_000_000_000,  # never "logs timed out"
    }


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data dir whose index holds the tempest-full example build."""
    data = tmp_path / "data"
    meta = load_metadata_file(str(ROOT / "examples" / "builds" / "tempest-full-1" / "build.json"))
    ingest_build(EmbeddedBackend(data / "index"), open_logs(str(ROOT / "examples" / "builds" / "tempest-full-1")),
                 meta)
    return data


# -- Gerrit REST: redirects are refused, the credentials stay home ------------------


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Records every request; answers with ``server.answer`` = (status, Location or None)."""

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.requests.append((self.command, self.path, self.headers.get("Authorization"),  # type: ignore
                                     self.rfile.read(length)))
        status, location = self.server.answer  # type: ignore[attr-defined]
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_PUT = _handle  # noqa: N815 - the http.server API

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_servers() -> Iterator[list[http.server.ThreadingHTTPServer]]:
    """Two HTTP servers on 127.0.0.1, on different ports: "Gerrit" and "elsewhere"."""
    servers = []
    for _ in range(2):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
        server.requests, server.answer = [], (200, None)  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


def _url(server: http.server.ThreadingHTTPServer, path: str = "") -> str:
    return f"http://127.0.0.1:{server.server_port}{path}"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirected_review_is_refused_and_no_request_follows_it(http_servers, status):
    gerrit, elsewhere = http_servers
    gerrit.answer = (status, _url(elsewhere, "/a/changes/1/revisions/1/review"))
    reviewer = RESTReviewer(GerritSettings(rest_url=_url(gerrit), user="er", rest_password=SECRETS["rest"]))
    target = rf"http://127\.0\.0\.1:{elsewhere.server_port};"
    with pytest.raises(ReportError, match=rf"HTTP {status} redirects to {target}") as refused:
        reviewer.review("openstack/nova", 864201, 3, "I noticed Zuul failed")
    assert elsewhere.requests == []  # not the POST, not a GET, not the Authorization header
    assert [(method, path) for method, path, _, _ in gerrit.requests] == [
        ("POST", "/a/changes/864201/revisions/3/review")]
    assert PASSWORD not in str(refused.value)
    # 303 answers a POST that was carried out ("see the result there"): the outcome is unknown, never
    # retried. The others say the resource is elsewhere, so nothing was posted and a retry is safe.
    assert refused.value.retry is (status != 303)


def test_a_redirect_to_the_same_server_is_not_followed_either(http_servers):
    gerrit, _ = http_servers
    gerrit.answer = (302, "/login?token=abc")
    reviewer = RESTReviewer(GerritSettings(rest_url=_url(gerrit, "/r/"), user="er", rest_password=SECRETS["rest"]))
    target = rf"http://127\.0\.0\.1:{gerrit.server_port};"
    with pytest.raises(ReportError, match=rf"HTTP 302 redirects to {target}") as refused:
        reviewer.review("", 1, 1, "x")
    assert len(gerrit.requests) == 1 and "token=abc" not in str(refused.value)


@pytest.mark.parametrize("status", [302, 303])
def test_a_redirected_review_is_not_counted_as_posted(data_dir, http_servers, status):
    """Through the daemon: no comment is recorded as posted, none is counted;
    a 302 leaves the event to be retried, a 303 records the comment as unknown."""
    from elastic_recheck.watch import Daemon, FingerprintSet

    gerrit, elsewhere = http_servers
    gerrit.answer = (status, _url(elsewhere))
    gerrit_settings = GerritSettings(rest_url=_url(gerrit), user="er", rest_password=SECRETS["rest"])
    settings = Settings(data_dir=data_dir, gerrit=gerrit_settings, watch=WatchSettings(queries=str(ROOT / "queries")),
                        retention=KEEP_ALL_SETTINGS)
    state = StateDB(settings.state_db)
    try:
        daemon = Daemon(settings, EmbeddedBackend(settings.index_dir), state, RESTReviewer(gerrit_settings),
                        FingerprintSet(settings.watch.queries))
        assert daemon.accept(failure(864201, 3)) is not None
        daemon.process_due()
        assert len(gerrit.requests) == 1 and elsewhere.requests == []
        assert state.comment_count() == 0
        assert daemon.counters["commented"] == 0 and daemon.counters["gerrit_errors"] == 1
        assert state.pending_count() == (1 if status == 302 else 0)
    finally:
        state.close()


# -- credentials in URLs are refused at config load; no secret in any message ---------


def _config(tmp_path: Path, config: dict[str, Any]) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config))
    return str(path)


@pytest.mark.parametrize("url", [
    "https://er:{pw}@review.example.org",
    "https://er@review.example.org/{pw}",  # a user alone is refused too: no userinfo at all
    "https://:{pw}@review.example.org:8443/r",
])
def test_credentials_in_the_rest_url_are_refused_at_load_without_repeating_them(tmp_path, url):
    url = url.format(pw=PASSWORD)
    with pytest.raises(ConfigError) as from_file:
        load_settings(_config(tmp_path, {"gerrit": {"rest_url": url}}), env={})
    with pytest.raises(ConfigError) as from_env:
        load_settings(None, str(tmp_path), env={"ER_GERRIT_REST_URL": url})
    for error, where in ((from_file, "config.yaml: gerrit.rest_url: "), (from_env, "ER_GERRIT_REST_URL: ")):
        text = str(error.value)
        assert where in text and "put credentials in gerrit.user and gerrit.rest_password, not in the URL" in text
        assert PASSWORD not in text and "\n" not in text


@pytest.mark.parametrize("url", ["ftp://review.example.org", "file:///etc/passwd", f"er:{PASSWORD}@review.example.org",
                                 "https://", "review.example.org", "http://review.example.org:port"])
def test_a_rest_url_that_is_not_http_is_refused_at_load(tmp_path, url):
    with pytest.raises(ConfigError, match=r"gerrit\.rest_url: (must be an http|not a valid URL)") as refused:
        load_settings(_config(tmp_path, {"gerrit": {"rest_url": url}}), env={})
    assert PASSWORD not in str(refused.value)


def test_cluster_urls_are_checked_at_load_by_the_same_rule(tmp_path):
    with pytest.raises(ConfigError, match=r"cluster\.urls \(URL 2\): put credentials in cluster") as refused:
        load_settings(_config(tmp_path, {"cluster": {"urls": ["https://node1:9200", f"https://u:{PASSWORD}@node2"]}}),
                      env={})  # refused even while the embedded backend is in use: a secret in the wrong place
    assert PASSWORD not in str(refused.value)
    with pytest.raises(ConfigError, match=r"ER_CLUSTER_URLS: must be an http"):
        load_settings(None, str(tmp_path), env={"ER_CLUSTER_URLS": "ftp://node1"})
    good = load_settings(_config(tmp_path, {"gerrit": {"rest_url": "https://review.example.org/r/"},
                                            "cluster": {"urls": ["http://node1:9200", "https://node2"]}}), env={})
    assert good.gerrit.rest_url == "https://review.example.org/r/" and len(good.cluster.urls) == 2
    # settings built without load_settings meet the same check where the URL is used
    with pytest.raises(ConfigError, match="cluster.urls: put credentials") as direct:
        check_urls((f"http://elastic:{PASSWORD}@localhost:9200",))
    with pytest.raises(ConfigError, match="gerrit.rest_url: put credentials") as rest:
        RESTReviewer(GerritSettings(rest_url=f"https://er:{PASSWORD}@review.example.org"))
    assert PASSWORD not in str(direct.value) + str(rest.value)


def _secret_config(tmp_path: Path, **gerrit: Any) -> str:
    channels = tmp_path / "channels.yaml"
    channels.write_text(json.dumps({"#openstack-qa": {"projects": ["openstack/nova"], "events": ["positive"]}}))
    return _config(tmp_path, {
        "gerrit": {"user": "er", "rest_password": SECRETS["rest"], **gerrit},
        "cluster": {"username": "elastic", "password": SECRETS["cluster"], "api_key": "id:" + SECRETS["api_key"]},
        "irc": {"server": "127.0.0.1", "port": _closed_port(), "channels": str(channels), "pipelines": ["none"],
                "server_password": SECRETS["irc_server"], "nickserv_password": SECRETS["nickserv"]},
    })


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_secret_in_the_settings_repr_or_in_config_errors(tmp_path):
    config = _secret_config(tmp_path)
    loaded = load_settings(config, str(tmp_path), env={"ER_IRC_SASL_PASSWORD": SECRETS["sasl"]})
    assert loaded.irc.sasl_password == SECRETS["sasl"] and loaded.cluster.password == SECRETS["cluster"]
    assert PASSWORD not in repr(loaded) and PASSWORD not in str(loaded)
    broken = json.loads(Path(config).read_text())
    errors = []
    for section, key, value in (("gerrit", "port", "not-a-port"), ("irc", "bogus", 1), ("cluster", "retries", "x")):
        changed = json.loads(json.dumps(broken))
        changed[section][key] = value
        with pytest.raises(ConfigError) as refused:
            load_settings(_config(tmp_path, changed), env={})
        errors.append(str(refused.value))
    (tmp_path / "bad.yaml").write_text(f"gerrit:\n  rest_password: {SECRETS['rest']}\n  user: [unclosed\n")
    with pytest.raises(ConfigError) as not_yaml:
        load_settings(str(tmp_path / "bad.yaml"), env={})
    errors.append(str(not_yaml.value))
    assert all(PASSWORD not in text and "\n" not in text for text in errors), errors


def test_no_secret_in_the_daemons_log(data_dir, tmp_path, http_servers):
    """`watch --debug` with every secret set, posting through a Gerrit whose
    answer is a redirect and an IRC server that is not there: the log says what
    went wrong and names no secret (nor the basic-auth token)."""
    gerrit, elsewhere = http_servers
    gerrit.answer = (303, _url(elsewhere))
    events = tmp_path / "events.json"
    events.write_text(json.dumps([failure(864201, 3)]))
    env = {**os.environ, "ER_DATA_DIR": str(data_dir), "ER_INGEST_FETCH": "false", **KEEP_ALL}
    proc = subprocess.run(
        [str(BIN / "elastic-recheck"), "--debug", "watch", "--config", _secret_config(tmp_path, rest_url=_url(gerrit)),
         "--queries", str(ROOT / "queries"), "--events", str(events)],
        capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"HTTP 303 redirects to http://127.0.0.1:{elsewhere.server_port};" in proc.stderr  # the refusal is logged...
    token = base64.b64encode(f"er:{SECRETS['rest']}".encode()).decode()
    assert PASSWORD not in proc.stderr + proc.stdout and token not in proc.stderr  # ...without a secret
    assert len(gerrit.requests) == 1 and elsewhere.requests == []


# -- gerrit review over SSH: every argument arrives as one argument ------------------

HOSTILE = ("it's \"quoted\" and 'single', a back\\slash\\\\, $HOME `whoami` $(id) ; rm -rf / | cat & \\\n"
           "a second line\ta tab \\\"escaped\\\" '' \"\" \\' end\\")


@pytest.fixture
def gerrit(tmp_path: Path) -> Iterator[GerritServer]:
    server = GerritServer(tmp_path, command_delay=0.02)  # Gerrit acknowledges the exec request before answering
    yield server
    server.close()


def test_review_arguments_reach_gerrit_intact_over_ssh(gerrit):
    reviewer = SSHReviewer(GerritSettings(host="127.0.0.1", port=gerrit.port, user=gerrit.user,
                                          key_file=str(gerrit.key_file), known_hosts=str(gerrit.known_hosts)))
    reviewer.review("my project; rm -rf", 864201, 3, HOSTILE)
    reviewer.review("", 864202, 1, "lone \ud800 surrogate")  # legacy event: no project
    with pytest.raises(ReportError, match="empty review message") as empty:
        reviewer.review("openstack/nova", 864203, 1, "")
    assert empty.value.retry is False
    reviews = gerrit.wait_for_reviews(2)
    assert reviews[0]["argv"] == ["gerrit", "review", "864201,3", "--project", "my project; rm -rf",
                                  "--message", HOSTILE]
    assert reviews[1]["argv"] == ["gerrit", "review", "864202,1", "--message", "lone ? surrogate"]
    assert len(gerrit.reviews) == 2


@settings(max_examples=300, deadline=None, derandomize=True)
@given(project=st.text(max_size=40), message=st.text(min_size=1, max_size=200))
def test_gerrit_and_a_shell_split_the_review_command_into_the_same_arguments(project, message):
    """Gerrit's own splitter (and a POSIX shell, for good measure) give back
    exactly the arguments, whatever the project name and message hold."""
    expected = ["gerrit", "review", "12,3"] + (["--project", project] if project else []) + ["--message", message]
    command = review_command(project, 12, 3, message)
    assert gerrit_split(command) == expected
    assert shlex.split(command) == expected


# -- the daemon's own log: one record, one physical line -----------------------------


def test_a_log_record_with_line_breaks_and_escapes_stays_one_line():
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(EscapingFormatter("%(levelname)s %(name)s: %(message)s"))
    log = logging.getLogger("test_secrets.escaping")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("job %s failed in %s", "tempest\r\nERROR fake line\x1b[2J", "nova\u2028x\x85y\x00")
        assert out.getvalue().count("\n") == 1
        assert out.getvalue() == ("WARNING test_secrets.escaping: job tempest\\r\\nERROR fake line\\x1b[2J failed "
                                  "in nova\\u2028x\\x85y\\x00\n")
        out.seek(0), out.truncate()
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("with C:\\path\\n and a\ttab, then a traceback")  # backslashes are kept as they are
        first, *traceback = out.getvalue().splitlines()
        assert first == "ERROR test_secrets.escaping: with C:\\path\\n and a\\ttab, then a traceback"
        assert traceback[0] == "Traceback (most recent call last):" and traceback[-1] == "ValueError: boom"
    finally:
        log.removeHandler(handler)


def test_a_forged_project_name_cannot_add_a_line_to_the_watch_log(data_dir, tmp_path):
    events = tmp_path / "events.json"
    events.write_text(json.dumps([failure(864201, 3, project="openstack/nova\nERROR forged line\r\x1b[31m")]))
    env = {**os.environ, "ER_DATA_DIR": str(data_dir), "ER_INGEST_FETCH": "false", **KEEP_ALL}
    proc = subprocess.run([str(BIN / "elastic-recheck"), "watch", "--queries", str(ROOT / "queries"),
                           "--events", str(events), "--dry-run"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "openstack/nova\\nERROR forged line\\r\\x1b[31m" in proc.stderr
    assert not any(line.startswith("ERROR forged") for line in proc.stderr.splitlines())
    assert "\x1b" not in proc.stderr and "\r" not in proc.stderr


# -- owner-only data ------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The common 022, under which files would be created readable by everyone."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_the_state_database_and_data_dir_are_created_owner_only(tmp_path, usual_umask):
    data = tmp_path / "new" / "data"
    state = StateDB(data / "state.sqlite3")
    try:
        state.add_metrics({"events": 1}, {})  # the WAL and its index now exist
        assert _mode(data) == 0o700
        for name in ("state.sqlite3", "state.sqlite3-wal", "state.sqlite3-shm"):
            assert _mode(data / name) == 0o600, name
    finally:
        state.close()
    settings = Settings(data_dir=tmp_path / "other" / "data")
    open_backend(settings)  # what ingest, er-query and the dashboard do first
    assert _mode(settings.data_dir) == 0o700 and _mode(settings.index_dir) == 0o700
    assert _mode(tmp_path / "other") == 0o755  # a parent made on the way is an ordinary directory


def test_existing_wider_permissions_are_left_as_they_are_and_the_database_is_warned_about(tmp_path, usual_umask,
                                                                                        caplog):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "state.sqlite3").touch(mode=0o640)  # e.g. opened to a group on purpose
    StateDB(data / "state.sqlite3").close()
    assert _mode(data) == 0o755 and _mode(data / "state.sqlite3") == 0o640
    assert any("state.sqlite3 is readable by other users (mode 0640)" in r.getMessage() for r in caplog.records)
    caplog.clear()
    os.chmod(data / "state.sqlite3", 0o600)
    StateDB(data / "state.sqlite3").close()
    assert not caplog.records
