"""The QA dashboard: trends per bug, the gate page, uncategorized failures and
the classification rate, computed over a real index, published atomically and
opened in a real (headless) Chromium."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from elastic_recheck.classify import Classifier, failed_tests
from elastic_recheck.config import DashboardSettings, GerritSettings, Settings
from elastic_recheck.dashboard import build_dashboard, gather
from elastic_recheck.dashboard.publish import Busy, PublishError, Publisher
from elastic_recheck.dashboard.trends import trends
from elastic_recheck.fingerprints import load_fingerprints
from elastic_recheck.search.embedded import EmbeddedBackend

from .browser import Chromium, chromium_binary

UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC).replace(microsecond=0)
BIN = Path(sys.executable).parent
ARTIFACTS = Path(os.environ.get("ER_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))
TIMEOUT = "Timed out waiting for a reply to message ID 4f3e"
MIRROR = "E: Hash Sum mismatch"


def add_build(writer, uuid: str, job: str, status: str, queue: str, age: dt.timedelta, lines: dict[str, list[str]],
              voting: str = "1", project: str = "openstack/nova", log_url: str | None = None) -> None:
    """One build: its console log plus service logs, ``age`` before now."""
    fields = {"build_uuid": uuid, "build_short_uuid": uuid[:7], "build_name": job, "build_status": status,
              "build_queue": queue, "voting": voting, "project": project, "build_change": str(860000 + len(uuid)),
              "build_patchset": "2"}
    at = NOW - age
    for filename, messages in {"job-output.txt": ["Running tempest", "Job failed" if status != "SUCCESS" else "ok"],
                               **lines}.items():
        tags = [filename.rsplit("/", 1)[-1]] + (["console"] if filename == "job-output.txt" else [])
        url = log_url if log_url is not None else f"https://logs.example.org/{uuid[:7]}/{filename}"
        for i, message in enumerate(messages):
            writer.add({**fields, "message": message, "filename": filename, "tags": tags, "log_url": url},
                       at + dt.timedelta(seconds=i))


def fingerprint(directory: Path, bug: str, body: str) -> None:
    (directory / f"{bug}.yaml").write_text(body)


@pytest.fixture
def site(tmp_path: Path):
    """An index with known bugs over ten days, and their fingerprints."""
    backend = EmbeddedBackend(tmp_path / "data" / "index")
    cpu = "logs/screen-n-cpu.txt"
    with backend.writer() as w:
        for n, age in enumerate((2, 5, 20)):  # three gate failures in the last 24 h
            add_build(w, f"a{n:031d}", "tempest-full", "FAILURE", "gate", dt.timedelta(hours=age), {cpu: [TIMEOUT]})
        for n in range(2):  # two check failures five days ago
            add_build(w, f"b{n:031d}", "tempest-full", "FAILURE", "check", dt.timedelta(days=5, hours=n),
                      {cpu: [TIMEOUT]})
        add_build(w, "c" * 32, "tempest-full", "SUCCESS", "gate", dt.timedelta(days=1, hours=3), {cpu: [TIMEOUT]})
        add_build(w, "d" * 32, "grenade", "FAILURE", "check", dt.timedelta(days=3), {"job-output.txt": [MIRROR]})
        add_build(w, "e" * 32, "nova-next", "FAILURE", "gate", dt.timedelta(hours=6),
                  {"logs/screen-n-api.txt": ["quota exceeded for ram"]})  # a suppress-graph bug explains it
        for n, age in enumerate((1, 30)):  # nothing explains these two
            add_build(w, f"f{n:031d}", "tempest-full", "FAILURE", "gate", dt.timedelta(hours=age), {cpu: ["boom"]})
        add_build(w, "g" * 32, "tempest-full", "FAILURE", "check", dt.timedelta(hours=2), {cpu: ["boom"]},
                  voting="0")  # non-voting: not counted
        add_build(w, "h" * 32, "tempest-full", "FAILURE", "gate", dt.timedelta(days=12), {cpu: [TIMEOUT]})  # too old
    queries = tmp_path / "queries"
    queries.mkdir()
    fingerprint(queries, "100001", 'query: message:"Timed out waiting for a reply" AND tags:"screen-n-cpu.txt"\n'
                "title: MessagingTimeout in nova-compute\nprojects: [openstack/nova]\n")
    fingerprint(queries, "100002", 'query: message:"Hash Sum mismatch" AND tags:console\n')
    fingerprint(queries, "100003", 'query: message:"a bug that no longer happens"\n')
    fingerprint(queries, "100004", 'query: message:"quota exceeded"\nsuppress-graph: true\n')
    fingerprint(queries, "100005", "query: '@timestamp:2026* AND message:boom'\n")  # the embedded engine refuses it
    settings = Settings(data_dir=tmp_path / "data", dashboard=DashboardSettings(
        kibana_url="https://kibana.example.org/app/discover#/?_a=(query:(language:lucene,query:{query}))"))
    return settings, backend, queries


def test_bug_rows_count_distinct_failed_builds_sorted_by_the_last_day(site):
    settings, backend, queries = site
    collected, header = gather(settings, backend, queries, now=NOW)
    rows = trends(collected, "all").rows
    assert [r.bug for r in rows] == ["100001", "100002", "100003", "100005"]  # 100004 suppresses its graph
    timeout = rows[0]
    assert (timeout.fails_24h, timeout.fails_window, timeout.builds_window) == (3, 5, 6)
    assert (timeout.title, timeout.projects) == ("MessagingTimeout in nova-compute", ("openstack/nova",))
    [job] = timeout.jobs  # 5 of tempest-full's 7 failed voting builds
    assert (job.job, job.failures, round(job.percent, 1)) == ("tempest-full", 5, 71.4)
    assert sum(timeout.series["FAILURE"]) == 5 and sum(timeout.series["SUCCESS"]) == 1
    assert timeout.series["FAILURE"][-3] == 1  # the failure 2 hours ago, in its hourly bucket
    assert len(timeout.series["FAILURE"]) in (240, 241)
    assert rows[2].removal_candidate and not rows[0].removal_candidate
    assert "@timestamp" in rows[3].error and not rows[3].removal_candidate  # an error, not a removal candidate
    assert header.newest is not None and header.health["status"] == "green"


def test_the_gate_page_counts_gate_builds_only(site):
    settings, backend, queries = site
    collected, _ = gather(settings, backend, queries, now=NOW)
    gate = trends(collected, "gate", "gate")
    timeout = next(r for r in gate.rows if r.bug == "100001")
    assert (timeout.fails_24h, timeout.fails_window) == (3, 3)
    assert [(j.job, j.failures, round(j.percent, 1)) for j in timeout.jobs] == [("tempest-full", 3, 60.0)]
    assert next(r for r in gate.rows if r.bug == "100002").removal_candidate  # its only hit was in check


def test_uncategorized_failures_by_job_newest_first_with_rates(site):
    settings, backend, queries = site
    collected, _ = gather(settings, backend, queries, now=NOW)
    result = trends(collected, "all").uncategorized
    assert (result.failures, result.count) == (9, 2)  # non-voting and older failures left out
    assert round(result.rate, 3) == round(7 / 9, 3)
    first = result.groups[0]
    assert first.job == "tempest-full" and [b.build_uuid for b in first.uncategorized] == [
        f"f{0:031d}", f"f{1:031d}"]
    assert first.uncategorized[0].log_url.startswith("https://logs.example.org/")
    assert {g.job: g.rate for g in result.groups[1:]} == {"grenade": 1.0, "nova-next": 1.0}


def _render(settings, backend, queries, output: Path) -> Path:
    build_dashboard(settings, backend, queries, Publisher(output), now=NOW)
    return output


def test_the_site_has_pages_and_json_data_files(site, tmp_path):
    settings, backend, queries = site
    out = _render(settings, backend, queries, tmp_path / "site")
    assert out.is_symlink()
    for name in ("index.html", "gate.html", "uncategorized.html", "style.css", "data/all.json", "data/gate.json",
                 "data/uncategorized.json"):
        assert (out / name).is_file(), name
    data = json.loads((out / "data" / "all.json").read_text())
    assert data["bugs"][0]["bug"] == "100001" and data["bugs"][0]["fails_24h"] == 3
    assert data["bugs"][2]["removal_candidate"] is True
    assert data["health"]["status"] == "green" and data["lag_seconds"] >= 0
    uncategorized = json.loads((out / "data" / "uncategorized.json").read_text())
    assert uncategorized["count"] == 2 and uncategorized["failures"] == 9
    page = (out / "index.html").read_text()
    assert "This fingerprint could not run" in page and "removal candidates" in page
    page = (out / "bugs" / "100001.html").read_text()  # the bug's own page links out
    assert "https://bugs.launchpad.net/bugs/100001" in page
    assert ("https://kibana.example.org/app/discover#/?_a=(query:(language:lucene,query:&#39;"
            "message:%22Timed%20out%20waiting%20for%20a%20reply%22%20AND%20tags:%22screen-n-cpu.txt%22&#39;))") in page


def _newest_shown(site_dir: Path) -> str:
    """The page header's "Newest indexed log line" as a reader sees it."""
    html = (site_dir / "index.html").read_text()
    shown = re.search(r'<dd id="newest">(.*?)</dd>', html, re.S).group(1)
    return " ".join(re.sub(r"<[^>]+>", "", shown).split())


