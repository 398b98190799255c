"""The real-time path: Gerrit events → known bugs → one review comment each,
against a real SSH server speaking Gerrit's commands and a real index."""

from __future__ import annotations

import base64
import contextlib
import http.server
import io
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from elastic_recheck.errors import BackendError, EventError
from elastic_recheck.gerrit_events import EventFilter, parse_failure
from elastic_recheck.ingest import ingest_build
from elastic_recheck.ingest.sources import load_metadata_file, open_logs
from elastic_recheck.search.embedded import EmbeddedBackend
from elastic_recheck.watch import read_event_file

from .conftest import KEEP_ALL, KEEP_ALL_SETTINGS
from .gerrit_server import GerritServer

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "builds"
BIN = Path(sys.executable).parent
ZUUL = "https://zuul.example.org/t/main/build/"
TEMPEST = "6d1b2f0c9f1e4c3a8e0b6a3f9a1c2d3e"  # hits bugs 2000001 and 2000004
GRENADE = "0b6a5e4d3c2b41a09f8e7d6c5b4a3921"  # hits bug 2000002
TOX = "9c1f8e7d6c5b4a39281706f5e4d3c2b1"  # no known bug


def failure(change: int, patchset: int, jobs: list[tuple[str, str, str]], pipeline: str | None = "gate",
            author: str = "zuul", created: float | None = None, project: str = "openstack/nova") -> dict:
    head = f"Build failed ({pipeline} pipeline)." if pipeline else "Build failed."
    lines = "".join(f"- {name} {url} : {result} in 10m 02s\n" for name, url, result in jobs)
    return {
        "type": "comment-added",
        "author": {"username": author},
        "comment": f"Patch Set {patchset}:\n\n{head}  For information on how to proceed, see ...\n\n{lines}",
        "change": {"number": str(change), "project": project, "branch": "master",
                   "url": f"https://review.example.org/{change}"},
        "patchSet": {"number": str(patchset)},
        "eventCreatedOn": int(created if created is not None else time.time()),
    }


# -- failure parsing ------------------------------------------------------------


def test_zuul_v3_failures_give_voting_failed_jobs_with_uuids():
    event = failure(864201, 3, [
        ("tempest-full", ZUUL + TEMPEST, "FAILURE"),
        ("openstack-tox-pep8", ZUUL + "1" * 32, "SUCCESS"),
        ("grenade", ZUUL + "2" * 32 + " ", "FAILURE"),
    ])
    event["comment"] = event["comment"].replace("FAILURE in 10m 02s\n", "FAILURE in 10m 02s (non-voting)\n", 2)
    event["comment"] = event["comment"].replace("(non-voting)", "", 1)
    report = parse_failure(event)
    assert (report.change, report.patchset, report.project, report.pipeline) == (864201, 3, "openstack/nova", "gate")
    assert [(j.name, j.build_uuid, j.short_uuid) for j in report.jobs] == [("tempest-full", TEMPEST, TEMPEST[:7])]


def test_legacy_failures_take_pipeline_and_short_uuid_from_the_log_url():
    event = failure(64831, 1, [
        ("check-tempest-dsvm-full", "http://logs.example.org/31/64831/1/check/check-tempest-dsvm-full/287c655",
         "FAILURE"),
        ("gate-requirements-pep8", "http://logs.example.org/31/64831/1/check/gate-requirements-pep8/f5abe44",
         "SUCCESS"),
    ], pipeline=None, author="jenkins")
    report = parse_failure(event)
    assert report.pipeline == "check"
    assert [(j.name, j.short_uuid, j.build_uuid) for j in report.jobs] == [("check-tempest-dsvm-full", "287c655", None)]


def test_other_events_authors_and_successes_are_not_failures():
    assert parse_failure({"type": "patchset-created"}) is None
    assert parse_failure(failure(1, 1, [("a", ZUUL + TEMPEST, "FAILURE")], author="alice")) is None
    success = failure(1, 1, [("a", ZUUL + TEMPEST, "SUCCESS")])
    assert parse_failure(success) is None
    assert parse_failure(failure(1, 1, [("a", ZUUL + TEMPEST, "FAILURE")], author="ci-bot"),
                         EventFilter(ci_accounts=("ci-bot",))) is not None


def test_project_and_job_filters():
    event = failure(1, 1, [("tempest-full", ZUUL + TEMPEST, "FAILURE"), ("grenade", ZUUL + GRENADE, "FAILURE")])
    assert parse_failure(event, EventFilter(exclude_projects="^openstack/nova$")) is None
    assert [j.name for j in parse_failure(event, EventFilter(include_jobs="^grenade")).jobs] == ["grenade"]
    assert [j.name for j in parse_failure(event, EventFilter(exclude_jobs="grenade")).jobs] == ["tempest-full"]


def test_a_failure_comment_with_a_broken_change_is_an_error():
    event = failure(1, 1, [("a", ZUUL + TEMPEST, "FAILURE")])
    event["change"]["number"] = "not-a-number"
    with pytest.raises(EventError, match="bad change"):
        parse_failure(event)


