"""The build pipeline against hostile answers and crashes: a red-team pass.

Each test names a way outside input or a crash could make the daemon fetch
from where it must not, wedge, lose or double a build; real servers on
127.0.0.1, real files, the real index.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import queue as queues
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from elastic_recheck.build_queue import BuildQueue, fetch_with_zuul, worth_retrying
from elastic_recheck.build_sources.polling import ZuulPoller
from elastic_recheck.build_sources.zuul_api import resolve_build
from elastic_recheck.builds import Build
from elastic_recheck.config import IngestSettings, load_settings
from elastic_recheck.dashboard.trends import collect
from elastic_recheck.errors import BackendError, IngestError
from elastic_recheck.ingest.fetch import ConnectionPool, HttpRetry, LogHosts
from elastic_recheck.ingest.spool import FetchReport, SpooledFile, fetch_build
from elastic_recheck.pipeline import IndexPipeline, Indexed, LogsReady, index_builds
from elastic_recheck.results import Match, ResultStore
from elastic_recheck.search import BuildOutcome
from elastic_recheck.search.embedded import EmbeddedBackend
from elastic_recheck.state import MAX_FETCH_RESTARTS, StateDB
from tests.test_build_sources import NOW as ZUUL_NOW
from tests.test_build_sources import Clock, FakeZuul, hours_ago, source, uuids
from tests.test_hostile_ingest import HostileLogServer, redirect, serve
from tests.test_pipeline import NOW, TIMEOUT, fingerprints_of, metadata, write_build

UUID = "0123456789abcdef0123456789abcdef"


def zuul_record(log_url: str, uuid: str = UUID) -> bytes:
    return json.dumps({"_id": 7, "uuid": uuid, "job_name": "tempest-full", "result": "FAILURE",
                       "log_url": log_url, "voting": True}).encode()


@pytest.fixture
def servers():
    allowed, elsewhere = HostileLogServer(), HostileLogServer()
    yield allowed, elsewhere
    allowed.close()
    elsewhere.close()


def test_a_redirect_from_the_zuul_api_a_build_page_implies_is_not_followed_off_the_log_hosts(servers, tmp_path):
    """A v3 report's build page is on an allowed host, so the API beside it
    is asked; that API's redirect to a host not in ingest.log_hosts (here
    "localhost", the same machine under a name not allowed) is refused like
    a log server's."""
    allowed, elsewhere = servers
    other = elsewhere.url.replace("127.0.0.1", "localhost")
    allowed.routes[f"/api/tenant/openstack/build/{UUID}"] = redirect(f"{other}api/build/{UUID}")
    elsewhere.routes[f"/api/build/{UUID}"] = serve(zuul_record(f"{allowed.url}logs/"), "application/json")
    allowed.routes["/logs/job-output.txt"] = serve(b"2026-11-20 12:00:00.000 | line\n")
    settings = load_settings(data_dir=str(tmp_path / "data"), env={"ER_INGEST_LOG_HOSTS": "127.0.0.1"})
    build = Build(job="tempest-full", status="FAILURE", uuid=UUID, build_url=f"{allowed.url}t/openstack/build/{UUID}")
    fetch_one = fetch_with_zuul(settings)
    pool = ConnectionPool(LogHosts(settings.ingest.log_hosts))
    try:
        with pytest.raises(IngestError, match="'localhost' is not one of ingest.log_hosts"):
            fetch_one(build, tmp_path / "spool", settings.ingest, pool)
    finally:
        pool.close()
    assert elsewhere.requests == []


# -- the writer: a result that cannot be stored -----------------------------------

