"""Commands that only read never make an index: pointed at the wrong data
directory they say so and fail, instead of answering from an empty index
("0 hits", "100% classified")."""

from __future__ import annotations

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