def test_a_line_dated_in_the_future_is_shown_as_such_and_the_lag_still_counts_from_now(tmp_path):
    backend = EmbeddedBackend(tmp_path / "data" / "index")
    with backend.writer() as w:
        add_build(w, "1" * 32, "tempest-full", "FAILURE", "gate", dt.timedelta(hours=3), {})
    queries = tmp_path / "queries"
    queries.mkdir()
    settings = Settings(data_dir=tmp_path / "data")
    honest = _newest_shown(_render(settings, backend, queries, tmp_path / "before"))
    last_line = NOW - dt.timedelta(hours=3) + dt.timedelta(seconds=1)  # its second line, a second after the first
    assert honest == f"{last_line:%Y-%m-%d %H:%M} UTC (2h 59m behind)"

    with backend.writer() as w:  # a log whose clock is two days ahead
        add_build(w, "2" * 32, "grenade", "FAILURE", "gate", -dt.timedelta(days=2), {})
    out = _render(settings, backend, queries, tmp_path / "after")
    shown = _newest_shown(out)
    ahead = NOW + dt.timedelta(days=2, seconds=1)
    assert shown.startswith(f"the newest line is dated in the future: {ahead:%Y-%m-%d %H:%M} UTC, "
                            "2d 0h ahead of this page (a log's clock or time zone is wrong); ")
    assert shown.endswith(f"newest line dated up to now: {last_line:%Y-%m-%d %H:%M} UTC "
                          "(2h 59m behind)")
    assert "0s behind" not in shown
    data = json.loads((out / "data" / "all.json").read_text())
    assert data["newest_in_future"] is True and 3 * 3600 - 2 <= data["lag_seconds"] <= 3 * 3600
    assert data["newest_indexed"] > data["generated"] > data["newest_until_now"]