def test_a_build_whose_result_cannot_be_stored_is_still_reported_and_its_batch_mates_stored(tmp_path):
    """The index commit has landed, then the results database refuses one
    build's row (here a real SQLite trigger; in life a full disk or a locked
    file). Every build of the batch must still be reported to its producer
    (the daemon marks it, an event waiting on it goes on), the others'
    results stored: a producer never hearing back leaves the build
    'fetching' for ever and a replay that never ends."""
    results = tmp_path / "results.sqlite3"
    ResultStore(results).close()
    db = sqlite3.connect(results)
    db.execute("CREATE TRIGGER refuse BEFORE INSERT ON builds WHEN NEW.job = 'poison' "
               "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END")
    db.commit()
    db.close()
    backend = EmbeddedBackend(tmp_path / "index")
    done, both = [], threading.Event()

    def record(item):
        done.append(item)
        if len(done) == 2:
            both.set()

    queries = tmp_path / "queries"
    queries.mkdir()
    (queries / "100001.yaml").write_text('query: message:"Timed out waiting for a reply"\n')
    pipeline = IndexPipeline(backend, results, lambda: fingerprints_of(queries), done=record, batch_seconds=60)
    logs = tmp_path / "logs"
    pipeline.submit(LogsReady(metadata("a" * 32, job="poison"), str(write_build(logs, "a", ["x"], [TIMEOUT]))))
    pipeline.submit(LogsReady(metadata("b" * 32), str(write_build(logs, "b", ["x"], [TIMEOUT]))))
    pipeline.start()
    try:
        assert both.wait(15), f"only {[d.uuid for d in done]} reported back"
    finally:
        pipeline.stop()
    outcomes = {d.uuid: d.error for d in done}
    assert "disk I/O error" in outcomes["a" * 32] and outcomes["b" * 32] is None
    store = ResultStore(results)
    assert store.build("a" * 32) is None and store.build("b" * 32).bugs == ("100001",)


def test_a_build_taken_when_the_fingerprints_cannot_be_read_is_indexed_once_they_can(tmp_path):
    """The writer takes a build, then asking for the fingerprints fails (a
    fingerprint check needs the cluster, and it is down for a moment). The
    build must wait for the next try, not vanish: its producer would wait
    for it for ever."""
    queries = tmp_path / "queries"
    queries.mkdir()
    (queries / "100001.yaml").write_text('query: message:"Timed out waiting for a reply"\n')
    asked = []

    def fingerprints():
        asked.append(1)
        if len(asked) == 1:
            raise BackendError("the search backend does not answer (a fingerprint check needs it)")
        return fingerprints_of(queries)

    finished = threading.Event()
    done = []
    pipeline = IndexPipeline(EmbeddedBackend(tmp_path / "index"), tmp_path / "results.sqlite3", fingerprints,
                             done=lambda item: (done.append(item), finished.set()))
    pipeline.submit(LogsReady(metadata("a" * 32), str(write_build(tmp_path / "logs", "a", ["x"], [TIMEOUT]))))
    pipeline.start()
    try:
        assert finished.wait(15), "the build was dropped"
    finally:
        pipeline.stop()
    assert [(d.uuid, d.error, [m.bug for m in d.matches]) for d in done] == [("a" * 32, None, ["100001"])]


# -- stored results against the index ----------------------------------------------

def test_a_fingerprint_changed_and_first_run_over_a_short_window_is_run_again_for_a_longer_one(tmp_path):
    """``uncategorized --days 2`` is the first to meet a changed fingerprint,
    so it re-runs it over two days; the dashboard's ten days must then not
    take the stored rows as current: the builds three to ten days old would
    lose that fingerprint's hits for good."""
    queries = tmp_path / "queries"
    queries.mkdir()
    (queries / "100001.yaml").write_text('query: message:"Hash Sum mismatch"\n')
    backend = EmbeddedBackend(tmp_path / "index")
    store = ResultStore(tmp_path / "results.sqlite3")
    pipeline = IndexPipeline(backend, store.path, lambda: fingerprints_of(queries), percolate=False)
    for name, age_hours in (("a" * 32, 1), ("b" * 32, 5 * 24)):
        pipeline.submit(LogsReady(metadata(name), str(write_build(tmp_path / "logs", name, ["x"], [TIMEOUT],
                                                                  age_hours=age_hours))))
    pipeline.drain(store)
    (queries / "100001.yaml").write_text('query: message:"Timed out waiting for a reply"\n')  # changed
    fps = fingerprints_of(queries)
    now = NOW + dt.timedelta(hours=1)

    short = collect(backend, fps, now, 2, store=store)
    assert [h.build_uuid for h in short.hits] == ["a" * 32]
    longer = collect(backend, fps, now, 10, store=store)
    assert sorted(h.build_uuid for h in longer.hits) == ["a" * 32, "b" * 32]