def test_real_recorded_events(realdata):
    raw = json.loads((realdata / "gerrit" / "gerrit-events.json").read_text())
    reports = [r for r in (parse_failure(e) for e in raw) if r]
    assert {r.key for r in reports} >= {"65361,2", "63078,19"}
    assert all(job.short_uuid and job.pipeline for r in reports for job in r.jobs)
    jenkins = json.loads((realdata / "gerrit" / "jenkins-events.json").read_text())["events"]
    several = parse_failure(jenkins[0])  # no change block: recovered from the log URLs
    assert several.key == "64831,1"
    assert [j.name for j in several.jobs] == [
        "check-requirements-integration-dsvm", "check-tempest-dsvm-full", "check-tempest-dsvm-postgres-full",
        "check-tempest-dsvm-neutron"]
    assert parse_failure(jenkins[1]) is None and parse_failure(jenkins[2]) is None


def test_replay_files_as_list_events_object_or_json_lines():
    one = {"type": "x"}
    assert list(read_event_file("f", io.StringIO(json.dumps([one, one])))) == [one, one]
    assert list(read_event_file("f", io.StringIO(json.dumps({"events": [one]})))) == [one]
    items = list(read_event_file("f.jsonl", io.StringIO('{"type": "x"}\n\n{broken\n{"type": "x"}\n')))
    assert items[0] == one and items[2] == one
    assert isinstance(items[1], EventError) and "f.jsonl:3" in str(items[1])


# -- the daemon -------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    backend = EmbeddedBackend(tmp_path / "data" / "index")
    for build in (TEMPEST, GRENADE, TOX):
        _ingest(backend, build)
    return tmp_path / "data"


def _ingest(backend: EmbeddedBackend, uuid: str) -> None:
    for directory in EXAMPLES.iterdir():
        meta = load_metadata_file(str(directory / "build.json"))
        if meta.build_uuid == uuid:
            ingest_build(backend, open_logs(str(directory)), meta)
            return
    raise AssertionError(uuid)


def _watch(data_dir: Path, *args: str, config: Path | None = None, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "ER_DATA_DIR": str(data_dir), "ER_INGEST_FETCH": "false", **KEEP_ALL}
    command = [str(BIN / "elastic-recheck"), "watch", "--queries", str(ROOT / "queries"), *args]
    if config:
        command += ["--config", str(config)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kwargs)


def test_replay_dry_run_prints_each_review_once_across_runs(data_dir, tmp_path):
    events = tmp_path / "events.json"
    events.write_text(json.dumps([
        failure(864201, 3, [("tempest-full", ZUUL + TEMPEST, "FAILURE")]),
        {"type": "comment-added", "author": {"username": "zuul"}, "comment": "Build failed.\n\n- x y : FAILURE",
         "change": "garbage"},
        failure(864455, 2, [("openstack-tox-py312", ZUUL + TOX, "FAILURE")], project="openstack/cinder"),
    ]))
    first = _watch(data_dir, "--events", str(events), "--dry-run")
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert out.startswith("review 864201,3:\nI noticed Zuul failed, I think you hit bug(s):\n\n"
                          "- tempest-full: https://bugs.launchpad.net/bugs/2000001, "
                          "https://bugs.launchpad.net/bugs/2000004\n")
    assert "864455" not in out  # no bug found: no comment by default
    assert "skipped a malformed event" in err
    again = _watch(data_dir, "--events", str(events), "--dry-run")
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0 and out == "", err


def test_unindexed_logs_time_out_as_a_recorded_outcome(data_dir, tmp_path):
    from elastic_recheck.state import StateDB

    events = tmp_path / "events.json"
    old = time.time() - 3600
    events.write_text(json.dumps([failure(1, 1, [("ghost", ZUUL + "f" * 32, "FAILURE")], created=old)]))
    proc = _watch(data_dir, "--events", str(events), "--dry-run")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and out == "", err
    assert "timed out" in err
    outcomes = list(StateDB(data_dir / "state.sqlite3").outcomes())
    assert [(o["job"], o["kind"]) for o in outcomes] == [("ghost", "timeout")]


def _config(tmp_path: Path, server: GerritServer, **watch) -> Path:
    config = {
        "gerrit": {"host": "127.0.0.1", "port": server.port, "user": server.user,
                   "key_file": str(server.key_file), "known_hosts": str(server.known_hosts)},
        "watch": {"poll_initial": 0.2, "poll_max": 0.5, **watch},
    }
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def gerrit(tmp_path):
    server = GerritServer(tmp_path)
    yield server
    server.close()


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return err