@pytest.fixture
def chromium():
    assert chromium_binary(), "chromium is missing: bin/run-tests installs it from bindep.txt"
    browser = Chromium()
    yield browser
    browser.close()


def test_pages_draw_their_charts_in_chromium_with_a_clean_console(site, tmp_path, chromium):
    settings, backend, queries = site
    out = _render(settings, backend, queries, tmp_path / "site")
    chromium.open((out / "index.html").as_uri())
    sparks = chromium.evaluate("""Array.from(document.querySelectorAll('svg.spark')).map(
        svg => svg.querySelectorAll('rect').length)""")
    # one per row that ran and hit, a bar per day with hits; the failing fingerprint shows its error instead
    days_hit = {(NOW - dt.timedelta(hours=age)).date() for age in (2, 5, 20, 27, 120, 121)}
    assert sparks == [len(days_hit), 1]
    assert chromium.console_errors() == []
    chromium.screenshot(ARTIFACTS / "dashboard-all.png")
    assert chromium.evaluate("getComputedStyle(document.body).marginLeft") != "8px"  # style.css loaded
    chromium.open((out / "bugs" / "100001.html").as_uri())
    drawn = chromium.evaluate("""Array.from(document.querySelectorAll('svg.chart')).map(svg => ({
        width: svg.getBoundingClientRect().width,
        bars: Array.from(svg.querySelectorAll('rect.bar')).filter(r => r.getBBox().height > 0).length}))""")
    failed_days = {(NOW - dt.timedelta(hours=age)).date() for age in (2, 5, 20, 120, 121)}
    bars_daily = len(failed_days) + 1  # the passing build is its own colour in its day's bar
    assert [chart["bars"] for chart in drawn] == [bars_daily, 3]  # the last 24 h: three failures
    assert all(chart["width"] > 500 for chart in drawn)
    for page in ("gate.html", "clusters.html", "bugs/100001.html", "uncategorized.html"):
        chromium.open((out / page).as_uri())
        assert chromium.console_errors() == [], page
        chromium.screenshot(ARTIFACTS / f"dashboard-{page.replace('.html', '').replace('/', '-')}.png")
    assert "77.8%" in chromium.evaluate("document.getElementById('rate').textContent")


