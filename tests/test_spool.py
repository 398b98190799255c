"""The daemon's fetching: a build's log files from its log server into a
spool directory (within the ingest limits, from allowed hosts only, over
kept connections), a few builds at a time, and the spool indexed as
``ingest --logs URL`` would index the server."""

from __future__ import annotations

import functools
import gzip
import json
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from elastic_recheck.builds import Build
from elastic_recheck.config import DEFAULT_LOG_FILES, IngestSettings, load_settings
from elastic_recheck.errors import ConfigError, IngestError
from elastic_recheck.ingest import ingest_build
from elastic_recheck.ingest.fetch import ConnectionPool, LogHosts
from elastic_recheck.ingest.fetch_pool import FetchPool
from elastic_recheck.ingest.sources import open_logs
from elastic_recheck.ingest.spool import (FETCH_JSON, FetchReport, fetch_build, read_fetch_report, selected,
                                          spool_logs)
from elastic_recheck.search import ALL_TIME
from elastic_recheck.search.embedded import EmbeddedBackend

from .test_hostile_ingest import (CONSOLE, QUICK, HostileLogServer, drip, gzip_bomb, lie, listing, one_line, oslo,
                                  redirect, serve, trusted_tls)

SETTINGS = IngestSettings(max_file_bytes=2 << 20, max_decompressed_bytes=1 << 20, max_build_bytes=8 << 20,
                          max_files=50, max_line_bytes=4096, file_timeout=2.0, log_hosts=("127.0.0.1",))
fetch = functools.partial(fetch_build, retry=QUICK)
SUBUNIT = b"\xb3)\x01\x00" + bytes(range(256)) * 40 + b"\n\r\x00" + b"z" * 9000  # binary, "lines" past the limit


def build(url: str, uuid: str = "5e1f0c9f1e4c3a8e0b6a3f9a1c2d3e4f") -> Build:
    return Build(job="tempest-full", status="FAILURE", uuid=uuid, change=864201, patchset=3, project="openstack/nova",
                 pipeline="gate", log_url=url)


def manifest(*names: str) -> bytes:
    """A zuul-manifest.json naming these files (paths with "/" become directories)."""
    root: list[dict] = []
    for name in names:
        level = root
        *dirs, leaf = name.split("/")
        for directory in dirs:
            node = next((n for n in level if n["name"] == directory), None)
            if node is None:
                node = {"name": directory, "mimetype": "application/directory", "children": []}
                level.append(node)
            level = node["children"]
        level.append({"name": leaf, "mimetype": "text/plain"})
    return json.dumps({"tree": root}).encode()


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def log_server():
    servers: list[HostileLogServer] = []

    def start() -> HostileLogServer:
        servers.append(HostileLogServer(keep_alive=True))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def zuul_build(server: HostileLogServer, prefix: str = "/build/") -> dict[str, bytes]:
    """A devstack-shaped build at ``prefix`` with a zuul-manifest.json; its files as served."""
    files = {
        "job-output.txt": CONSOLE,
        "controller/logs/screen-n-cpu.txt.gz": gzip.compress(oslo(30, "compute")),
        "controller/logs/syslog.txt": b"Nov 20 10:38:00 host kernel: [  301.1] EXT4-fs (vda1): re-mounted\n",
        "controller/logs/etc/nova.conf.txt": b"[DEFAULT]\n",  # not one of ingest.files
        "zuul-info/inventory.yaml": b"all: {}\n",
        "testrepository.subunit": SUBUNIT,
    }
    server.routes[prefix + "zuul-manifest.json"] = serve(manifest(*files))
    for name, body in files.items():
        server.routes[prefix + name] = serve(body)
    return files


# -- one build into the spool --------------------------------------------------