def test_documents_ingest_docs_adds_to_a_stored_build_have_it_classified_again_whole(tmp_path):
    """``ingest --docs`` writes to the index alone. Documents it adds to a
    build the writer classified and stored leave that stored result as it
    was: the dashboard went on saying the build hit no known bug. Its stored
    rows are dropped, and the next dashboard classifies it again over the
    index, the new lines with the old."""
    data = tmp_path / "data"
    settings = load_settings(None, env={"ER_DATA_DIR": str(data)})
    queries = tmp_path / "queries"
    queries.mkdir()
    (queries / "100001.yaml").write_text('query: message:"Timed out waiting for a reply" AND tags:console\n')
    fps = fingerprints_of(queries)
    uuid = "d" * 32
    backend = EmbeddedBackend(settings.index_dir)
    index_builds(backend, settings.results_db, fps,
                 [LogsReady(metadata(uuid), str(write_build(tmp_path / "logs", "d", ["all fine"], ["x"])))])
    store = ResultStore(settings.results_db)
    assert store.build(uuid) is not None and store.build(uuid).matches == ()
    store.store_explanation(uuid, "recipe", "{}")

    late = {"message": TIMEOUT, "@timestamp": NOW.isoformat(), "build_uuid": uuid, "build_name": "tempest-full",
            "build_status": "FAILURE", "voting": "1", "tags": ["job-output.txt", "console"],
            "filename": "job-output.txt"}
    result = subprocess.run([sys.executable, "-m", "elastic_recheck", "ingest", "--docs", "-"],
                            input=json.dumps(late) + "\n", capture_output=True, text=True, timeout=120,
                            env={**os.environ, "ER_DATA_DIR": str(data)})
    assert result.returncode == 0, result.stderr
    assert "1 build had stored results from before these documents" in result.stderr
    assert store.build(uuid) is None and store.explanation(uuid, "recipe") is None

    found = collect(EmbeddedBackend(settings.index_dir), fps, NOW + dt.timedelta(minutes=1), 2, store=store)
    assert [(h.build_uuid, h.bug) for h in found.hits] == [(uuid, "100001")]
    assert [m.bug for m in store.build(uuid).matches] == ["100001"]
    store.close()


# -- the build queue --------------------------------------------------------------

@pytest.fixture
def build_queue(tmp_path):

    state = StateDB(tmp_path / "state.sqlite3")
    pipeline = IndexPipeline(EmbeddedBackend(tmp_path / "index"), tmp_path / "results.sqlite3", lambda: [])
    queue = BuildQueue(state, pipeline, IngestSettings(log_hosts=("127.0.0.1",), workers=1), tmp_path / "spool",
                       log_timeout=60)
    yield queue
    queue.close()
    state.close()


@pytest.mark.parametrize("zuul_first", [True, False], ids=["zuul-api-first", "gerrit-report-first"])
def test_a_build_named_by_zuuls_api_and_by_a_report_of_its_log_url_is_queued_once(build_queue, zuul_first):
    """Zuul with ``report-build-page: false`` comments with log URLs
    (``.../864201/3/gate/tempest-full/16e0b97/``): the report names the build
    by a short uuid and that URL, Zuul's builds API by its full uuid and the
    same URL. One build: fetched and indexed once, or every one of its lines
    (and its failure) counts twice on the dashboard. The event's job line
    finds it under either name."""
    log_url = "https://logs.example.org/864201/3/gate/tempest-full/16e0b97/"
    from_api = Build(job="tempest-full", status="FAILURE", uuid="16e0b97" + "0" * 25, short_uuid="16e0b97",
                     change=864201, patchset=3, log_url=log_url, source="zuul")
    from_report = Build(job="tempest-full", status="FAILURE", short_uuid="16e0b97", change=864201, patchset=3,
                        log_url=log_url.rstrip("/"), source="gerrit")
    first, second = (from_api, from_report) if zuul_first else (from_report, from_api)
    assert build_queue.enqueue(first) is True
    assert build_queue.enqueue(second) is False
    assert build_queue.state.build_counts() == {"queued": 1}
    assert build_queue.state.build_state(second.key) == build_queue.state.build_state(first.key)


