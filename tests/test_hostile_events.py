"""Whatever Gerrit (or a replay file) sends, the daemon lives: a bad event is
skipped or parked with one log line, and the events around it are worked on
as if it had never come."""

from __future__ import annotations

import io
import json
import logging
import math
import os
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elastic_recheck.config import GerritSettings, Settings, WatchSettings
from elastic_recheck.errors import EventError
from elastic_recheck.gerrit_events import parse_failure
from elastic_recheck.reporting import PrintingReviewer
from elastic_recheck.search.embedded import EmbeddedBackend
from elastic_recheck.state import StateDB
from elastic_recheck.watch import END, Daemon, FingerprintSet, read_event_file

from .conftest import KEEP_ALL, KEEP_ALL_SETTINGS
from .gerrit_server import GerritServer
from .test_watch import BIN, GRENADE, ROOT, TEMPEST, ZUUL, _config, _ingest, _watch, failure

GOOD = failure(864201, 3, [("tempest-full", ZUUL + TEMPEST, "FAILURE")])
EXPECTED_REVIEW = "review 864201,3:\nI noticed Zuul failed, I think you hit bug(s):"


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example builds, indexed once for the module (the tests only read)."""
    path = tmp_path_factory.mktemp("hostile") / "index"
    backend = EmbeddedBackend(path)
    for build in (TEMPEST, GRENADE):
        _ingest(backend, build)
    backend.close()
    return path


def _daemon(tmp_path: Path, index: Path, out: io.StringIO, backend: Any = None) -> Daemon:
    settings = Settings(data_dir=tmp_path, watch=WatchSettings(queries=str(ROOT / "queries"), poll_initial=0.01),
                        retention=KEEP_ALL_SETTINGS)
    return Daemon(settings, backend or EmbeddedBackend(index), StateDB(tmp_path / "state.sqlite3"),
                  PrintingReviewer(out), FingerprintSet(settings.watch.queries))


def _run(daemon: Daemon, events: list[Any]) -> None:
    feed: queue.Queue[Any] = queue.Queue()
    for event in [*events, END]:
        feed.put(event)
    daemon.run(feed, exit_when_exhausted=True)


# -- the events that used to end the process ----------------------------------------


def _with(event: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return json.loads(json.dumps({**event, **changes}))


HOSTILE = {
    "a lone surrogate in a job name": _with(GOOD, comment=GOOD["comment"].replace("tempest-full", "tempest-\ud800")),
    "a change number of 1e23": _with(GOOD, change={**GOOD["change"], "number": 1e23}),
    "a change number as a huge string": _with(GOOD, change={**GOOD["change"], "number": "9" * 400}),
    "eventCreatedOn 1e17": _with(GOOD, eventCreatedOn=1e17),
    "eventCreatedOn NaN": {**GOOD, "eventCreatedOn": math.nan},
    "a patchset as an object": _with(GOOD, patchSet={"number": {"n": 1}}),
    "a comment that is a list": _with(GOOD, comment=["Build failed."]),
    "an author that is a string": _with(GOOD, author="zuul"),
    "a change that is a list": _with(GOOD, change=[1, 2]),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_event_is_skipped_and_the_next_one_is_commented(tmp_path, index, name, caplog):
    out = io.StringIO()
    daemon = _daemon(tmp_path, index, out)
    with caplog.at_level(logging.INFO, "elastic_recheck"):
        _run(daemon, [HOSTILE[name], GOOD])
    assert out.getvalue().startswith(EXPECTED_REVIEW)
    assert out.getvalue().count("review ") == 1
    assert daemon.counters["malformed"] + daemon.counters["errors"] <= 1
    for record in caplog.records:
        assert "\n" not in record.getMessage()


def test_the_example_events_of_the_issue_are_errors_naming_what_is_wrong():
    with pytest.raises(EventError, match="change number"):
        parse_failure(HOSTILE["a change number of 1e23"])
    with pytest.raises(EventError, match="eventCreatedOn"):
        parse_failure(HOSTILE["eventCreatedOn 1e17"])
    report = parse_failure(HOSTILE["a lone surrogate in a job name"])
    assert report.jobs[0].name == "tempest-\ufffd"  # stored, logged and posted as valid text
    assert report.jobs[0].name.encode("utf-8")


def test_an_event_dated_ahead_of_our_clock_still_times_out_on_time(tmp_path, index):
    daemon = _daemon(tmp_path, index, io.StringIO())
    ahead = failure(1, 1, [("ghost", ZUUL + "f" * 32, "FAILURE")], created=time.time() + 3600)
    daemon.accept(ahead)
    event = daemon.state.due_events()[0]
    assert event.created.timestamp() <= time.time()  # counted from when it arrived, not from the future


# -- property-based: hostile events never escape as an exception ---------------------

_json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["\ud800", "\x00\r\n", "Build failed.", "comment-added", "zuul", "1e23", "-1", "0"]),
)
_json = st.recursive(_json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=12)
_event_keys = st.sampled_from(["type", "author", "comment", "change", "patchSet", "eventCreatedOn"])


@st.composite
def hostile_events(draw: st.DrawFn) -> Any:
    """A real failure report with some of its parts replaced by anything JSON can hold."""
    if draw(st.booleans()):
        return draw(_json)
    event = json.loads(json.dumps(GOOD))
    for key in draw(st.lists(_event_keys, max_size=3)):
        event[key] = draw(_json)
    if draw(st.booleans()):
        job = draw(st.text(min_size=1, max_size=20).filter(lambda t: not any(c.isspace() for c in t)))
        event["comment"] = str(event.get("comment")).replace("tempest-full", job)
    return event


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_events())
def test_parsing_any_event_gives_a_report_nothing_or_an_event_error(event):
    try:
        report = parse_failure(event)
    except EventError as exc:
        assert "\n" not in str(exc)
        return
    if report is not None:
        for text in (report.project, report.branch, report.url, *(j.name for j in report.jobs)):
            text.encode("utf-8")  # no lone surrogate survives the edge
        assert 0 < report.change < 2**31 and 0 < report.patchset < 2**31


def test_a_stream_of_hostile_events_never_stops_the_daemon_nor_costs_the_good_ones(tmp_path, index):
    examples = _examples(150)
    out = io.StringIO()
    daemon = _daemon(tmp_path, index, out)
    _run(daemon, [*examples[:75], GOOD, *examples[75:],
                  failure(864377, 1, [("grenade", ZUUL + GRENADE, "FAILURE")], project="openstack/neutron")])
    assert out.getvalue().count("review 864201,3:") == 1
    assert out.getvalue().count("review 864377,1:") == 1
    assert daemon.state.pending_count() == 0


def _examples(count: int) -> list[Any]:
    """Hostile events drawn by hypothesis, the same ones every run."""
    found: list[Any] = []

    @settings(max_examples=count, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(hostile_events())
    def collect(event: Any) -> None:
        found.append(event)

    collect()
    return found[:count]


# -- an event that fails in a way nobody foresaw is parked ---------------------------


class BrokenForOneBuild:
    """The real index, with a defect for one build: as if a bug in the code met
    an input nobody tested. The daemon must park that event and go on."""

    def __init__(self, backend: EmbeddedBackend, build: str) -> None:
        self.backend = backend
        self.build = build

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)

    def build_files(self, build_uuid: str) -> dict[str, int]:
        if build_uuid == self.build:
            raise ZeroDivisionError("a defect that only this build meets")
        return self.backend.build_files(build_uuid)


def test_an_event_failing_unexpectedly_is_parked_recorded_and_counted_and_the_rest_go_on(tmp_path, index, caplog):
    out = io.StringIO()
    daemon = _daemon(tmp_path, index, out, backend=BrokenForOneBuild(EmbeddedBackend(index), GRENADE))
    poisoned = failure(864377, 1, [("grenade", ZUUL + GRENADE, "FAILURE")], project="openstack/neutron")
    with caplog.at_level(logging.ERROR, "elastic_recheck"):
        _run(daemon, [poisoned, GOOD])
    assert out.getvalue().startswith(EXPECTED_REVIEW)  # the event behind it did not wait
    assert daemon.counters["errors"] == 1
    parked = daemon.state.parked()
    assert len(parked) == 1 and "ZeroDivisionError" in parked[0][1]
    outcomes = {o["change"]: o["kind"] for o in daemon.state.outcomes()}
    assert outcomes == {864377: "error", 864201: "bugs"}
    assert any("parked" in r.getMessage() and "864377" in r.getMessage() for r in caplog.records)
    daemon.flush_metrics()
    daemon.state.close()
    again = _daemon(tmp_path, index, io.StringIO())  # a restart does not pick the parked event up again
    assert again.state.pending_count() == 0
    status = subprocess.run([str(BIN / "elastic-recheck"), "status", "--data-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert "parked events (failed unexpectedly, not retried): 1" in status.stdout
    assert "864377,1:" in status.stdout and "ZeroDivisionError" in status.stdout


# -- replay files ---------------------------------------------------------------------


def test_a_replay_file_with_a_bad_byte_and_a_deeply_nested_line_replays_the_rest():
    good = json.dumps(GOOD).encode()
    data = b"\n".join([good, b'{"type": "comment-added", "comment": "\xff"}', b"[" * 100_000 + b"]" * 100_000, good])
    items = list(read_event_file("events.jsonl", io.BytesIO(data)))
    assert items[0] == GOOD and items[3] == GOOD
    assert isinstance(items[1], EventError) and str(items[1]).startswith("events.jsonl:2: not UTF-8")
    assert isinstance(items[2], EventError) and str(items[2]).startswith("events.jsonl:3: JSON nested too deep")


def test_a_json_list_with_a_bad_byte_is_replayed_with_the_byte_replaced():
    data = json.dumps([GOOD, GOOD]).encode().replace(b"openstack/nova", b"openstack/nov\xff", 1)
    items = list(read_event_file("events.json", io.BytesIO(data)))
    assert isinstance(items[0], EventError) and "events.json:1: not UTF-8" in str(items[0])
    assert items[1]["change"]["project"] == "openstack/nov\ufffd" and items[2] == GOOD


def test_watch_replays_a_hostile_file_to_the_end(tmp_path, index):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    os.symlink(index, data_dir / "index")
    events = tmp_path / "events.jsonl"
    lines = [json.dumps(e).encode() for e in HOSTILE.values()]
    lines += [b"\xff\xfe not utf-8", b"[" * 50_000, json.dumps(GOOD).encode()]
    events.write_bytes(b"\n".join(lines) + b"\n")
    proc = _watch(data_dir, "--events", str(events), "--dry-run")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.count("review ") == 1 and out.startswith(EXPECTED_REVIEW)
    assert "not UTF-8" in err and "nested too deep" in err


# -- the Gerrit stream ------------------------------------------------------------------


def test_the_stream_skips_lines_it_cannot_read_and_keeps_streaming(tmp_path, index):
    from elastic_recheck.gerrit_ssh import EventStream

    gerrit = GerritServer(tmp_path)
    events: queue.Queue[Any] = queue.Queue()
    stream = EventStream(_gerrit_settings(gerrit), events, backoff=0.1)
    stream.start()
    try:
        gerrit.wait_for_stream()
        for line in ("{not json", "[" * 100_000, '{"comment": "\\ud800"}', "x" * (1 << 21), json.dumps(GOOD)):
            gerrit.push(line)
        received = [events.get(timeout=20) for _ in range(5)]
        assert stream.is_alive() and stream.connected.is_set() and stream.reconnects == 0
    finally:
        stream.stop()
        gerrit.close()
    assert [type(item).__name__ for item in received] == ["EventError", "EventError", "dict", "EventError", "dict"]
    assert "more than" in str(received[3]) and received[4] == GOOD


def _watch_with(tmp_path: Path, gerrit: GerritServer, **gerrit_settings: str) -> subprocess.CompletedProcess:
    config = json.loads(_config(tmp_path, gerrit).read_text())
    config["gerrit"].update(gerrit_settings)
    path = tmp_path / "broken.yaml"
    path.write_text(json.dumps(config))
    return subprocess.run([str(BIN / "elastic-recheck"), "watch", "--config", str(path), "--data-dir",
                           str(tmp_path / "data")], capture_output=True, text=True, timeout=60)


def test_a_gerrit_configuration_that_cannot_work_stops_watch_at_start_with_one_line(tmp_path):
    gerrit = GerritServer(tmp_path)
    try:
        missing = _watch_with(tmp_path, gerrit, known_hosts=str(tmp_path / "nowhere"))
        no_key = _watch_with(tmp_path, gerrit, key_file=str(tmp_path / "no-such-key"))
        other = tmp_path / "other_hosts"
        other.write_text(gerrit.known_hosts.read_text().replace(f"[127.0.0.1]:{gerrit.port}", "[10.9.9.9]:29418"))
        unknown = _watch_with(tmp_path, gerrit, known_hosts=str(other))
    finally:
        gerrit.close()
    for result, words in ((missing, "cannot read known_hosts"), (no_key, "cannot read the SSH key"),
                          (unknown, "no host key for [127.0.0.1]")):
        assert result.returncode != 0
        assert result.stderr.count("\n") == 1 and words in result.stderr, result.stderr


def test_a_second_watch_on_the_same_data_dir_refuses_to_start(tmp_path):
    data_dir = tmp_path / "data"
    first = _watch(data_dir, "--events", "-", "--dry-run", stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not (data_dir / "watch.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        second = _watch(data_dir, "--events", "-", "--dry-run", stdin=subprocess.DEVNULL)
        _, err = second.communicate(timeout=60)
        assert second.returncode != 0
        assert "another watch" in err and f"pid {first.pid}" in err
    finally:
        first.communicate(input="", timeout=60)
    assert first.returncode == 0
    third = _watch(data_dir, "--events", "-", "--dry-run", stdin=subprocess.DEVNULL)  # the lock went with it
    third.communicate(timeout=60)
    assert third.returncode == 0



# -- right build, right change ----------------------------------------------------------


def _legacy(change: int, patchset: int, job: str, pipeline: str, short: str) -> dict[str, Any]:
    url = f"http://logs.example.org/{str(change)[-2:]}/{change}/{patchset}/{pipeline}/{job}/{short}"
    event = failure(change, patchset, [(job, url, "FAILURE")], pipeline=None, author="jenkins",
                    created=time.time() - 3600, project="openstack/keystone")
    return event


def _index_as(index: Path, source: str, uuid: str, **fields: str) -> None:
    import dataclasses

    from elastic_recheck.ingest import ingest_build
    from elastic_recheck.ingest.sources import load_metadata_file, open_logs

    from .test_watch import EXAMPLES

    backend = EmbeddedBackend(index)
    for directory in EXAMPLES.iterdir():
        meta = load_metadata_file(str(directory / "build.json"))
        if meta.build_uuid == source:
            ingest_build(backend, open_logs(str(directory)), dataclasses.replace(meta, build_uuid=uuid, **fields))
    backend.close()


def test_a_short_uuid_shared_by_two_changes_gets_each_change_its_own_bugs(tmp_path, realdata):
    """Two real recorded reports, of changes 64749 and 64750, name their builds
    by the same short uuids (d3fd328, 5dd41fe)."""
    recorded = json.loads((realdata / "gerrit" / "gerrit-events.json").read_text())
    reports = [r for r in (parse_failure(e) for e in recorded) if r and r.change in (64749, 64750)]
    shared = {j.short_uuid for j in reports[0].jobs} & {j.short_uuid for j in reports[1].jobs}
    assert "d3fd328" in shared
    index = tmp_path / "data" / "index"
    _index_as(index, TEMPEST, "d3fd328" + "a" * 25, build_change="64749", build_patchset="6",
              build_name="gate-keystone-python26", build_queue="check")
    _index_as(index, GRENADE, "d3fd328" + "b" * 25, build_change="64750", build_patchset="6",
              build_name="gate-keystone-python26", build_queue="gate")
    events = tmp_path / "events.json"
    events.write_text(json.dumps([_legacy(64749, 6, "gate-keystone-python26", "check", "d3fd328"),
                                  _legacy(64750, 6, "gate-keystone-python26", "gate", "d3fd328")]))
    proc = _watch(tmp_path / "data", "--events", str(events), "--dry-run")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    first, second = out.split("review 64750,6:")
    assert first.startswith("review 64749,6:") and "bugs/2000001" in first and "2000002" not in first
    assert "bugs/2000002" in second and "2000001" not in second
    assert "timed out" not in err


def test_several_builds_left_for_one_short_uuid_are_reported_as_such_never_as_a_timeout(tmp_path):
    index = tmp_path / "data" / "index"
    for uuid in ("d3fd328" + "a" * 25, "d3fd328" + "b" * 25):  # a retried job: same change, job and pipeline
        _index_as(index, TEMPEST, uuid, build_change="64749", build_patchset="6",
                  build_name="gate-keystone-python26", build_queue="check")
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"watch": {"comment_unrecognized": True}}))
    events = tmp_path / "events.json"
    events.write_text(json.dumps([_legacy(64749, 6, "gate-keystone-python26", "check", "d3fd328")]))
    proc = _watch(tmp_path / "data", "--events", str(events), "--dry-run", config=config)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "- gate-keystone-python26: not classified: its short build id d3fd328 matches 2 builds" in out
    assert "matches 2 builds" in err and "timed out" not in err and "not indexed in time" not in out
    state = StateDB(tmp_path / "data" / "state.sqlite3")
    assert [o["kind"] for o in state.outcomes()] == ["ambiguous"]
    assert state.metrics()["ambiguous"] == 1


# -- suppress-notification, and counting each build once --------------------------------


def test_a_build_explained_only_by_a_silent_bug_is_neither_commented_nor_called_unrecognized(tmp_path, index):
    queries = tmp_path / "queries"
    queries.mkdir()
    (queries / "3000001.yaml").write_text('query: message:"Hash Sum mismatch" AND tags:console\n'
                                          "suppress-notification: true\n")
    channels = tmp_path / "channels.yaml"
    channels.write_text('"#qa": {projects: all, events: [positive, negative]}\n')
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"watch": {"comment_unrecognized": True},
                                  "irc": {"channels": str(channels), "pipelines": ["gate"]}}))
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    os.symlink(index, data_dir / "index")
    events = tmp_path / "events.json"
    events.write_text(json.dumps([failure(864377, 1, [("grenade", ZUUL + GRENADE, "FAILURE")])]))
    env = {**os.environ, "ER_DATA_DIR": str(data_dir), "ER_INGEST_FETCH": "false", **KEEP_ALL, "ER_CONFIG": str(config)}
    run = subprocess.run([str(BIN / "elastic-recheck"), "watch", "--queries", str(queries), "--events", str(events),
                          "--dry-run"], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout == ""  # no review, no IRC line, not even "unrecognized"
    status = subprocess.run([str(BIN / "elastic-recheck"), "status"], capture_output=True, text=True, env=env,
                            timeout=60)
    assert "failed jobs matched to at least one known bug" in status.stdout
    figures = {line.rsplit("  ", 1)[0].strip(): line.rsplit(" ", 1)[1] for line in status.stdout.splitlines()
               if "  " in line}
    assert figures["failed jobs matched to at least one known bug"] == "1"
    assert figures["failed jobs no fingerprint explains"] == "0"
    classify = [str(BIN / "elastic-recheck"), "classify", "--build", GRENADE, "--queries", str(queries)]
    alone = subprocess.run(classify, capture_output=True, text=True, env=env, timeout=60)
    for_change = subprocess.run([*classify, "--change", "864377", "--patchset", "1"], capture_output=True,
                                text=True, env=env, timeout=60)
    assert alone.stdout == f"build {GRENADE}: bug 3000001\n"
    assert for_change.stdout == "review 864377,1: none (explained by bug 3000001, marked suppress-notification)\n"


def _gerrit_settings(gerrit: GerritServer) -> GerritSettings:
    return GerritSettings(host="127.0.0.1", port=gerrit.port, user=gerrit.user, key_file=str(gerrit.key_file),
                          known_hosts=str(gerrit.known_hosts))


def _reviewing_daemon(tmp_path: Path, index: Path, gerrit: GerritServer, **watch: float) -> Daemon:
    """A daemon posting its reviews over SSH to the test Gerrit."""
    from elastic_recheck.gerrit_ssh import SSHReviewer

    settings = Settings(data_dir=tmp_path, gerrit=_gerrit_settings(gerrit), retention=KEEP_ALL_SETTINGS,
                        watch=WatchSettings(queries=str(ROOT / "queries"), **watch))
    return Daemon(settings, EmbeddedBackend(index), StateDB(tmp_path / "state.sqlite3"),
                  SSHReviewer(settings.gerrit), FingerprintSet(settings.watch.queries))


def test_a_comment_retried_after_gerrit_failed_counts_its_build_once(tmp_path, index):
    gerrit = GerritServer(tmp_path)
    gerrit.fail_reviews = 2
    daemon = _reviewing_daemon(tmp_path, index, gerrit, poll_initial=0.05, retry_max=0.2)
    try:
        _run(daemon, [GOOD])
    finally:
        gerrit.close()
    assert len(gerrit.reviews) == 1
    assert daemon.counters["gerrit_errors"] == 2
    assert daemon.counters["classified"] == 1


def test_a_megabyte_comment_of_blank_lines_is_read_in_linear_time():
    """A headline pattern that could span lines made this quadratic (40,000
    newlines took 4 s; a megabyte would take most of an hour)."""
    import signal

    def too_slow(*_: object) -> None:
        raise AssertionError("parsing a 1 MiB comment did not finish within 30 s")

    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(30)
    try:
        for filler in ("\n", " \n", "\t\n\n", "- a\n"):
            event = _with(GOOD, comment=filler * ((1 << 20) // len(filler)))
            assert parse_failure(event) is None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


class RefusesOneBuild(BrokenForOneBuild):
    """A healthy index that refuses, with a backend error, to search one build:
    what a query that plans but fails at search time would look like."""

    def build_files(self, build_uuid: str) -> dict[str, int]:
        from elastic_recheck.errors import BackendError

        if build_uuid == self.build:
            raise BackendError("tantivy: this search cannot be run")
        return self.backend.build_files(build_uuid)


def test_a_backend_that_is_up_but_fails_on_one_event_neither_stalls_the_others_nor_retries_for_ever(tmp_path, index):
    out = io.StringIO()
    daemon = _daemon(tmp_path, index, out, backend=RefusesOneBuild(EmbeddedBackend(index), GRENADE))
    daemon.watch = WatchSettings(queries=str(ROOT / "queries"), poll_initial=0.01, retry_max=0.05)
    stuck = failure(864377, 1, [("grenade", ZUUL + GRENADE, "FAILURE")], project="openstack/neutron")
    _run(daemon, [stuck, GOOD])
    assert out.getvalue().startswith(EXPECTED_REVIEW)
    (parked,) = daemon.state.parked()
    assert "the search backend is up but failed 8 times in a row" in parked[1]
    assert daemon.counters["backend_errors"] == 8 and daemon.counters["errors"] == 1


def test_a_json_list_holding_an_event_beyond_the_parser_costs_only_that_event():
    deep = "[" * 100_000 + "]" * 100_000
    huge = "9" * 5000  # past Python's 4,300-digit limit for int()
    text = "[\n" + ",\n".join([json.dumps(GOOD), deep, '{"type": "x", "n": ' + huge + "}", json.dumps(GOOD)]) + "\n]\n"
    items = list(read_event_file("events.json", io.BytesIO(text.encode())))
    assert items[0] == GOOD and items[3] == GOOD
    assert str(items[1]).startswith("events.json:3: JSON nested too deep")
    assert str(items[2]).startswith("events.json:4: not JSON")
    wrapped = '{"events": [' + ", ".join([json.dumps(GOOD), deep]) + "]}"
    items = list(read_event_file("wrapped.json", io.BytesIO(wrapped.encode())))
    assert items[0] == GOOD and isinstance(items[1], EventError)


def test_a_replayed_line_without_end_is_skipped_without_being_held_and_the_next_is_read():
    data = b"x" * (3 * (1 << 20)) + b"\n" + json.dumps(GOOD).encode() + b"\n"
    items = list(read_event_file("events.jsonl", io.BytesIO(data)))
    assert len(items) == 2 and "more than 1048576 bytes" in str(items[0]) and items[1] == GOOD


def test_watch_reading_a_live_pipe_works_on_each_event_as_it_comes(tmp_path, index):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    os.symlink(index, data_dir / "index")
    proc = _watch(data_dir, "--events", "-", "--dry-run", stdin=subprocess.PIPE)
    watchdog = threading.Timer(60, proc.kill)  # a reader that waits for the end of input would hang here
    watchdog.start()
    try:
        proc.stdin.write(json.dumps(GOOD) + "\n")
        proc.stdin.flush()
        first = proc.stdout.readline()  # answered while the pipe is still open
        assert first == "review 864201,3:\n"
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
        proc.stdout.close()
        proc.stderr.close()
        watchdog.cancel()
    assert proc.returncode == 0


def test_a_review_gerrit_keeps_refusing_is_given_up_after_a_bounded_number_of_tries(tmp_path, index, caplog):
    from elastic_recheck.watch import COMMENT_REFUSALS

    # 20 ms: the test server must not refuse before the SSH exec request is acknowledged, as
    # Gerrit never does (a channel closed first is "outcome unknown", not a refusal)
    gerrit = GerritServer(tmp_path, command_delay=0.02)
    gerrit.fail_reviews = 10 * COMMENT_REFUSALS  # e.g. a comment over Gerrit's size limit: refused every time
    daemon = _reviewing_daemon(tmp_path, index, gerrit, poll_initial=0.001, retry_max=0.01)
    try:
        with caplog.at_level(logging.ERROR, "elastic_recheck"):
            _run(daemon, [GOOD])
    finally:
        gerrit.close()
    assert daemon.counters["gerrit_errors"] == COMMENT_REFUSALS and gerrit.reviews == []
    assert daemon.state.pending_count() == 0
    assert any(f"refused by Gerrit {COMMENT_REFUSALS} times in a row; given up" in r.getMessage()
               for r in caplog.records)


def test_a_stream_gerrit_refuses_is_retried_with_backoff_and_the_reason_is_logged(tmp_path, caplog):
    from elastic_recheck.gerrit_ssh import EventStream

    gerrit = GerritServer(tmp_path, command_delay=0.0)
    gerrit.refuse_streams = 1000
    stream = EventStream(_gerrit_settings(gerrit), queue.Queue(), backoff=0.05, backoff_max=1.0)
    with caplog.at_level(logging.WARNING, "elastic_recheck"):
        stream.start()
        time.sleep(3)
        stream.stop()
        stream.join(timeout=10)
    gerrit.close()
    # a backoff reset after each refusal would ask ~60 times in 3 s; doubling from 0.05 s asks about 6 times
    assert 2 <= gerrit.stream_requests <= 10, gerrit.stream_requests
    assert any("the event stream ended (exit 1; fatal: elastic-recheck does not have" in r.getMessage()
               for r in caplog.records)


def test_a_retry_waits_no_longer_than_watch_retry_max_from_the_first(tmp_path):
    from elastic_recheck.gerrit_ssh import EventStream

    gerrit = GerritServer(tmp_path, command_delay=0.0)
    gerrit.refuse_streams = 1000
    stream = EventStream(_gerrit_settings(gerrit), queue.Queue(), backoff_max=0.1)  # the daemon passes retry_max

    def asked(times: int) -> float:
        deadline = time.monotonic() + 20
        while gerrit.stream_requests < times and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gerrit.stream_requests >= times
        return time.monotonic()

    stream.start()
    try:
        first = asked(1)
        second = asked(2)
    finally:
        stream.stop()
        stream.join(timeout=10)
        gerrit.close()
    # 0.1 s and a reconnect; the default first wait of 1 s made it over a second
    assert second - first < 0.95, second - first


def test_a_build_listed_twice_in_one_report_is_classified_and_named_once():
    event = failure(864201, 3, [("tempest-full", ZUUL + TEMPEST, "FAILURE"), ("tempest-full-alias", ZUUL + TEMPEST,
                                                                               "FAILURE"),
                                ("grenade", ZUUL + GRENADE, "FAILURE"), ("tempest-full", ZUUL + TEMPEST, "FAILURE")])
    report = parse_failure(event)
    assert [(job.name, job.build_uuid) for job in report.jobs] == [("tempest-full", TEMPEST), ("grenade", GRENADE)]


def test_event_times_are_ascii_numbers_only():
    for bad in (True, "٣", "1e5", [1], {"t": 1}):
        with pytest.raises(EventError, match="eventCreatedOn"):
            parse_failure(_with(GOOD, eventCreatedOn=bad))
    assert parse_failure(_with(GOOD, eventCreatedOn="1796130000")).created.year == 2026