def test_a_build_named_by_its_zuul_manifest_is_spooled_with_gz_files_decompressed(log_server, tmp_path):
    server = log_server()
    zuul_build(server)
    report = fetch(build(server.url + "build/"), tmp_path / "b1", SETTINGS)
    assert report.discovery == "zuul-manifest.json" and not report.errors and not report.warnings
    assert [f.name for f in report.files] == ["job-output.txt", "controller/logs/screen-n-cpu.txt",
                                              "controller/logs/syslog.txt", "testrepository.subunit"]
    spooled = tree(tmp_path / "b1")
    assert spooled["testrepository.subunit"] == SUBUNIT  # not a log: its bytes as they are, no line cut
    assert spooled["controller/logs/screen-n-cpu.txt"] == oslo(30, "compute")  # stored as text, without .gz
    assert spooled["job-output.txt"] == CONSOLE
    assert "controller/logs/etc/nova.conf.txt" not in spooled and "zuul-info/inventory.yaml" not in spooled
    assert report.bytes == sum(len(spooled[f.name]) for f in report.files)
    assert read_fetch_report(tmp_path / "b1") == report
    assert json.loads(spooled["build.json"])["build_change"] == "864201"
    assert "/build/controller/logs/etc/nova.conf.txt" not in server.requests


def test_without_a_manifest_literal_names_are_asked_for_and_globs_read_their_directory_page(log_server, tmp_path):
    server = log_server()
    server.routes["/build/job-output.txt.gz"] = serve(gzip.compress(CONSOLE))  # only the .gz is there
    server.routes["/build/logs/"] = listing("screen-n-api.txt", "screen-c-vol.txt.gz", "keystone.log",
                                            "image.png", "../secret.txt")
    server.routes["/build/logs/screen-n-api.txt"] = serve(oslo(3, "api"))
    server.routes["/build/logs/screen-c-vol.txt.gz"] = serve(gzip.compress(oslo(2, "volume")))
    server.routes["/build/logs/keystone.log"] = serve(oslo(1, "keystone"))
    server.routes["/build/"] = listing("job-output.txt.gz", "logs/", "controller/", "zuul-info/")
    server.routes["/build/controller/logs/"] = listing("screen-q-svc.txt")
    server.routes["/build/controller/logs/screen-q-svc.txt"] = serve(oslo(2, "neutron"))
    report = fetch(build(server.url + "build/"), tmp_path / "b1", SETTINGS)
    assert report.discovery == "patterns"
    assert not report.errors and not report.warnings, one_line(report.errors + report.warnings)
    assert sorted(tree(tmp_path / "b1")) == sorted([
        "job-output.txt", "logs/screen-n-api.txt", "logs/screen-c-vol.txt", "logs/keystone.log",
        "controller/logs/screen-q-svc.txt", FETCH_JSON, "build.json"])
    assert (tmp_path / "b1" / "logs" / "screen-c-vol.txt").read_bytes() == oslo(2, "volume")
    assert "/build/logs/image.png" not in server.requests and "/secret.txt" not in server.requests
    # A literal name the build does not have is absent, not an error: asked for once, and its .gz once.
    assert server.requests.count("/build/console.html") == 1 and server.requests.count("/build/console.html.gz") == 1
    assert "/build/zuul-info/logs/" in server.requests  # a 404 directory page: nothing there, no warning


def test_a_server_error_is_asked_again_and_a_file_that_stays_broken_is_an_error(log_server, tmp_path):
    server = log_server()
    answers = iter([500, 503])

    def flaky(handler) -> None:
        status = next(answers, 200)
        if status != 200:
            handler.send_response(status)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        serve(oslo(2, "recovered"))(handler)

    def broken(handler) -> None:
        handler.send_response(500)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    server.routes["/build/zuul-manifest.json"] = serve(manifest("job-output.txt", "logs/a.log", "logs/b.log"))
    server.routes["/build/job-output.txt"] = serve(CONSOLE)
    server.routes["/build/logs/a.log"] = flaky
    server.routes["/build/logs/b.log"] = broken
    report = fetch_build(build(server.url + "build/"), tmp_path / "b1", SETTINGS,
                         retry=type(QUICK)(attempts=3, delay=0.01))
    assert [f.name for f in report.files] == ["job-output.txt", "logs/a.log"]
    assert (tmp_path / "b1" / "logs" / "a.log").read_bytes() == oslo(2, "recovered")
    assert one_line(report.errors) == [f"{server.url}build/logs/b.log: HTTP 500 Internal Server Error "
                                       "(after 3 attempts)"]