def test_a_build_first_named_by_its_build_page_is_known_by_its_log_url_once_zuuls_api_gives_it(build_queue):
    log_url = "https://logs.example.org/864201/3/gate/tempest-full/16e0b97/"
    uuid = "16e0b97" + "0" * 25
    page = Build(job="tempest-full", status="FAILURE", uuid=uuid, build_url="https://zuul.example.org/t/o/build/"
                 + uuid, source="gerrit")
    from_api = Build(job="tempest-full", status="FAILURE", uuid=uuid, log_url=log_url, source="zuul")
    by_log_url = Build(job="tempest-full", status="FAILURE", short_uuid="16e0b97", log_url=log_url, source="gerrit")
    assert [build_queue.enqueue(b) for b in (page, from_api, by_log_url)] == [True, False, False]
    assert build_queue.state.build_counts() == {"queued": 1}


@pytest.mark.parametrize("ahead_bytes, ahead", [(1 << 30, 8), (10, 4)], ids=["room-on-disk", "one-build-fills-it"])
def test_builds_wait_fetched_for_a_busy_writer_up_to_a_bound_and_at_most_twice_the_workers_are_fetched(
        tmp_path, ahead_bytes, ahead):
    """A batch takes every fetched build waiting: with none left waiting the
    writer found nothing after each commit and waited on the fetches, one
    core idle. So builds go on being fetched while the writer is busy, until
    four times ``ingest.workers`` are fetched or being fetched (each is its
    logs on disk), and only while those waiting hold less than
    ``ingest.spool_ahead_bytes``; at most twice ``workers`` of them wait for
    or are in a worker's hands. Each build the writer finishes lets one more in."""
    state = StateDB(tmp_path / "state.sqlite3")
    pipeline = IndexPipeline(EmbeddedBackend(tmp_path / "index"), tmp_path / "results.sqlite3", lambda: [])
    fetched: list[str] = []
    go = threading.Event()

    def fetch_one(build, destination, settings, connections):
        go.wait(10)
        destination.mkdir(parents=True)
        (destination / "job-output.txt").write_text("0123456789")
        fetched.append(build.uuid)
        return FetchReport(build.log_url, files=[SpooledFile("job-output.txt", build.log_url + "job-output.txt", 10)])

    settings = IngestSettings(log_hosts=("127.0.0.1",), workers=2, spool_ahead_bytes=ahead_bytes)
    builds = BuildQueue(state, pipeline, settings, tmp_path / "spool", log_timeout=60, fetch_one=fetch_one)
    try:
        for n in range(20):
            builds.enqueue(Build(job="j", status="FAILURE", uuid=f"{n:032x}", log_url=f"http://127.0.0.1/{n}/"))

        def settle(expected: int) -> None:
            deadline = time.monotonic() + 10
            while pipeline.pending() < expected and time.monotonic() < deadline:
                builds.pump()
                time.sleep(0.01)
            time.sleep(0.1)  # and no more than that
            builds.pump()

        settle(0)
        assert state.build_counts() == {"fetching": 4, "queued": 16}  # the log server is slow
        go.set()
        settle(ahead)
        assert pipeline.pending() == len(fetched) == ahead
        assert state.build_counts() == {"fetching": ahead, "queued": 20 - ahead}

        first = pipeline.queue.get_nowait()  # the writer takes one and indexes it
        builds.writer_done(Indexed(first, None, []))
        settle(ahead)
        assert len(fetched) == ahead + 1 and pipeline.pending() == ahead
        assert state.build_counts() == {"indexed": 1, "fetching": ahead, "queued": 19 - ahead}
    finally:
        builds.close()
        state.close()


