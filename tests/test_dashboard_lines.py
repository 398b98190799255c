"""The matching lines a bug page shows come from the index, looked up once
per build: a build matching on many lines must not crowd the others out of
the answer run after run, and a build with no matching line is not asked
about again."""

from __future__ import annotations

import datetime as dt

from elastic_recheck.dashboard.lines import LINES_PER_BUILD, LineFinder
from elastic_recheck.dashboard.memory import DashboardMemory
from elastic_recheck.search.embedded import EmbeddedBackend

UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC).replace(microsecond=0)
QUERY = 'message:"connection refused" AND tags:console'
ANSWER = 20  # lines one answer holds
NOISY = 60  # lines of the build that fills an answer


def write_build(writer, uuid: str, age: dt.timedelta, lines: list[str]) -> None:
    fields = {"build_uuid": uuid, "build_name": "tempest-full", "build_status": "FAILURE", "voting": "1",
              "filename": "job-output.txt", "tags": ["job-output.txt", "console"],
              "log_url": f"https://logs.example.org/{uuid}/job-output.txt"}
    for i, message in enumerate(lines):
        writer.add({**fields, "message": message}, NOW - age + dt.timedelta(seconds=i))


def test_a_build_with_many_matching_lines_does_not_crowd_the_others_out(tmp_path):
    backend = EmbeddedBackend(tmp_path / "index")
    with backend.writer() as writer:
        # the newest build repeats the line far more often than one answer holds for all four
        write_build(writer, "noisy", dt.timedelta(minutes=1), [f"connection refused, try {n}" for n in range(NOISY)])
        write_build(writer, "older1", dt.timedelta(hours=2), ["booting", "connection refused by 10.0.0.1"])
        write_build(writer, "older2", dt.timedelta(hours=3), ["connection refused by 10.0.0.2", "done"])
        write_build(writer, "quiet", dt.timedelta(hours=4), ["nothing of the kind"])
    memory = DashboardMemory(tmp_path / "memory.sqlite3")
    try:
        finder = LineFinder(backend, memory, seconds=30, now=NOW.timestamp(), answer_lines=ANSWER)
        found = finder.lines_of(["noisy", "older1", "older2", "quiet"], QUERY)
        assert len(found["noisy"]) == LINES_PER_BUILD
        assert [row[0] for row in found["older1"]] == ["connection refused by 10.0.0.1"]
        assert [row[0] for row in found["older2"]] == ["connection refused by 10.0.0.2"]
        assert found["quiet"] == []  # looked up: no matching line in the index
        assert finder.searches == 2  # the full first answer, then the builds it left out

        again = LineFinder(backend, memory, seconds=30, now=NOW.timestamp(), answer_lines=ANSWER)
        assert again.lines_of(["noisy", "older1", "older2", "quiet"], QUERY) == found
        assert again.searches == 0  # every build's answer, even "none", is remembered
    finally:
        memory.close()


def test_with_no_time_left_the_builds_left_out_wait_for_the_next_run(tmp_path):
    backend = EmbeddedBackend(tmp_path / "index")
    with backend.writer() as writer:
        write_build(writer, "noisy", dt.timedelta(minutes=1), [f"connection refused, try {n}" for n in range(NOISY)])
        write_build(writer, "older", dt.timedelta(hours=2), ["connection refused by 10.0.0.1"])
    memory = DashboardMemory(tmp_path / "memory.sqlite3")
    try:
        finder = LineFinder(backend, memory, seconds=0, now=NOW.timestamp(), answer_lines=ANSWER)
        finder.deadline = 0.0  # the run's budget is spent: one search at most, no second round
        assert finder.lines_of(["noisy", "older"], QUERY) == {}
        assert finder.searches == 0
        later = LineFinder(backend, memory, seconds=30, now=NOW.timestamp(), answer_lines=ANSWER)
        assert set(later.lines_of(["noisy", "older"], QUERY)) == {"noisy", "older"}
    finally:
        memory.close()
