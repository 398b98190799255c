"""The pages a QA lead reads each morning: a page per bug, charts that can
be read back, incidents and regressions (on the page and on IRC through the
daemon's outbox), every internal link resolving, and the layout at a
desktop's and a phone's width — in one shared headless Chromium."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest

from elastic_recheck.config import DashboardSettings, GerritSettings, Settings, load_settings
from elastic_recheck.dashboard import build_dashboard
from elastic_recheck.dashboard.charts import ticks
from elastic_recheck.dashboard.publish import Publisher
from elastic_recheck.errors import ConfigError
from elastic_recheck.fingerprints import inspect_fingerprint, lint_warnings
from elastic_recheck.irc_bot import PrintingNotifier
from elastic_recheck.irc_messages import Announcement, ChannelRule
from elastic_recheck.irc_outbox import Outbox
from elastic_recheck.results import ResultStore
from elastic_recheck.search.embedded import EmbeddedBackend

from .browser import Chromium, chromium_binary
from .test_dashboard import ARTIFACTS

UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
TIMEOUT = "Timed out waiting for a reply to message ID 4f3e"
MIRROR = "E: Hash Sum mismatch"


def add(writer, uuid: str, change: int, status: str, age: dt.timedelta, line: str, job: str = "tempest-full",
        project: str = "openstack/nova", queue: str = "gate") -> None:
    """One build of ``change``: its console log ending with ``line``."""
    fields = {"build_uuid": uuid, "build_short_uuid": uuid[:7], "build_name": job, "build_status": status,
              "build_queue": queue, "voting": "1", "project": project, "build_change": str(change),
              "build_patchset": "3", "filename": "job-output.txt", "tags": ["job-output.txt", "console"],
              "log_url": f"https://logs.example.org/{uuid[:7]}/job-output.txt"}
    at = NOW - age
    for i, message in enumerate(["Running tempest", line]):
        writer.add({**fields, "message": message}, at + dt.timedelta(seconds=i))


def make_site(root: Path, now: dt.datetime = NOW, settings: Settings | None = None) -> Path:
    settings = settings or Settings(data_dir=root / "data", gerrit=GerritSettings(web_url="https://review.example.org"))
    build_dashboard(settings, EmbeddedBackend(root / "data" / "index"), root / "queries", Publisher(root / "site"),
                    now=now)
    return root / "site"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Ten days of builds: bug 300001 hitting four changes in the last hours
    (an incident) and more over the days; 300002, resolved three days ago,
    hitting again yesterday (a regression); 300003 never hitting."""
    root = tmp_path_factory.mktemp("pages")
    backend = EmbeddedBackend(root / "data" / "index")
    with backend.writer() as w:
        for n in range(4):  # four changes in the last three hours
            add(w, f"i{n}" + "0" * 31, 870000 + n, "FAILURE", dt.timedelta(hours=n, minutes=10), TIMEOUT,
                project="openstack/nova" if n % 2 else "openstack/neutron")
        for n in range(9):  # older hits, one to three a day
            add(w, f"o{n}" + "0" * 31, 870100 + n, "FAILURE" if n % 3 else "SUCCESS",
                dt.timedelta(days=1 + n // 2, hours=n), TIMEOUT, job="grenade" if n % 2 else "tempest-full")
        add(w, "r" * 32, 870200, "FAILURE", dt.timedelta(days=1), MIRROR, job="grenade")
        add(w, "u" * 32, 870300, "FAILURE", dt.timedelta(hours=5), "something new broke")
    queries = root / "queries"
    queries.mkdir()
    (queries / "300001.yaml").write_text(f'query: message:"{TIMEOUT[:30]}" AND tags:console\n'
                                         "title: MessagingTimeout\nprojects: [openstack/nova]\n")
    resolved = (NOW - dt.timedelta(days=3)).date()
    (queries / "300002.yaml").write_text(f'query: message:"Hash Sum mismatch" AND tags:console\nresolved: {resolved}\n')
    (queries / "300003.yaml").write_text('query: message:"long gone" AND tags:console\n')
    site = make_site(root)
    return root, site


@pytest.fixture(scope="module")
def browser():
    assert chromium_binary(), "chromium is missing: bin/run-tests installs it from bindep.txt"
    chromium = Chromium()
    yield chromium
    chromium.close()


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_a_bug_page_lists_its_builds_newest_first_linked_to_the_change_the_logs_and_the_line(world):
    _, site = world
    page = (site / "bugs" / "300001.html").read_text()
    uuids = re.findall(r'href="https://logs\.example\.org/(\w{7})/job-output\.txt"', page)
    order = list(dict.fromkeys(uuids))
    assert order[:4] == [f"i{n}00000" for n in range(4)]  # newest first
    assert len(order) == 4 + 9  # every build hit in the window, passing ones included
    assert 'href="https://review.example.org/c/openstack/neutron/+/870000/3">870000,3</a>' in page
    # the matching line, linked so the browser scrolls to it in its log
    assert ('href="https://logs.example.org/i000000/job-output.txt#:~:text=Timed%20out%20waiting%20for%20a%20'
            'reply%20to%20message%20ID%204f3e"') in page
    shown = text_of(page)
    assert "MessagingTimeout" in shown and "openstack/neutron 2" in shown  # projects hit
    assert "Failures, 24 h 4 ↑3 (previous 24 h: 1)" in shown  # o1, 25 hours ago
    assert "First seen" in shown and "Incident" in shown


def test_drawn_bars_read_back_give_the_stored_counts(world, browser):
    """Each bar's height, read from the page as drawn and scaled by its
    y-axis, is the number of builds the stored results hold for that day
    and status."""
    root, site = world
    store = ResultStore(root / "data" / "results.sqlite3")
    try:
        expected = Counter((dt.datetime.fromtimestamp(b.newest / 1e6, UTC).strftime("%Y-%m-%dT00:00"), b.status)
                           for b in store.builds() if "300001" in b.bugs)
    finally:
        store.close()
    browser.open((site / "bugs" / "300001.html").as_uri())
    drawn = browser.evaluate("""(() => {
        const svg = document.getElementById('daily');
        const plot = svg.querySelector('rect.plot').getBBox();
        const ticks = Array.from(svg.querySelectorAll('text.tick')).map(t => Number(t.textContent));
        return {max: Number(svg.dataset.axisMax), ticks, plot: plot.height,
                bars: Array.from(svg.querySelectorAll('rect.bar')).map(r => [r.dataset.bucket, r.dataset.status,
                    r.getBBox().height, r.querySelector('title').textContent])};
    })()""")
    per_day = Counter()
    for (day, _), count in expected.items():
        per_day[day] += count
    assert drawn["ticks"] == ticks(max(per_day.values()))
    assert drawn["ticks"][-1] == drawn["max"] and all(isinstance(t, (int, float)) for t in drawn["ticks"])
    read = {(day, status): round(height / drawn["plot"] * drawn["max"]) for day, status, height, _ in drawn["bars"]}
    assert read == dict(expected)
    day, status, _, title = drawn["bars"][0]
    total = sum(n for (d, _), n in expected.items() if d == day)
    assert title.startswith(f"{day[:10]}: {total} build") and f"{status} {expected[(day, status)]}" in title


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"])
        if tag in ("a", "link") and values.get("href"):
            self.links.append(values["href"])
        self.scripts += tag == "script"


def test_every_internal_link_of_the_site_resolves_to_a_file_and_an_anchor_in_it(world):
    _, site = world
    pages = {path.relative_to(site).as_posix(): path for path in site.rglob("*.html")}
    assert {"index.html", "gate.html", "uncategorized.html", "clusters.html", "bugs/300001.html",
            "bugs/300002.html", "bugs/300003.html"} <= set(pages)
    parsed = {}
    for name, path in pages.items():
        parsed[name] = Links()
        parsed[name].feed(path.read_text())
    checked = 0
    for name, links in parsed.items():
        assert links.scripts == 0, name  # nothing needs JavaScript
        for href in links.links:
            if re.match(r"[a-z]+:", href):
                assert href.startswith("https://"), (name, href)  # nothing else leaves the site
                continue
            target, _, anchor = href.partition("#")
            resolved = (pages[name].parent / target).resolve() if target else pages[name].resolve()
            assert resolved.is_file(), (name, href)
            if anchor:
                key = resolved.relative_to(site.resolve()).as_posix()
                assert anchor in parsed[key].ids, (name, href)
            checked += 1
    assert checked > 50


def test_an_incident_opens_once_is_announced_once_and_closes_only_below_the_lower_threshold(world, tmp_path):
    root, site = world
    alerts = json.loads((site / "data" / "alerts.json").read_text())
    assert [(i["bug"], i["changes"], i["new"]) for i in alerts["incidents"]] == [("300001", 4, True)]
    assert "Incident" in text_of((site / "index.html").read_text())
    outbox = Outbox(root / "data" / "irc-outbox.sqlite3")
    first = outbox.waiting()
    assert [a.text.split(":")[0] for a in first] == ["Incident", "Regression"]
    assert "bug 300001 (MessagingTimeout) hit failed builds of 4 different changes in the last 6 h" in first[0].text
    assert first[0].kind == "negative" and first[0].projects >= {"openstack/nova", "openstack/neutron"}

    # The daemon sends them to the channels taking negative events, once.
    out = io.StringIO()
    rules = [ChannelRule("#qa", None, frozenset({"negative"})), ChannelRule("#happy", None, frozenset({"positive"}))]
    assert outbox.deliver(PrintingNotifier(out).send, rules) == 2
    assert out.getvalue().startswith("irc #qa: Incident: bug 300001") and "#happy" not in out.getvalue()
    assert outbox.deliver(PrintingNotifier(out).send, rules) == 0 and outbox.waiting() == []

    def incidents_at(later: dt.timedelta, settings: Settings | None = None) -> list[tuple[str, int, bool]]:
        site = make_site(root, NOW + later, settings)
        found = json.loads((site / "data" / "alerts.json").read_text())["incidents"]
        return [(i["bug"], i["changes"], i["new"]) for i in found]

    # Four hours on, two of the changes are within the 6 h: below the 3 that open an incident but
    # above the 1 that closes one, so the open incident stays open and is not announced again...
    assert incidents_at(dt.timedelta(hours=3, minutes=55)) == [("300001", 2, False)]
    assert outbox.waiting() == []
    # ...while with no incident open before, two changes open none.
    (root / "data" / "dashboard.sqlite3").rename(tmp_path / "saved.sqlite3")
    assert incidents_at(dt.timedelta(hours=3, minutes=55)) == []
    (tmp_path / "saved.sqlite3").rename(root / "data" / "dashboard.sqlite3")
    for name in ("dashboard.sqlite3-wal", "dashboard.sqlite3-shm"):
        (root / "data" / name).unlink(missing_ok=True)
    outbox.deliver(lambda channel, text: None, [])  # the fresh state's regression line, away
    # An hour later one change is left: it closes.
    assert incidents_at(dt.timedelta(hours=4, minutes=55)) == []
    assert incidents_at(dt.timedelta(hours=3, minutes=55)) == []  # and two do not reopen it
    outbox.close()
    make_site(root)  # the module's site as it was, for the other tests


def test_a_resolved_bug_hitting_again_is_a_regression_on_its_page(world):
    _, site = world
    page = text_of((site / "bugs" / "300002.html").read_text())
    assert "Regression: resolved on" in page and "1 failed build hit since" in page
    assert "Regression" in text_of((site / "index.html").read_text())
    assert json.loads((site / "data" / "alerts.json").read_text())["regressions"] == ["300002"]


def test_bugs_with_no_hit_are_one_list_of_removal_candidates_with_their_last_hit(world):
    _, site = world
    html = (site / "index.html").read_text()
    idle = html[html.index('id="removal-candidates"'):]
    assert "300003" in idle and "last hit: never" in idle
    assert 'id="bug-300003"' not in html[:html.index('id="removal-candidates"')]  # no empty chart row
    assert html.count("<svg") == 2  # a sparkline for each bug that hit, nothing for the idle one


def test_the_classification_rate_per_day_is_a_chart(world):
    _, site = world
    page = (site / "uncategorized.html").read_text()
    bars = re.findall(r'<rect class="bar" data-bucket="[^"]+"[^>]*><title>([^<]+)</title>', page)
    today = f"{NOW:%Y-%m-%d}"
    assert any(t.startswith(today) and "classified" in t for t in bars)
    assert 'href="https://review.example.org/c/openstack/nova/+/870300/3">870300,3</a>' in page  # linked here too


@pytest.mark.parametrize("width", [1400, 420])
def test_screenshots_at_desktop_and_phone_width_without_sideways_scrolling(world, browser, width):
    _, site = world
    browser.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": 900, "deviceScaleFactor": 1,
                                                        "mobile": width < 600}, session=True)
    try:
        for page in ("index.html", "bugs/300001.html", "uncategorized.html"):
            browser.open((site / page).as_uri())
            assert browser.console_errors() == [], page
            overflow = browser.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, (page, width, overflow)
            browser.screenshot(ARTIFACTS / f"dashboard-{page.replace('.html', '').replace('/', '-')}-{width}.png")
        # keyboard: Tab reaches the skip link, then the pages' navigation
        browser.open((site / "index.html").as_uri())
        focused = []
        for _ in range(3):
            for kind in ("keyDown", "keyUp"):
                browser.call("Input.dispatchKeyEvent", {"type": kind, "key": "Tab", "code": "Tab",
                                                        "windowsVirtualKeyCode": 9}, session=True)
            focused.append(browser.evaluate("document.activeElement.textContent.trim()"))
        assert focused == ["Skip to the content", "All pipelines", "Gate pipeline"]
    finally:
        browser.call("Emulation.clearDeviceMetricsOverride", session=True)