def test_a_file_named_by_the_manifest_but_missing_is_an_error_the_rest_is_spooled(log_server, tmp_path):
    server = log_server()
    server.routes["/build/zuul-manifest.json"] = serve(manifest("job-output.txt", "logs/gone.log"))
    server.routes["/build/job-output.txt"] = serve(CONSOLE)
    report = fetch(build(server.url + "build/"), tmp_path / "b1", SETTINGS)
    assert [f.name for f in report.files] == ["job-output.txt"]
    (error,) = one_line(report.errors)
    assert error.startswith(f"{server.url}build/logs/gone.log: HTTP 404")


def test_a_server_that_fails_mid_file_leaves_the_bytes_it_sent_and_a_cut_marker(log_server, tmp_path):
    server = log_server()
    body = oslo(5, "partial")

    def hang_up(handler) -> None:
        handler.close_connection = True
        lie(body, len(body) + 10_000)(handler)

    server.routes["/build/zuul-manifest.json"] = serve(manifest("job-output.txt", "logs/n-cpu.log"))
    server.routes["/build/job-output.txt"] = serve(CONSOLE)
    server.routes["/build/logs/n-cpu.log"] = hang_up
    report = fetch(build(server.url + "build/"), tmp_path / "b1", SETTINGS)
    (error,) = one_line(report.errors)
    assert error == (f"{server.url}build/logs/n-cpu.log: the server closed the connection 10000 bytes short of the "
                     f"{len(body) + 10_000} bytes it announced; the first {len(body)} bytes are kept")
    spooled = (tmp_path / "b1" / "logs" / "n-cpu.log").read_bytes()
    assert spooled == body + (b"[elastic-recheck] the rest of this file is not indexed: the server closed the "
                              b"connection 10000 bytes short of the %d bytes it announced\n" % (len(body) + 10_000))
    assert report.files[1].cut.startswith("the server closed the connection")
    recorded = read_fetch_report(tmp_path / "b1")
    assert recorded is not None and recorded.files == report.files and one_line(recorded.errors) == [error]
    assert (tmp_path / "b1" / "job-output.txt").read_bytes() == CONSOLE


def test_every_ingest_limit_holds_in_the_spool(log_server, tmp_path):
    server = log_server()
    long_line = b"2026-11-20 10:00:00.000 1 ERROR x " + b"y" * 10_000 + b"\n"
    server.routes["/build/zuul-manifest.json"] = serve(manifest(
        "job-output.txt", "logs/bomb.log.gz", "logs/long.log", *[f"logs/s{n}.log" for n in range(5)]))
    server.routes["/build/job-output.txt"] = serve(CONSOLE)
    server.routes["/build/logs/bomb.log.gz"] = serve(gzip_bomb(4))
    server.routes["/build/logs/long.log"] = serve(long_line + oslo(1))
    for n in range(5):
        server.routes[f"/build/logs/s{n}.log"] = serve(oslo(1))
    limits = IngestSettings(max_decompressed_bytes=1 << 20, max_line_bytes=4096, max_files=4, file_timeout=2.0,
                            log_hosts=("127.0.0.1",))
    report = fetch(build(server.url + "build/"), tmp_path / "b1", limits)
    assert [f.name for f in report.files] == ["job-output.txt", "logs/bomb.log", "logs/long.log", "logs/s0.log"]
    bomb = (tmp_path / "b1" / "logs" / "bomb.log").read_bytes()
    assert len(bomb) < (1 << 20) + 200 and bomb.endswith(
        b"[elastic-recheck] the rest of this file is not indexed: more than 1048576 bytes after decompression "
        b"(ingest.max_decompressed_bytes)\n")
    long = (tmp_path / "b1" / "logs" / "long.log").read_bytes().split(b"\n")
    assert len(long[0]) <= 4096 and long[0].endswith(b"bytes truncated]") and long[1] == oslo(1).rstrip(b"\n")
    assert one_line(report.warnings) == [
        f"{server.url}build/logs/bomb.log.gz: more than 1048576 bytes after decompression "
        "(ingest.max_decompressed_bytes); the first 1048576 bytes are kept",
        f"{server.url}build/: more than 4 log files (ingest.max_files): 4 more are not fetched"]
    assert not report.errors


