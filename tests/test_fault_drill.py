"""The fault drill: the real ``watch`` daemon, end to end, through what goes
wrong in production — SSH connections dropping, the search index going
away, the IRC server restarting, the daemon killed with SIGKILL and started
again — under a flood of 10,000 Gerrit events. At the end it prints events
in, classified, commented, duplicates, lost and peak RSS (also written to
``test-artifacts/fault-drill.txt``); lost and duplicates must be 0.

The flood is shaped like a real stream: one event in five is a CI failure
report (unique change and patchset, one failed job whose logs are indexed),
the rest are patchset uploads, people's comments and passing builds.
Gerrit's stream has no replay: events in flight when a connection drops or
the daemon dies are gone, whatever the daemon does. So the drill drops the
SSH connections and sends SIGKILL once the events sent so far have been read
(with hundreds of them still waiting for the search index at the kill), and
pushes only while the daemon is connected (the test server keeps the few
sent during a reconnect for it). What it checks is the promise the daemon
makes: an event it has received is never lost or doubled.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from elastic_recheck.fingerprints import load_fingerprints
from elastic_recheck.ingest import ingest_build
from elastic_recheck.ingest.sources import load_metadata_file, open_logs
from elastic_recheck.search.embedded import EmbeddedBackend

from .gerrit_server import GerritServer
from .irc_server import IRCServer, Listener

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ZUUL = "https://zuul.example.org/t/main/build/"
EVENTS = 10_000  # the full drill (marked full_drill: .ci/run runs it after the suite)
QUICK_EVENTS = 1_250  # the same faults at an eighth of the scale, in every run of the suite
FAILURE_SHARE = 5  # one event in five is a failure report
GATE_EVERY = 100  # one failure report in a hundred is in the gate pipeline (announced on IRC)
CHANNEL = "#drill"


def _demo_builds(directory: Path) -> list[dict]:
    spec = importlib.util.spec_from_file_location("demo_builds", ROOT / "examples" / "demo_builds.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import datetime as dt

    module.write(directory, dt.datetime.now(dt.timezone.utc))
    return [json.loads((build / "build.json").read_text()) | {"dir": str(build)}
            for build in sorted((directory / "builds").iterdir())]


def _stream(builds: list[dict], events: int, seed: int = 7) -> list[tuple[str, dict]]:
    """``events`` events: ("failure", event) for failure reports, ("noise", event) for the rest."""
    rng = random.Random(seed)
    failed = [b for b in builds if b["result"] == "FAILURE"]
    out: list[tuple[str, dict]] = []
    failures = 0
    for n in range(events):
        change = 900_000 + n
        base = {"change": {"number": str(change), "project": "openstack/nova", "branch": "master",
                           "url": f"https://review.example.org/{change}"},
                "patchSet": {"number": "1"}, "eventCreatedOn": int(time.time())}
        if n % FAILURE_SHARE == 0:
            build = failed[failures % len(failed)]
            pipeline = "gate" if failures % GATE_EVERY == 0 else "check"
            failures += 1
            out.append(("failure", base | {
                "type": "comment-added", "author": {"username": "zuul"},
                "comment": (f"Patch Set 1:\n\nBuild failed ({pipeline} pipeline).  For information on how to "
                            f"proceed, see ...\n\n- {build['job_name']} {ZUUL}{build['uuid']} : FAILURE in 1h 2m\n"),
            }))
            continue
        kind = rng.choice(["patchset-created", "human", "success", "ref-updated"])
        if kind == "patchset-created":
            out.append(("noise", base | {"type": "patchset-created", "uploader": {"username": "alice"}}))
        elif kind == "human":
            out.append(("noise", base | {"type": "comment-added", "author": {"username": "bob"},
                                         "comment": "Patch Set 1: Code-Review+1\n\nrecheck"}))
        elif kind == "success":
            out.append(("noise", base | {"type": "comment-added", "author": {"username": "zuul"},
                                         "comment": "Patch Set 1: Verified+1\n\nBuild succeeded (check pipeline).\n\n"
                                                    f"- tempest-full {ZUUL}{'e' * 32} : SUCCESS in 1h 1m\n"}))
        else:
            out.append(("noise", {"type": "ref-updated", "refUpdate": {"project": "openstack/nova",
                                                                       "refName": "refs/heads/master"}}))
    return out


def _peak_rss(pid: int) -> int:
    """The process's high-water resident set, KiB (read before it exits)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