def test_resolved_must_be_a_date_and_lint_flags_one_in_the_future(tmp_path):
    cases = {"ok.yaml": "resolved: 2026-01-05", "quoted.yaml": 'resolved: "2026-01-05"',
             "month.yaml": "resolved: 2026-13-01", "time.yaml": "resolved: 2026-01-05 10:00:00",
             "word.yaml": "resolved: yesterday", "future.yaml": "resolved: 2999-01-01"}
    found = {}
    for name, line in cases.items():
        (tmp_path / name).write_text(f'query: message:"x" AND tags:console\n{line}\n')
        found[name] = inspect_fingerprint(tmp_path / name)
    assert found["ok.yaml"].fingerprint.resolved == dt.date(2026, 1, 5)
    assert found["quoted.yaml"].fingerprint.resolved == dt.date(2026, 1, 5)
    for bad in ("time.yaml", "word.yaml"):
        [error] = found[bad].errors
        assert "'resolved' must be a date YYYY-MM-DD" in str(error) and ":2:" in str(error), bad
    [error] = found["month.yaml"].errors  # YAML itself refuses the date
    assert str(error).endswith("month.yaml: YAML value cannot be read: month must be in 1..12")
    assert any("is in the future" in str(w) for w in lint_warnings(found["future.yaml"].fingerprint))