def test_gerrit_stream_to_review_over_ssh_survives_a_dropped_connection(data_dir, tmp_path, gerrit):
    proc = _watch(data_dir, config=_config(tmp_path, gerrit))
    try:
        gerrit.wait_for_stream()
        gerrit.push("this is not json")
        gerrit.push(failure(864201, 3, [("tempest-full", ZUUL + TEMPEST, "FAILURE")]))
        review = gerrit.wait_for_reviews(1)[0]
        assert (review["change"], review["patchset"], review["project"]) == (864201, 3, "openstack/nova")
        assert "- tempest-full: https://bugs.launchpad.net/bugs/2000001" in review["message"]
        gerrit.drop_streams()
        gerrit.push(failure(864377, 1, [("grenade", ZUUL + GRENADE, "FAILURE")], project="openstack/neutron"))
        reviews = gerrit.wait_for_reviews(2)
        assert "bugs/2000002" in reviews[1]["message"], _stop(proc)
        gerrit.push(failure(864201, 3, [("tempest-full", ZUUL + TEMPEST, "FAILURE")]))  # sent again
        time.sleep(1.5)
    finally:
        err = _stop(proc)
    assert len(gerrit.reviews) == 2, gerrit.reviews
    assert "skipped a malformed event" in err and "event stream" in err


def test_a_gerrit_refusing_logins_is_retried_no_slower_than_retry_max(data_dir, tmp_path, gerrit):
    gerrit.refuse_logins = 6  # at doubling delays from 1 s with no cap, the sixth retry would come after 63 s
    started = time.monotonic()
    proc = _watch(data_dir, config=_config(tmp_path, gerrit, retry_max=0.2))
    try:
        gerrit.wait_for_stream(timeout=30)
        assert time.monotonic() - started < 20
    finally:
        err = _stop(proc)
    assert err.count("cannot connect") == 6, err


def test_an_unknown_host_key_is_refused(data_dir, tmp_path, gerrit):
    gerrit.known_hosts.write_text(f"[127.0.0.1]:{gerrit.port} ssh-ed25519 "
                                  "AAAAC3NzaC1lZDI1NTE5AAAAIJvZfcYzbC6qzUZwR4YoB5dEGO6wZ4eUfpQzHVBOGBpq\n")
    proc = _watch(data_dir, config=_config(tmp_path, gerrit, retry_max=0.2))
    try:
        # a second attempt: the first was refused (by the client, on the host key) and retried;
        # a fixed sleep instead was either slow or, on a loaded machine, over before the daemon
        # had started (SIGTERM then found no handler)
        deadline = time.monotonic() + 30
        while gerrit.connections < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gerrit.connections >= 2 and not gerrit.streams
    finally:
        err = _stop(proc)
    assert "cannot connect" in err


def test_killed_mid_event_resumes_after_restart_and_comments_once(data_dir, tmp_path, gerrit):
    backend = EmbeddedBackend(data_dir / "index")
    config = _config(tmp_path, gerrit)
    proc = _watch(data_dir, config=config)
    gerrit.wait_for_stream()
    late = "a" * 32  # a build whose logs are not indexed yet
    gerrit.fail_reviews = 1  # and Gerrit fails the first review attempt
    gerrit.push(failure(900001, 1, [("tempest-full", ZUUL + late, "FAILURE")]))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not _pending_events(data_dir):
        time.sleep(0.05)
    assert _pending_events(data_dir) == 1  # accepted and waiting for logs
    proc.kill()
    proc.wait(timeout=30)
    _ingest_as(backend, TEMPEST, late)
    proc = _watch(data_dir, config=config)
    try:
        reviews = gerrit.wait_for_reviews(1)
        assert reviews[0]["change"] == 900001 and "bugs/2000001" in reviews[0]["message"]
        gerrit.push(failure(900001, 1, [("tempest-full", ZUUL + late, "FAILURE")]))  # replayed
        time.sleep(1.5)
    finally:
        _stop(proc)
    assert len(gerrit.reviews) == 1


def _pending_events(data_dir: Path) -> int:
    """Events the daemon has accepted (persisted) and not finished, read as another process would."""
    import sqlite3

    path = data_dir / "state.sqlite3"
    if not path.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
            return db.execute("SELECT COUNT(*) FROM events WHERE status = 'pending'").fetchone()[0]
    except sqlite3.OperationalError:  # created but its tables not yet there
        return 0


def _ingest_as(backend: EmbeddedBackend, source_uuid: str, new_uuid: str) -> None:
    import dataclasses

    for directory in EXAMPLES.iterdir():
        meta = load_metadata_file(str(directory / "build.json"))
        if meta.build_uuid == source_uuid:
            ingest_build(backend, open_logs(str(directory)), dataclasses.replace(meta, build_uuid=new_uuid))
            return