class Daemon:
    def __init__(self, data_dir: Path, config: Path, log: Path) -> None:
        self.data_dir, self.config, self.log = data_dir, config, log
        self.proc: subprocess.Popen | None = None
        self.peak_kib = 0

    def start(self) -> None:
        env = {**os.environ, "ER_DATA_DIR": str(self.data_dir), "ER_INGEST_FETCH": "false"}
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                [str(BIN / "elastic-recheck"), "watch", "--config", str(self.config), "--queries", str(ROOT / "queries")],
                stdout=log, stderr=log, env=env)

    def _note_rss(self) -> None:
        try:
            self.peak_kib = max(self.peak_kib, _peak_rss(self.proc.pid))
        except OSError:
            pass

    def kill(self) -> None:
        self._note_rss()
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        self._note_rss()
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def _db(data_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{data_dir / 'state.sqlite3'}?mode=ro", uri=True, timeout=30)


def _count(data_dir: Path, sql: str) -> int:
    if not (data_dir / "state.sqlite3").exists():
        return 0
    with _db(data_dir) as db:
        return db.execute(sql).fetchone()[0]


def _wait(what: str, condition, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"fault drill: timed out waiting for {what}")
        time.sleep(0.2)


@pytest.mark.parametrize("events", [
    QUICK_EVENTS, pytest.param(EVENTS, marks=pytest.mark.full_drill)], ids=["quick", "full"])
def test_fault_drill(tmp_path, capsys, events):
    """Every fault at once, in this order, over a flood of events: SSH
    connections dropped after 15% of them, the IRC server restarted after
    30%, the index gone from 30% to 60%, the daemon SIGKILLed with work
    queued; nothing lost, nothing doubled."""
    first, second, third = events * 15 // 100, events * 30 // 100, events * 60 // 100
    started = time.monotonic()
    data_dir = tmp_path / "data"
    builds = _demo_builds(tmp_path / "demo")
    backend = EmbeddedBackend(data_dir / "index")
    for build in builds:
        ingest_build(backend, open_logs(build["dir"]), load_metadata_file(str(Path(build["dir"]) / "build.json")))
    backend.close()

    gerrit = GerritServer(tmp_path, command_delay=0.005)
    irc = IRCServer(tmp_path)
    channels = tmp_path / "channels.yaml"
    channels.write_text(f'"{CHANNEL}":\n  projects: all\n  events: [positive, negative]\n')
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({
        "gerrit": {"host": "127.0.0.1", "port": gerrit.port, "user": gerrit.user,
                   "key_file": str(gerrit.key_file), "known_hosts": str(gerrit.known_hosts)},
        "watch": {"poll_initial": 0.1, "poll_max": 0.3, "retry_max": 1.0, "log_timeout": 3600},
        "irc": {"server": "127.0.0.1", "port": irc.port, "nick": "er-drill", "channels": str(channels),
                "pipelines": ["gate"], "rate": 50, "burst": 20},
    }))
    listener = Listener(irc.port, "drill-watcher", [CHANNEL])
    stream = _stream(builds, events)
    failures = [event for kind, event in stream if kind == "failure"]
    daemon = Daemon(data_dir, config, tmp_path / "watch.log")
    faults: list[str] = []
    heard: list[str] = []
    try:
        daemon.start()
        gerrit.wait_for_stream()

        def push(start: int, end: int) -> None:
            for _, event in stream[start:end]:
                gerrit.push(event)

        def failures_in(end: int) -> int:
            return sum(1 for kind, _ in stream[:end] if kind == "failure")

        # 1. the first 30% of the events, with every SSH connection dropped half way
        push(0, first)
        _wait(f"the first {first:,} events to be read",  # what is in flight when a connection drops is gone
              lambda: _count(data_dir, "SELECT COUNT(*) FROM events") >= failures_in(first))
        gerrit.drop_all()
        faults.append(f"SSH: every connection (event stream and reviews) dropped after {first:,} events")
        gerrit.wait_for_stream()
        push(first, second)
        # 2. the IRC server restarts
        irc.restart()
        faults.append(f"IRC: server restarted after {second:,} events")
        heard = listener.texts(CHANNEL)
        listener.close()  # the watcher reconnects too, and counts on from what it heard
        listener = Listener(irc.port, "drill-watcher", [CHANNEL])
        # 3. the search index goes away; 30% more of the events arrive meanwhile
        (data_dir / "index").rename(data_dir / "index-away")
        faults.append(f"search backend: index unavailable for events {second:,}-{third:,}")
        push(second, third)
        _wait("every failure report so far to be persisted",
              lambda: _count(data_dir, "SELECT COUNT(*) FROM events") >= failures_in(third))
        waiting = _count(data_dir, "SELECT COUNT(*) FROM events WHERE status = 'pending'")
        # 4. SIGKILL with work queued, index back, restart
        daemon.kill()
        faults.append(f"SIGKILL with {waiting} failure reports waiting for the index; restarted")
        (data_dir / "index-away").rename(data_dir / "index")
        daemon.start()
        gerrit.wait_for_stream()
        # 5. the rest of the flood
        push(third, events)
        _wait("every failure report to be finished",
              lambda: _count(data_dir, "SELECT COUNT(*) FROM events WHERE status = 'done'") >= len(failures),
              timeout=300)
        time.sleep(1.0)  # anything that would come twice comes now
        assert daemon.stop() == 0
    except BaseException:
        print("the daemon's log, last 60 lines:\n" + "".join(daemon.log.read_text().splitlines(True)[-60:]))
        raise
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.proc.kill()
        gerrit.close()

    expected_irc = 0
    with _db(data_dir) as db:
        accepted = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        finished = {row[0] for row in db.execute("SELECT key FROM events WHERE status = 'done'")}
        rows = db.execute("SELECT change, patchset, kind, pipeline, bugs FROM outcomes").fetchall()
        in_doubt = {(c, p) for c, p in db.execute("SELECT change, patchset FROM comments WHERE state = 'unknown'")}
    # Bugs whose fingerprint says suppress-notification explain a build but are never commented on or announced.
    silent = {fp.bug for fp in load_fingerprints(ROOT / "queries")[0] if fp.suppress_notification}
    outcomes = [(c, p, "silent" if kind == "bugs" and set(json.loads(bugs)) <= silent else kind, pipeline)
                for c, p, kind, pipeline, bugs in rows]
    classified = {(c, p) for c, p, kind, _ in outcomes if kind in ("bugs", "silent", "unrecognized")}
    to_comment = {(c, p) for c, p, kind, _ in outcomes if kind == "bugs"}
    expected_irc = sum(1 for *_, kind, pipeline in outcomes if pipeline == "gate" and kind in ("bugs", "unrecognized"))
    reviewed = [(r["change"], r["patchset"]) for r in gerrit.reviews]
    sent = {(int(e["change"]["number"]), int(e["patchSet"]["number"])) for e in failures}
    lost = len(sent - classified)
    duplicates = len(reviewed) - len(set(reviewed))
    # A post cut off before Gerrit's answer is "in doubt": it may or may not have
    # arrived, and at most once means it is not sent again. Every other bug found
    # must have its comment.
    missing_comments = to_comment - set(reviewed) - in_doubt
    try:
        listener.wait_for(lambda: len(heard) + len(listener.texts(CHANNEL)) >= expected_irc, timeout=20)
    except AssertionError:
        pass
    irc_lines = len(heard) + len(listener.texts(CHANNEL))
    listener.close()
    irc.stop()

    report = "\n".join([
        f"fault drill: the real watch daemon, {events:,} Gerrit events",
        *(f"  fault: {fault}" for fault in faults),
        f"  events in:            {events:,} ({len(failures):,} failure reports, the rest other events)",
        f"  accepted (persisted): {accepted:,}",
        f"  finished:             {len(finished):,}",
        f"  classified:           {len(classified):,} ({len(to_comment):,} with a known bug)",
        f"  commented:            {len(set(reviewed)):,}",
        f"  duplicates:           {duplicates}",
        f"  lost:                 {lost}",
        f"  comments in doubt:    {len(in_doubt)} (cut off mid-post, {len(in_doubt & set(reviewed))} of them arrived;"
        " at most once, so not sent again)",
        f"  comments missing:     {len(missing_comments)}",
        f"  IRC lines:            {irc_lines} of {expected_irc} gate announcements",
        f"  peak RSS (daemon):    {daemon.peak_kib / 1024:.0f} MiB",
        f"  took:                 {time.monotonic() - started:.0f} s",
    ])
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "fault-drill.txt").write_text(report + "\n")
    with capsys.disabled():
        print("\n" + report)
    assert lost == 0 and duplicates == 0, report
    assert accepted == len(failures) and not missing_comments, report
    assert irc_lines > len(heard), report  # the bot came back after the IRC restart