def test_dashboard_settings_are_checked_and_gerrit_web_url_must_be_a_web_url(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("dashboard: {incident_changes: 2, incident_clear_changes: 2}\n")
    with pytest.raises(ConfigError, match="incident_clear_changes must be 0 or more and below incident_changes"):
        load_settings(str(config), env={})
    config.write_text("gerrit: {web_url: 'javascript:alert(1)'}\n")
    with pytest.raises(ConfigError, match="gerrit.web_url: must be an http"):
        load_settings(str(config), env={})
    settings = load_settings(None, env={"ER_DASHBOARD_INCIDENT_HOURS": "2", "ER_GERRIT_HOST": "review.example.org"})
    assert settings.dashboard.incident_hours == 2.0
    assert settings.gerrit.change_web_url == "https://review.example.org"


def test_y_axis_ticks_are_round_whole_numbers():
    assert ticks(0) == [0, 1] and ticks(1) == [0, 1] and ticks(3) == [0, 1, 2, 3]
    assert ticks(7) == [0, 2, 4, 6, 8] and ticks(23) == [0, 5, 10, 15, 20, 25]
    assert ticks(480) == [0, 100, 200, 300, 400, 500]


def test_an_outbox_line_that_is_not_an_announcement_is_skipped_with_one_line(tmp_path, caplog):
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.post([])
    outbox._open(create=False).execute(
        "INSERT INTO outbox (kind, projects, text, posted) VALUES ('negative', 'not json', 'x', 0)")
    out = io.StringIO()
    assert outbox.deliver(PrintingNotifier(out).send, [ChannelRule("#qa", None, frozenset({"negative"}))]) == 0
    assert "line 1 is not an announcement; skipped" in caplog.text and out.getvalue() == ""
    assert Outbox(tmp_path / "absent.sqlite3").deliver(PrintingNotifier(out).send, []) == 0  # no file made
    assert not (tmp_path / "absent.sqlite3").exists()
    outbox.close()



def test_the_watch_daemon_sends_what_a_dashboard_run_left_in_the_outbox_to_its_channels(tmp_path):
    """One IRC connection: the daemon's. A dashboard run's incident reaches
    the channels taking negative events, through the real ``watch`` (with
    --dry-run it prints the lines it would send; nothing else changes)."""
    channels = tmp_path / "channels.yaml"
    channels.write_text('"#qa": {projects: all, events: [negative]}\n'
                        '"#nova": {projects: [openstack/nova], events: [positive]}\n')
    outbox = Outbox(tmp_path / "data" / "irc-outbox.sqlite3")
    outbox.post([Announcement("negative", frozenset({"openstack/nova"}), "Incident: bug 300001 hit 4 changes")])
    outbox.close()
    events = tmp_path / "events.json"
    events.write_text("[]")
    env = {**os.environ, "ER_DATA_DIR": str(tmp_path / "data"), "ER_INGEST_FETCH": "false",
           "ER_IRC_CHANNELS": str(channels), "ER_GERRIT_HOST": "127.0.0.1"}
    queries = tmp_path / "queries"
    queries.mkdir()
    command = [str(Path(sys.executable).parent / "elastic-recheck"), "watch", "--dry-run", "--queries", str(queries),
               "--events", str(events)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [line for line in done.stdout.splitlines() if line.startswith("irc ")] == [
        "irc #qa: Incident: bug 300001 hit 4 changes"]
    assert Outbox(tmp_path / "data" / "irc-outbox.sqlite3").waiting() == []  # sent once: marked so


def test_a_suppress_notification_incident_is_shown_but_never_announced(tmp_path):
    backend = EmbeddedBackend(tmp_path / "data" / "index")
    with backend.writer() as w:
        for n in range(3):
            add(w, f"q{n}" + "0" * 31, 880000 + n, "FAILURE", dt.timedelta(hours=n + 1), MIRROR)
    (tmp_path / "queries").mkdir()
    (tmp_path / "queries" / "400001.yaml").write_text(
        'query: message:"Hash Sum mismatch" AND tags:console\nsuppress-notification: true\n')
    site = make_site(tmp_path)
    assert [i["bug"] for i in json.loads((site / "data" / "alerts.json").read_text())["incidents"]] == ["400001"]
    assert Outbox(tmp_path / "data" / "irc-outbox.sqlite3").waiting() == []


def test_custom_templates_may_replace_one_page_and_take_the_others_from_the_shipped_ones(world, tmp_path):
    """A templates directory copied before the bug pages existed (or holding
    only the page someone changed) still makes the whole site."""
    root, _ = world
    templates = tmp_path / "templates"
    templates.mkdir()
    shipped = Path(__file__).resolve().parents[1] / "web" / "bugs.html"
    (templates / "bugs.html").write_text(shipped.read_text().replace('<p class="summary">', '<p class="summary">Our team. ', 1))
    for part in ("data", "queries"):
        shutil.copytree(root / part, tmp_path / part)
    settings = Settings(data_dir=tmp_path / "data", dashboard=DashboardSettings(templates=str(templates)))
    site = make_site(tmp_path, settings=settings)
    assert '<p class="summary">Our team. ' in (site / "index.html").read_text()
    assert "300001" in (site / "bugs" / "300001.html").read_text() and (site / "style.css").is_file()

    settings = Settings(data_dir=tmp_path / "data", dashboard=DashboardSettings(templates=str(tmp_path / "nowhere")))
    with pytest.raises(ConfigError, match="dashboard.templates: .*nowhere is not a directory"):
        make_site(tmp_path, settings=settings)