PAYLOAD = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'


def test_script_injection_through_logs_jobs_fingerprints_and_queries_is_inert(tmp_path, chromium):
    backend = EmbeddedBackend(tmp_path / "data" / "index")
    with backend.writer() as w:
        add_build(w, "9" * 32, f"tempest{PAYLOAD}", "FAILURE", "gate", dt.timedelta(hours=1),
                  {"logs/screen-n-cpu.txt": [f"Timed out {PAYLOAD}"]}, project='"><svg onload="window.pwned=3">')
        add_build(w, "8" * 32, f"job{PAYLOAD}", "FAILURE", "gate", dt.timedelta(hours=2),
                  {"x.txt": ["other", f"a new line {PAYLOAD}"]}, log_url="javascript:window.pwned=4")
        for uuid in ("7" * 31, "6" * 30):  # two more changes (the change number follows the uuid's length)
            add_build(w, uuid, "tempest-full", "FAILURE", "gate", dt.timedelta(hours=3),
                      {"logs/screen-n-cpu.txt": [f"Timed out {PAYLOAD}"]}, project=PAYLOAD)
    queries = tmp_path / "queries"
    queries.mkdir()
    fingerprint(queries, "1", json.dumps({"query": 'message:"timed out" OR message:"<script>window.pwned=5"',
                                          "title": PAYLOAD, "projects": [PAYLOAD], "resolved": "2020-01-01"}))
    settings = Settings(data_dir=tmp_path / "data", dashboard=DashboardSettings(
        kibana_url="javascript:window.pwned=6//{query}"), gerrit=GerritSettings(web_url="javascript:window.pwned=7"))
    out = _render(settings, backend, queries, tmp_path / "site")
    bug_page = (out / "bugs" / "1.html").read_text()
    assert "Timed out &lt;script&gt;" in bug_page and "&#34;&gt;&lt;svg onload" in bug_page  # line and project
    index = (out / "index.html").read_text()  # the banners carry the title and projects too
    assert 'id="incidents"' in index and 'id="regressions"' in index and "&lt;img src=x" in index
    assert "a new line &lt;script&gt;" in (out / "clusters.html").read_text()  # the unexplained failure's new line
    for page in ("index.html", "gate.html", "uncategorized.html", "clusters.html", "bugs/1.html"):
        html = (out / page).read_text()
        assert "<script>" not in html and "<img" not in html and "javascript:" not in html, page
        chromium.open((out / page).as_uri())
        assert chromium.evaluate("window.pwned === undefined"), page
        assert chromium.evaluate("document.querySelectorAll('script, img, a[href^=javascript]').length") == 0
    assert PAYLOAD in chromium.evaluate("document.body.textContent")  # shown as text, not run