def test_the_build_budget_stops_the_fetching_with_one_warning(log_server, tmp_path):
    server = log_server()
    names = ["job-output.txt", *[f"logs/s{n}.log" for n in range(4)]]
    server.routes["/build/zuul-manifest.json"] = serve(manifest(*names))
    for name in names:
        server.routes["/build/" + name] = serve(b"x" * 4000 + b"\n")
    limits = IngestSettings(max_build_bytes=10_000, file_timeout=2.0, log_hosts=("127.0.0.1",))
    report = fetch(build(server.url + "build/"), tmp_path / "b1", limits)
    assert [f.bytes for f in report.files][:2] == [4001, 4001] and len(report.files) == 3
    assert report.files[2].cut == "the build's 10000 bytes are used up (ingest.max_build_bytes)"
    assert one_line(report.warnings)[-1] == (f"{server.url}build/: 2 files not fetched, from logs/s2.log on: "
                                             "the build's 10000 bytes (ingest.max_build_bytes) are used up")
    assert "/build/logs/s2.log" not in server.requests and "/build/logs/s3.log" not in server.requests


def test_a_build_with_none_of_the_files_is_reported_so(log_server, tmp_path):
    server = log_server()
    report = fetch(build(server.url + "nothing/"), tmp_path / "b1", SETTINGS)
    assert report.files == []
    assert one_line(report.errors) == [f"{server.url}nothing/: no log files found matching ingest.files "
                                       "(job-output.txt, console.html, testrepository.subunit, logs/screen-*.txt, ...)"]
    assert read_fetch_report(tmp_path / "b1") is not None  # finished: nothing to fetch again


def test_a_log_server_that_does_not_answer_fails_the_build_at_its_first_file(tmp_path):
    url = "http://127.0.0.1:9/build/"  # the discard port: nothing listens
    started = time.monotonic()
    with pytest.raises(IngestError) as failed:
        fetch(build(url), tmp_path / "b1", SETTINGS)
    assert time.monotonic() - started < 2
    (message,) = one_line([failed.value])
    assert message.startswith(f"{url}") and message.endswith(
        "(after 2 attempts); the log server does not answer: the build is not fetched")
    assert not (tmp_path / "b1").exists()


def test_a_fetch_replaces_what_an_earlier_one_cut_off_left(log_server, tmp_path):
    server = log_server()
    zuul_build(server)
    left = tmp_path / "b1"
    (left / "logs").mkdir(parents=True)
    (left / "logs" / "half.log").write_text("from a fetch killed part way\n")
    assert read_fetch_report(left) is None  # no fetch.json: it did not finish
    fetch(build(server.url + "build/"), left, SETTINGS)
    assert not (left / "logs").exists() and read_fetch_report(left) is not None


# -- where logs may come from --------------------------------------------------

def test_a_log_url_on_a_host_not_in_log_hosts_is_refused_naming_url_and_host(log_server, tmp_path):
    server = log_server()
    zuul_build(server)
    url = server.url.replace("127.0.0.1", "localhost") + "build/"
    with pytest.raises(IngestError) as refused:
        fetch(build(url), tmp_path / "b1", SETTINGS)
    assert one_line([refused.value]) == [f"{url}: host 'localhost' is not one of ingest.log_hosts; refused"]
    assert server.requests == [] and not (tmp_path / "b1").exists()
    with pytest.raises(IngestError, match="ingest.log_hosts is empty"):
        fetch(build(server.url + "build/"), tmp_path / "b1", IngestSettings())
    for not_http in ("file:///etc/", "/etc/passwd", "ftp://127.0.0.1/b/"):
        with pytest.raises(IngestError, match="is not an http\\(s\\) URL; refused"):
            fetch(build(not_http), tmp_path / "b1", SETTINGS)
    assert server.requests == []


