"""Build sources: Gerrit CI reports and Zuul's builds API, each read into the
project's own Build at its edge."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable

import pytest

from elastic_recheck.build_sources.gerrit import EventFilter, parse_report
from elastic_recheck.build_sources.zuul import ZuulBuilds, checkpoint_path
from elastic_recheck.build_sources.zuul_api import resolve_build, resolve_report_build, tenant_api_url
from elastic_recheck.builds import Build
from elastic_recheck.config import IngestSettings, load_settings
from elastic_recheck.errors import ConfigError, EventError, IngestError, RecheckError
from elastic_recheck.gerrit_events import parse_failure
from elastic_recheck.ingest.fetch import HttpRetry
from tests.test_hostile_ingest import HostileLogServer, _Handler, drip, serve

UTC = dt.timezone.utc
ROOT = Path(__file__).resolve().parents[1]
NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ONCE = HttpRetry(attempts=1, delay=0.01)


def comment_event(comment: str, change: int = 4242, patchset: int = 3, **extra: Any) -> dict[str, Any]:
    return {"type": "comment-added", "author": {"username": "zuul"}, "comment": comment,
            "change": {"number": change, "project": "openstack/nova", "branch": "master",
                       "url": f"https://review.example.org/{change}"},
            "patchSet": {"number": patchset}, "eventCreatedOn": 1_763_640_000, **extra}


def recorded_events(realdata: Path) -> list[dict[str, Any]]:
    gerrit = realdata / "gerrit"
    return [*json.loads((gerrit / "gerrit-events.json").read_text()),
            *json.loads((gerrit / "jenkins-events.json").read_text())["events"]]


# -- Gerrit CI reports -----------------------------------------------------------

def test_a_legacy_failure_report_lists_every_job_as_a_build_successes_included(realdata):
    event = next(e for e in recorded_events(realdata) if (e.get("change") or {}).get("number") == "64749"
                 or (e.get("change") or {}).get("number") == 64749)
    report = parse_report(event)
    assert report is not None and (report.change, report.patchset) == (64749, 6)
    by_job = {build.job: build for build in report.builds}
    pep8 = by_job["gate-keystone-pep8"]
    assert (pep8.status, pep8.short_uuid, pep8.pipeline, pep8.voting, pep8.source) == (
        "SUCCESS", "16e0b97", "check", True, "gerrit")
    assert pep8.log_url == "http://logs.openstack.org/49/64749/6/check/gate-keystone-pep8/16e0b97"
    assert (pep8.uuid, pep8.build_url, pep8.change, pep8.project) == ("", "", 64749, report.project)
    assert by_job["gate-keystone-python26"].status == "FAILURE" and by_job["gate-keystone-python26"].failed
    assert {b.job for b in report.failed} == {b.job for b in report.builds if b.status == "FAILURE"}
    assert len(report.builds) == event["comment"].count("\n- ")
    docs = by_job["gate-keystone-docs"]  # a docs-draft URL: no short uuid in it, the comment's pipeline
    assert (docs.short_uuid, docs.pipeline, docs.key) == ("", "check", "-@" + docs.log_url)


def test_a_build_succeeded_report_is_read_with_its_non_voting_failures_and_the_failure_view_ignores_it(realdata):
    successes = [e for e in recorded_events(realdata) if "Build succeeded" in (e.get("comment") or "")]
    assert successes
    non_voting_failures = []
    for event in successes:
        report = parse_report(event)
        assert report is not None and report.builds and not report.failed
        assert all(build.status == "SUCCESS" for build in report.builds if build.voting)
        non_voting_failures += [b for b in report.builds if not b.voting and b.failed]
        assert parse_failure(event) is None
    # recorded: a change whose voting jobs passed while its grizzly jobs (non-voting) failed
    assert ("check-tempest-dsvm-full-grizzly", 65805) in {(b.job, b.change) for b in non_voting_failures}


def test_on_every_recorded_event_the_failure_view_is_the_reports_failed_voting_builds(realdata):
    for event in recorded_events(realdata):
        try:
            report = parse_report(event)
        except EventError:
            with pytest.raises(EventError):
                parse_failure(event)
            continue
        failure = parse_failure(event)
        failed = report.failed if report else ()
        if failure is None:
            assert not failed or "Build succeeded" in event["comment"]
            continue
        assert [(job.name, job.key) for job in failure.jobs] == [
            (build.job, build.uuid or build.short_uuid or build.log_url) for build in failed]
        assert (failure.change, failure.patchset, failure.pipeline) == (report.change, report.patchset,
                                                                        report.pipeline)


V3_COMMENT = """Build failed (gate pipeline).  For information on how to proceed, see
https://docs.opendev.org/opendev/infra-manual/latest/developers.html#automated-testing