def test_a_build_cut_off_by_crash_after_crash_is_given_up_not_fetched_for_ever(tmp_path):
    """A build whose fetch or indexing kills the daemon (out of memory, a
    crash in the matcher) is 'fetching' at every restart: it is fetched
    again at once, and kills the daemon again. After MAX_FETCH_RESTARTS such
    restarts it is recorded as failed, saying why; a build cut off once (an
    operator's restart) is fetched again."""
    path = tmp_path / "state.sqlite3"
    state = StateDB(path)
    state.enqueue_build("poison", {"job": "j", "status": "FAILURE"}, 0.0)
    state.enqueue_build("unlucky", {"job": "j", "status": "FAILURE"}, 0.0)
    state.set_build("unlucky", "fetching")
    state.close()
    for restart in range(MAX_FETCH_RESTARTS + 1):
        state = StateDB(path)  # the restart after a kill -9
        status, _, error = state.build_state("poison")
        if status == "failed":
            break
        assert status == "queued" and restart < MAX_FETCH_RESTARTS
        state.set_build("poison", "fetching")  # fetched again at once; the daemon dies again
        state.close()
    assert restart == MAX_FETCH_RESTARTS
    assert f"cut off by {MAX_FETCH_RESTARTS} restarts" in error
    assert state.build_state("unlucky")[0] == "queued"
    state.close()


# -- Zuul's builds API, polled ------------------------------------------------------

def test_builds_the_daemon_never_took_are_polled_again_and_the_poller_goes_on(tmp_path):
    """The daemon could not write a batch of Zuul's builds into its queue
    (its state database refused: a full disk) and so never said it took
    them. The poller must not wait for that answer for ever (no build after
    it would be read) nor move its checkpoint past them: it gives up on the
    batch, and the next poll returns those builds again."""
    server = HostileLogServer()
    try:
        zuul = FakeZuul(server)
        first = zuul.run("tempest-full", hours_ago(1), "FAILURE")
        events: queues.Queue = queues.Queue()
        builds = source(zuul, tmp_path, since=hours_ago(2), clock=Clock(ZUUL_NOW))
        poller = ZuulPoller(builds, events, interval=0.05, accept_timeout=0.3)
        poller.start()
        try:
            refused = events.get(timeout=10)  # the daemon fails to take it: no accepted.set()
            assert uuids(refused.builds) == [first["uuid"]]
            again = events.get(timeout=10)
            assert uuids(again.builds) == [first["uuid"]]
            again.accepted.set()
            second = zuul.run("nova-tox", hours_ago(0.5), "SUCCESS")
            later = events.get(timeout=10)
            assert uuids(later.builds) == [second["uuid"]]
            later.accepted.set()
        finally:
            poller.stop()
    finally:
        server.close()


def test_a_build_the_daemon_stores_while_the_dashboard_reruns_a_fingerprint_keeps_its_match(tmp_path):
    """The dashboard (another process) runs a changed fingerprint over the
    index; while its answer is on the way, the daemon indexes build Y, finds
    the fingerprint in it and stores that. The dashboard's answer predates Y:
    replacing the fingerprint's rows with it must not wipe Y's match."""
    path = tmp_path / "results.sqlite3"
    dashboard, daemon = ResultStore(path), ResultStore(path)
    fields = {"build_uuid": "x" * 32, "build_name": "j", "build_status": "FAILURE"}
    daemon.store_build(fields, [Match("100001", 1, 1)], newest=1, lines=1, failed_tests=None)

    def rematch(bug, query):
        answer = [BuildOutcome("x" * 32, "FAILURE", hits=2)]  # what the index held when asked
        daemon.store_build({**fields, "build_uuid": "y" * 32}, [Match("100001", 3, 5)], newest=5, lines=9,
                           failed_tests=None)  # meanwhile, in the daemon
        return answer

    assert dashboard.sync_fingerprints({"100001": 'message:"new words"'}, rematch) == {}
    assert dashboard.build("x" * 32).matches == (Match("100001", 2, None, ""),)
    assert dashboard.build("y" * 32).bugs == ("100001",)