def test_a_redirect_to_another_host_is_refused_and_not_followed(log_server, tmp_path):
    server = log_server()
    elsewhere = server.url.replace("127.0.0.1", "localhost") + "stolen.txt"
    server.routes["/stolen.txt"] = serve(b"secret\n")
    server.routes["/build/zuul-manifest.json"] = serve(manifest("job-output.txt", "logs/x.log"))
    server.routes["/build/job-output.txt"] = serve(CONSOLE)
    server.routes["/build/logs/x.log"] = redirect(elsewhere)
    report = fetch(build(server.url + "build/"), tmp_path / "b1", SETTINGS)
    assert one_line(report.errors) == [f"{server.url}build/logs/x.log: redirected to {elsewhere!r}: host "
                                       "'localhost' is not one of ingest.log_hosts; refused"]
    assert "/stolen.txt" not in server.requests
    assert [f.name for f in report.files] == ["job-output.txt"]


def test_a_redirect_on_an_allowed_host_is_followed(log_server, tmp_path):
    server = log_server()
    server.routes["/build/zuul-manifest.json"] = serve(manifest("job-output.txt"))
    server.routes["/build/job-output.txt"] = redirect("/moved/job-output.txt")
    server.routes["/moved/job-output.txt"] = serve(CONSOLE)
    report = fetch(build(server.url + "build/"), tmp_path / "b1", SETTINGS)
    assert not report.errors and (tmp_path / "b1" / "job-output.txt").read_bytes() == CONSOLE


def test_log_hosts_take_names_addresses_and_subdomain_wildcards():
    hosts = LogHosts(("logs.example.org", "*.rackcdn.com", "127.0.0.1"))
    assert [hosts.allows(h) for h in ("logs.example.org", "LOGS.example.org", "a.b.rackcdn.com", "rackcdn.com",
                                      "evil-rackcdn.com", "127.0.0.1", "example.org", "")] == [
        True, True, True, False, False, True, False, False]


# -- connections ---------------------------------------------------------------

def test_one_connection_serves_a_builds_files_and_the_next_build(log_server, tmp_path):
    server = log_server()
    zuul_build(server, "/b1/")
    zuul_build(server, "/b2/")
    connections = ConnectionPool(LogHosts(SETTINGS.log_hosts))
    for name in ("b1", "b2"):
        report = fetch(build(server.url + name + "/", name), tmp_path / name, SETTINGS, connections)
        assert len(report.files) == 4 and not report.errors
    connections.close()
    assert len(server.requests) == 10  # a manifest and four files, twice
    assert len(server.peers) == 1 and connections.opened == 1


def test_a_connection_closed_after_an_error_is_replaced_and_the_rest_goes_on(log_server, tmp_path):
    server = log_server()
    server.routes["/build/zuul-manifest.json"] = serve(manifest("job-output.txt", "logs/a.log", "logs/b.log"))
    server.routes["/build/job-output.txt"] = serve(CONSOLE)

    def hang_up(handler) -> None:
        handler.close_connection = True
        lie(b"2026-11-20 10:00:00.000 1 INFO x half\n", 100_000)(handler)

    server.routes["/build/logs/a.log"] = hang_up
    server.routes["/build/logs/b.log"] = serve(oslo(2))
    report = fetch(build(server.url + "build/"), tmp_path / "b1", SETTINGS)
    assert [f.name for f in report.files] == ["job-output.txt", "logs/a.log", "logs/b.log"]
    assert len(report.errors) == 1 and len(server.peers) == 2


