"""The command line's conventions: commands that only read never make an
index (pointed at the wrong data directory they say so and fail, instead of
answering from an empty index: "0 hits", "100% classified"); ``-h`` is
``--help``; what a script reads has ``--json``; shells complete commands."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from elastic_recheck.cli import cli, er_query

QUERIES = str(Path(__file__).resolve().parents[1] / "queries")
READERS = [
    ["uncategorized", "--queries", QUERIES],
    ["classify", "--build", "0b6a5e4d3c2b41a09f8e7d6c5b4a3921", "--queries", QUERIES],
    ["explain", "--build", "0b6a5e4d3c2b41a09f8e7d6c5b4a3921"],
    ["suggest", "--queries", QUERIES],
    ["query", "-e", 'message:"Hash Sum mismatch"'],
    ["lint", "--backtest", QUERIES],
]


@pytest.mark.parametrize("command", READERS, ids=[c[0] for c in READERS])
def test_a_read_command_on_a_data_dir_with_no_index_fails_in_one_line_and_creates_nothing(tmp_path, command):
    data = tmp_path / "wrong"
    result = CliRunner().invoke(cli, ["--data-dir", str(data), *command])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith(f"error: no index in {data / 'index'}")
    assert not data.exists()


def test_er_query_and_the_dashboard_refuse_a_missing_index_too(tmp_path):
    data = tmp_path / "wrong"
    found = CliRunner().invoke(er_query, ["--data-dir", str(data), "-e", "message:x"])
    assert found.exit_code == 1 and "no index in" in str(found.exception or found.output)
    site = CliRunner().invoke(cli, ["--data-dir", str(data), "dashboard", "--queries", QUERIES,
                                    "--output", str(tmp_path / "site")])
    assert site.exit_code == 1 and "no index in" in site.output
    assert not data.exists()


def test_a_window_without_failures_says_so_instead_of_a_rate(tmp_path):
    from elastic_recheck.search.embedded import EmbeddedBackend

    EmbeddedBackend(tmp_path / "data" / "index").close()  # an index, empty
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), "uncategorized", "--queries", QUERIES])
    assert result.exit_code == 0
    assert result.output.strip().splitlines()[-1] == "no failed voting builds in 10 days: nothing to classify"


def test_dash_h_is_help_everywhere():
    runner = CliRunner()
    for args in ([], ["suggest"], ["uncategorized"]):
        shown = runner.invoke(cli, [*args, "-h"])
        assert shown.exit_code == 0 and shown.output.startswith("Usage: "), args
    assert CliRunner().invoke(er_query, ["-h"]).output.startswith("Usage: ")


def test_classify_and_uncategorized_print_json_for_scripts(tmp_path):
    from elastic_recheck.search.embedded import EmbeddedBackend

    now = dt.datetime.now(dt.timezone.utc)
    backend = EmbeddedBackend(tmp_path / "data" / "index")
    with backend.writer() as writer:
        for uuid, message in (("a" * 32, "E: Hash Sum mismatch"), ("b" * 32, "something else broke")):
            writer.add({"message": message, "build_uuid": uuid, "build_name": "grenade", "build_status": "FAILURE",
                        "voting": "1", "build_queue": "gate", "filename": "job-output.txt",
                        "tags": ["job-output.txt", "console"]}, now - dt.timedelta(hours=1))
    backend.close()
    base = ["--data-dir", str(tmp_path / "data")]
    classified = CliRunner().invoke(cli, [*base, "classify", "--build", "a" * 32, "--queries", QUERIES, "--json"])
    assert classified.exit_code == 0, classified.output
    found = json.loads(classified.output)
    assert found["build"] == "a" * 32 and [b["bug"] for b in found["bugs"]] == ["2000002"]
    listed = CliRunner().invoke(cli, [*base, "uncategorized", "--queries", QUERIES, "--json"])
    assert listed.exit_code == 0, listed.output
    head, *rows = [json.loads(line) for line in listed.output.splitlines()]
    assert (head["failures"], head["uncategorized"], head["classification_rate"]) == (2, 1, 0.5)
    assert [(r["job"], r["build_uuid"]) for r in rows] == [("grenade", "b" * 32)]


def test_status_prints_json(tmp_path):
    from elastic_recheck.state import StateDB

    StateDB(tmp_path / "state.sqlite3").close()
    shown = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "status", "--json"])
    assert shown.exit_code == 0, shown.output
    found = json.loads(shown.output)
    assert found["metrics"]["queue_depth"] == 0 and found["parked"] == []


def test_status_and_the_dashboard_leave_what_a_running_daemon_has_under_way_alone(tmp_path):
    """A daemon is fetching a build and posting a comment when an operator
    runs ``status`` and the dashboard's run comes round: neither may take
    that work for cut off by a crash (the build fetched again, the comment
    disowned)."""
    from elastic_recheck.dashboard import log_timeouts
    from elastic_recheck.config import Settings
    from elastic_recheck.state import StateDB

    daemon = StateDB(tmp_path / "state.sqlite3")
    daemon.enqueue_build("zuul:" + "c" * 32, {"uuid": "c" * 32}, 0.0)
    daemon.set_build("zuul:" + "c" * 32, "fetching")
    assert daemon.claim_comment(864201, 2, ["c" * 32])
    shown = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "status", "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["metrics"]["builds_fetching"] == 1
    assert log_timeouts(Settings(data_dir=tmp_path), dt.datetime.now(dt.timezone.utc)) == []
    assert daemon.build_state("zuul:" + "c" * 32)[0] == "fetching"
    assert daemon.build_attempts("zuul:" + "c" * 32) is not None
    restarts = daemon.db.execute("SELECT restarts FROM builds").fetchone()[0]
    comment = daemon.db.execute("SELECT state FROM comments").fetchone()[0]
    assert (restarts, comment) == (0, "posting")
    daemon.close()
    StateDB(tmp_path / "state.sqlite3").close()  # the next daemon's start does take them for cut off
    after = StateDB(tmp_path / "state.sqlite3", recover=False)
    assert after.db.execute("SELECT status, restarts FROM builds").fetchone() == ("queued", 1)
    assert after.db.execute("SELECT state FROM comments").fetchone()[0] == "unknown"
    after.close()


def test_the_shell_completion_scripts_come_from_the_commands_themselves():
    bin_dir = Path(sys.executable).parent
    for command, variable in (("elastic-recheck", "_ELASTIC_RECHECK_COMPLETE"), ("er-query", "_ER_QUERY_COMPLETE")):
        script = subprocess.run([str(bin_dir / command)], env={**os.environ, variable: "bash_source"},
                                capture_output=True, text=True, timeout=60, check=True).stdout
        assert "complete -o nosort -F" in script and command in script


def test_a_site_over_a_window_without_failures_says_so_instead_of_a_rate(tmp_path):
    from elastic_recheck.search.embedded import EmbeddedBackend

    EmbeddedBackend(tmp_path / "data" / "index").close()
    out = tmp_path / "site"
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), "dashboard", "--queries", QUERIES,
                                      "--output", str(out)])
    assert result.exit_code == 0, result.output
    page = (out / "uncategorized.html").read_text()
    assert "No failed voting builds in 10 days: nothing to classify." in page and "100.0%" not in page
