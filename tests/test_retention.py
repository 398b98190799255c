"""Retention: a data directory stays the size of its window however long
the daemon runs. A build goes whole once its newest line is older than
``retention.days``: from the embedded index (disk space included), the
stored results (a bug's first-seen date outlives them), and the state
database (comment records stay, so nothing is ever commented twice)."""

from __future__ import annotations

import datetime as dt
import io
import queue
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from elastic_recheck.cli import cli
from elastic_recheck.config import ConfigError, DashboardSettings, RetentionSettings, Settings, load_settings
from elastic_recheck.pipeline import IndexPipeline
from elastic_recheck.reporting import PrintingReviewer
from elastic_recheck.results import Match, ResultStore
from elastic_recheck.retention import PruneSchedule, prune_index_and_results
from elastic_recheck.search import Pruned
from elastic_recheck.search.embedded import EmbeddedBackend
from elastic_recheck.state import StateDB
from elastic_recheck.watch import END, Daemon, FingerprintSet

UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC).replace(microsecond=0)
DAY = dt.timedelta(days=1)
MONTH_AGO = NOW - 30 * DAY


def add_build(writer, uuid: str, newest: dt.datetime, lines: int = 50, hours: float = 0.0,
              files: tuple[str, ...] = ("job-output.txt", "logs/screen-n-cpu.txt")) -> None:
    """A build whose lines run over ``hours`` up to ``newest``."""
    fields = {"build_uuid": uuid, "build_name": "tempest-full", "build_status": "FAILURE", "voting": "1",
              "build_queue": "gate", "project": "openstack/nova"}
    for filename in files:
        for i in range(lines):
            at = newest - dt.timedelta(hours=hours * (lines - 1 - i) / max(lines - 1, 1))
            writer.add({**fields, "filename": filename, "message": f"{filename} line {i}: Timed out waiting"}, at)


def disk_kib(path: Path) -> int:
    return int(subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True).stdout.split()[0])


def store_build(store: ResultStore, uuid: str, newest: dt.datetime, bugs: tuple[str, ...] = (),
                stored: dt.datetime | None = None) -> None:
    """A build's result as the writer stored it, when its newest line was logged unless ``stored`` says."""
    micros = int(newest.timestamp() * 1_000_000)
    store.store_build({"build_uuid": uuid, "build_name": "tempest-full", "build_status": "FAILURE", "voting": "1"},
                      [Match(bug, 1, micros, "Timed out waiting") for bug in bugs], newest=micros, lines=10,
                      failed_tests=None)
    with store.db:
        store.db.execute("UPDATE builds SET stored = ? WHERE uuid = ?", ((stored or newest).timestamp(), uuid))


# -- the embedded index --------------------------------------------------------


def test_a_build_goes_whole_from_the_index_once_its_newest_line_is_older_than_the_cutoff(tmp_path):
    backend = EmbeddedBackend(tmp_path / "index")
    with backend.writer() as w:
        for n in range(20):
            add_build(w, f"{n:032x}", MONTH_AGO - (n + 1) * DAY, lines=500)
    with backend.writer() as w:
        add_build(w, "a" * 32, MONTH_AGO + dt.timedelta(hours=1), hours=5)  # began before the cutoff, ended after
        add_build(w, "b" * 32, NOW - DAY)
        w.add({"message": "a line of an export, with no build"}, MONTH_AGO - DAY)
    before = disk_kib(tmp_path / "index")

    assert backend.prune(MONTH_AGO, dry_run=True) == Pruned(builds=21, lines=20 * 1000 + 1)
    assert backend.count("*") == 20 * 1000 + 1 + 200
    assert backend.prune(MONTH_AGO) == Pruned(builds=21, lines=20 * 1000 + 1)

    assert backend.count("*") == 200
    assert backend.count(f"build_uuid:{'a' * 32}") == 100  # whole: its lines from before the cutoff too
    assert backend.count(f"build_uuid:{'b' * 32}") == 100
    assert {b.build_uuid for b in backend.builds("Timed out")} == {"a" * 32, "b" * 32}
    assert backend.health()["contexts"] == 4
    assert disk_kib(tmp_path / "index") < before / 4  # segments left with no line are dropped
    assert backend.prune(MONTH_AGO) == Pruned()
    reopened = EmbeddedBackend(tmp_path / "index")  # another process sees the same
    assert reopened.count("*") == 200 and reopened.build_files("b" * 32) == {"job-output.txt": 50,
                                                                             "logs/screen-n-cpu.txt": 50}