def test_kept_connections_work_over_https_and_the_deadline_still_shuts_a_dripping_file(tmp_path, monkeypatch):
    server = HostileLogServer(trusted_tls(tmp_path, monkeypatch), keep_alive=True)
    try:
        server.routes["/build/zuul-manifest.json"] = serve(manifest("job-output.txt", "logs/slow.log", "logs/z.log"))
        server.routes["/build/job-output.txt"] = serve(CONSOLE)
        server.routes["/build/logs/slow.log"] = drip(oslo(2, "arrived"))
        server.routes["/build/logs/z.log"] = serve(oslo(3))
        started = time.monotonic()
        report = fetch(build(server.url + "build/"), tmp_path / "b1", replace(SETTINGS, file_timeout=1.0))
        assert time.monotonic() - started < 5
        assert [f.name for f in report.files] == ["job-output.txt", "logs/slow.log", "logs/z.log"]
        (error,) = one_line(report.errors)
        assert error.startswith(f"{server.url}build/logs/slow.log: gave up after 1 s (ingest.file_timeout)")
        assert (tmp_path / "b1" / "logs" / "z.log").read_bytes() == oslo(3)
        # The manifest and job-output.txt over one TLS connection; the one the deadline shut is not reused.
        assert len(server.peers) == 2
    finally:
        server.close()


# -- the pool ------------------------------------------------------------------

class Outcomes:
    """What the pool's callback was told, by build."""

    def __init__(self) -> None:
        self.got: dict[str, FetchReport | IngestError] = {}
        self.all_in = threading.Event()
        self.expected = 0

    def __call__(self, build: Build, destination: Path, outcome: FetchReport | IngestError) -> None:
        self.got[build.uuid] = outcome
        if len(self.got) >= self.expected:
            self.all_in.set()


def test_the_pool_fetches_builds_concurrently_up_to_its_workers(log_server, tmp_path):
    server = log_server()
    active, most = [0], [0]
    lock = threading.Lock()

    def slow(handler) -> None:
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.15)
        with lock:
            active[0] -= 1
        serve(CONSOLE)(handler)

    for n in range(6):
        server.routes[f"/b{n}/zuul-manifest.json"] = serve(manifest("job-output.txt"))
        server.routes[f"/b{n}/job-output.txt"] = slow
    outcomes = Outcomes()
    outcomes.expected = 6
    settings = IngestSettings(file_timeout=5.0, log_hosts=("127.0.0.1",), workers=3)
    with FetchPool(settings, functools.partial(fetch_build, retry=QUICK)) as pool:
        for n in range(6):
            assert pool.submit(build(f"{server.url}b{n}/", f"b{n}"), tmp_path / f"b{n}", outcomes)
        assert outcomes.all_in.wait(10)
    assert most[0] == 3  # three at once, never more
    assert all(isinstance(o, FetchReport) and len(o.files) == 1 for o in outcomes.got.values())


def test_a_worker_that_fails_reports_that_build_and_the_pool_goes_on(log_server, tmp_path):
    server = log_server()
    zuul_build(server)

    def fetch_one(build, destination, settings, connections):
        if build.uuid == "bad":
            raise RuntimeError("a defect\nover two lines")
        return fetch_build(build, destination, settings, connections, retry=QUICK)

    def done(build, destination, outcome):
        outcomes(build, destination, outcome)
        raise ValueError("the caller's callback failing is its own business")

    outcomes = Outcomes()
    outcomes.expected = 4
    with FetchPool(replace(SETTINGS, workers=1), fetch_one) as pool:
        for uuid in ("bad", "good", "refused", "good2"):
            url = server.url + "build/" if uuid != "refused" else "http://elsewhere.example.org/b/"
            pool.submit(build(url, uuid), tmp_path / uuid, done)
        assert outcomes.all_in.wait(10)
    assert str(outcomes.got["bad"]) == (f"{server.url}build/: fetching failed: RuntimeError: a defect over two lines")
    assert "is not one of ingest.log_hosts" in str(outcomes.got["refused"])
    assert isinstance(outcomes.got["good"], FetchReport) and isinstance(outcomes.got["good2"], FetchReport)