def test_publishing_swaps_whole_sites_so_a_reader_never_sees_half_of_one(tmp_path):
    publisher = Publisher(tmp_path / "site")
    stop = threading.Event()
    seen, torn = set(), []

    def reader() -> None:
        while not stop.is_set():
            try:
                page = (tmp_path / "site" / "index.html").read_text()  # one request through DIR
            except FileNotFoundError:
                if seen:
                    torn.append("missing")  # once published, the site never disappears
                continue
            generation = page[:8]
            if page != generation + "x" * 400_000 + generation + "</html>":
                torn.append(f"page {generation}")
            seen.add(generation)
            try:  # a copy, once resolved, is complete and consistent while it is kept
                root = Path(os.path.realpath(tmp_path / "site"))
                pair = ((root / "index.html").read_text()[:8], json.loads((root / "data.json").read_text()))
            except FileNotFoundError:
                continue  # pruned meanwhile: that copy is three generations old
            if pair[1]["generation"] != pair[0]:
                torn.append(f"copy {pair[0]}")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for generation in range(30):
            tag = f"{generation:08d}"
            publisher.publish({"index.html": (tag + "x" * 400_000 + tag + "</html>").encode(),
                               "data.json": json.dumps({"generation": tag}).encode()})
    finally:
        stop.set()
        thread.join()
    assert not torn and len(seen) > 1
    assert len(list((tmp_path / ".site.versions").iterdir())) == 3  # old copies pruned


def test_a_real_directory_as_output_is_refused_before_any_work(tmp_path):
    (tmp_path / "site").mkdir()
    with pytest.raises(PublishError, match="real directory"):
        Publisher(tmp_path / "site").check()


def _dashboard(tmp_path: Path, queries: Path, *args: str, stderr=subprocess.PIPE) -> subprocess.Popen:
    env = {**os.environ, "ER_DATA_DIR": str(tmp_path / "data")}
    return subprocess.Popen([str(BIN / "elastic-recheck"), "dashboard", "--output", str(tmp_path / "site"),
                             "--queries", str(queries), *args],
                            stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)


def _wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_every_repeats_without_overlapping_and_a_held_lock_skips_a_run(site, tmp_path):
    _, _, queries = site
    publisher = Publisher(tmp_path / "site")
    log = tmp_path / "every.log"
    with publisher.lock():  # another run is in progress
        single = _dashboard(tmp_path, queries)
        _, err = single.communicate(timeout=120)
        assert single.returncode == 1 and "another dashboard run is writing" in err
        with pytest.raises(Busy):
            with publisher.lock():
                pass
        with open(log, "w") as stderr:
            repeating = _dashboard(tmp_path, queries, "--every", "1s", stderr=stderr)
        _wait_for(lambda: "run skipped" in log.read_text())
        assert not (tmp_path / "site").exists()
    versions = tmp_path / ".site.versions"
    _wait_for(lambda: versions.exists() and len(list(versions.iterdir())) >= 2)
    repeating.send_signal(signal.SIGTERM)
    repeating.communicate(timeout=60)
    err = log.read_text()
    assert repeating.returncode == 0, err
    assert "run skipped: another dashboard run" in err and err.count("dashboard published") >= 2
    assert (tmp_path / "site" / "index.html").is_file()


