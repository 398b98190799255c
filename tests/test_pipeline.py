"""The index pipeline: one writer, builds queued never refused, each build
indexed whole and classified in the same pass, its result stored; the pages
read the stored results."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest

from elastic_recheck.dashboard.trends import collect
from elastic_recheck.fingerprints import load_fingerprints
from elastic_recheck.ingest.sources import BuildMetadata
from elastic_recheck.pipeline import IndexPipeline, LogsReady
from elastic_recheck.results import ResultStore
from elastic_recheck.search.embedded import EmbeddedBackend

UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC).replace(microsecond=0)
TIMEOUT = "MessagingTimeout: Timed out waiting for a reply to message ID 4f3e"


def write_build(root: Path, name: str, console: list[str], cpu: list[str], age_hours: float = 1.0,
                tests: list[str] = ()) -> Path:
    """A build directory as a log server holds it: console log and a service log, lines ``age_hours`` ago."""
    at = NOW - dt.timedelta(hours=age_hours)
    stamp = lambda i: (at + dt.timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S.%f")  # noqa: E731
    build = root / name
    (build / "logs").mkdir(parents=True)
    lines = [f"{stamp(i)} | {text}" for i, text in enumerate(console)]
    lines += [f"{stamp(100 + i)} | {{0}} {test} [1.0s] ... FAILED" for i, test in enumerate(tests)]
    (build / "job-output.txt").write_text("\n".join(lines) + "\n")
    (build / "logs" / "screen-n-cpu.txt").write_text(
        "".join(f"{stamp(50 + i)} 1234 ERROR nova.compute.manager [req-1] {text}\n" for i, text in enumerate(cpu)))
    return build


def metadata(uuid: str, status: str = "FAILURE", job: str = "tempest-full", voting: str = "1") -> BuildMetadata:
    return BuildMetadata(build_uuid=uuid, build_name=job, build_status=status, build_queue="gate",
                         project="openstack/nova", build_change="864201", build_patchset="3", voting=voting,
                         log_url=f"https://logs.example.org/{uuid[:7]}")


@pytest.fixture
def queries(tmp_path: Path) -> Path:
    directory = tmp_path / "queries"
    directory.mkdir()
    (directory / "100001.yaml").write_text(
        'query: message:"Timed out waiting for a reply" AND tags:"screen-n-cpu.txt"\n')
    (directory / "100002.yaml").write_text('query: message:"Hash Sum mismatch" AND tags:console\n')
    (directory / "100003.yaml").write_text(
        'query: message:"volume failed to attach" AND tags:console\n'
        "test_ids:\n  - tempest.api.compute.volumes.test_attach\n")
    return directory


def fingerprints_of(directory: Path):
    good, bad = load_fingerprints(directory)
    assert not bad
    return good


@pytest.mark.parametrize("percolate", [False, True], ids=["index-queries", "percolator"])
def test_builds_queued_together_are_indexed_whole_and_classified_as_the_index_would(tmp_path, queries, percolate):
    if percolate:
        pytest.importorskip("elastic_recheck.percolate")
    backend = EmbeddedBackend(tmp_path / "index")
    logs = tmp_path / "logs"
    items = [
        LogsReady(metadata("a" * 32), str(write_build(logs, "a", ["Running tempest"], [TIMEOUT, "fine", TIMEOUT]))),
        LogsReady(metadata("b" * 32), str(write_build(logs, "b", ["E: Hash Sum mismatch"], ["fine"]))),
        LogsReady(metadata("c" * 32, status="SUCCESS"), str(write_build(logs, "c", ["all good"], ["fine"]))),
        LogsReady(metadata("d" * 32, voting="0"), str(write_build(logs, "d", ["x"], [TIMEOUT]))),
        LogsReady(metadata("e" * 32), str(write_build(logs, "e", ["volume failed to attach"], [],
                                                     tests=["tempest.api.compute.volumes.test_attach.T.test_a"]))),
    ]
    done = []
    pipeline = IndexPipeline(backend, tmp_path / "results.sqlite3", lambda: fingerprints_of(queries),
                             done=done.append, percolate=percolate)
    for item in items:
        pipeline.submit(item)
    store = ResultStore(tmp_path / "results.sqlite3")
    pipeline.drain(store)

    assert [d.uuid for d in done] == ["a" * 32, "b" * 32, "c" * 32, "d" * 32, "e" * 32]
    stored = {uuid: store.build(uuid) for uuid in (d.uuid for d in done)}
    assert stored["a" * 32].bugs == ("100001",)
    assert stored["a" * 32].matches[0].hits == 2
    assert "Timed out waiting" in stored["a" * 32].matches[0].message
    assert stored["b" * 32].bugs == ("100002",)
    assert stored["c" * 32].bugs == () and stored["c" * 32].status == "SUCCESS"
    assert stored["d" * 32].bugs == ()  # non-voting: the fingerprint is for voting jobs
    assert stored["e" * 32].failed_tests == ("tempest.api.compute.volumes.test_attach.T.test_a",)
    # The stored answer is the index's answer, line counts and newest line included.
    for fp in fingerprints_of(queries):
        for outcome in backend.builds(fp.voting_query):
            match = {m.bug: m for m in stored[outcome.build_uuid].matches}[fp.bug]
            assert match.hits == outcome.hits
            assert match.newest is not None
    assert stored["a" * 32].lines == 4 and stored["a" * 32].newest is not None


def test_a_build_without_logs_is_its_own_outcome_and_the_others_go_on(tmp_path, queries):
    backend = EmbeddedBackend(tmp_path / "index")
    empty = tmp_path / "empty"
    empty.mkdir()
    done = []
    pipeline = IndexPipeline(backend, tmp_path / "results.sqlite3", lambda: fingerprints_of(queries),
                             done=done.append, percolate=False)
    pipeline.submit(LogsReady(metadata("a" * 32), str(empty)))
    pipeline.submit(LogsReady(metadata("b" * 32), str(write_build(tmp_path / "logs", "b", ["E: Hash Sum mismatch"],
                                                                  []))))
    store = ResultStore(tmp_path / "results.sqlite3")
    pipeline.drain(store)
    assert done[0].error and "no log files" in done[0].error
    assert store.build("a" * 32) is None
    assert store.build("b" * 32).bugs == ("100002",)


def test_the_writer_thread_takes_builds_from_many_producers_at_once(tmp_path, queries):
    backend = EmbeddedBackend(tmp_path / "index")
    finished = threading.Event()
    done = []

    def record(item):
        done.append(item.uuid)
        if len(done) == 12:
            finished.set()

    pipeline = IndexPipeline(backend, tmp_path / "results.sqlite3", lambda: fingerprints_of(queries), done=record,
                             percolate=False).start()
    try:
        def produce(first: int) -> None:
            for n in range(first, first + 4):
                uuid = f"{n:032x}"
                pipeline.submit(LogsReady(metadata(uuid), str(write_build(tmp_path / "logs", uuid, ["x"],
                                                                          [TIMEOUT])), spooled=True))

        producers = [threading.Thread(target=produce, args=(n * 4,)) for n in range(3)]
        for thread in producers:
            thread.start()
        for thread in producers:
            thread.join()
        assert finished.wait(60)
    finally:
        pipeline.stop()
    assert sorted(done) == [f"{n:032x}" for n in range(12)]
    assert backend.count('message:"Timed out waiting"') == 12
    assert not any((tmp_path / "logs").iterdir())  # spooled copies are removed once indexed


def test_pages_read_stored_results_and_rerun_only_a_changed_fingerprint(tmp_path, queries):
    class Counting(EmbeddedBackend):
        asked: list[str] = []

        def builds(self, query, window=None):
            self.asked.append(query)
            return super().builds(query, window) if window else super().builds(query)

    backend = Counting(tmp_path / "index")
    store = ResultStore(tmp_path / "results.sqlite3")
    pipeline = IndexPipeline(backend, store.path, lambda: fingerprints_of(queries), percolate=False)
    for name, console, cpu in (("a" * 32, ["x"], [TIMEOUT]), ("b" * 32, ["E: Hash Sum mismatch"], [])):
        pipeline.submit(LogsReady(metadata(name), str(write_build(tmp_path / "logs", name, console, cpu))))
    pipeline.drain(store)
    fps = fingerprints_of(queries)

    backend.asked.clear()
    collected = collect(backend, fps, NOW + dt.timedelta(hours=1), 10, store=store)
    assert backend.asked == ["tags:console"]  # no fingerprint asked of the index
    assert sorted((h.bug, h.build_uuid) for h in collected.hits) == [("100001", "a" * 32),
                                                                                ("100002", "b" * 32)]
    assert sorted(f.build_uuid for f in collected.failures) == ["a" * 32, "b" * 32]

    (queries / "100002.yaml").write_text('query: message:"Running" OR message:"x"\n')  # changed
    (queries / "100003.yaml").unlink()  # removed
    backend.asked.clear()
    fps = fingerprints_of(queries)
    collected = collect(backend, fps, NOW + dt.timedelta(hours=1), 10, store=store)
    assert backend.asked == ["tags:console", "(message:\"Running\" OR message:\"x\") AND voting:1"]
    assert sorted((h.bug, h.build_uuid) for h in collected.hits) == [("100001", "a" * 32),
                                                                                ("100002", "a" * 32)]
    assert store.db.execute("SELECT COUNT(*) FROM matches WHERE bug = '100003'").fetchone()[0] == 0


def test_builds_indexed_without_the_pipeline_are_classified_once_and_stored(tmp_path, queries):
    backend = EmbeddedBackend(tmp_path / "index")
    with backend.writer() as writer:
        for uuid, message, tags in (("a" * 32, TIMEOUT, ["screen-n-cpu.txt"]), ("a" * 32, "x", ["console"]),
                                    ("b" * 32, "nothing", ["console"])):
            writer.add({"build_uuid": uuid, "build_status": "FAILURE", "voting": "1", "build_name": "j",
                        "message": message, "tags": tags}, NOW - dt.timedelta(hours=1))
    store = ResultStore(tmp_path / "results.sqlite3")
    collected = collect(backend, fingerprints_of(queries), NOW, 10, store=store)
    assert [h.build_uuid for h in collected.hits] == ["a" * 32]
    assert store.build("a" * 32).bugs == ("100001",)
    assert store.build("b" * 32).bugs == ()


def test_a_fingerprint_the_percolator_cannot_run_is_asked_of_the_index_for_that_build(tmp_path, queries):
    pytest.importorskip("elastic_recheck.percolate")
    (queries / "100004.yaml").write_text('query: message:Timed* AND tags:"screen-n-cpu.txt"\n')  # a wildcard
    backend = EmbeddedBackend(tmp_path / "index")
    pipeline = IndexPipeline(backend, tmp_path / "results.sqlite3", lambda: fingerprints_of(queries))
    pipeline.submit(LogsReady(metadata("a" * 32), str(write_build(tmp_path / "logs", "a", ["x"], [TIMEOUT]))))
    store = ResultStore(tmp_path / "results.sqlite3")
    pipeline.drain(store)
    assert "100004" in pipeline.percolators.current(fingerprints_of(queries)).fallback
    assert store.build("a" * 32).bugs == ("100001", "100004")
    assert {m.bug: m.hits for m in store.build("a" * 32).matches}["100004"] == 1


def test_ingest_by_hand_waits_its_turn_while_another_process_writes(tmp_path):
    import os
    import subprocess
    import sys
    import time

    data = tmp_path / "data"
    backend = EmbeddedBackend(data / "index")
    build = write_build(tmp_path / "logs", "a", ["E: Hash Sum mismatch"], [])
    (build / "build.json").write_text('{"uuid": "' + "a" * 32 + '", "job_name": "j", "result": "FAILURE"}')
    writer = backend.writer()  # as the daemon holds it during a batch
    try:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "elastic-recheck"), "ingest", "--builds",
                                 str(tmp_path / "logs")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "ER_DATA_DIR": str(data)})
        time.sleep(2)
        assert proc.poll() is None  # waiting, not failing
    finally:
        writer.rollback()
        writer.close()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "1 builds" in out
    assert EmbeddedBackend(data / "index").count('message:"Hash Sum mismatch"') == 1


def test_a_build_that_breaks_the_writer_is_an_error_and_the_batch_goes_on_without_it(tmp_path, queries):
    from elastic_recheck.search.embedded import EmbeddedWriter

    class BreaksOnBoom(EmbeddedWriter):
        def add_analysed_lines(self, cids, micros, messages, tokens):
            if any("boom" in message for message in messages):
                raise RuntimeError("a bug met by this build")
            super().add_analysed_lines(cids, micros, messages, tokens)

    class Backend(EmbeddedBackend):
        def writer(self):
            return BreaksOnBoom(self, self._held)

    backend = Backend(tmp_path / "index")
    done = []
    pipeline = IndexPipeline(backend, tmp_path / "results.sqlite3", lambda: fingerprints_of(queries),
                             done=done.append)
    logs = tmp_path / "logs"
    pipeline.submit(LogsReady(metadata("a" * 32), str(write_build(logs, "a", ["E: Hash Sum mismatch"], []))))
    pipeline.submit(LogsReady(metadata("b" * 32), str(write_build(logs, "b", ["fine", "boom"], [TIMEOUT]))))
    pipeline.submit(LogsReady(metadata("c" * 32), str(write_build(logs, "c", ["x"], [TIMEOUT]))))
    store = ResultStore(tmp_path / "results.sqlite3")
    pipeline.drain(store)
    outcomes = {d.uuid: d.error for d in done}
    assert outcomes["a" * 32] is None and outcomes["c" * 32] is None
    assert "a bug met by this build" in outcomes["b" * 32]
    assert backend.count('build_uuid:"' + "b" * 32 + '"') == 0  # nothing of it committed
    assert backend.count('build_uuid:"' + "a" * 32 + '"') > 0 and store.build("c" * 32).bugs == ("100001",)


def test_a_builds_result_is_out_before_the_writer_waits_for_merges(tmp_path, queries):
    """Closing the writer waits for the merges its commit started: the build's
    result (and so its comment) must not wait for them too."""
    from elastic_recheck.search.embedded import EmbeddedWriter

    order = []

    class Recording(EmbeddedWriter):
        def commit(self):
            super().commit()
            order.append("committed")

        def close(self):
            order.append("closing")
            super().close()

    class Backend(EmbeddedBackend):
        def writer(self):
            return Recording(self, self._held)

    store = ResultStore(tmp_path / "results.sqlite3")
    pipeline = IndexPipeline(Backend(tmp_path / "index"), tmp_path / "results.sqlite3",
                             lambda: fingerprints_of(queries),
                             done=lambda item: order.append(f"done {store.build(item.uuid).bugs}"))
    pipeline.submit(LogsReady(metadata("a" * 32), str(write_build(tmp_path / "logs", "a", ["x"], [TIMEOUT]))))
    pipeline.drain(store)
    assert order == ["committed", "done ('100001',)", "closing"]


def test_once_started_the_writer_has_compiled_the_fingerprints_before_any_build_comes(tmp_path, queries):
    """The daemon takes events only after start(): a build reported at once
    must not wait ~1 s for a thousand fingerprints to be compiled."""
    asked = []

    def fingerprints():
        asked.append(threading.current_thread().name)
        return fingerprints_of(queries)

    pipeline = IndexPipeline(EmbeddedBackend(tmp_path / "index"), tmp_path / "results.sqlite3", fingerprints)
    pipeline.start()
    try:
        assert asked and asked[0] == "index-writer"
        assert pipeline.percolators._percolator is not None
        compiled = pipeline.percolators._percolator
        assert sorted(compiled.keys + list(compiled.fallback)) == sorted(fp.bug for fp in fingerprints_of(queries))
    finally:
        pipeline.stop()


def test_the_writer_keeps_the_index_while_builds_keep_coming_and_lets_go_when_none_are_queued(tmp_path, queries):
    """Closing tantivy's writers waits for their merges: between batches of a
    backlog they stay open; with nothing queued, an operator's ingest gets its turn."""
    held, sessions = [], []

    class Backend(EmbeddedBackend):
        def writer(self):
            held.append(self._held is not None)
            return super().writer()

        def ingest_session(self, **kwargs):
            sessions.append(len(held))
            return super().ingest_session(**kwargs)

    done = []
    pipeline = IndexPipeline(Backend(tmp_path / "index"), tmp_path / "results.sqlite3",
                             lambda: fingerprints_of(queries), done=done.append, batch_lines=1)
    for name in "abc":
        pipeline.submit(LogsReady(metadata(name * 32), str(write_build(tmp_path / "logs", name, ["x"], [TIMEOUT]))))
    pipeline.start()
    try:
        deadline = dt.datetime.now() + dt.timedelta(seconds=30)
        while len(done) < 3 and dt.datetime.now() < deadline:
            threading.Event().wait(0.05)
        assert [item.error for item in done] == [None, None, None]
        assert held == [True, True, True] and sessions == [0]  # three batches, the writers opened once
        other = EmbeddedBackend(tmp_path / "index", writer_wait=5.0).writer()  # let go: another writer gets in
        other.rollback()
        other.close()
    finally:
        pipeline.stop()