def _demo_log_server(builds: Path, fault):
    spec = importlib.util.spec_from_file_location("demo_log_server", ROOT / "examples" / "demo_log_server.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DemoLogServer(builds, fault=fault).start()


def test_fetching_survives_a_log_server_failing_mid_build_and_a_kill_mid_fetch(tmp_path):
    """The daemon fetching every build's logs itself: the log server hangs up
    half way through a file, and the daemon is killed (SIGKILL) while builds
    are being fetched. Started again, it fetches those builds again from the
    start; every build ends up indexed once, whole, and every failure that
    hit a known bug is reviewed once."""
    import datetime as dt

    from elastic_recheck.pipeline import LogsReady, index_builds
    from elastic_recheck.results import ResultStore

    spec = importlib.util.spec_from_file_location("demo_builds", ROOT / "examples" / "demo_builds.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    stall = {"seconds": 0.3}  # while the first daemon runs, every file takes a while: a kill lands mid-fetch
    hung_up: list[str] = []
    last = "01-tempest-full/job-output.txt"  # the first failed build's console log

    def fault(path: str):
        if path.endswith(last) and not hung_up and not stall["seconds"]:  # in the run after the kill
            hung_up.append(path)
            return "hang-up"
        return stall["seconds"]

    server = _demo_log_server(tmp_path / "demo" / "builds", fault)
    data_dir = tmp_path / "data"
    log = tmp_path / "watch.log"
    try:
        demo.write(tmp_path / "demo", dt.datetime.now(dt.timezone.utc), server.url)
        events = tmp_path / "demo" / "events.json"
        env = {**os.environ, "ER_DATA_DIR": str(data_dir), "ER_INGEST_LOG_HOSTS": "127.0.0.1",
               "ER_INGEST_WORKERS": "2"}
        command = [str(BIN / "elastic-recheck"), "watch", "--queries", str(ROOT / "queries"), "--events",
                   str(events), "--dry-run"]
        with open(log, "a") as err, open(tmp_path / "first.out", "w") as out:
            first = subprocess.Popen(command, stdout=out, stderr=err, env=env)
            spool = data_dir / "spool"
            _wait("builds being fetched", lambda: spool.is_dir() and sum(1 for _ in spool.iterdir()) >= 2
                  and sum(1 for r in server.requests if r.startswith("/logs/")) >= 3, timeout=60)
            first.kill()
            first.wait(timeout=30)
        cut_off = _count(data_dir, "SELECT COUNT(*) FROM builds WHERE status = 'fetching'")
        assert cut_off >= 1  # killed with builds half fetched
        stall["seconds"] = 0
        second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        assert second.returncode == 0, second.stderr[-3000:]
        with open(log, "a") as err:
            err.write(second.stderr)
    finally:
        server.stop()

    assert hung_up, "the log server never hung up"
    with _db(data_dir) as db:
        states = dict(db.execute("SELECT status, COUNT(*) FROM builds GROUP BY status").fetchall())
    reported = events.read_text()  # the builds the reports list (failed ones, and the pep8 job beside each)
    builds = [json.loads(p.read_text()) | {"dir": str(p.parent)}
              for p in sorted((tmp_path / "demo" / "builds").glob("*/build.json"))]
    builds = [b for b in builds if b["uuid"] in reported]
    assert states == {"indexed": len(builds)}, states
    # Nothing doubled: every build's lines are those of the same logs indexed once, by hand.
    reference = EmbeddedBackend(tmp_path / "reference")
    index_builds(reference, tmp_path / "reference.sqlite3", [],
                 [LogsReady(load_metadata_file(b["dir"] + "/build.json"), b["dir"]) for b in builds])
    backend = EmbeddedBackend(data_dir / "index")
    cut = next(b for b in builds if b["dir"].endswith("01-tempest-full"))
    for build in builds:
        query = f'build_uuid:"{build["uuid"]}"'
        if build is cut:  # the hang-up: what came, then the marker; the rest of the build whole
            assert backend.count(query + ' AND message:"the rest of this file is not indexed"') == 1
            assert backend.count(query + " AND NOT tags:console") == reference.count(query + " AND NOT tags:console")
            continue
        assert backend.count(query) == reference.count(query), build["dir"]
    assert not any((data_dir / "spool").iterdir())
    # Each failure a known bug explains is reviewed once, across the kill.
    reviews = [line for line in ((tmp_path / "first.out").read_text() + second.stdout).splitlines()
               if line.startswith("review ")]
    assert len(reviews) == len(set(reviews))
    store = ResultStore(data_dir / "results.sqlite3")
    explained = {f'{b["change"]},{b["patchset"]}' for b in builds
                 if b["result"] == "FAILURE" and set(store.build(b["uuid"]).bugs) - {"2000003"}}
    assert {line.split()[1].rstrip(":") for line in reviews} == explained