def test_closing_the_pool_cuts_off_fetches_under_way_promptly_and_returns_the_unfinished(log_server, tmp_path):
    server = log_server()
    arrived = threading.Event()

    def drip(handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "100000")
        handler.end_headers()
        arrived.set()
        while not handler.owner.stopping.wait(0.05):
            handler.wfile.write(b"x")
            handler.wfile.flush()

    for n in range(4):
        server.routes[f"/b{n}/zuul-manifest.json"] = serve(manifest("job-output.txt"))
        server.routes[f"/b{n}/job-output.txt"] = drip
    outcomes = Outcomes()
    settings = IngestSettings(file_timeout=60.0, log_hosts=("127.0.0.1",), workers=1)
    pool = FetchPool(settings, functools.partial(fetch_build, retry=QUICK))
    for n in range(4):
        pool.submit(build(f"{server.url}b{n}/", f"b{n}"), tmp_path / f"b{n}", outcomes)
    assert arrived.wait(5)
    started = time.monotonic()
    unfinished = pool.close()
    assert time.monotonic() - started < 2
    assert sorted(b.uuid for b, _ in unfinished) == ["b0", "b1", "b2", "b3"] and outcomes.got == {}
    assert read_fetch_report(tmp_path / "b0") is None  # cut off: to be fetched again
    assert not pool.submit(build(f"{server.url}b0/", "b0"), tmp_path / "b0", outcomes)


def test_the_queue_in_front_of_the_workers_is_bounded(log_server, tmp_path):
    gate = threading.Event()

    def blocked(build, destination, settings, connections):
        gate.wait(10)
        return FetchReport(log_url=build.log_url)

    outcomes = Outcomes()
    outcomes.expected = 3
    with FetchPool(IngestSettings(workers=1), blocked, queue_size=1) as pool:
        assert pool.submit(build("http://127.0.0.1/a/", "a"), tmp_path / "a", outcomes)
        deadline = time.monotonic() + 5
        while pool.busy == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pool.submit(build("http://127.0.0.1/b/", "b"), tmp_path / "b", outcomes, timeout=1)
        assert not pool.submit(build("http://127.0.0.1/c/", "c"), tmp_path / "c", outcomes, timeout=0.1)
        gate.set()
        assert pool.submit(build("http://127.0.0.1/c/", "c"), tmp_path / "c", outcomes, timeout=5)
        assert outcomes.all_in.wait(5)


# -- the spool indexed ---------------------------------------------------------

def test_the_spool_indexes_the_same_lines_as_ingest_from_the_log_url(log_server, tmp_path):
    server = log_server()
    files = {
        "job-output.txt": CONSOLE,
        "logs/screen-n-cpu.txt.gz": gzip.compress(oslo(40, "compute")),
        "logs/syslog.txt": b"Nov 20 10:38:00 host kernel: [  301.1] EXT4-fs (vda1): re-mounted\n"
                           b"Nov 20 10:38:01 host nova-compute[5]: ERROR nova.compute.manager Timed out\n",
        "logs/keystone.log": b"2026-11-20 10:20:00.456 7001 ERROR keystone [req-7] Caught error\n"
                             b"Traceback (most recent call last):\n  File \"x.py\", line 1, in y\nValueError: z\n"
                             + b"2026-11-20 10:20:01.000 7001 WARNING k " + b"w" * 9000 + b"\n",
    }
    server.routes["/build/zuul-manifest.json"] = serve(manifest(*files))
    for name, body in files.items():
        server.routes["/build/" + name] = serve(body)
    url = server.url + "build/"
    the_build = build(url)
    direct = EmbeddedBackend(tmp_path / "direct")
    ingest_build(direct, open_logs(url, QUICK, SETTINGS), the_build.metadata())
    spooled = EmbeddedBackend(tmp_path / "spooled")
    fetch(the_build, tmp_path / "spool", SETTINGS)
    ingest_build(spooled, spool_logs(tmp_path / "spool", SETTINGS), the_build.metadata())

    def documents(backend: EmbeddedBackend) -> list[tuple]:
        return sorted((hit.source["filename"], hit.source["@timestamp"], hit.source["message"],
                       hit.source.get("loglevel"), hit.source["log_url"], tuple(hit.source["tags"]))
                      for hit in backend.scan("*:*", ALL_TIME))

    assert len(documents(direct)) == 20 + 40 + 2 + 2
    assert documents(spooled) == documents(direct)