def test_classify_prints_the_review_for_one_build(data_dir):
    env = {**os.environ, "ER_DATA_DIR": str(data_dir), "ER_INGEST_FETCH": "false", **KEEP_ALL}
    result = subprocess.run(
        [str(BIN / "elastic-recheck"), "classify", "--build", GRENADE, "--change", "864377", "--patchset", "1",
         "--job", "grenade", "--queries", str(ROOT / "queries")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("review 864377,1:\nI noticed Zuul failed")
    assert "- grenade: https://bugs.launchpad.net/bugs/2000002" in result.stdout


def test_fingerprints_are_reloaded_when_their_files_change(tmp_path):
    from elastic_recheck.watch import FingerprintSet

    (tmp_path / "1.yaml").write_text("query: message:a\n")
    fingerprints = FingerprintSet(tmp_path)
    assert [fp.bug for fp in fingerprints.current()] == ["1"]
    (tmp_path / "2.yaml").write_text("query: message:b\n")
    (tmp_path / "1.yaml").unlink()
    assert [fp.bug for fp in fingerprints.current()] == ["2"]


# -- faults and the other reviewer ---------------------------------------------------


class BackendOutage:
    """A real backend behind a switch: while ``down`` is set every call fails
    the way an unreachable search cluster does."""

    def __init__(self, backend: EmbeddedBackend) -> None:
        self.backend = backend
        self.down = threading.Event()
        self.refused = 0

    def __getattr__(self, name: str):
        attribute = getattr(self.backend, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            if self.down.is_set():
                self.refused += 1
                raise BackendError("connection refused")
            return attribute(*args, **kwargs)

        return call


def test_a_search_backend_outage_delays_comments_but_loses_and_doubles_none(data_dir, tmp_path, gerrit):
    from elastic_recheck.config import GerritSettings, Settings, WatchSettings
    from elastic_recheck.gerrit_ssh import EventStream, SSHReviewer
    from elastic_recheck.state import StateDB
    from elastic_recheck.watch import Daemon, FingerprintSet

    gerrit_settings = GerritSettings(host="127.0.0.1", port=gerrit.port, user=gerrit.user,
                                     key_file=str(gerrit.key_file), known_hosts=str(gerrit.known_hosts))
    settings = Settings(data_dir=data_dir, gerrit=gerrit_settings, retention=KEEP_ALL_SETTINGS,
                        watch=WatchSettings(queries=str(ROOT / "queries"), poll_initial=0.1, retry_max=0.5))
    backend = BackendOutage(EmbeddedBackend(data_dir / "index"))
    events: queue.Queue = queue.Queue()
    daemons: list = []

    def serve() -> None:  # the state database belongs to the daemon's thread
        state = StateDB(settings.state_db)
        daemons.append(Daemon(settings, backend, state, SSHReviewer(gerrit_settings),
                              FingerprintSet(settings.watch.queries)))
        try:
            daemons[0].run(events)
        finally:
            state.close()

    stream = EventStream(gerrit_settings, events)
    stream.start()
    loop = threading.Thread(target=serve)
    loop.start()
    try:
        gerrit.wait_for_stream()
        backend.down.set()
        gerrit.push(failure(864201, 3, [("tempest-full", ZUUL + TEMPEST, "FAILURE")]))
        gerrit.push(failure(864377, 1, [("grenade", ZUUL + GRENADE, "FAILURE")], project="openstack/neutron"))
        deadline = time.monotonic() + 20
        while backend.refused < 6 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert backend.refused >= 6 and gerrit.reviews == []  # retried while down, nothing posted
        backend.down.clear()
        reviews = gerrit.wait_for_reviews(2)
        assert {r["change"] for r in reviews} == {864201, 864377}
        gerrit.push(failure(864201, 3, [("tempest-full", ZUUL + TEMPEST, "FAILURE")]))  # sent again
        time.sleep(1.0)
    finally:
        if daemons:
            daemons[0].stop()
        stream.stop()
        loop.join(timeout=30)
    assert len(gerrit.reviews) == 2
    counters = daemons[0].counters
    # each failed attempt also asks the backend for its health (refused too): half the refusals are attempts
    assert counters["accepted"] == 2 and counters["duplicates"] == 1 and counters["backend_errors"] >= 3
    state = StateDB(settings.state_db)
    assert state.pending_count() == 0
    assert sorted((o["change"], o["kind"]) for o in state.outcomes()) == [(864201, "bugs"), (864377, "bugs")]
    state.close()


class _GerritREST(http.server.BaseHTTPRequestHandler):
    requests: list = []
    statuses: list = []

    def do_POST(self):  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.requests.append((self.path, self.headers["Authorization"], json.loads(body)))
        status = self.statuses.pop(0) if self.statuses else 200
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b")]}'\n{}")

    def log_message(self, *args):
        pass


def test_the_rest_reviewer_posts_the_message_with_basic_auth_and_reports_refusals():
    from elastic_recheck.config import GerritSettings
    from elastic_recheck.errors import ReportError
    from elastic_recheck.reporting import RESTReviewer

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _GerritREST)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _GerritREST.requests, _GerritREST.statuses = [], [503, 401]
    try:
        reviewer = RESTReviewer(GerritSettings(rest_url=f"http://127.0.0.1:{server.server_port}/",
                                               user="er", rest_password="s3cret"))
        with pytest.raises(ReportError) as refused:
            reviewer.review("openstack/nova", 864201, 3, "first")
        assert refused.value.retry  # nothing was posted: safe to try again
        with pytest.raises(ReportError, match="HTTP 401") as final:
            reviewer.review("openstack/nova", 864201, 3, "second")
        assert not final.value.retry  # bad credentials: retrying cannot help
        reviewer.review("openstack/nova", 864201, 3, 'I noticed "Zuul" failed\n- bug')
    finally:
        server.shutdown()
        server.server_close()
    path, auth, body = _GerritREST.requests[-1]
    assert path == "/a/changes/864201/revisions/3/review"
    assert auth == "Basic " + base64.b64encode(b"er:s3cret").decode()
    assert body == {"message": 'I noticed "Zuul" failed\n- bug'}
    with pytest.raises(ReportError, match="failed before the request was sent") as refused:  # nobody listens
        RESTReviewer(GerritSettings(rest_url=f"http://127.0.0.1:{server.server_port}")).review("p", 1, 1, "x")
    assert refused.value.retry  # connection refused: nothing reached Gerrit


class _GerritTakesThePostThenVanishes(http.server.BaseHTTPRequestHandler):
    """Reads the whole POST (so Gerrit may have posted it), then cuts the
    connection without a word, or answers later than the reviewer waits."""

    def do_POST(self):  # noqa: N802 - the http.server API
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.posts.append(self.path)  # type: ignore[attr-defined]
        if self.server.how == "connection cut":  # type: ignore[attr-defined]
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.server.done.wait(timeout=10)  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("how", ["connection cut", "answer too slow"])
def test_a_rest_review_gerrit_took_but_never_answered_is_recorded_unknown_and_never_sent_again(
        data_dir, tmp_path, how):
    """Gerrit received the POST, then the connection dropped (or the answer
    came later than the timeout): the review may be posted, so the daemon
    records it as unknown and does not post it again."""
    import sqlite3

    from elastic_recheck.config import GerritSettings, Settings, WatchSettings
    from elastic_recheck.reporting import RESTReviewer
    from elastic_recheck.state import StateDB
    from elastic_recheck.watch import Daemon, FingerprintSet

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _GerritTakesThePostThenVanishes)
    server.posts, server.how, server.done = [], how, threading.Event()  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    gerrit = GerritSettings(rest_url=f"http://127.0.0.1:{server.server_port}", user="er", rest_password="s3cret")
    settings = Settings(data_dir=data_dir, gerrit=gerrit, watch=WatchSettings(queries=str(ROOT / "queries")),
                        retention=KEEP_ALL_SETTINGS)
    state = StateDB(settings.state_db)
    try:
        daemon = Daemon(settings, EmbeddedBackend(settings.index_dir), state, RESTReviewer(gerrit, timeout=0.5),
                        FingerprintSet(settings.watch.queries))
        assert daemon.accept(failure(864201, 3, [("tempest-full", ZUUL + TEMPEST, "FAILURE")])) is not None
        daemon.process_due()
        daemon.process_due()
        assert server.posts == ["/a/changes/864201/revisions/3/review"]
        assert state.pending_count() == 0 and state.comment_count() == 0
        assert daemon.counters["gerrit_errors"] == 1 and daemon.counters["commented"] == 0
    finally:
        state.close()
        server.done.set()
        server.shutdown()
        server.server_close()
    with sqlite3.connect(settings.state_db) as db:
        assert db.execute("SELECT change, patchset, state FROM comments").fetchall() == [(864201, 3, "unknown")]