def test_during_a_backlog_the_writer_lets_go_after_its_batch_when_another_process_waits(tmp_path, queries):
    """An operator's ingest waiting for the index gets it after the daemon's
    batch under way, not when the backlog ends; then the daemon goes on."""
    import time

    done = []
    pipeline = IndexPipeline(EmbeddedBackend(tmp_path / "index", writer_wait=20.0), tmp_path / "results.sqlite3",
                             lambda: fingerprints_of(queries), done=done.append, batch_lines=1)
    submitted = []
    feeding = threading.Event()
    feeding.set()

    def feed():  # a build every 50 ms, for at most 20 s: a backlog
        for n in range(400):
            if not feeding.is_set():
                return
            name = f"{n:032x}"
            pipeline.submit(LogsReady(metadata(name), str(write_build(tmp_path / "logs", name, ["x"], [TIMEOUT]))))
            submitted.append(name)
            time.sleep(0.05)

    feeder = threading.Thread(target=feed)
    pipeline.start()
    feeder.start()
    try:
        while not done:
            time.sleep(0.05)
        asked = time.monotonic()
        other = EmbeddedBackend(tmp_path / "index", writer_wait=20.0).writer()
        waited = time.monotonic() - asked
        still_feeding = feeder.is_alive()
        indexed_meanwhile = len(done)
        other.rollback()
        other.close()
        time.sleep(0.5)
        feeding.clear()
        feeder.join()
        deadline = time.monotonic() + 60
        while len(done) < len(submitted) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        feeding.clear()
        pipeline.stop()
    assert still_feeding and waited < 6.0, waited
    assert len(done) == len(submitted) > indexed_meanwhile  # the daemon went on after the other writer
    assert [item.error for item in done] == [None] * len(done)