def test_a_build_classified_with_a_fingerprints_old_query_after_the_new_one_was_synced_is_run_again(tmp_path):
    """The daemon compiled its fingerprints and is indexing build Y when the
    operator changes one; the dashboard (another process) re-runs the new
    query at once, before Y is stored. Y's row then comes from the old query
    under a fingerprint the store calls current: the next sync must run that
    fingerprint again, or Y misses the new query's match for good."""
    old, new = tmp_path / "old", tmp_path / "new"
    for directory, query in ((old, "Hash Sum mismatch"), (new, "Timed out waiting for a reply")):
        directory.mkdir()
        (directory / "100001.yaml").write_text(f'query: message:"{query}"\n')
    backend = EmbeddedBackend(tmp_path / "index")
    store = ResultStore(tmp_path / "results.sqlite3")
    dashboard = ResultStore(store.path)
    meanwhile = []

    def dashboard_runs_now(lines: int) -> None:
        if not meanwhile:
            meanwhile.append(collect(backend, fingerprints_of(new), NOW, 10, store=dashboard))

    logs = tmp_path / "logs"
    pipeline = IndexPipeline(backend, store.path, lambda: fingerprints_of(old), progress=dashboard_runs_now)
    pipeline.submit(LogsReady(metadata("y" * 32), str(write_build(logs, "y", ["x"] * 1000, [TIMEOUT]))))
    pipeline.drain(store)
    assert meanwhile and store.build("y" * 32).bugs == ()  # classified with the old query

    restarted = IndexPipeline(backend, store.path, lambda: fingerprints_of(new))  # the daemon, on the new set
    restarted.submit(LogsReady(metadata("z" * 32), str(write_build(logs, "z", ["x"], ["fine"]))))
    restarted.drain(store)
    assert store.build("y" * 32).bugs == ("100001",)


# -- the log server -----------------------------------------------------------------

def test_a_manifest_the_log_server_is_too_busy_to_give_is_not_taken_for_no_manifest(tmp_path):
    """``zuul-manifest.json`` answers 503 however often it is asked. Taking
    that for "no manifest" fetches by the patterns instead, which miss what
    only the manifest names (a multinode job's ``controller/logs/...``): the
    build would be indexed without those lines, as if whole. The fetch fails
    instead, to be asked again (a busy server is worth retrying)."""
    server = HostileLogServer()
    try:
        def busy(handler):
            handler.send_response(503)
            handler.send_header("Content-Length", "0")
            handler.end_headers()

        server.routes["/b/zuul-manifest.json"] = busy
        server.routes["/b/job-output.txt"] = serve(b"2026-11-20 12:00:00.000 | line\n")
        server.routes["/b/controller/logs/screen-n-cpu.txt"] = serve(b"2026-11-20 12:00:00.000 | the failure\n")
        build = Build(job="multinode", status="FAILURE", uuid=UUID, log_url=f"{server.url}b/")
        settings = IngestSettings(log_hosts=("127.0.0.1",))
        with pytest.raises(IngestError, match="HTTP 503") as caught:
            fetch_build(build, tmp_path / "spool", settings, retry=HttpRetry(attempts=2, delay=0.01))
        assert worth_retrying(caught.value)
    finally:
        server.close()