def test_failed_tests_come_from_the_console_log_and_gate_test_id_fingerprints(data_dir):
    from elastic_recheck.classify import Classifier, failed_tests
    from elastic_recheck.fingerprints import load_fingerprint

    backend = EmbeddedBackend(data_dir / "index")
    failed = failed_tests(backend, TEMPEST)
    assert failed == {"tempest.api.compute.servers.test_servers.ServersTest.test_update_server_name"}
    assert failed_tests(backend, GRENADE) is None  # no test run reported: test_ids cannot filter
    gated = load_fingerprint(ROOT / "queries" / "2000004.yaml")
    assert [fp.bug for fp in Classifier(backend, [gated]).classify(TEMPEST, failed)] == ["2000004"]
    assert Classifier(backend, [gated]).classify(TEMPEST, {"tempest.api.image.test_x.T.test_y"}) == []


def test_stestr_and_unittest_failure_lines():
    from elastic_recheck.classify import _STESTR_FAILED, _UNITTEST_FAILED

    line = ("{3} tempest.api.compute.servers.test_server_actions.ServerActionsTestJSON.test_reboot_server_hard"
            "[id-2cb1baf6-ac8d-4429-bf0d-ba8a0ba53e32,smoke] [61.204s] ... FAILED")
    assert [m.group(1) for m in _STESTR_FAILED.finditer(line)] == [
        "tempest.api.compute.servers.test_server_actions.ServerActionsTestJSON.test_reboot_server_hard"]
    assert not list(_STESTR_FAILED.finditer("{0} tempest.api.x.T.test_y [1.0s] ... ok"))
    match = _UNITTEST_FAILED.search("FAIL: test_boot (nova.tests.functional.test_servers.ServersTest)")
    assert (match.group(1), match.group(2)) == ("test_boot", "nova.tests.functional.test_servers.ServersTest")


# -- metrics -----------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    return {name: float(value) for name, value in re.findall(r"^([a-z_]+(?:\{[^}]*\})?) (\S+)$", text, re.M)}