def test_a_cut_file_shows_the_gap_in_the_index(log_server, tmp_path, backend):
    server = log_server()
    server.routes["/build/zuul-manifest.json"] = serve(manifest("logs/bomb.log.gz"))
    server.routes["/build/logs/bomb.log.gz"] = serve(gzip_bomb(2))
    fetch(build(server.url + "build/"), tmp_path / "spool", SETTINGS)
    ingest_build(backend, spool_logs(tmp_path / "spool", SETTINGS), build(server.url + "build/").metadata())
    assert backend.count('message:"the rest of this file is not indexed"') == 1


# -- settings ------------------------------------------------------------------

def test_the_fetch_settings_have_defaults_a_config_and_environment_overrides(tmp_path):
    defaults = load_settings(env={}).ingest
    assert (defaults.files, defaults.log_hosts, defaults.workers, defaults.fetch) == (DEFAULT_LOG_FILES, (), 4, True)
    config = tmp_path / "er.yaml"
    config.write_text("ingest: {log_hosts: [logs.example.org, '*.rackcdn.com'], files: [job-output.txt], "
                      "workers: 8}\n")
    loaded = load_settings(str(config), env={"ER_INGEST_FETCH": "false"}).ingest
    assert (loaded.log_hosts, loaded.files, loaded.workers, loaded.fetch) == (
        ("logs.example.org", "*.rackcdn.com"), ("job-output.txt",), 8, False)
    env = load_settings(env={"ER_INGEST_LOG_HOSTS": "a.example.org,b.example.org", "ER_INGEST_FILES": "x/*.txt"})
    assert env.ingest.log_hosts == ("a.example.org", "b.example.org") and env.ingest.files == ("x/*.txt",)


@pytest.mark.parametrize("env, why", [
    ({"ER_INGEST_LOG_HOSTS": "https://logs.example.org/"}, "is not a host name"),
    ({"ER_INGEST_LOG_HOSTS": "logs.example.org:8080"}, "is not a host name"),
    ({"ER_INGEST_FILES": "../etc/passwd"}, "is not a path pattern inside the build"),
    ({"ER_INGEST_FILES": "/etc/*.txt"}, "is not a path pattern inside the build"),
    ({"ER_INGEST_WORKERS": "0"}, "must be a positive number"),
    ({"ER_INGEST_WORKERS": "100000"}, "at most 256"),
])
def test_bad_fetch_settings_are_refused_at_load(env, why):
    with pytest.raises(ConfigError, match=why):
        load_settings(env=env)


def test_the_default_files_pick_what_devstack_and_zuul_jobs_leave():
    picked = [name for name in (
        "job-output.txt", "job-output.txt.gz", "console.html", "testrepository.subunit", "logs/screen-n-cpu.txt.gz",
        "logs/syslog.txt", "logs/devstack-gate-setup-host.txt", "controller/logs/screen-q-svc.txt",
        "compute1/logs/syslog.txt.gz", "controller/logs/devstacklog.txt", "logs/keystone.log",
        "zuul-info/inventory.yaml", "controller/logs/etc/nova/nova.conf.txt", "logs/screen-n-cpu.txt.html",
        "controller/logs/screen-n-cpu/extra.txt",
    ) if selected(name, DEFAULT_LOG_FILES)]
    assert picked == ["job-output.txt", "job-output.txt.gz", "console.html", "testrepository.subunit",
                      "logs/screen-n-cpu.txt.gz", "logs/syslog.txt", "logs/devstack-gate-setup-host.txt",
                      "controller/logs/screen-q-svc.txt", "compute1/logs/syslog.txt.gz",
                      "controller/logs/devstacklog.txt", "logs/keystone.log"]