def test_a_build_pruned_and_then_indexed_again_is_there_whole(tmp_path):
    backend = EmbeddedBackend(tmp_path / "index")
    with backend.writer() as w:
        add_build(w, "c" * 32, MONTH_AGO - DAY)
    backend.prune(MONTH_AGO)
    with backend.writer() as w:  # the same contexts again (a replayed report): they are added anew
        w.replace_build("c" * 32)
        add_build(w, "c" * 32, NOW)
    assert backend.count(f"build_uuid:{'c' * 32}") == 100
    assert [b.build_name for b in backend.builds(f"build_uuid:{'c' * 32}")] == ["tempest-full"]


# -- the stored results ----------------------------------------------------------


def test_stored_results_go_with_their_builds_and_a_bugs_first_sighting_outlives_them(tmp_path):
    store = ResultStore(tmp_path / "results.sqlite3")
    store.mark_synced({"1000001": 'message:"Timed out waiting"', "1000002": 'message:"Hash Sum mismatch"'})
    first = MONTH_AGO - 10 * DAY
    store_build(store, "d" * 32, first, ("1000001",))
    store_build(store, "e" * 32, MONTH_AGO - DAY, ("1000001", "1000002"))
    store_build(store, "f" * 32, NOW - DAY, ("1000001",))
    store.store_templates("d" * 32, 100, 1, [1, 2, 3])
    store.store_explanation("d" * 32, "recipe", "{}")
    spans = store.bug_spans()

    assert store.prune(MONTH_AGO, dry_run=True) == 2 and store.count() == 3
    assert store.prune(MONTH_AGO) == 2
    assert store.stored_uuids() == {"f" * 32}
    assert store.templates("d" * 32, 100, 1) is None and store.explanation("d" * 32, "recipe") is None
    assert store.bug_spans() == spans  # first seen 40 days ago, though that build is gone
    assert store.prune(MONTH_AGO) == 0
    assert store.prune(NOW) == 1  # the next day's pruning adds to what was kept
    assert store.bug_spans() == spans and store.count() == 0

    # a fingerprint whose query changed: what its old query matched says nothing of the new one
    store.sync_fingerprints({"1000001": 'message:"Timed out waiting for a reply"',
                             "1000002": 'message:"Hash Sum mismatch"'}, lambda bug, query: [])
    assert "1000001" not in store.bug_spans() and "1000002" in store.bug_spans()
    store.sync_fingerprints({"1000001": 'message:"Timed out waiting for a reply"'}, lambda bug, query: [])
    assert store.bug_spans() == {}  # a fingerprint removed leaves nothing behind


def test_a_build_indexed_lately_stays_a_retention_window_whatever_its_lines_dates(tmp_path):
    """A replay of old reports, a backfill, logs whose clock is wrong: the
    build is indexed now with lines dated long ago. It is kept (index and
    stored result) for the window from when it was stored, or a report
    would find its result gone right after it was indexed."""
    backend = EmbeddedBackend(tmp_path / "index")
    with backend.writer() as w:
        add_build(w, "s" * 32, MONTH_AGO - 60 * DAY)  # stored a minute ago
        add_build(w, "t" * 32, MONTH_AGO - 60 * DAY)  # stored when it ran
    store = ResultStore(tmp_path / "results.sqlite3")
    store_build(store, "s" * 32, MONTH_AGO - 60 * DAY, stored=NOW - dt.timedelta(minutes=1))
    store_build(store, "t" * 32, MONTH_AGO - 60 * DAY)

    found = prune_index_and_results(backend, store, MONTH_AGO, dry_run=True)
    assert (found.index, found.results) == (Pruned(builds=1, lines=100), 1)
    found = prune_index_and_results(backend, store, MONTH_AGO)
    assert (found.index, found.results) == (Pruned(builds=1, lines=100), 1)
    assert store.stored_uuids() == {"s" * 32}
    assert backend.count(f"build_uuid:{'s' * 32}") == 100 and backend.count(f"build_uuid:{'t' * 32}") == 0
    found = prune_index_and_results(backend, store, NOW)  # a month after it was stored
    assert (found.index, found.results) == (Pruned(builds=1, lines=100), 1)