def test_the_daemon_serves_prometheus_metrics_and_status_reads_them_back(data_dir, tmp_path, gerrit):
    port = _free_port()
    proc = _watch(data_dir, config=_config(tmp_path, gerrit, metrics_port=port))
    try:
        gerrit.wait_for_stream()
        gerrit.push("not json")
        gerrit.push(failure(864201, 3, [("tempest-full", ZUUL + TEMPEST, "FAILURE")]))
        gerrit.push(failure(864455, 2, [("openstack-tox-py312", ZUUL + TOX, "FAILURE")], project="openstack/cinder"))
        gerrit.push(failure(864201, 3, [("tempest-full", ZUUL + TEMPEST, "FAILURE")]))  # again
        gerrit.wait_for_reviews(1)
        deadline = time.monotonic() + 30
        while True:
            scraped = _scrape(port)
            if scraped["elastic_recheck_unrecognized_total"] >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        _stop(proc)
    assert scraped["elastic_recheck_events_total"] == 4
    assert scraped["elastic_recheck_malformed_total"] == 1
    assert scraped["elastic_recheck_accepted_total"] == 2
    assert scraped["elastic_recheck_duplicates_total"] == 1
    assert scraped["elastic_recheck_classified_total"] == 1  # tempest-full: bugs found
    assert scraped["elastic_recheck_unrecognized_total"] == 1  # the tox job: none
    assert scraped["elastic_recheck_commented_total"] == 1
    assert scraped["elastic_recheck_timeouts_total"] == 0 and scraped["elastic_recheck_gerrit_errors_total"] == 0
    assert scraped['elastic_recheck_classification_seconds_bucket{le="+Inf"}'] == 2
    assert scraped["elastic_recheck_classification_seconds_count"] == 2
    assert "elastic_recheck_queue_depth" in scraped

    env = {**os.environ, "ER_DATA_DIR": str(data_dir), "ER_INGEST_FETCH": "false"}
    status = subprocess.run([str(BIN / "elastic-recheck"), "status"], capture_output=True, text=True, env=env,
                            timeout=60)
    assert status.returncode == 0, status.stderr
    lines = dict(re.findall(r"^(.+?)\s{2,}(.+)$", status.stdout, re.M))
    assert lines["failure reports accepted and persisted"] == "2"
    assert lines["failed jobs matched to at least one known bug"] == "1"
    assert lines["review comments posted on Gerrit"] == "1"
    assert lines["failure reports waiting for logs or for a retry"] == "0"
    assert lines["classification time"].startswith("2 classified, mean ")
    assert "last failure report received: 20" in status.stdout
    prometheus = subprocess.run([str(BIN / "elastic-recheck"), "status", "--prometheus"], capture_output=True,
                                text=True, env=env, timeout=60).stdout
    assert "elastic_recheck_commented_total 1.0\n" in prometheus and "elastic_recheck_accepted_total 2.0\n" in prometheus


def test_a_review_cut_off_before_gerrit_answers_is_never_sent_again(tmp_path, gerrit):
    """The connection drops after Gerrit took the command but before it said
    so: the outcome is unknown, so the reviewer must not offer a retry. A
    refusal Gerrit does answer (exit 1) is retried; a dropped connection
    between reviews is reconnected."""
    from elastic_recheck.config import GerritSettings
    from elastic_recheck.errors import ReportError
    from elastic_recheck.gerrit_ssh import SSHReviewer

    reviewer = SSHReviewer(GerritSettings(host="127.0.0.1", port=gerrit.port, user=gerrit.user,
                                          key_file=str(gerrit.key_file), known_hosts=str(gerrit.known_hosts)))
    gerrit.vanish_after_reviews = 1
    with pytest.raises(ReportError, match="outcome unknown") as caught:
        reviewer.review("openstack/nova", 1, 1, "first")
    assert caught.value.retry is False and len(gerrit.reviews) == 1
    gerrit.fail_reviews = 1
    with pytest.raises(ReportError, match="refused") as refused:
        reviewer.review("openstack/nova", 2, 1, "second")
    assert refused.value.retry is True
    gerrit.drop_all()
    try:
        reviewer.review("openstack/nova", 2, 1, "second")
    except ReportError as exc:  # the drop not noticed yet: nothing was sent, so a retry is offered
        assert exc.retry and "cannot open an SSH channel" in str(exc)
        reviewer.review("openstack/nova", 2, 1, "second")  # on a fresh connection
    assert [(r["change"], r["message"]) for r in gerrit.reviews] == [(1, "first"), (2, "second")]


def test_a_dry_run_piped_into_head_ends(data_dir, tmp_path):
    events = tmp_path / "events.json"
    events.write_text(json.dumps([failure(864201 + n, 1, [("tempest-full", ZUUL + TEMPEST, "FAILURE")])
                                  for n in range(20)]))
    proc = _watch(data_dir, "--events", str(events), "--dry-run")
    assert proc.stdout.readline().startswith("review 864201,1:")
    proc.stdout.close()  # like `| head -1`
    proc.wait(timeout=60)  # every later review finds the output closed: not retried for ever
    assert "the output was closed" in proc.stderr.read()


# -- the daemon fetching each build's logs itself -------------------------------------