def test_uncategorized_command_prints_the_list(site, tmp_path):
    env = {**os.environ, "ER_DATA_DIR": str(tmp_path / "data")}
    _, _, queries = site
    result = subprocess.run([str(BIN / "elastic-recheck"), "uncategorized", "--queries", str(queries)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "9 failed voting builds in 10 days, 2 uncategorized; classification rate 77.8%"
    assert lines[2] == "tempest-full: 2 of 7 failures uncategorized (71.4% classified)"
    assert lines[3].split()[2:4] == [f"f{0:031d}", "FAILURE"] and "https://logs.example.org/" in lines[3]
    assert "fingerprint 100005 could not run" in result.stderr


UPDATE_NAME = "tempest.api.compute.servers.test_servers.ServersTest.test_update_server_name"
ATTACH = "tempest.api.volume.test_volumes.VolumesTest.test_attach_volume"


@pytest.fixture
def known_failures(tmp_path: Path):
    """Builds whose console logs say which tests failed, and fingerprints with
    ``test_ids`` or ``suppress-notification``."""
    backend = EmbeddedBackend(tmp_path / "data" / "index")
    cpu = "logs/screen-n-cpu.txt"
    with backend.writer() as w:
        for uuid, test, age in (("1" * 32, UPDATE_NAME, 2), ("2" * 32, ATTACH, 3)):  # the same log line in both
            add_build(w, uuid, "tempest-full", "FAILURE", "gate", dt.timedelta(hours=age),
                      {"job-output.txt": ["Running tempest", f"{{0}} {test} [1.2s] ... FAILED", "Job failed"],
                       cpu: [TIMEOUT]})
        add_build(w, "3" * 32, "nova-next", "FAILURE", "gate", dt.timedelta(hours=4),
                  {"logs/screen-n-api.txt": ["quota exceeded for ram"]})
        add_build(w, "4" * 32, "grenade", "FAILURE", "gate", dt.timedelta(hours=5), {"job-output.txt": [MIRROR]})
    queries = tmp_path / "queries"
    queries.mkdir()
    fingerprint(queries, "200001", f'query: message:"Timed out waiting for a reply"\ntest_ids: [{UPDATE_NAME}]\n')
    fingerprint(queries, "200002", 'query: message:"quota exceeded"\nsuppress-notification: true\n')
    fingerprint(queries, "200003", 'query: message:"Hash Sum mismatch"\nsuppress-notification: true\n'
                "suppress-graph: true\n")
    return Settings(data_dir=tmp_path / "data"), backend, queries


def test_test_ids_count_a_build_only_when_one_of_those_tests_failed_in_it(known_failures, tmp_path):
    settings, backend, queries = known_failures
    fingerprints, _ = load_fingerprints(queries)
    classifier = Classifier(backend, fingerprints)
    for uuid, bugs in (("1" * 32, ["200001"]), ("2" * 32, [])):  # what classify and watch decide
        assert [fp.bug for fp in classifier.classify(uuid, failed_tests(backend, uuid))] == bugs

    out = _render(settings, backend, queries, tmp_path / "site")
    rows = {row["bug"]: row for row in json.loads((out / "data" / "all.json").read_text())["bugs"]}
    assert (rows["200001"]["fails_window"], rows["200001"]["builds_window"]) == (1, 1)  # not the ATTACH build
    assert rows["200001"]["jobs"][0]["failures"] == 1
    uncategorized = json.loads((out / "data" / "uncategorized.json").read_text())
    assert (uncategorized["failures"], uncategorized["count"]) == (4, 1)
    [group] = [g for g in uncategorized["groups"] if g["uncategorized"]]
    assert [b["build_uuid"] for b in group["uncategorized"]] == ["2" * 32]

    env = {**os.environ, "ER_DATA_DIR": str(tmp_path / "data")}
    listed = subprocess.run([str(BIN / "elastic-recheck"), "uncategorized", "--queries", str(queries)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == "4 failed voting builds in 10 days, 1 uncategorized; classification rate 75.0%"
    assert lines[2] == "tempest-full: 1 of 2 failures uncategorized (50.0% classified)"
    assert "2" * 32 in lines[3] and "1" * 32 not in listed.stdout


def test_a_build_uuid_holding_quotes_and_backslashes_is_searched_as_itself(known_failures, tmp_path):
    """A build uuid comes from outside (--docs, a Zuul answer) and goes into the
    failed-tests query: quoted, it is one value, and the test_ids row stays right."""
    settings, backend, queries = known_failures
    weird = 'we"ird\\ OR build_uuid:* \\'
    with backend.writer() as w:
        add_build(w, weird, "tempest-full", "FAILURE", "gate", dt.timedelta(hours=1),
                  {"job-output.txt": ["Running tempest", f"{{0}} {UPDATE_NAME} [1.2s] ... FAILED", "Job failed"],
                   "logs/screen-n-cpu.txt": [TIMEOUT]})
    assert failed_tests(backend, weird) == {UPDATE_NAME}
    fingerprints, _ = load_fingerprints(queries)
    assert [fp.bug for fp in Classifier(backend, fingerprints).classify(weird, failed_tests(backend, weird))] == [
        "200001"]
    out = _render(settings, backend, queries, tmp_path / "site")
    rows = {row["bug"]: row for row in json.loads((out / "data" / "all.json").read_text())["bugs"]}
    assert rows["200001"]["error"] is None
    assert (rows["200001"]["fails_window"], rows["200001"]["builds_window"]) == (2, 2)  # "1"*32 and the weird one


def test_failed_tests_read_a_bounded_part_of_a_hostile_console_log(tmp_path, caplog):
    """Every console line with FAILED is read for test ids, but only so many
    lines, so many characters of each, and so many distinct ids are kept."""
    backend = EmbeddedBackend(tmp_path / "index")
    lines = [f"u.c{n}.a [0.1s] ... FAILED u.c{n}.b [0.1s] ... FAILED" for n in range(50)]  # two ids a line
    every = {f"u.c{n}.{x}" for n in range(50) for x in "ab"}
    with backend.writer() as w:
        add_build(w, "m" * 32, "tempest-full", "FAILURE", "gate", dt.timedelta(hours=1), {"job-output.txt": lines})
    assert failed_tests(backend, "m" * 32) == every  # within the default caps: every one
    capped = failed_tests(backend, "m" * 32, max_tests=40)
    assert len(capped) == 40 and capped < every
    assert "reports more than 40 failed tests; 40 of them are kept" in caplog.text
    few_lines = failed_tests(backend, "m" * 32, max_lines=3)
    assert len(few_lines) == 6 and few_lines < every
    assert "more than 3 lines reporting failures; the failed tests are taken from 3 of them" in caplog.text
    cut = failed_tests(backend, "m" * 32, max_chars=len("u.c10.a [0.1s] ... FAILED"))  # each line cut after its 1st id
    assert cut == {f"u.c{n}.a" for n in range(50)}


def test_suppress_notification_builds_count_as_categorized_and_only_suppress_graph_hides_a_row(known_failures,
                                                                                                tmp_path):
    settings, backend, queries = known_failures
    collected, _ = gather(settings, backend, queries, now=NOW)
    result = trends(collected, "all")
    unexplained = {b.build_uuid for g in result.uncategorized.groups for b in g.uncategorized}
    assert "3" * 32 not in unexplained and "4" * 32 not in unexplained  # known bugs, only kept quiet
    assert {g.job: g.rate for g in result.uncategorized.groups if g.job != "tempest-full"} == {
        "nova-next": 1.0, "grenade": 1.0}
    rows = {row.bug: row for row in result.rows}
    assert rows["200002"].fails_24h == 1  # suppress-notification alone keeps its row on the page
    assert "200003" not in rows  # suppress-graph hides it
    page = (_render(settings, backend, queries, tmp_path / "site") / "index.html").read_text()
    assert "200002" in page and "200003" not in page