# -- the state database ----------------------------------------------------------


def test_the_state_database_drops_what_is_finished_and_old_but_never_a_comment_record(tmp_path):
    state = StateDB(tmp_path / "state.sqlite3")
    old_done = state.add_event("old-done", {"n": 1}, MONTH_AGO)
    old_pending = state.add_event("old-pending", {"n": 2}, MONTH_AGO)
    new_done = state.add_event("new-done", {"n": 3}, NOW)
    for event in (old_done, new_done):
        state.record_outcome(event, 864201, 1, "openstack/nova", "gate", "tempest-full", "g" * 32, "u", "bugs", [])
        state.finish(event)
    state.db.execute("UPDATE events SET finished = ? WHERE id = ?", (MONTH_AGO.timestamp() - 60, old_done))
    state.enqueue_build("zuul:old", {"uuid": "old"}, MONTH_AGO.timestamp() - 60, log_url="https://logs/old/")
    state.set_build("zuul:old", "indexed", uuid="old")
    state.enqueue_build("zuul:old-queued", {"uuid": "oq"}, MONTH_AGO.timestamp() - 60)
    state.enqueue_build("zuul:new", {"uuid": "new"}, NOW.timestamp())
    state.set_build("zuul:new", "indexed", uuid="new")
    assert state.claim_comment(864201, 1, ["g" * 32])
    state.comment_posted(864201, 1, ["g" * 32])

    assert state.prune(MONTH_AGO, dry_run=True) == (1, 1)
    assert state.prune(MONTH_AGO) == (1, 1)
    assert [row[0] for row in state.db.execute("SELECT key FROM events ORDER BY id")] == ["old-pending", "new-done"]
    assert len(list(state.outcomes())) == 1
    assert state.build_state("zuul:old") is None and state.build_state("zuul:old-queued")[0] == "queued"
    assert not state.db.execute("SELECT 1 FROM build_names WHERE key = 'zuul:old'").fetchall()
    assert not state.claim_comment(864201, 1, ["g" * 32])  # commented once, whatever retention did
    assert old_pending and state.pending_count() == 1


# -- when it runs ------------------------------------------------------------------


def test_a_long_lived_process_prunes_at_its_first_look_and_then_hourly():
    clock = [100.0]
    schedule = PruneSchedule(30, clock=lambda: clock[0])
    earliest = dt.datetime.now(UTC) - 30 * DAY
    first = schedule.due()
    assert first is not None and earliest <= first <= dt.datetime.now(UTC) - 30 * DAY
    assert schedule.due() is None
    clock[0] += 3599
    assert schedule.due() is None
    clock[0] += 1
    assert schedule.due() is not None
    schedule.retry(300)  # that pruning failed (the index's writer busy): tried again in 5 minutes, not an hour
    clock[0] += 299
    assert schedule.due() is None
    clock[0] += 1
    assert schedule.due() is not None
    assert PruneSchedule(0, clock=lambda: clock[0]).due() is None  # 0 days: everything is kept