def _demo_log_server():
    import importlib.util

    spec = importlib.util.spec_from_file_location("demo_log_server", ROOT / "examples" / "demo_log_server.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DemoLogServer(EXAMPLES).start()


def test_the_daemon_fetches_each_reported_build_and_comments_from_its_stored_result(tmp_path):
    from elastic_recheck.results import ResultStore

    server = _demo_log_server()
    try:
        zuul = f"{server.url}/t/main/build/"
        events = tmp_path / "events.json"
        events.write_text(json.dumps([
            failure(864201, 3, [("tempest-full", zuul + TEMPEST, "FAILURE")]),
            failure(864455, 2, [("openstack-tox-py312", zuul + TOX, "FAILURE")], project="openstack/cinder"),
        ]))
        data_dir = tmp_path / "data"  # nothing indexed: the daemon brings the logs in
        env = {**os.environ, "ER_DATA_DIR": str(data_dir), "ER_INGEST_LOG_HOSTS": "127.0.0.1"}
        proc = subprocess.run([str(BIN / "elastic-recheck"), "watch", "--queries", str(ROOT / "queries"),
                               "--events", str(events), "--dry-run"], capture_output=True, text=True, env=env,
                              timeout=120)
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("review 864201,3:\nI noticed Zuul failed, I think you hit bug(s):\n\n"
                                  "- tempest-full: https://bugs.launchpad.net/bugs/2000001, "
                                  "https://bugs.launchpad.net/bugs/2000004\n")
    assert "864455" not in proc.stdout  # no known bug: no comment by default
    # The log URL came from Zuul's API; the files from the log server.
    assert f"/api/tenant/main/build/{TEMPEST}" in server.requests
    assert "/logs/tempest-full-1/logs/screen-n-cpu.txt" in server.requests
    store = ResultStore(data_dir / "results.sqlite3")
    assert store.build(TEMPEST).bugs == ("2000001", "2000003", "2000004")  # 2000003 is told to nobody
    assert store.build(TOX).bugs == ()
    assert store.build(TEMPEST).log_url.startswith(server.url + "/logs/tempest-full-1")
    backend = EmbeddedBackend(data_dir / "index")
    assert backend.build_files(TEMPEST)  # indexed too, for er-query and the pages
    assert not any((data_dir / "spool").iterdir())  # the spooled copies are gone once indexed


def test_the_daemon_will_not_fetch_without_log_hosts(tmp_path):
    events = tmp_path / "events.json"
    events.write_text("[]")
    proc = subprocess.run([str(BIN / "elastic-recheck"), "watch", "--queries", str(ROOT / "queries"),
                           "--events", str(events), "--dry-run"], capture_output=True, text=True,
                          env={**os.environ, "ER_DATA_DIR": str(tmp_path / "data")}, timeout=60)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ingest.log_hosts is empty")


def _watch_fetching(data_dir: Path, events: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "ER_DATA_DIR": str(data_dir), "ER_INGEST_LOG_HOSTS": "127.0.0.1", **env}
    return subprocess.run([str(BIN / "elastic-recheck"), "watch", "--queries", str(ROOT / "queries"),
                           "--events", str(events), "--dry-run", *args], capture_output=True, text=True,
                          env=environment, timeout=120)


def test_zuul_builds_api_feeds_every_build_once_across_restarts(tmp_path):
    from elastic_recheck.results import ResultStore

    server = _demo_log_server()
    events = tmp_path / "events.json"
    events.write_text("[]")  # no Gerrit report at all: the builds come from Zuul's API
    data_dir = tmp_path / "data"
    try:
        api = f"{server.url}/api/tenant/main"
        first = _watch_fetching(data_dir, events, "--since", "2000-01-01", ER_ZUUL_API=api)
        assert first.returncode == 0, first.stderr
        fetched = [r for r in server.requests if r.startswith("/logs/") and r.endswith("job-output.txt")]
        again = _watch_fetching(data_dir, events, ER_ZUUL_API=api)  # resumes from its checkpoint
        assert again.returncode == 0, again.stderr
        refetched = [r for r in server.requests if r.startswith("/logs/") and r.endswith("job-output.txt")]
    finally:
        server.stop()
    assert len(fetched) == 3  # the three example builds, each fetched once
    assert refetched == fetched  # nothing repeated after the restart
    store = ResultStore(data_dir / "results.sqlite3")
    assert {b.uuid for b in store.builds()} == {TEMPEST, GRENADE, TOX}
    assert store.build(GRENADE).bugs == ("2000002",)
    assert (data_dir / "zuul-builds.json").is_file()


def test_a_builds_failed_tests_come_from_its_subunit_stream(tmp_path):
    import io
    import shutil

    from subunit.v2 import StreamResultToBytes

    from elastic_recheck.results import ResultStore

    builds = tmp_path / "builds"
    shutil.copytree(EXAMPLES / "tempest-full-1", builds / "tempest-full-1")
    stream = io.BytesIO()
    writer = StreamResultToBytes(stream)
    failed = "tempest.api.compute.servers.test_attach.AttachTest.test_attach[id-1,smoke]"
    for test, status in ((failed, "fail"), ("tempest.api.compute.test_ok.T.test_ok", "success")):
        writer.status(test_id=test, test_status="inprogress")
        writer.status(test_id=test, test_status=status)
    (builds / "tempest-full-1" / "testrepository.subunit").write_bytes(stream.getvalue())
    queries = tmp_path / "queries"
    shutil.copytree(ROOT / "queries", queries)
    (queries / "3000001.yaml").write_text(  # matches the build's logs, but only counts with its test failed
        'query: message:"Timed out waiting for a reply"\ntest_ids:\n  - tempest.api.compute.servers.test_attach\n')
    (queries / "3000002.yaml").write_text(
        'query: message:"Timed out waiting for a reply"\ntest_ids:\n  - tempest.api.compute.test_ok\n')
    import importlib.util

    spec = importlib.util.spec_from_file_location("demo_log_server", ROOT / "examples" / "demo_log_server.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    server = module.DemoLogServer(builds).start()
    try:
        events = tmp_path / "events.json"
        events.write_text(json.dumps([failure(864201, 3, [("tempest-full", f"{server.url}/t/main/build/{TEMPEST}",
                                                            "FAILURE")])]))
        proc = subprocess.run([str(BIN / "elastic-recheck"), "watch", "--queries", str(queries), "--events",
                               str(events), "--dry-run"], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "ER_DATA_DIR": str(tmp_path / "data"),
                                   "ER_INGEST_LOG_HOSTS": "127.0.0.1"})
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr
    assert "/logs/tempest-full-1/testrepository.subunit" in server.requests
    stored = ResultStore(tmp_path / "data" / "results.sqlite3").build(TEMPEST)
    assert stored.failed_tests == (failed,)
    assert "3000001" in proc.stdout and "3000002" not in proc.stdout


def test_events_waiting_on_logs_are_put_off_together_and_woken_by_an_indexed_build(tmp_path):
    import datetime as dt

    from elastic_recheck.state import StateDB

    state = StateDB(tmp_path / "state.sqlite3")
    created = dt.datetime.now(dt.timezone.utc)
    first, second, third = (state.add_event(f"event-{n}", {"n": n}, created) for n in range(3))
    state.retry_many([(first, 60.0), (second, 120.0)])
    due = state.due_events()
    assert [event.id for event in due] == [third]
    state.wake_events({first, second})
    assert [(event.id, event.attempts) for event in state.due_events()] == [(first, 1), (second, 1), (third, 0)]


def test_an_indexed_build_wakes_the_reports_waiting_on_it_and_no_other(tmp_path):
    """A report waits on its build's logs without being looked at again and
    again: the build being indexed wakes it. A report whose build is still
    being fetched is not woken by another's."""
    from elastic_recheck.build_queue import BuildQueue, fetch_with_zuul
    from elastic_recheck.config import IngestSettings, Settings, WatchSettings
    from elastic_recheck.pipeline import IndexPipeline
    from elastic_recheck.reporting import PrintingReviewer
    from elastic_recheck.results import ResultStore
    from elastic_recheck.state import StateDB
    from elastic_recheck.watch import Daemon, FingerprintSet

    server = _demo_log_server()
    settings = Settings(data_dir=tmp_path, watch=WatchSettings(queries=str(ROOT / "queries")),
                        ingest=IngestSettings(log_hosts=("127.0.0.1",), workers=2))
    backend = EmbeddedBackend(settings.index_dir)
    state = StateDB(settings.state_db)
    fingerprints = FingerprintSet(settings.watch.queries, backend.check_query)
    pipeline = IndexPipeline(backend, settings.results_db, fingerprints.current, settings.ingest)
    builds = BuildQueue(state, pipeline, settings.ingest, settings.spool_dir, settings.watch.log_timeout,
                        fetch_one=fetch_with_zuul(settings))
    pipeline.done = builds.writer_done
    out = io.StringIO()
    daemon = Daemon(settings, backend, state, PrintingReviewer(out), fingerprints, builds=builds,
                    results=ResultStore(settings.results_db))
    with socket.socket() as closed:  # a log server that is down: that build is asked again, later
        closed.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{closed.getsockname()[1]}/t/main/build/"
    events: queue.Queue = queue.Queue()
    events.put(failure(864301, 1, [("grenade", down + GRENADE, "FAILURE")]))
    events.put(failure(864201, 3, [("tempest-full", f"{server.url}/t/main/build/" + TEMPEST, "FAILURE")]))

    def stop_after_the_review():
        deadline = time.monotonic() + 60
        while "review 864201,3:" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # the old poll asked again every 0.5 s
        daemon.stop()

    stopper = threading.Thread(target=stop_after_the_review)
    pipeline.start()
    stopper.start()
    try:
        daemon.run(events)  # the loop thread owns the state database
    finally:
        stopper.join()
        builds.close()
        pipeline.stop()
        server.stop()
    assert "review 864201,3:" in out.getvalue()
    waiting = state.db.execute("SELECT attempts, status FROM events WHERE raw LIKE '%864301%'").fetchall()
    assert waiting == [(1, "pending")]  # looked at once when it came, then left to wait
    state.close()