- openstack-tox-pep8 https://zuul.example.org/t/openstack/build/0123456789abcdef0123456789abcdef : SUCCESS in 3m 22s
- tempest-full https://zuul.example.org/t/openstack/build/fedcba9876543210fedcba9876543210 : FAILURE in 1h 02m 03s
- grenade https://zuul.example.org/t/openstack/build/aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb : FAILURE in 40m 00s (non-voting)
- nova-live-migration https://zuul.example.org/t/openstack/build/cccccccccccccccccccccccccccccccc : NODE_FAILURE Node request 300-0001 failed
"""


def test_a_zuul_v3_report_names_builds_by_uuid_and_build_url_with_voting_and_status():
    report = parse_report(comment_event(V3_COMMENT))
    assert report is not None and report.pipeline == "gate"
    builds = {build.job: build for build in report.builds}
    assert list(builds) == ["openstack-tox-pep8", "tempest-full", "grenade", "nova-live-migration"]
    tempest = builds["tempest-full"]
    assert (tempest.uuid, tempest.short_uuid, tempest.status, tempest.voting, tempest.pipeline) == (
        "fedcba9876543210fedcba9876543210", "fedcba9", "FAILURE", True, "gate")
    assert tempest.build_url == "https://zuul.example.org/t/openstack/build/fedcba9876543210fedcba9876543210"
    assert tempest.log_url == "" and tempest.key == tempest.uuid
    assert builds["grenade"].voting is False and builds["grenade"].failed
    assert builds["nova-live-migration"].status == "NODE_FAILURE"
    assert [b.job for b in report.failed] == ["tempest-full"]
    failure = parse_failure(comment_event(V3_COMMENT))
    assert failure is not None and [job.name for job in failure.jobs] == ["tempest-full"]


def test_a_job_url_that_is_not_http_is_kept_out_of_the_build():
    comment = "Build succeeded.\n\n- evil file:///etc/passwd : SUCCESS in 1s\n- ftp ftp://x.example/a/b : SUCCESS\n"
    report = parse_report(comment_event(comment))
    assert report is not None
    assert [(b.job, b.log_url, b.build_url) for b in report.builds] == [("evil", "", ""), ("ftp", "", "")]


def test_the_project_and_job_filters_apply_to_successes_too():
    comment = ("Build succeeded.\n\n- keep-me http://logs.example.org/a : SUCCESS\n"
               "- drop-me http://logs.example.org/b : SUCCESS\n")
    report = parse_report(comment_event(comment), EventFilter(exclude_jobs="^drop"))
    assert report is not None and [b.job for b in report.builds] == ["keep-me"]
    assert parse_report(comment_event(comment), EventFilter(include_projects="^openstack/cinder$")) is None
    assert parse_report(comment_event(comment), EventFilter(ci_accounts=("jenkins",))) is None


def test_a_hostile_success_report_is_refused_with_one_line_or_read_in_linear_time():
    with pytest.raises(EventError, match="a CI comment with a bad change number"):
        parse_report(comment_event("Build succeeded.\n\n- a http://l.example/a : SUCCESS\n", change=-1))
    with pytest.raises(EventError, match="without change or patchSet"):
        parse_report({"type": "comment-added", "author": {"username": "zuul"},
                      "comment": "Build succeeded.\n\n- a http://l.example/a : SUCCESS\n"})
    started = time.monotonic()
    report = parse_report(comment_event("\n" * 40_000 + " \t" * 20_000 + "Build succeeded.\n" +
                                        "- j http://l.example/x : SUCCESS\n" * 2_000))
    assert time.monotonic() - started < 1.0
    assert report is not None and len(report.builds) == 1  # one URL listed 2,000 times is one build
    surrogate = parse_report(comment_event("Build succeeded.\n\n- j\ud800 http://l.example/x : SUCCESS\n"))
    assert surrogate is not None and surrogate.builds[0].job == "j\ufffd"


# -- a fake Zuul -------------------------------------------------------------------

class FakeZuul:
    """Zuul's tenant API as far as the builds source uses it: ``/builds``
    newest first by id (running builds too, result null), paged with
    ``limit``/``skip``, and ``/build/{uuid}``; on a real HTTP server."""

    def __init__(self, server: HostileLogServer, tenant: str = "openstack", nested_ref: bool = True) -> None:
        self.server = server
        self.api = f"{server.url}api/tenant/{tenant}"
        self.path = f"/api/tenant/{tenant}"
        self.records: list[dict[str, Any]] = []
        self.nested_ref = nested_ref
        self.before_page: Callable[[int], None] = lambda skip: None
        self.pages: list[tuple[int, int]] = []
        server.routes[self.path + "/builds"] = self._builds
        self._next_id = 1

    def start(self, job: str, started: dt.datetime, **fields: Any) -> dict[str, Any]:
        uuid = f"{self._next_id:032x}"
        ref = {"project": "openstack/nova", "branch": "master", "change": 1000 + self._next_id, "patchset": "2",
               "ref": f"refs/changes/{self._next_id:02d}/{1000 + self._next_id}/2"}
        record = {"_id": self._next_id, "uuid": uuid, "job_name": job, "result": None, "voting": True,
                  "start_time": started.strftime("%Y-%m-%dT%H:%M:%S"), "end_time": None, "log_url": None,
                  "pipeline": "check", "buildset": {"uuid": "b" * 32}, **fields}
        if self.nested_ref:
            record["ref"] = ref
        else:
            record.update(ref)
        self._next_id += 1
        self.records.append(record)
        self.server.routes[f"{self.path}/build/{uuid}"] = lambda handler, r=record: self._json(handler, r)
        return record

    def finish(self, record: dict[str, Any], result: str = "SUCCESS", ended: dt.datetime | None = None) -> None:
        start = dt.datetime.fromisoformat(record["start_time"])
        record["result"] = result
        record["end_time"] = (ended or start + dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S")
        record["log_url"] = f"https://logs.example.org/{record['uuid'][-3:]}/{record['uuid']}/"

    def run(self, job: str, started: dt.datetime, result: str = "SUCCESS", **fields: Any) -> dict[str, Any]:
        record = self.start(job, started, **fields)
        self.finish(record, result)
        return record

    def _builds(self, handler: _Handler) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(handler.path).query)
        limit, skip = int(query["limit"][0]), int(query.get("skip", ["0"])[0])
        self.pages.append((limit, skip))
        self.before_page(skip)
        newest_first = sorted(self.records, key=lambda r: -_order(r))
        self._json(handler, newest_first[skip:skip + limit])

    @staticmethod
    def _json(handler: _Handler, data: Any) -> None:
        serve(json.dumps(data).encode(), "application/json")(handler)


@pytest.fixture
def zuul():
    server = HostileLogServer()
    yield FakeZuul(server)
    server.close()


class Clock:
    def __init__(self, now: dt.datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def source(zuul: FakeZuul, tmp_path: Path, since: dt.datetime | None = None, clock: Clock | None = None,
           skipped: list[RecheckError] | None = None, **options: Any) -> ZuulBuilds:
    return ZuulBuilds(zuul.api, checkpoint_path(tmp_path / "data"), ONCE, page_size=options.pop("page_size", 10),
                      since=since, clock=clock or Clock(), on_skip=(skipped if skipped is not None else []).append,
                      **options)


def uuids(builds: list[Build]) -> list[str]:
    return [build.uuid for build in builds]


def hours_ago(hours: float, now: dt.datetime = NOW) -> dt.datetime:
    return now - dt.timedelta(hours=hours)


# -- the Zuul builds source ---------------------------------------------------------

def test_a_backfill_pages_with_skip_and_returns_each_finished_build_once_oldest_first(zuul, tmp_path):
    done = [zuul.run(f"job-{n}", hours_ago(30 - n / 10), "FAILURE" if n % 7 == 0 else "SUCCESS") for n in range(25)]
    running = zuul.start("still-running", hours_ago(0.5))
    builds = source(zuul, tmp_path, since=hours_ago(40)).poll()
    assert uuids(builds) == [r["uuid"] for r in done]
    assert running["uuid"] not in uuids(builds)
    assert [skip for _, skip in zuul.pages] == [0, 10, 20, 26][: len(zuul.pages)] and zuul.pages[0] == (10, 0)
    first = builds[0]
    assert (first.job, first.status, first.source, first.change, first.patchset, first.project, first.branch) == (
        "job-0", "FAILURE", "zuul", 1001, 2, "openstack/nova", "master")
    assert (first.pipeline, first.ref, first.voting, first.short_uuid) == (
        "check", "refs/changes/01/1001/2", True, first.uuid[:7])
    assert first.log_url == done[0]["log_url"] and first.start == hours_ago(30) and first.end == hours_ago(29.5)


def test_a_restart_resumes_from_the_checkpoint_missing_and_repeating_nothing(zuul, tmp_path):
    clock = Clock()
    long_build = zuul.start("long-job", hours_ago(3))
    early = [zuul.run(f"early-{n}", hours_ago(2.9 - n / 100)) for n in range(15)]
    first = source(zuul, tmp_path, since=hours_ago(4), clock=clock)
    assert uuids(first.poll()) == [r["uuid"] for r in early]
    first.commit()
    # while "down": builds finish, a new one starts and the long one ends below everything already read
    later = [zuul.run(f"later-{n}", hours_ago(1 - n / 100)) for n in range(12)]
    zuul.finish(long_build, "FAILURE", ended=hours_ago(0.1))
    zuul.start("new-running", hours_ago(0.05))
    clock.now += dt.timedelta(hours=1)
    restarted = source(zuul, tmp_path, clock=clock)
    got = restarted.poll()
    assert sorted(uuids(got)) == sorted([long_build["uuid"], *(r["uuid"] for r in later)])
    assert got[-1].uuid == long_build["uuid"] and got[-1].failed  # oldest first: by when they ended
    assert restarted.poll() == []  # nothing twice in one process either
    restarted.commit()
    assert source(zuul, tmp_path, clock=clock).poll() == []  # nor after another restart


def test_a_crash_between_poll_and_commit_repeats_rather_than_misses(zuul, tmp_path):
    builds = [zuul.run(f"job-{n}", hours_ago(2 - n / 10)) for n in range(3)]
    first = source(zuul, tmp_path, since=hours_ago(3))
    first.poll()
    first.commit()
    newer = zuul.run("newer", hours_ago(0.5))
    assert uuids(source(zuul, tmp_path).poll()) == [newer["uuid"]]  # polled, never committed: a crash
    assert uuids(source(zuul, tmp_path).poll()) == [newer["uuid"]]
    assert builds


def test_builds_listed_while_a_poll_pages_are_taken_once_and_the_new_ones_next_time(zuul, tmp_path):
    old = [zuul.run(f"old-{n}", hours_ago(5 - n / 100)) for n in range(35)]
    arrivals: list[dict[str, Any]] = []

    def shift(skip: int) -> None:
        if skip in (10, 20):  # the newest-first list moves down under the pager
            arrivals.extend(zuul.run(f"arrival-{skip}-{n}", hours_ago(0.2)) for n in range(4))

    zuul.before_page = shift
    src = source(zuul, tmp_path, since=hours_ago(6))
    got = uuids(src.poll())
    assert got == [r["uuid"] for r in old] and len(set(got)) == len(got)
    zuul.before_page = lambda skip: None
    assert sorted(uuids(src.poll())) == sorted(r["uuid"] for r in arrivals)
    assert src.poll() == []


def test_the_first_run_starts_from_now_and_reads_the_builds_running_then_when_they_end(zuul, tmp_path):
    for n in range(5):
        zuul.run(f"before-{n}", hours_ago(3 - n / 10))
    running = zuul.start("running-at-start", hours_ago(1))
    clock = Clock()
    src = source(zuul, tmp_path, clock=clock)
    assert src.poll() == []
    src.commit()
    zuul.finish(running, ended=hours_ago(-0.2))
    after = zuul.run("after", hours_ago(-0.1))
    clock.now += dt.timedelta(hours=1)
    assert sorted(uuids(source(zuul, tmp_path, clock=clock).poll())) == sorted([running["uuid"], after["uuid"]])


def test_since_reads_only_builds_that_started_since_then_even_with_a_checkpoint(zuul, tmp_path):
    days = [zuul.run(f"day-{n}", NOW - dt.timedelta(days=10 - n)) for n in range(10)]
    src = source(zuul, tmp_path, since=NOW - dt.timedelta(days=4, hours=1))
    assert uuids(src.poll()) == [r["uuid"] for r in days[6:]]
    src.commit()
    assert source(zuul, tmp_path).poll() == []
    # an explicit backfill over a checkpoint reads again what started since then
    again = source(zuul, tmp_path, since=NOW - dt.timedelta(days=7, hours=1))
    assert uuids(again.poll()) == [r["uuid"] for r in days[3:]]


def test_a_build_that_never_ends_is_given_up_after_the_running_timeout_with_a_warning(zuul, tmp_path):
    stuck = zuul.start("stuck", hours_ago(2))
    clock, skipped = Clock(), []
    src = source(zuul, tmp_path, since=hours_ago(3), clock=clock, skipped=skipped, running_timeout=3 * 3600)
    src.poll()
    assert not skipped
    clock.now += dt.timedelta(hours=2)
    src.poll()
    assert [str(e) for e in skipped] == [f"{zuul.api}: build {stuck['uuid']} has been running since "
                                         f"{hours_ago(2):%Y-%m-%d %H:%M} UTC, longer than zuul.running_timeout "
                                         "(10800 s); given up"]
    zuul.pages.clear()
    for n in range(30):
        zuul.run(f"later-{n}", hours_ago(-1))
    assert len(src.poll()) == 30 and len(zuul.pages) == 4  # no longer pages down to the stuck build


def test_pipeline_and_job_filters_choose_the_builds(zuul, tmp_path):
    keep = zuul.run("tempest-full", hours_ago(1), pipeline="gate")
    zuul.run("tempest-full", hours_ago(1), pipeline="check")
    zuul.run("openstack-tox-pep8", hours_ago(1), pipeline="gate")
    got = source(zuul, tmp_path, since=hours_ago(2), pipelines="^gate$", jobs="^tempest").poll()
    assert uuids(got) == [keep["uuid"]]


def test_old_zuul_records_with_a_flat_ref_read_the_same(tmp_path):
    server = HostileLogServer()
    try:
        zuul = FakeZuul(server, nested_ref=False)
        record = zuul.run("legacy-job", hours_ago(1), "POST_FAILURE", voting=False)
        [build] = source(zuul, tmp_path, since=hours_ago(2)).poll()
        assert (build.uuid, build.change, build.project, build.ref, build.status, build.voting) == (
            record["uuid"], record["change"], "openstack/nova", record["ref"], "POST_FAILURE", False)
    finally:
        server.close()


HOSTILE_RECORDS = [
    ("a list", ["x"], "a build record that is a JSON list, not an object"),
    ("no uuid", {"_id": 900, "result": "SUCCESS", "job_name": "j"}, "a build record with no usable uuid (None)"),
    ("a path as uuid", {"_id": 901, "uuid": "../../etc", "result": "SUCCESS", "job_name": "j"},
     "a build record with no usable uuid ('../../etc')"),
    ("bool id", {"_id": True, "uuid": "u1", "result": "SUCCESS", "job_name": "j"}, "no usable _id (True)"),
    ("string id", {"_id": "7", "uuid": "u2", "result": "SUCCESS", "job_name": "j"}, "no usable _id ('7')"),
    ("file log_url", {"_id": 902, "uuid": "u3", "result": "FAILURE", "job_name": "j", "log_url": "file:///etc/passwd"},
     "log_url 'file:///etc/passwd' is not an http(s) URL; refused"),
    ("lowercase result", {"_id": 903, "uuid": "u4", "result": "failure\n", "job_name": "j"},
     "result 'failure\\n' is not a Zuul result"),
    ("object job", {"_id": 904, "uuid": "u5", "result": "SUCCESS", "job_name": {"a": 1}},
     "job_name {'a': 1} is not a string"),
    ("no job", {"_id": 905, "uuid": "u6", "result": "SUCCESS"}, "no job_name"),
    ("list change", {"_id": 906, "uuid": "u7", "result": "SUCCESS", "job_name": "j", "change": [1]},
     "change [1] is not a number"),
    ("bad time", {"_id": 907, "uuid": "u8", "result": "SUCCESS", "job_name": "j", "end_time": "yesterday"},
     "end_time 'yesterday' is not a time"),
    ("string voting", {"_id": 908, "uuid": "u9", "result": "SUCCESS", "job_name": "j", "voting": "maybe"},
     "voting 'maybe' is not true or false"),
    ("control chars", {"_id": 909, "uuid": "u10", "result": "SUCCESS", "job_name": "j\x1b[2J"},
     "job_name 'j\\x1b[2J' is not a name (printable, at most 255 characters)"),
]


def test_records_that_are_not_builds_are_skipped_with_one_line_each_and_the_rest_are_read(zuul, tmp_path):
    good = zuul.run("good", hours_ago(1))
    zuul.records.extend(record for _, record, _ in HOSTILE_RECORDS)
    zuul.records.append({"_id": 910, "uuid": "gh", "result": "SUCCESS", "job_name": "github-job",
                         "change": 12, "patchset": "0f" * 20, "start_time": "2026-11-20T11:00:00Z"})
    skipped: list[RecheckError] = []
    got = source(zuul, tmp_path, since=hours_ago(2), skipped=skipped, page_size=100).poll()
    assert [(b.uuid, b.patchset) for b in got] == [(good["uuid"], 2), ("gh", None)]
    shown = [str(error) for error in skipped]
    assert len(shown) == len(HOSTILE_RECORDS)
    assert all("\n" not in text and text.startswith(zuul.api + "/builds?limit=100&skip=0") for text in shown)
    for (what, _, expected), text in zip(sorted(HOSTILE_RECORDS, key=lambda h: -_order(h[1])), shown):
        assert text.endswith(expected), (what, text)


def _order(record: Any) -> int:
    """Where the fake lists a hostile record (newest first by _id; ones without a usable id at 0)."""
    value = record.get("_id") if isinstance(record, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@pytest.mark.parametrize("answer, message", [
    (serve(b"<html>busy</html>", "text/html"), "the API answer is not JSON: Expecting value"),
    (serve(b'{"builds": []}', "application/json"), "the builds API answered a JSON dict, not a list of builds"),
    (serve(b"\xff\xfe[]", "application/json"), "the API answer is not UTF-8 (byte 1)"),
    (serve(b"[" * 100_000 + b"]" * 100_000, "application/json"), "the API answer is nested too deeply to read"),
])
def test_an_answer_that_is_not_a_list_of_builds_stops_the_poll_naming_the_url_and_moves_nothing(
        zuul, tmp_path, answer, message):
    zuul.run("before", hours_ago(2))
    src = source(zuul, tmp_path, since=hours_ago(3))
    src.poll()
    src.commit()
    written = checkpoint_path(tmp_path / "data").read_bytes()
    zuul.run("missed-if-the-checkpoint-moved", hours_ago(1))
    zuul.server.routes[zuul.path + "/builds"] = answer
    with pytest.raises(IngestError) as caught:
        source(zuul, tmp_path).poll()
    assert str(caught.value).startswith(f"{zuul.api}/builds?limit=10&skip=0") and message in str(caught.value)
    assert checkpoint_path(tmp_path / "data").read_bytes() == written
    zuul.server.routes[zuul.path + "/builds"] = zuul._builds
    assert [b.job for b in source(zuul, tmp_path).poll()] == ["missed-if-the-checkpoint-moved"]


def test_an_api_that_fails_or_answers_too_much_is_an_error_naming_the_url(zuul, tmp_path):
    zuul.server.routes[zuul.path + "/builds"] = lambda handler: handler.send_error(500, "database gone")
    with pytest.raises(IngestError, match=r"/builds\?limit=10&skip=0: HTTP 500 database gone"):
        source(zuul, tmp_path).poll()
    zuul.server.routes[zuul.path + "/builds"] = serve(b"[" + b" " * (32 * 1024 * 1024) + b"]", "application/json")
    with pytest.raises(IngestError, match="the answer is larger than 33554432 bytes; refused"):
        source(zuul, tmp_path).poll()
    assert not checkpoint_path(tmp_path / "data").exists()
    with pytest.raises(IngestError, match="cannot fetch"):
        ZuulBuilds("http://127.0.0.1:9/api/tenant/x", None, ONCE).poll()


def test_an_api_that_answers_too_slowly_is_given_up_at_the_file_timeout_naming_the_url(zuul, tmp_path):
    zuul.server.routes[zuul.path + "/builds"] = drip(b"[", b" " * 1000, interval=0.05)
    slow = ZuulBuilds(zuul.api, checkpoint_path(tmp_path), ONCE, IngestSettings(file_timeout=0.5))
    started = time.monotonic()
    with pytest.raises(IngestError, match=r"/builds\?limit=100&skip=0: gave up after 0.5 s \(ingest.file_timeout\)"):
        slow.poll()
    assert time.monotonic() - started < 5
    assert not checkpoint_path(tmp_path).exists()


def test_an_api_that_ignores_skip_is_an_error_not_a_thousand_requests(zuul, tmp_path):
    for n in range(15):
        zuul.run(f"job-{n}", hours_ago(2 - n / 100))
    newest = serve(json.dumps(sorted(zuul.records, key=lambda r: -r["_id"])[:10]).encode(), "application/json")
    zuul.server.routes[zuul.path + "/builds"] = newest
    with pytest.raises(IngestError, match="does not page with skip"):
        source(zuul, tmp_path, since=hours_ago(3)).poll()
    assert len(zuul.server.requests) == 2


def test_a_backfill_stops_at_max_pages_with_a_warning_and_goes_on_from_there(zuul, tmp_path):
    for n in range(50):
        zuul.run(f"job-{n}", hours_ago(10 - n / 10))
    skipped: list[RecheckError] = []
    src = source(zuul, tmp_path, since=hours_ago(20), skipped=skipped, max_pages=3)
    assert len(src.poll()) == 30
    assert [str(e) for e in skipped] == [f"{zuul.api}: stopped after 3 pages (zuul.max_pages); "
                                         "builds below id 21 are not read"]
    newer = zuul.run("newer", hours_ago(0))
    assert uuids(src.poll()) == [newer["uuid"]]


def test_the_checkpoint_is_owner_only_written_atomically_and_tied_to_its_api(zuul, tmp_path):
    zuul.run("job", hours_ago(1))
    src = source(zuul, tmp_path, since=hours_ago(2))
    src.poll()
    src.commit()
    path = checkpoint_path(tmp_path / "data")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert os.listdir(path.parent) == [path.name]
    assert json.loads(path.read_text())["api"] == zuul.api
    with pytest.raises(IngestError, match=r"the Zuul checkpoint is for .* not zuul.api 'http://elsewhere.example/api/"
                                          r"tenant/x'; remove it to start from now"):
        ZuulBuilds("http://elsewhere.example/api/tenant/x", path, ONCE)
    path.write_text('{"version": 1, "horizon": "x"')
    with pytest.raises(IngestError, match=f"^{path}: not a readable Zuul checkpoint"):
        source(zuul, tmp_path)


def test_resolve_build_reads_one_build_for_its_log_url(zuul):
    record = zuul.run("tempest-full", hours_ago(1), "FAILURE")
    build = resolve_build(zuul.api, record["uuid"], ONCE)
    assert (build.uuid, build.job, build.status, build.log_url) == (record["uuid"], "tempest-full", "FAILURE",
                                                                    record["log_url"])
    running = zuul.start("running", hours_ago(0.1))
    with pytest.raises(IngestError, match="has not finished"):
        resolve_build(zuul.api, running["uuid"], ONCE)
    zuul.server.routes[f"{zuul.path}/build/{'e' * 32}"] = serve(json.dumps(record).encode(), "application/json")
    with pytest.raises(IngestError, match=f"answered with build {record['uuid']}, not {'e' * 32}"):
        resolve_build(zuul.api, "e" * 32, ONCE)
    with pytest.raises(IngestError, match="HTTP 404"):
        resolve_build(zuul.api, "f" * 32, ONCE)
    with pytest.raises(IngestError, match="is not a Zuul build uuid"):
        resolve_build(zuul.api, "../x", ONCE)


def test_a_v3_reports_build_gets_its_log_url_through_the_api_derived_from_its_build_url(zuul):
    record = zuul.run("tempest-full", hours_ago(1), "FAILURE")
    page = f"{zuul.server.url}t/openstack/build/{record['uuid']}"
    comment = f"Build failed (gate pipeline).\n\n- tempest-full {page} : FAILURE in 1h 02m 03s\n"
    [reported] = parse_report(comment_event(comment, change=77, patchset=1)).builds
    assert (reported.build_url, reported.log_url) == (page, "")
    resolved = resolve_report_build(reported, "", ONCE)
    assert resolved.log_url == record["log_url"] and resolved.end == hours_ago(0.5)
    assert (resolved.change, resolved.patchset, resolved.pipeline, resolved.source) == (77, 1, "gate", "gerrit")
    assert resolve_report_build(resolved, zuul.api, ONCE) is resolved  # a build with logs is not asked about
    with pytest.raises(IngestError, match="HTTP 404"):
        resolve_report_build(reported, zuul.api + "-elsewhere", ONCE)


def test_the_tenant_api_is_derived_from_a_build_page_url():
    assert tenant_api_url("https://zuul.example.org/t/openstack/build/0123abcd") == (
        "https://zuul.example.org/api/tenant/openstack", "0123abcd")
    assert tenant_api_url("https://sf.example.org/zuul/t/local/build/0123abcd/?tab=logs") == (
        "https://sf.example.org/zuul/api/tenant/local", "0123abcd")
    assert tenant_api_url("https://zuul.openstack.org/build/0123abcd") == ("https://zuul.openstack.org/api",
                                                                           "0123abcd")
    for bad in ("file:///t/x/build/abc", "https://logs.example.org/31/64831/1/check/job/287c655",
                "https://zuul.example.org/t/x/builds", "https://zuul.example.org/t/../build/0123abcd"):
        with pytest.raises(IngestError):
            tenant_api_url(bad)


# -- settings and the command line ---------------------------------------------------

def test_the_daemons_source_comes_from_the_settings(zuul, tmp_path):
    settings = load_settings(data_dir=str(tmp_path / "data"), env={
        "ER_ZUUL_API": zuul.api, "ER_ZUUL_PAGE_SIZE": "7", "ER_ZUUL_JOBS": "^keep"})
    keep = zuul.run("keep-me", dt.datetime.now(UTC) - dt.timedelta(minutes=5))
    zuul.run("not-me", dt.datetime.now(UTC) - dt.timedelta(minutes=5))
    src = ZuulBuilds.from_settings(settings, since=dt.datetime.now(UTC) - dt.timedelta(hours=1), retry=ONCE)
    assert uuids(src.poll()) == [keep["uuid"]] and zuul.pages[0] == (7, 0)
    src.commit()
    assert (tmp_path / "data" / "zuul-builds.json").is_file()


def test_the_zuul_settings_come_from_the_environment_and_are_checked():
    zuul = load_settings(env={"ER_ZUUL_API": "https://zuul.example.org/api/tenant/openstack",
                              "ER_ZUUL_POLL_INTERVAL": "30", "ER_ZUUL_PIPELINES": "^(gate|check)$"}).zuul
    assert (zuul.api, zuul.poll_interval, zuul.page_size, zuul.pipelines) == (
        "https://zuul.example.org/api/tenant/openstack", 30.0, 100, "^(gate|check)$")
    for env, message in [({"ER_ZUUL_API": "file:///var/zuul"}, "ER_ZUUL_API: must be an http"),
                         ({"ER_ZUUL_API": "https://u:secret@zuul.example.org/api"}, "ER_ZUUL_API: put credentials"),
                         ({"ER_ZUUL_JOBS": "(tempest"}, "ER_ZUUL_JOBS: not a regular expression"),
                         ({"ER_ZUUL_PAGE_SIZE": "0"}, "zuul.page_size must be a positive number")]:
        with pytest.raises(ConfigError, match=message) as caught:
            load_settings(env=env)
        assert "u:secret" not in str(caught.value)


def cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "elastic_recheck", "builds", *args], capture_output=True, text=True,
                          env={**os.environ, "ER_DATA_DIR": str(data_dir)}, cwd=ROOT, timeout=60)


def test_the_builds_command_lists_what_the_source_reads_without_moving_the_checkpoint(zuul, tmp_path):
    now = dt.datetime.now(UTC).replace(second=0, microsecond=0)  # the command runs on the real clock
    records = [zuul.run(f"job-{n}", hours_ago(48 - n, now), "FAILURE" if n == 2 else "SUCCESS") for n in range(30)]
    zuul.start("running", hours_ago(0.1, now))
    as_json = cli("--zuul-api", zuul.api, "--json", "--since", f"{hours_ago(30, now):%Y-%m-%dT%H:%M}",
                  data_dir=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    lines = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [line["uuid"] for line in lines] == [r["uuid"] for r in records[18:]]
    assert Build.from_json(lines[0]).end == hours_ago(30 - 0.5, now) and lines[0]["source"] == "zuul"
    listed = cli("--zuul-api", zuul.api, "--limit", "3", data_dir=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[3] for line in listed.stdout.splitlines()] == ["job-27", "job-28", "job-29"]
    assert listed.stderr == "3 builds\n"
    assert not list(tmp_path.iterdir())  # read-only: no checkpoint, nothing in the data directory
    zuul.server.routes[zuul.path + "/builds"] = lambda handler: handler.send_error(503, "down")
    failed = cli("--zuul-api", zuul.api, data_dir=tmp_path)
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr.startswith(f"error: {zuul.api}/builds?limit=100&skip=0: HTTP 503 down (after 3 attempts)")
    assert len(failed.stderr.splitlines()) == 1
