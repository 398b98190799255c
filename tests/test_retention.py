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
from elastic_recheck.retention import PruneSchedule
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


def store_build(store: ResultStore, uuid: str, newest: dt.datetime, bugs: tuple[str, ...] = ()) -> None:
    micros = int(newest.timestamp() * 1_000_000)
    store.store_build({"build_uuid": uuid, "build_name": "tempest-full", "build_status": "FAILURE", "voting": "1"},
                      [Match(bug, 1, micros, "Timed out waiting") for bug in bugs], newest=micros, lines=10,
                      failed_tests=None)


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
    assert PruneSchedule(0, clock=lambda: clock[0]).due() is None  # 0 days: everything is kept


def test_the_index_writer_prunes_the_index_and_the_stored_results_when_it_starts(tmp_path):
    backend = EmbeddedBackend(tmp_path / "index")
    with backend.writer() as w:
        add_build(w, "h" * 32, MONTH_AGO - DAY)
        add_build(w, "i" * 32, NOW - DAY)
    store = ResultStore(tmp_path / "results.sqlite3")
    store_build(store, "h" * 32, MONTH_AGO - DAY)
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
        add_build(w, "j" * 32, MONTH_AGO - DAY)
        add_build(w, "k" * 32, NOW - DAY)
    store = ResultStore(settings.results_db)
    store_build(store, "j" * 32, MONTH_AGO - DAY)
    store.close()
    state = StateDB(settings.state_db)
    event = state.add_event("old", {"n": 1}, MONTH_AGO)
    state.finish(event)
    state.db.execute("UPDATE events SET finished = ?", (MONTH_AGO.timestamp() - 60,))
    (tmp_path / "queries").mkdir()
    daemon = Daemon(settings, backend, state, PrintingReviewer(io.StringIO()), FingerprintSet(tmp_path / "queries"))
    feed: queue.Queue = queue.Queue()
    feed.put(END)
    daemon.run(feed, exit_when_exhausted=True)
    assert backend.count(f"build_uuid:{'j' * 32}") == 0 and backend.count(f"build_uuid:{'k' * 32}") == 100
    assert ResultStore(settings.results_db).count() == 0
    assert state.db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0


# -- settings and the command --------------------------------------------------------


def test_retention_shorter_than_the_dashboards_window_is_refused_at_load(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("retention:\n  days: 7\n")
    with pytest.raises(ConfigError, match=r"retention.days \(7\) is shorter than dashboard.days \(10\)"):
        load_settings(str(config), env={})
    assert load_settings(str(config), env={"ER_DASHBOARD_DAYS": "7"}).retention.days == 7
    assert load_settings(None, str(tmp_path), env={"ER_RETENTION_DAYS": "0"}).retention.days == 0
    assert Settings(data_dir=tmp_path).retention.days == 30 and DashboardSettings().days <= 30


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
    assert "warning: --days 0.5 is shorter than dashboard.days (10)" in shorter.output
    kept = CliRunner().invoke(cli, [*base, "--days", "0"])
    assert kept.exit_code == 2 and "everything is kept" in kept.output


def test_prune_on_a_data_dir_with_nothing_yet_changes_nothing_and_creates_nothing(tmp_path):
    shown = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "none"), "prune"])
    assert shown.exit_code == 0, shown.output
    assert "went: 0 stored result(s); 0 finished event(s); 0 build queue row(s)" in shown.output
    assert not (tmp_path / "none").exists()