def test_a_writer_wanted_file_left_behind_by_a_waiter_long_gone_is_not_a_waiter(tmp_path):
    import os
    import time

    backend = EmbeddedBackend(tmp_path / "index")
    assert not backend.writer_wanted()
    wanted = tmp_path / "index" / "writer-wanted"
    wanted.touch()
    assert backend.writer_wanted()
    os.utime(wanted, (time.time() - 60, time.time() - 60))  # a waiter killed a minute ago
    assert not backend.writer_wanted()


def test_lines_of_alternating_levels_are_each_matched_in_their_own_context(tmp_path):
    # A service log's levels are contexts of their own. The percolator hands
    # the lines of levels no fingerprint tells apart over in one call, and
    # keeps apart those of a level a fingerprint asks for: the answers are the
    # index's, line for line.
    directory = tmp_path / "queries"
    directory.mkdir()
    (directory / "200001.yaml").write_text(
        'query: message:"Timed out waiting for a reply" AND tags:"screen-n-cpu.txt"\n')
    (directory / "200002.yaml").write_text('query: message:"Timed out waiting for a reply" AND loglevel:ERROR\n')
    (directory / "200003.yaml").write_text('query: message:"disk is full" AND NOT loglevel:ERROR\n')
    at = NOW - dt.timedelta(hours=1)
    build = tmp_path / "logs" / "f"
    (build / "logs").mkdir(parents=True)
    (build / "job-output.txt").write_text(f"{at:%Y-%m-%d %H:%M:%S.%f} | Running tempest\n")
    levels = ["ERROR", "INFO", "WARNING", "INFO", "ERROR", "ERROR", "WARNING"] * 5
    texts = [TIMEOUT, "disk is full", TIMEOUT, "fine", "disk is full", TIMEOUT, "disk is full"] * 5
    (build / "logs" / "screen-n-cpu.txt").write_text("".join(
        f"{at + dt.timedelta(seconds=i):%Y-%m-%d %H:%M:%S.%f} 1234 {level} nova.compute.manager [req-1] {text}\n"
        for i, (level, text) in enumerate(zip(levels, texts))))
    backend = EmbeddedBackend(tmp_path / "index")
    pipeline = IndexPipeline(backend, tmp_path / "results.sqlite3", lambda: fingerprints_of(directory),
                             done=lambda _: None, percolate=True)
    pipeline.submit(LogsReady(metadata("f" * 32), str(build)))
    store = ResultStore(tmp_path / "results.sqlite3")
    pipeline.drain(store)

    matches = {m.bug: m for m in store.build("f" * 32).matches}
    assert {bug: m.hits for bug, m in matches.items()} == {"200001": 15, "200002": 10, "200003": 10}
    for fp in fingerprints_of(directory):
        (outcome,) = backend.builds(fp.voting_query)
        assert matches[fp.bug].hits == outcome.hits