def test_a_build_zuuls_api_still_calls_running_when_its_report_came_is_asked_about_again(servers):
    """Zuul may post the report before its database has the build's result
    (the API answers the record with ``result: null``). That build has not
    failed to be fetched: it is asked about again, within its log timeout."""
    allowed, _ = servers
    running = json.loads(zuul_record(f"{allowed.url}logs/"))
    running["result"] = None
    allowed.routes[f"/api/build/{UUID}"] = serve(json.dumps(running).encode(), "application/json")
    with pytest.raises(IngestError, match="has not finished") as caught:
        resolve_build(f"{allowed.url}api", UUID, HttpRetry(attempts=1))
    assert worth_retrying(caught.value)


def test_a_log_url_that_names_a_limit_does_not_make_a_refused_host_worth_retrying(tmp_path):
    """A report's log URL is its author's text: one that happens to spell
    "ingest.file_timeout" must not make its refusal look like a slow server."""
    build = Build(job="j", status="FAILURE", short_uuid="abc1234",
                  log_url="http://elsewhere.example.org/ingest.file_timeout/check/j/abc1234/")
    with pytest.raises(IngestError, match="not one of ingest.log_hosts") as caught:
        fetch_build(build, tmp_path / "spool", IngestSettings(log_hosts=("127.0.0.1",)))
    assert not worth_retrying(caught.value)


def test_a_fingerprint_added_while_no_build_comes_is_run_over_the_stored_builds(tmp_path):
    """Zuul's builds API brought build Y in before its Gerrit report; the
    operator adds a fingerprint for the bug Y hit; then the report comes, and
    its comment is made from Y's stored row. The writer must run the new
    fingerprint over what is indexed when the set changes, not only when the
    next build happens to arrive (a quiet hour, a replay)."""
    queries = tmp_path / "queries"
    queries.mkdir()
    (queries / "100001.yaml").write_text('query: message:"Hash Sum mismatch"\n')
    backend = EmbeddedBackend(tmp_path / "index")
    indexed = []
    pipeline = IndexPipeline(backend, tmp_path / "results.sqlite3", lambda: fingerprints_of(queries),
                             done=indexed.append)
    pipeline.submit(LogsReady(metadata("y" * 32), str(write_build(tmp_path / "logs", "y", ["x"], [TIMEOUT]))))
    pipeline.start()
    store = ResultStore(tmp_path / "results.sqlite3")
    try:
        deadline = time.monotonic() + 10
        while not indexed and time.monotonic() < deadline:
            time.sleep(0.05)
        assert indexed and store.build("y" * 32).bugs == ()
        (queries / "100002.yaml").write_text('query: message:"Timed out waiting for a reply"\n')  # added
        deadline = time.monotonic() + 10
        while store.build("y" * 32).bugs != ("100002",) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.build("y" * 32).bugs == ("100002",)
    finally:
        pipeline.stop()
        store.close()


def _open_and_close(kind: str, path: Path) -> None:
    from elastic_recheck.dashboard.memory import DashboardMemory
    from elastic_recheck.irc_outbox import Outbox
    from elastic_recheck.state import StateDB

    if kind == "results":
        store = ResultStore(path)
        store.build("x" * 32)
        store.close()
    elif kind == "state":
        StateDB(path).close()
    elif kind == "outbox":
        outbox = Outbox(path)
        outbox.post([])
        outbox.close()
    else:
        DashboardMemory(path).close()


@pytest.mark.parametrize("kind", ["results", "state", "outbox", "dashboard"])
def test_stores_opened_at_the_same_moment_by_many_threads_all_open(tmp_path, kind):
    """The daemon's writer, its loop and a dashboard run open the same
    SQLite files at once, the first time too (switching a new file to WAL
    answers "locked" without waiting); none may fail."""
    errors: list[BaseException] = []
    for round_ in range(30):
        path = tmp_path / f"{kind}-{round_}.sqlite3"
        start = threading.Barrier(4)

        def open_one() -> None:
            start.wait()
            try:
                _open_and_close(kind, path)
            except BaseException as exc:  # noqa: BLE001 - the assertion below names it
                errors.append(exc)

        threads = [threading.Thread(target=open_one) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert errors == []