def test_the_index_writer_prunes_the_index_and_the_stored_results_when_it_starts(tmp_path):
    backend = EmbeddedBackend(tmp_path / "index")
    with backend.writer() as w:
        add_build(w, "h" * 32, MONTH_AGO - 5 * DAY)
        add_build(w, "i" * 32, NOW - DAY)
    store = ResultStore(tmp_path / "results.sqlite3")
    store_build(store, "h" * 32, MONTH_AGO - 5 * DAY)
    store_build(store, "i" * 32, NOW - DAY)
    store.close()
    pipeline = IndexPipeline(backend, tmp_path / "results.sqlite3", lambda: [], retention_days=30).start()
    try:
        deadline = time.monotonic() + 30
        while backend.count(f"build_uuid:{'h' * 32}") and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        pipeline.stop()
    assert backend.count(f"build_uuid:{'h' * 32}") == 0 and backend.count(f"build_uuid:{'i' * 32}") == 100
    store = ResultStore(tmp_path / "results.sqlite3")
    assert store.stored_uuids() == {"i" * 32}


def test_a_daemon_with_no_index_pipeline_prunes_the_index_results_and_state_itself(tmp_path):
    settings = Settings(data_dir=tmp_path, retention=RetentionSettings(days=30))
    backend = EmbeddedBackend(settings.index_dir)
    with backend.writer() as w:
        add_build(w, "j" * 32, MONTH_AGO - 5 * DAY)
        add_build(w, "k" * 32, NOW - DAY)
    store = ResultStore(settings.results_db)
    store_build(store, "j" * 32, MONTH_AGO - 5 * DAY)
    store.close()
    state = StateDB(settings.state_db)
    for key in ("old", "older"):
        state.finish(state.add_event(key, {"key": key}, MONTH_AGO))
    state.db.execute("UPDATE events SET finished = ?", (MONTH_AGO.timestamp() - 60,))
    (tmp_path / "queries").mkdir()
    daemon = Daemon(settings, backend, state, PrintingReviewer(io.StringIO()), FingerprintSet(tmp_path / "queries"))
    feed: queue.Queue = queue.Queue()
    feed.put(END)
    daemon.run(feed, exit_when_exhausted=True)
    # the newest event stays, so that `status` still says when the last report came
    assert [key for (key,) in state.db.execute("SELECT key FROM events")] == ["older"]
    deadline = time.monotonic() + 30  # the index is pruned beside the daemon's loop, which never waits on it
    while backend.count(f"build_uuid:{'j' * 32}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert backend.count(f"build_uuid:{'j' * 32}") == 0 and backend.count(f"build_uuid:{'k' * 32}") == 100
    while ResultStore(settings.results_db).count() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ResultStore(settings.results_db).count() == 0


def test_the_daemons_loop_goes_on_while_its_pruning_waits_for_a_writer_another_process_holds(tmp_path):
    settings = Settings(data_dir=tmp_path, retention=RetentionSettings(days=30))
    with EmbeddedBackend(settings.index_dir).writer() as w:
        add_build(w, "u" * 32, MONTH_AGO - 5 * DAY)
        add_build(w, "x" * 32, NOW - DAY)
    (tmp_path / "queries").mkdir()
    held = EmbeddedBackend(settings.index_dir).writer()  # an operator's ingest, say
    try:
        backend = EmbeddedBackend(settings.index_dir, writer_wait=10)
        daemon = Daemon(settings, backend, StateDB(settings.state_db), PrintingReviewer(io.StringIO()),
                        FingerprintSet(tmp_path / "queries"))
        feed: queue.Queue = queue.Queue()
        feed.put(END)
        started = time.monotonic()
        daemon.run(feed, exit_when_exhausted=True)
        assert time.monotonic() - started < 5  # the pruning waits its turn beside the loop
        assert backend.count(f"build_uuid:{'u' * 32}") == 100
    finally:
        held.rollback()
        held.close()
    deadline = time.monotonic() + 30  # the writer let go: the pruning waiting for it goes on
    while backend.count(f"build_uuid:{'u' * 32}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert backend.count(f"build_uuid:{'u' * 32}") == 0


def test_a_clock_set_ahead_never_prunes_past_the_window_before_the_newest_line(tmp_path):
    """At boot, before NTP mends it, a clock may be a year ahead: the
    scheduled pruning then keeps the window before the newest line indexed
    (a CI quiet for longer than the window keeps its last window too)."""
    from elastic_recheck.retention import prune_scheduled

    backend = EmbeddedBackend(tmp_path / "index")
    with backend.writer() as w:
        add_build(w, "v" * 32, NOW - DAY)
        add_build(w, "w" * 32, NOW - 32 * DAY)
    store = ResultStore(tmp_path / "results.sqlite3")
    store_build(store, "v" * 32, NOW - DAY)
    store_build(store, "w" * 32, NOW - 32 * DAY)
    a_year_ahead = NOW + 365 * DAY - 30 * DAY
    prune_scheduled(backend, store, a_year_ahead, PruneSchedule(30))
    assert backend.count(f"build_uuid:{'v' * 32}") == 100 and store.stored_uuids() == {"v" * 32}
    assert backend.count(f"build_uuid:{'w' * 32}") == 0  # older than the window before the newest line


# -- settings and the command --------------------------------------------------------


def test_retention_shorter_than_two_dashboard_windows_is_refused_at_load(tmp_path):
    """Each bug's trend compares the window with the one before it."""
    config = tmp_path / "config.yaml"
    config.write_text("retention:\n  days: 15\n")
    with pytest.raises(ConfigError, match=r"retention.days \(15\) is shorter than twice dashboard.days \(10\)"):
        load_settings(str(config), env={})
    assert load_settings(str(config), env={"ER_DASHBOARD_DAYS": "7.5"}).retention.days == 15
    with pytest.raises(ConfigError, match=r"dashboard.days is 0 \(all time\) while retention.days \(15\) prunes"):
        load_settings(str(config), env={"ER_DASHBOARD_DAYS": "0"})
    assert load_settings(None, str(tmp_path), env={"ER_RETENTION_DAYS": "0", "ER_DASHBOARD_DAYS": "0"}).retention.days == 0
    assert Settings(data_dir=tmp_path).retention.days == 30 and 2 * DashboardSettings().days <= 30


def test_prune_counts_first_with_dry_run_then_prunes_and_says_what_went(tmp_path):
    backend = EmbeddedBackend(tmp_path / "index")
    with backend.writer() as w:
        add_build(w, "l" * 32, MONTH_AGO - DAY)
        add_build(w, "m" * 32, NOW - DAY)
    backend.close()
    StateDB(tmp_path / "state.sqlite3").close()
    base = ["--data-dir", str(tmp_path), "prune"]
    dry = CliRunner().invoke(cli, [*base, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dry.output.startswith("older than 20")
    assert dry.output.rstrip().endswith("would go: 1 build(s) (100 lines) from the index; 0 stored result(s); "
                                        "0 finished event(s); 0 build queue row(s)")
    assert EmbeddedBackend(tmp_path / "index").count("*") == 200
    went = CliRunner().invoke(cli, [*base])
    assert went.exit_code == 0 and " went: 1 build(s) (100 lines) from the index;" in went.output
    assert EmbeddedBackend(tmp_path / "index").count("*") == 100
    shorter = CliRunner().invoke(cli, [*base, "--days", "0.5"])
    assert shorter.exit_code == 0 and "went: 1 build(s)" in shorter.output
    assert "warning: --days 0.5 is shorter than twice dashboard.days (10)" in shorter.output
    kept = CliRunner().invoke(cli, [*base, "--days", "0"])
    assert kept.exit_code == 2 and "everything is kept" in kept.output


def test_prune_on_a_data_dir_with_nothing_yet_changes_nothing_and_creates_nothing(tmp_path):
    shown = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "none"), "prune"])
    assert shown.exit_code == 0, shown.output
    assert "went: 0 stored result(s); 0 finished event(s); 0 build queue row(s)" in shown.output
    assert not (tmp_path / "none").exists()


# -- long-lived processes, failures and races -----------------------------------------


def test_a_query_compiled_before_a_pruning_still_finds_builds_indexed_after_it(tmp_path):
    """A compiled query keeps its context clauses as id sets until the
    contexts change. After a pruning, as many new contexts as went bring the
    count back where it was: a long-lived process (the daemon, `dashboard
    --every`) still sees every build indexed since."""
    backend = EmbeddedBackend(tmp_path / "index")
    with backend.writer() as w:
        add_build(w, "n" * 32, MONTH_AGO - DAY, lines=5)
        add_build(w, "o" * 32, NOW - DAY, lines=5)
    query = 'build_name:"tempest-full" AND message:"Timed out"'
    assert backend.count(query) == backend.count(query) == 20  # compiled, and kept from its second use
    assert backend.prune(MONTH_AGO) == Pruned(builds=1, lines=10)
    with backend.writer() as w:
        add_build(w, "p" * 32, NOW, lines=5)  # as many contexts as went
    assert EmbeddedBackend(tmp_path / "index").count(query) == 20  # a fresh process
    assert backend.count(query) == 20
    assert {b.build_uuid for b in backend.builds(query)} == {"o" * 32, "p" * 32}


def test_a_bugs_first_sighting_outlives_a_run_where_its_query_failed(tmp_path):
    """A fingerprint whose query fails in one dashboard run (a cluster's
    timeout) is not taken for removed: what was kept of its pruned builds,
    its first sighting, stays."""
    from elastic_recheck.dashboard.trends import CATCH_UP_BY_BUILD, collect
    from elastic_recheck.errors import BackendError
    from elastic_recheck.fingerprints import load_fingerprints

    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "1000001.yaml").write_text('query: message:"Timed out waiting"\n')
    fingerprints, bad = load_fingerprints(tmp_path / "q")
    assert not bad
    query = fingerprints[0].voting_query
    store = ResultStore(tmp_path / "results.sqlite3")
    store.mark_synced({"1000001": query})
    store_build(store, "q" * 32, MONTH_AGO - 10 * DAY, ("1000001",))
    store.prune(MONTH_AGO)
    spans = store.bug_spans()
    assert spans

    class Flaky(EmbeddedBackend):
        def builds(self, asked, window=None):
            if asked == query:
                raise BackendError("the cluster timed out")
            return super().builds(asked, window)

    backend = Flaky(tmp_path / "index")
    with backend.writer() as w:  # indexed, not classified (another pipeline feeds the index)
        for n in range(CATCH_UP_BY_BUILD + 1):  # so many that each fingerprint is run over the window
            w.add({"build_uuid": f"r{n:031d}", "build_name": "tempest-full", "build_status": "FAILURE",
                   "voting": "1", "filename": "job-output.txt", "tags": ["console"], "message": "Timed out waiting"},
                  NOW - DAY)
    collected = collect(backend, fingerprints, dt.datetime.now(UTC), 10, store=store)
    assert "1000001" in collected.errors
    assert store.bug_spans() == spans
    again = collect(EmbeddedBackend(tmp_path / "index"), fingerprints, dt.datetime.now(UTC), 10, store=store)
    assert again.errors == {}  # the next run, the cluster back
    assert store.bug_spans()["1000001"][0] == spans["1000001"][0]


def test_a_line_committed_while_a_pruning_waits_for_the_writer_is_kept(tmp_path):
    """A pruning may wait for the writer (another process's ingest holds it):
    what goes is chosen once it has the writer, so a line committed
    meanwhile to an old context (an export's, with no build_uuid) stays."""
    lone = {"filename": "export.txt", "host": "node1"}
    with EmbeddedBackend(tmp_path / "index").writer() as w:
        w.add({**lone, "message": "an old exported line"}, MONTH_AGO - DAY)

    class Waiting(EmbeddedBackend):
        def writer(self):
            with EmbeddedBackend(self.path).writer() as other:  # another process's ingest, while this one waited
                other.add({**lone, "message": "a line of today"}, NOW)
            return super().writer()

    assert Waiting(tmp_path / "index").prune(MONTH_AGO) == Pruned()
    assert EmbeddedBackend(tmp_path / "index").count('message:"today"') == 1
