"""Ingest against hostile input: a log server that misbehaves on purpose
(redirects to file:, loops, drips, gzip bombs, truncation, lying lengths,
listings that point elsewhere), build directories with links out of them,
and exported documents built to break a parser. For each: a clear one-line
error or acceptance, the rest of the build (or file) indexed, memory bounded.
"""

from __future__ import annotations

import gzip
import http.server
import io
import json
import os
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import zlib
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from elastic_recheck.config import IngestSettings, load_settings
from elastic_recheck.errors import ConfigError, IngestError
from elastic_recheck.ingest import ingest_build, ingest_build_dirs, ingest_documents
from elastic_recheck.ingest.sources import BuildMetadata, HttpRetry, fetch_zuul_build, open_log_url, open_logs
from elastic_recheck.search import ALL_TIME
from elastic_recheck.search.embedded import EmbeddedBackend

ROOT = Path(__file__).resolve().parents[1]
META = BuildMetadata(build_uuid="5e1f0c9f1e4c3a8e0b6a3f9a1c2d3e4f", build_name="tempest-full", build_status="FAILURE")
QUICK = HttpRetry(attempts=2, delay=0.01)
SMALL = IngestSettings(max_file_bytes=2 << 20, max_decompressed_bytes=1 << 20, max_build_bytes=8 << 20,
                       max_files=50, max_line_bytes=4096, file_timeout=1.0)
CONSOLE = b"".join(b"2026-11-20 10:00:%02d.000000 | controller | console step %d\n" % (n, n) for n in range(20))


def oslo(lines: int, word: str = "steady") -> bytes:
    return b"".join(b"2026-11-20 10:20:%02d.100 7001 INFO nova.compute [req-1] %s line %d\n"
                    % (n % 60, word.encode(), n) for n in range(lines))


def gzip_bomb(mebibytes: int, members: int = 1) -> bytes:
    """``mebibytes`` MiB of zeros per member, compressed ~250:1 (fast to make)."""
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    member = b"".join(packer.compress(block) for _ in range(mebibytes)) + packer.flush()
    return member * members


def docs(backend: EmbeddedBackend) -> list[dict]:
    return [hit.source for hit in backend.scan("*:*", ALL_TIME)]


def one_line(errors: list[IngestError]) -> list[str]:
    shown = [str(error) for error in errors]
    assert all("\n" not in text and "\r" not in text for text in shown), shown
    return shown


# -- a log server that misbehaves ----------------------------------------------

Behaviour = Callable[["_Handler"], None]


class HostileLogServer:
    """An HTTP server on 127.0.0.1 answering each path as told, recording every request."""

    def __init__(self, tls: ssl.SSLContext | None = None, keep_alive: bool = False) -> None:
        """``keep_alive``: HTTP/1.1, a connection serving request after request."""
        self.routes: dict[str, Behaviour] = {}
        self.requests: list[str] = []
        self.peers: list[tuple[str, int]] = []  # one per TCP connection accepted
        self.stopping = threading.Event()
        server = self

        class Handler(_Handler):
            owner = server
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"
            disable_nagle_algorithm = keep_alive  # headers and body are two writes: no 40 ms wait between

            def setup(self) -> None:
                server.peers.append(self.client_address)
                super().setup()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
    owner: HostileLogServer

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self.owner.requests.append(self.path)
        behaviour = self.owner.routes.get(self.path.split("?")[0])
        if behaviour is None:
            self.send_error(404)
            return
        try:
            behaviour(self)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: object) -> None:
        pass


def serve(body: bytes, content_type: str = "text/plain", headers: dict[str, str] | None = None) -> Behaviour:
    def answer(handler: _Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        for name, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)
    return answer


def redirect(location: str) -> Behaviour:
    def answer(handler: _Handler) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
    return answer


def drip(first: bytes, then: bytes = b"x" * 10_000, interval: float = 0.05) -> Behaviour:
    """``first`` at once, then one byte of ``then`` every ``interval`` seconds."""
    def answer(handler: _Handler) -> None:
        handler.send_response(200)
        handler.end_headers()
        handler.wfile.write(first)
        handler.wfile.flush()
        for byte in then:
            if handler.owner.stopping.wait(interval):
                return
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
    return answer


def drip_headers(interval: float = 0.05) -> Behaviour:
    def answer(handler: _Handler) -> None:
        for byte in b"HTTP/1.0 200 OK\r\nX-Slow: " + b"y" * 10_000:
            if handler.owner.stopping.wait(interval):
                return
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
    return answer


def lie(body: bytes, announced: int) -> Behaviour:
    """Announce ``announced`` bytes, send ``body``, hang up."""
    def answer(handler: _Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(announced))
        handler.end_headers()
        handler.wfile.write(body)
    return answer


def raw(answer_bytes: bytes) -> Behaviour:
    """Exactly these bytes as the whole answer, status line and headers included."""
    def answer(handler: _Handler) -> None:
        handler.wfile.write(answer_bytes)
    return answer


def listing(*hrefs: str) -> Behaviour:
    links = "".join(f'<a href="{href}">{href}</a>\n' for href in hrefs)
    return serve(f"<html><body>{links}</body></html>".encode(), "text/html")


@pytest.fixture
def log_server():
    servers: list[HostileLogServer] = []

    def start(tls: ssl.SSLContext | None = None) -> HostileLogServer:
        servers.append(HostileLogServer(tls))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def build_on(server: HostileLogServer, files: dict[str, Behaviour]) -> str:
    """A build at ``/build/`` with these files, listed on its index page."""
    server.routes["/build/"] = listing(*files)
    for name, behaviour in files.items():
        server.routes["/build/" + name] = behaviour
    return server.url + "build/"


# -- staying in the lane -------------------------------------------------------

@pytest.mark.parametrize("log_url", ["file:///etc/", "/etc/passwd", "ftp://logs.example.org/b/", "data:,x",
                                     "http:///no-host", "../../etc"])
def test_a_zuul_log_url_that_is_not_http_is_refused_naming_it(log_server, log_url):
    server = log_server()
    server.routes["/api/build/1"] = serve(json.dumps({"uuid": "abc1234def", "log_url": log_url}).encode())
    with pytest.raises(IngestError) as refused:
        fetch_zuul_build(server.url + "api/build/1", QUICK, SMALL)
    assert str(refused.value) == f"{server.url}api/build/1: log location {log_url!r} is not an http(s) URL; refused"


def test_a_zuul_log_url_over_http_is_taken(log_server):
    server = log_server()
    server.routes["/api/build/1"] = serve(json.dumps({"uuid": "abc1234def", "log_url": server.url + "b/"}).encode())
    assert fetch_zuul_build(server.url + "api/build/1", QUICK, SMALL).log_url == server.url + "b/"


def test_a_log_location_from_metadata_is_never_a_local_path(tmp_path):
    (tmp_path / "job-output.txt").write_bytes(CONSOLE)
    for location in (str(tmp_path), f"file://{tmp_path}/"):
        with pytest.raises(IngestError, match="is not an http.s. URL; refused"):
            open_log_url(location, "build.json")
    assert open_logs(str(tmp_path)).files().names == ["job-output.txt"]  # the operator's own --logs


def test_the_cli_refuses_a_local_log_url_from_metadata_but_takes_the_operators_logs_dir(tmp_path):
    build = tmp_path / "build"
    build.mkdir()
    (build / "job-output.txt").write_bytes(CONSOLE)
    (build / "build.json").write_text(json.dumps({"build_uuid": "0123456789abcdef", "log_url": "file:///etc/"}))
    command = [sys.executable, "-m", "elastic_recheck", "ingest", "--data-dir", str(tmp_path / "data"),
               "--metadata", str(build / "build.json")]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert refused.returncode == 1
    assert refused.stderr == f"error: {build / 'build.json'}: log location 'file:///etc/' is not an http(s) URL; refused\n"
    taken = subprocess.run([*command, "--logs", str(build)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert taken.returncode == 0, taken.stderr
    assert taken.stdout.startswith("build 0123456789abcdef: 20 log events from 1 files indexed")


def test_the_limits_are_settings_with_environment_overrides_and_must_be_positive(tmp_path):
    config = tmp_path / "er.yaml"
    config.write_text("ingest: {max_file_bytes: 1000, file_timeout: 2.5}\n")
    loaded = load_settings(str(config), env={"ER_INGEST_MAX_LINE_BYTES": "512", "ER_INGEST_FILE_TIMEOUT": "7"})
    assert loaded.ingest == IngestSettings(max_file_bytes=1000, max_line_bytes=512, file_timeout=7.0)
    assert load_settings(env={}).ingest == IngestSettings()
    for value in ("0", "-1", "nan", "inf"):
        # named by the variable it came from (a number below 0) or by the setting (0 is no limit here)
        with pytest.raises(ConfigError, match="ER_INGEST_FILE_TIMEOUT: must be a number|ingest.file_timeout must be a "
                                              "positive number"):
            load_settings(env={"ER_INGEST_FILE_TIMEOUT": value})


def test_the_cli_takes_the_limits_from_the_environment_and_warns_at_a_cut(tmp_path):
    build = tmp_path / "build"
    build.mkdir()
    (build / "job-output.txt").write_bytes(CONSOLE)
    (build / "bomb.txt.gz").write_bytes(gzip_bomb(4))
    env = {**os.environ, "ER_INGEST_MAX_DECOMPRESSED_BYTES": "65536"}
    result = subprocess.run([sys.executable, "-m", "elastic_recheck", "ingest", "--data-dir", str(tmp_path / "data"),
                             "--logs", str(build), "--build-uuid", "0123456789abcdef"],
                            capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == (f"warning: {build}/bomb.txt.gz: more than 65536 bytes after decompression "
                             "(ingest.max_decompressed_bytes); the first 65536 bytes (1 log event) are indexed\n")
    assert result.stdout.startswith("build 0123456789abcdef: 22 log events from 2 files indexed")


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/x.txt", "data:text/plain,root:x:0:0"])
def test_a_redirect_to_another_scheme_is_refused(log_server, backend, target):
    server = log_server()
    url = build_on(server, {"job-output.txt": serve(CONSOLE), "logs/passwd.txt": redirect(target)})
    report = ingest_build(backend, open_logs(url, QUICK, SMALL), META)
    assert one_line(report.errors) == [f"{url}logs/passwd.txt: redirected to {target!r}: only http(s) is followed"]
    assert backend.count("*:*") == 20 and backend.count("root") == 0


def test_a_redirect_to_http_is_followed_and_a_redirect_loop_is_a_clear_error(log_server, backend):
    server = log_server()
    server.routes["/elsewhere/real.txt"] = serve(oslo(3))
    url = build_on(server, {"job-output.txt": redirect("/elsewhere/real.txt"), "loop.txt": redirect("loop.txt")})
    report = ingest_build(backend, open_logs(url, QUICK, SMALL), META)
    (error,) = one_line(report.errors)
    assert error.startswith(f"{url}loop.txt: HTTP 302 ") and "infinite loop" in error
    assert backend.count('tags:"job-output.txt" AND steady') == 3


def test_the_crawler_stays_under_the_build_url_on_the_same_host(log_server, backend):
    server, other = log_server(), log_server()
    other.routes["/build/stolen.txt"] = serve(oslo(1, "stolen"))
    server.routes["/secret.txt"] = serve(oslo(1, "secret"))
    server.routes["/build/"] = listing(
        "../", "../../", "../secret.txt", "/secret.txt", "//127.0.0.1/secret.txt", f"{other.url}build/stolen.txt",
        f"{other.url}build/", "a/../../secret.txt", "%2e%2e/secret.txt", "file:///etc/passwd", "javascript:x.txt",
        "mailto:root@localhost", "?C=N;O=D", "job-output.txt", "logs/", f"{server.url}build/abs.txt",
    )
    server.routes["/build/job-output.txt"] = serve(CONSOLE)
    server.routes["/build/abs.txt"] = serve(oslo(2, "absolute"))
    server.routes["/build/logs/"] = listing("../../secret.txt", "../", "n-cpu.txt", "./", "deeper/")
    server.routes["/build/logs/n-cpu.txt"] = serve(oslo(4))
    server.routes["/build/logs/deeper/"] = listing("../../../secret.txt", "../../job-output.txt")
    report = ingest_build(backend, open_logs(server.url + "build/", QUICK, SMALL), META)
    assert not report.errors and not report.warnings
    assert report.files == 3  # job-output.txt, abs.txt (same host, under the build), logs/n-cpu.txt
    assert backend.count("secret OR stolen") == 0
    assert other.requests == []
    assert all(path.startswith("/build/") for path in server.requests), server.requests
    assert sorted(set(server.requests)) == ["/build/", "/build/abs.txt", "/build/job-output.txt", "/build/logs/",
                                            "/build/logs/deeper/", "/build/logs/n-cpu.txt",
                                            "/build/zuul-manifest.json"]


def test_a_manifest_naming_paths_out_of_the_build_is_not_followed_there(log_server, backend):
    server = log_server()
    server.routes["/secret.txt"] = serve(oslo(1, "secret"))
    server.routes["/build/zuul-manifest.json"] = serve(json.dumps({"tree": [
        {"name": "..", "mimetype": "application/directory", "children": [{"name": "secret.txt"}]},
        {"name": "../secret.txt"}, {"name": "/etc/passwd.txt"}, {"name": 5}, "junk",
        {"name": "job-output.txt"},
    ]}).encode())
    server.routes["/build/job-output.txt"] = serve(CONSOLE)
    report = ingest_build(backend, open_logs(server.url + "build/", QUICK, SMALL), META)
    assert report.files == 1 and not report.errors
    assert "/secret.txt" not in server.requests


def test_symlinks_out_of_a_build_directory_are_skipped_with_a_warning(backend, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.log").write_bytes(oslo(2, "secret"))
    build = tmp_path / "build"
    (build / "logs").mkdir(parents=True)
    (build / "job-output.txt").write_bytes(CONSOLE)
    (build / "passwd.txt").symlink_to("/etc/passwd")
    (build / "logs" / "up.log").symlink_to("../../outside/secret.log")
    (build / "etc").symlink_to(outside)  # a linked directory: not walked
    (build / "logs" / "console-copy.txt").symlink_to("../job-output.txt")  # a link inside the build is fine
    os.mkfifo(build / "logs" / "fifo.txt")  # opening it would wait for a writer forever
    report = ingest_build(backend, open_logs(str(build), QUICK, SMALL), META)
    assert sorted(one_line(report.warnings)) == [
        f"{build}/etc: skipped: a link to a directory outside the build",
        f"{build}/logs/fifo.txt: skipped: not a regular file",
        f"{build}/logs/up.log: skipped: a link to a file outside the build",
        f"{build}/passwd.txt: skipped: a link to a file outside the build",
    ]
    assert report.files == 2 and not report.errors
    assert backend.count("secret OR root") == 0
    assert backend.count('filename:"logs/console-copy.txt"') == 20


def test_a_build_directory_linked_from_elsewhere_is_skipped_by_builds(backend, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "job-output.txt").write_bytes(CONSOLE)
    (elsewhere / "build.json").write_text(json.dumps({"build_uuid": "e1sewhere0"}))
    builds = tmp_path / "builds"
    (builds / "good").mkdir(parents=True)
    (builds / "good" / "job-output.txt").write_bytes(CONSOLE)
    (builds / "good" / "build.json").write_text(json.dumps({"build_uuid": "g00d000000"}))
    (builds / "linked").symlink_to(elsewhere)
    report = ingest_build_dirs(backend, builds, limits=SMALL)
    assert one_line(report.warnings) == [f"{builds / 'linked'}: skipped: a link to a build outside the directory"]
    assert report.builds == 1 and backend.count("build_uuid:e1sewhere0") == 0


# -- what one file and one build may cost ------------------------------------------

@pytest.mark.parametrize("where", ["local", "http"])
def test_a_gzip_bomb_is_cut_with_a_marker_and_a_warning_in_bounded_memory(log_server, backend, tmp_path, where):
    bomb = gzip_bomb(10)  # 10 MiB of zeros in ~40 KiB
    assert len(bomb) < 64 * 1024
    files = {"job-output.txt": CONSOLE, "logs/screen-n-cpu.txt": oslo(5), "logs/bomb.txt.gz": bomb}
    if where == "local":
        for name, body in files.items():
            (tmp_path / "b" / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "b" / name).write_bytes(body)
        logs = open_logs(str(tmp_path / "b"), QUICK, SMALL)
    else:
        logs = open_logs(build_on(log_server(), {name: serve(body) for name, body in files.items()}), QUICK, SMALL)
    tracemalloc.start()
    try:
        report = ingest_build(backend, logs, META)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 6 * SMALL.max_decompressed_bytes, peak
    (warning,) = one_line(report.warnings)
    assert warning == (f"{logs.describe('logs/bomb.txt.gz')}: more than 1048576 bytes after decompression "
                       "(ingest.max_decompressed_bytes); the first 1048576 bytes (1 log event) are indexed")
    assert not report.errors
    marker = "the rest of this file is not indexed: more than 1048576 bytes after decompression"
    assert backend.count(f'filename:"logs/bomb.txt" AND message:"{marker}"') == 1
    assert backend.count('tags:console') == 20 and backend.count('filename:"logs/screen-n-cpu.txt"') == 5


def test_a_much_bigger_bomb_costs_no_more(backend, tmp_path):
    bomb = gzip_bomb(64, members=16)  # 1 GiB of zeros in 16 gzip members, ~4.5 MiB
    build = tmp_path / "b"
    build.mkdir()
    (build / "job-output.txt").write_bytes(CONSOLE)
    (build / "huge.txt.gz").write_bytes(bomb)
    limits = IngestSettings(max_decompressed_bytes=1 << 20, max_line_bytes=4096)
    tracemalloc.start()
    started = time.monotonic()
    try:
        report = ingest_build(backend, open_logs(str(build), QUICK, limits), META)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 10
    assert peak < 6 << 20, peak
    assert [str(w).split(": ", 1)[1] for w in report.warnings] == [
        "more than 1048576 bytes after decompression (ingest.max_decompressed_bytes); "
        "the first 1048576 bytes (1 log event) are indexed"]
    assert backend.count("tags:console") == 20


def test_a_content_encoding_gzip_bomb_is_bounded_the_same_way(log_server, backend):
    server = log_server()
    url = build_on(server, {"job-output.txt": serve(CONSOLE),
                            "logs/n-cpu.txt": serve(gzip_bomb(10), headers={"Content-Encoding": "gzip"})})
    report = ingest_build(backend, open_logs(url, QUICK, SMALL), META)
    assert [str(w) for w in report.warnings] == [
        f"{url}logs/n-cpu.txt: more than 1048576 bytes after decompression (ingest.max_decompressed_bytes); "
        "the first 1048576 bytes (1 log event) are indexed"]
    assert backend.count("tags:console") == 20


def test_a_gzip_file_served_gzip_encoded_is_read_through_both(log_server, backend):
    """A .gz sent with Content-Encoding: gzip (a common server setup) is the text once both are undone."""
    server = log_server()
    twice = gzip.compress(gzip.compress(oslo(7)))
    url = build_on(server, {"job-output.txt": serve(CONSOLE),
                            "logs/n-cpu.txt.gz": serve(twice, headers={"Content-Encoding": "gzip"})})
    report = ingest_build(backend, open_logs(url, QUICK, SMALL), META)
    assert not report.errors and not report.warnings
    assert backend.count('filename:"logs/n-cpu.txt" AND steady') == 7


def test_a_slow_drip_gives_up_at_the_deadline_and_the_rest_of_the_build_is_indexed(log_server, backend):
    server = log_server()
    url = build_on(server, {
        "job-output.txt": serve(CONSOLE),
        "logs/slow.txt": drip(oslo(3, "arrived")),
        "logs/zz-later.txt": serve(oslo(4, "later")),
    })
    started = time.monotonic()
    report = ingest_build(backend, open_logs(url, QUICK, SMALL), META)
    assert time.monotonic() - started < 5
    (error,) = one_line(report.errors)
    assert error.startswith(f"{url}logs/slow.txt: gave up after 1 s (ingest.file_timeout); the first ")
    assert error.endswith(" bytes (3 log events) are indexed")  # the dripped x's fold into the third (no time)
    kept = int(error.split("the first ")[1].split(" ")[0])
    assert kept > len(oslo(3, "arrived"))
    assert backend.count('filename:"logs/slow.txt" AND arrived') == 3
    assert backend.count('filename:"logs/slow.txt" AND message:"not indexed: gave up after 1 s"') == 1
    assert backend.count("tags:console") == 20 and backend.count("later") == 4


def test_a_busy_server_asking_for_more_time_than_the_file_has_is_not_waited_for(log_server, backend):
    def busy(handler: _Handler) -> None:
        handler.send_response(503)
        handler.send_header("Retry-After", "30")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    url = build_on(log_server(), {"job-output.txt": serve(CONSOLE), "n-cpu.txt": busy})
    started = time.monotonic()
    report = ingest_build(backend, open_logs(url, HttpRetry(attempts=3, delay=0.01), SMALL), META)
    assert time.monotonic() - started < 3
    assert one_line(report.errors) == [f"{url}n-cpu.txt: HTTP 503 Service Unavailable; no time left to ask again "
                                       "within 1 s (ingest.file_timeout)"]
    assert backend.count("tags:console") == 20


def trusted_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A server's TLS for 127.0.0.1, with a certificate the client trusts."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts this server, as a deployment's CA bundle would
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    return tls


def test_the_deadline_holds_over_https_too(log_server, backend, tmp_path, monkeypatch):
    """The deadline shuts the socket under a TLS read as under a plain one."""
    server = log_server(trusted_tls(tmp_path, monkeypatch))
    url = build_on(server, {"job-output.txt": serve(CONSOLE), "logs/slow.txt": drip(oslo(2, "arrived"))})
    started = time.monotonic()
    report = ingest_build(backend, open_logs(url, QUICK, SMALL), META)
    assert time.monotonic() - started < 5
    (error,) = one_line(report.errors)
    assert error.startswith(f"{url}logs/slow.txt: gave up after 1 s (ingest.file_timeout); the first ")
    assert backend.count("tags:console") == 20 and backend.count("arrived") == 2


def test_a_server_that_drips_its_headers_is_given_up_on_too(log_server, backend):
    server = log_server()
    url = build_on(server, {"job-output.txt": serve(CONSOLE), "logs/slow.txt": drip_headers()})
    started = time.monotonic()
    report = ingest_build(backend, open_logs(url, QUICK, SMALL), META)
    assert time.monotonic() - started < 5
    assert one_line(report.errors) == [f"{url}logs/slow.txt: gave up after 1 s (ingest.file_timeout)"]
    assert backend.count("tags:console") == 20 and backend.count("*:*") == 20


@pytest.mark.parametrize("where", ["local", "http"])
def test_a_truncated_gz_names_the_file_and_keeps_what_was_read(log_server, backend, tmp_path, where):
    whole = gzip.compress(oslo(5000, "early"))
    cut = whole[: len(whole) // 2]
    if where == "local":
        (tmp_path / "b").mkdir()
        (tmp_path / "b" / "job-output.txt").write_bytes(CONSOLE)
        (tmp_path / "b" / "n-cpu.txt.gz").write_bytes(cut)
        logs = open_logs(str(tmp_path / "b"), QUICK, SMALL)
    else:
        logs = open_logs(build_on(log_server(), {"job-output.txt": serve(CONSOLE), "n-cpu.txt.gz": serve(cut)}),
                         QUICK, SMALL)
    report = ingest_build(backend, logs, META)
    (error,) = one_line(report.errors)
    assert error.startswith(f"{logs.describe('n-cpu.txt.gz')}: the gzip data ends early (truncated); the first ")
    messages = [doc["message"] for doc in docs(backend) if doc["filename"] == "n-cpu.txt"]
    assert messages.count("[elastic-recheck] the rest of this file is not indexed: "
                          "the gzip data ends early (truncated)") == 1
    numbers = {int(m.rsplit(" ", 1)[1]) for m in messages if "early line" in m and m.rsplit(" ", 1)[1].isdigit()}
    lines = len(messages) - 1
    assert 1000 < lines < 5000 and numbers >= set(range(lines - 1))  # every line before the cut (the last may be half)
    assert backend.count("tags:console") == 20


def test_corrupt_gzip_is_a_clear_error_and_trailing_junk_after_the_last_member_is_ignored(backend, tmp_path):
    build = tmp_path / "b"
    build.mkdir()
    (build / "job-output.txt").write_bytes(CONSOLE)
    good = gzip.compress(oslo(3, "first")) + gzip.compress(oslo(2, "second"))
    (build / "members.txt.gz").write_bytes(good + b"\x00" * 512)
    (build / "corrupt.txt.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"\xff" * 200)
    report = ingest_build(backend, open_logs(str(build), QUICK, SMALL), META)
    (error,) = one_line(report.errors)
    assert error.startswith(f"{build}/corrupt.txt.gz: corrupt gzip data (")
    assert backend.count('filename:"members.txt" AND (first OR second)') == 5


def test_a_content_length_lie_keeps_what_arrived_and_says_so(log_server, backend):
    server = log_server()
    body = oslo(6, "honest")
    url = build_on(server, {"job-output.txt": serve(CONSOLE), "n-cpu.txt": lie(body, 10 ** 12)})
    report = ingest_build(backend, open_logs(url, QUICK, SMALL), META)
    (error,) = one_line(report.errors)
    assert error == (f"{url}n-cpu.txt: the server closed the connection {10 ** 12 - len(body)} bytes short of the "
                     f"{10 ** 12} bytes it announced; the first {len(body)} bytes (6 log events) are indexed")
    assert backend.count('filename:"n-cpu.txt" AND honest') == 6


@pytest.mark.parametrize("answer, why", [
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n" + b"2026-11-20 10:00:00.000 | ok\n"
     + b"x\n\r\nzz-not-hex\r\n", "the connection failed part way ("),
    (b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\n\r\nwhatever", "the server sent Content-Encoding 'br'"),
    (b"SSH-2.0-OpenSSH\r\n\r\n", "cannot fetch: "),
    (b"HTTP/1.1 200 OK\r\n" + b"X-Long: " + b"h" * 70_000 + b"\r\n\r\n", "cannot fetch: "),
])
def test_garbage_from_the_server_is_a_clear_error_for_that_file(log_server, backend, answer, why):
    url = build_on(log_server(), {"job-output.txt": serve(CONSOLE), "n-cpu.txt": raw(answer)})
    report = ingest_build(backend, open_logs(url, QUICK, SMALL), META)
    (error,) = one_line(report.errors)
    assert error.startswith(f"{url}n-cpu.txt: {why}"), error
    assert backend.count("tags:console") == 20


def test_names_in_a_manifest_that_are_no_text_are_left_out(log_server, backend):
    server = log_server()
    server.routes["/build/zuul-manifest.json"] = serve(json.dumps({"tree": [
        {"name": "bad\ud800.txt"}, {"name": "tab\there.txt"}, {"name": "job-output.txt"}]}).encode())
    server.routes["/build/job-output.txt"] = serve(CONSOLE)
    report = ingest_build(backend, open_logs(server.url + "build/", QUICK, SMALL), META)
    assert report.files == 1 and not report.errors


def test_a_local_file_name_that_is_not_utf8_is_indexed_under_a_readable_name(backend, tmp_path):
    build = tmp_path / "b"
    build.mkdir()
    (build / "job-output.txt").write_bytes(CONSOLE)
    with open(os.path.join(os.fsencode(build), b"caf\xe9.txt"), "wb") as handle:
        handle.write(oslo(2))
    report = ingest_build(backend, open_logs(str(build), QUICK, SMALL), META)
    assert not report.errors and report.files == 2
    assert {doc["filename"] for doc in docs(backend)} == {"job-output.txt", "caf\ufffd.txt"}


def test_a_file_over_max_file_bytes_is_cut_with_a_warning(log_server, backend):
    body = oslo(40_000)  # ~2.9 MB
    url = build_on(log_server(), {"n-cpu.txt": serve(body)})
    limits = IngestSettings(max_file_bytes=1 << 20)
    report = ingest_build(backend, open_logs(url, QUICK, limits), META)
    (warning,) = one_line(report.warnings)
    assert warning.startswith(f"{url}n-cpu.txt: more than 1048576 bytes to fetch (ingest.max_file_bytes); "
                              "the first 1048576 bytes (")
    assert 10_000 < backend.count("steady") < 40_000


def test_the_build_budget_leaves_out_the_last_files_with_one_warning(backend, tmp_path):
    build = tmp_path / "b"
    (build / "logs").mkdir(parents=True)
    (build / "job-output.txt").write_bytes(CONSOLE)
    service = oslo(1000)
    for n in range(5):
        (build / "logs" / f"s{n}.txt").write_bytes(service)
    limits = IngestSettings(max_build_bytes=len(CONSOLE) + 2 * len(service) + 7000)
    report = ingest_build(backend, open_logs(str(build), QUICK, limits), META)
    texts = one_line(report.warnings)
    assert texts[0].startswith(f"{build}/logs/s2.txt: the build's {limits.max_build_bytes} bytes are used up "
                               "(ingest.max_build_bytes); the first 7000 bytes (")
    assert texts[1:] == [f"{build}: 2 files not indexed, from logs/s3.txt on: the build's {limits.max_build_bytes} "
                         "bytes (ingest.max_build_bytes) are used up"]
    assert not report.errors
    assert backend.count("tags:console") == 20  # the console log goes first
    assert [backend.count(f'filename:"logs/s{n}.txt" AND steady') for n in (0, 1, 3, 4)] == [1000, 1000, 0, 0]
    within = service[:7000].split(b"\n")  # the lines of its first 7000 bytes, the last one cut short
    assert backend.count('filename:"logs/s2.txt" AND steady') == sum(b"steady" in line for line in within)


def test_more_files_than_max_files_are_left_out_with_a_warning(backend, tmp_path):
    build = tmp_path / "b"
    build.mkdir()
    for n in range(5):
        (build / f"f{n}.txt").write_bytes(oslo(1))
    report = ingest_build(backend, open_logs(str(build), QUICK, IngestSettings(max_files=3)), META)
    assert one_line(report.warnings) == [f"{build}: 5 log files, more than 3 (ingest.max_files): 2 are not indexed"]
    assert report.files == 3


def test_a_line_without_end_is_cut_without_being_held_whole(backend, tmp_path):
    build = tmp_path / "b"
    build.mkdir()
    (build / "job-output.txt").write_bytes(b"2026-11-20 10:00:00.000 | start\n" + b"z" * (20 << 20) + b"\nafter\n")
    limits = IngestSettings(max_line_bytes=1000)
    tracemalloc.start()
    try:
        report = ingest_build(backend, open_logs(str(build), QUICK, limits), META)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak
    assert not report.errors and not report.warnings
    (message,) = [doc["message"] for doc in docs(backend)]  # the z line has no time: folded into "start"
    first, cut, after = message.split("\n")
    assert (first, after) == ("2026-11-20 10:00:00.000 | start", "after")
    kept = 1000 - len(" [... 20970496 bytes truncated]")
    assert cut == "z" * kept + f" [... {(20 << 20) - kept} bytes truncated]"


# -- hostile log bytes, generated ------------------------------------------------------

_LOG_PIECES = st.sampled_from([
    b"2026-11-20 10:00:01.123 7001 ERROR nova [req-1] boom\n", b"Traceback (most recent call last):\n",
    b"Nov 20 10:37:58 host kernel: x\n", b"\x1f\x8b", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", b"\x00" * 50,
    b"\r", b"\n", b"\r\n", b"\xff\xfe\xfd", b"\xed\xa0\x80", b"z" * 700, b"2026-13-45 99:99:99 x\n", b" | ",
])


@pytest.fixture(scope="module")
def shared_server():
    server = HostileLogServer()
    yield server
    server.close()


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.lists(st.one_of(_LOG_PIECES, st.binary(max_size=64)), max_size=40).map(b"".join),
       compress=st.sampled_from(["plain", "gzip", "truncated gzip", "gzip for the transfer"]),
       where=st.sampled_from(["local", "http"]))
def test_any_log_bytes_are_indexed_or_reported_and_the_rest_of_the_build_is_intact(shared_server, body, compress,
                                                                                   where):
    name, headers = "hostile.txt", {}
    if compress != "plain":
        body = gzip.compress(body)
        if compress == "truncated gzip":
            body = body[: len(body) // 2]
        if compress == "gzip for the transfer" and where == "http":
            headers = {"Content-Encoding": "gzip"}
        else:
            name = "hostile.txt.gz"
    limits = IngestSettings(max_line_bytes=256, max_decompressed_bytes=4096, file_timeout=5.0)
    with tempfile.TemporaryDirectory() as directory:
        if where == "local":
            build = Path(directory) / "b"
            build.mkdir()
            (build / "job-output.txt").write_bytes(CONSOLE)
            (build / name).write_bytes(body)
            logs = open_logs(str(build), QUICK, limits)
        else:
            shared_server.routes.clear()
            logs = open_logs(build_on(shared_server, {"job-output.txt": serve(CONSOLE),
                                                      name: serve(body, headers=headers)}), QUICK, limits)
        backend = EmbeddedBackend(Path(directory) / "index")
        report = ingest_build(backend, logs, META)
        problems = one_line(report.errors) + one_line(report.warnings)
        assert len(problems) <= 1 and all(p.startswith(logs.describe(name) + ": ") for p in problems)
        assert backend.count("tags:console") == 20
        hostile = [doc["message"] for doc in docs(backend) if doc["filename"] == "hostile.txt"]
        markers = [m for m in hostile if m.startswith("[elastic-recheck] the rest of this file is not indexed")]
        assert len(markers) == len(problems)
        for message in hostile:
            if message not in markers:
                assert all(len(part) <= limits.max_line_bytes for part in message.split("\n")), message


# -- exported documents --------------------------------------------------------------

GOOD = [{"message": f"good document {n}", "@timestamp": f"2026-11-20T10:0{n}:00Z", "build_uuid": "u1",
         "tags": ["console.html", "console"]} for n in range(4)]
DEEP = "[" * 100_000 + "]" * 100_000
HOSTILE = [
    ('{"message": ' + DEEP + ', "@timestamp": "2026-11-20T10:00:00Z"}', "nested too deeply to read"),
    ('{"message": "m", "x": ' + "[" * 30 + "]" * 30 + ', "@timestamp": "2026-11-20T10:00:00Z"}',
     "nested deeper than 20 levels"),
    ('{"message": "m", "@timestamp": 1e300}', "bad @timestamp: 1e+300 milliseconds since 1970 is out of range"),
    ('{"message": "m", "@timestamp": 1e400}', "invalid JSON: the number 1e400 is too large"),
    ('{"message": "m", "@timestamp": NaN}', "invalid JSON: NaN is not a JSON value"),
    ('{"message": "m", "@timestamp": "9999-12-31T23:59:59-05:00"}',
     "bad @timestamp: out of range in UTC: '9999-12-31T23:59:59-05:00'"),
    ('{"message": "m", "@timestamp": true}', "bad @timestamp: true/false is not a time"),
    ('{"message": "m", "@timestamp": "yesterday\\r\\nX"}', "bad @timestamp: not a time: 'yesterday\\r\\nX'"),
    ('{"message": {"a": 1}, "@timestamp": "2026-11-20T10:00:00Z"}', "message must be text, not an object"),
    ('{"message": "m", "tags": 5, "@timestamp": "2026-11-20T10:00:00Z"}',
     "tags must be text or a list of text, not a number"),
    ('{"message": "m", "build_uuid": ["a", "b"], "@timestamp": "2026-11-20T10:00:00Z"}',
     "build_uuid must be one value, not a list of 2"),
    ('{"message": "m", "build_name": {"x": 1}, "@timestamp": "2026-11-20T10:00:00Z"}',
     "build_name must be text, not an object"),
    ('{"@fields": [1], "@message": "m", "@timestamp": "2026-11-20T10:00:00Z"}', "@fields must be an object, not a list"),
    ("[1, 2]", "not a JSON object but a list"),
    ('{"message": "m", "@timestamp": "2026-11-20T10:00:00Z"', "invalid JSON: Expecting ',' delimiter"),
]


def _ndjson(hostile: list[str]) -> tuple[str, list[int]]:
    """Good and hostile lines interleaved; the hostile ones' line numbers."""
    lines, bad = [json.dumps(GOOD[0])], []
    for n, text in enumerate(hostile):
        bad.append(len(lines) + 1)
        lines.append(text)
        lines.append(json.dumps(GOOD[1 + n % 3]))
    return "\n".join(lines) + "\n", bad


def test_ndjson_bad_documents_are_skipped_with_file_line_why_and_every_good_one_is_indexed(backend):
    text, bad = _ndjson([line for line, _ in HOSTILE])
    report = ingest_documents(backend, io.StringIO(text), "export.ndjson")
    assert one_line(report.errors) == [f"export.ndjson:{line}: {why}" for line, (_, why) in zip(bad, HOSTILE)]
    assert report.documents == 1 + len(HOSTILE)
    for n in range(4):
        assert backend.count(f'message:"good document {n}"') >= 1
    assert backend.count("good") == 1 + len(HOSTILE)


def test_a_lone_surrogate_becomes_a_replacement_character_and_the_document_is_kept(backend):
    lines = [json.dumps(GOOD[0]),
             '{"message": "lone \\ud800 here", "build_name": "job\\udfff", "k\\ud801": "v", '
             '"@timestamp": "2026-11-20T10:00:00Z"}',
             '{"message": "a pair \\ud83d\\ude00 is fine", "@timestamp": "2026-11-20T10:00:00Z"}',
             json.dumps(GOOD[1])]
    report = ingest_documents(backend, io.StringIO("\n".join(lines)), "export.ndjson")
    assert not report.errors and report.documents == 4
    (hit,) = backend.search('message:"lone"').hits
    assert hit.source["message"] == "lone \ufffd here" and hit.source["build_name"] == "job\ufffd"
    assert hit.source["k\ufffd"] == "v"
    assert backend.search('message:"pair"').hits[0].source["message"] == "a pair \U0001F600 is fine"


def test_a_search_response_with_bad_hits_keeps_the_good_ones(backend):
    time = {"@timestamp": "2026-11-20T10:00:00Z"}
    nested: object = "bottom"
    for _ in range(30):
        nested = {"x": nested}
    bad = [
        ({**time, "message": "m", "deep": nested}, "nested deeper than 20 levels"),
        ({"message": "m", "@timestamp": 1e300}, "bad @timestamp: 1e+300 milliseconds since 1970 is out of range"),
        ({**time, "message": {"text": "m"}}, "message must be text, not an object"),
        ({**time, "message": "m", "tags": 5}, "tags must be text or a list of text, not a number"),
        ({**time, "message": "m", "build_uuid": ["a", "b"]}, "build_uuid must be one value, not a list of 2"),
        ({**time, "@message": "m", "@fields": "oops"}, "@fields must be an object, not text"),
    ]
    hits = [{"_source": GOOD[0]}]
    for doc, _ in bad:
        hits += [{"_source": doc}, {"_source": GOOD[1]}]
    hits.append({"_source": {**time, "message": "lone \ud800"}})  # kept, the surrogate replaced
    text = json.dumps({"took": 1, "hits": {"total": len(hits), "hits": hits}})
    report = ingest_documents(backend, io.StringIO(text), "response.json")
    assert one_line(report.errors) == [f"response.json: hit {2 + 2 * n}: {why}" for n, (_, why) in enumerate(bad)]
    assert report.documents == 2 + len(bad)
    assert backend.count('message:"good document 0"') == 1
    assert backend.count('message:"good document 1"') == len(bad)
    assert backend.search('message:"lone"').hits[0].source["message"] == "lone \ufffd"


@pytest.mark.parametrize("shape", ["list", "search response"])
def test_a_whole_file_too_deep_for_the_parser_costs_only_the_deep_document(backend, shape):
    items = [json.dumps(GOOD[0]), '{"message": ' + DEEP + "}", json.dumps(GOOD[1]), "5", json.dumps(GOOD[2])]
    if shape == "list":
        text = "[\n" + ",\n".join(items) + "\n]\n"
        deep, number = "documents.json:3: hit 2: nested too deeply to read", "documents.json:5: hit 4: not a JSON object"
    else:
        text = '{"took": 3, "hits": {"total": 5, "max_score": null, "hits": [\n' + ",\n".join(items) + "\n]}}"
        deep, number = "documents.json:3: hit 2: nested too deeply to read", "documents.json:5: hit 4: not a JSON object"
    report = ingest_documents(backend, io.StringIO(text), "documents.json")
    assert one_line(report.errors) == [deep, number + " but a number"]
    assert report.documents == 3
    assert [backend.count(f'message:"good document {n}"') for n in range(3)] == [1, 1, 1]


@pytest.mark.parametrize("shape", ["list", "search response"])
@pytest.mark.parametrize("bad, why", [
    ('{"_source": {"message": "m", "n": ' + "9" * 5000 + "}}",
     "invalid JSON: Exceeds the limit (4300 digits) for integer string conversion"),
    ('{"message": "m", "@timestamp": 1e400}', "invalid JSON: the number 1e400 is too large"),
    ('{"message": "m", "@timestamp": NaN}', "invalid JSON: NaN is not a JSON value"),
    ('{"message": "m" "@timestamp": "2026-11-20T10:00:00Z"}', "invalid JSON: Expecting ',' delimiter"),
], ids=["an integer past 4,300 digits", "a number past a double", "NaN", "a syntax error inside the hit"])
def test_a_hit_the_parser_refuses_in_a_pretty_printed_file_costs_only_itself(backend, shape, bad, why):
    """A search response or list is read whole; when one item fails to parse
    (a number past Python's 4,300-digit limit, past a double, a syntax error
    inside it), each item is read on its own and only that one is skipped."""
    good = [json.dumps({"_source": doc}, indent=2) for doc in GOOD[:3]]
    items = ",\n".join([good[0], bad, good[1], good[2]])
    head = "[\n" if shape == "list" else '{\n "took": 3,\n "hits": {\n  "total": 4,\n  "hits": [\n'
    text = head + items + ("\n]\n" if shape == "list" else "\n  ]\n }\n}\n")
    line = head.count("\n") + good[0].count("\n") + 2
    report = ingest_documents(backend, io.StringIO(text), "export.json")
    [error] = one_line(report.errors)
    assert error.startswith(f"export.json:{line}: hit 2: {why}")
    assert report.documents == 3
    assert [backend.count(f'message:"good document {n}"') for n in range(3)] == [1, 1, 1]


def test_a_syntax_error_between_hits_still_refuses_the_file(backend):
    """Not one item's fault: the file's structure is broken, nothing is guessed."""
    text = "[\n" + json.dumps(GOOD[0]) + ",\n" + json.dumps(GOOD[1]) + "\n] x\n"
    with pytest.raises(IngestError, match=r"export.json:4: not JSON or NDJSON: Extra data"):
        ingest_documents(backend, io.StringIO(text), "export.json")
    assert backend.count('message:"good document 0"') == 0


def test_a_bad_first_line_does_not_cost_the_ndjson_file(backend):
    text = "{not json}\n" + json.dumps(GOOD[0]) + "\n" + DEEP + "\n" + json.dumps(GOOD[1]) + "\n"
    report = ingest_documents(backend, io.StringIO(text), "x.ndjson")
    assert one_line(report.errors) == ["x.ndjson:1: invalid JSON: Expecting property name enclosed in double quotes",
                                       "x.ndjson:3: nested too deeply to read"]
    assert report.documents == 2


_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10 ** 30), max_value=10 ** 30),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
    st.sampled_from(["\ud800", "a\udfffb", "\x00", "\u202e", "\r\n", "Z" * 300, "2026-11-20T10:00:00Z", "e"]),
)
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                       max_leaves=12)
_TIMESTAMPS = st.one_of(_VALUES, st.sampled_from(["2026-11-20T10:00:00Z", 1.7e12, 1e300, -1e300, 10 ** 400,
                                                  "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59Z", ""]))
_FIELD_NAMES = st.sampled_from(["message", "tags", "build_uuid", "build_name", "voting", "filename", "@fields",
                                "@message", "@tags", "_source", "x", "", "cid", "k_build_uuid", "a.b", "\ud800"])
_HOSTILE_DOCS = st.dictionaries(_FIELD_NAMES, _VALUES, max_size=5).flatmap(
    lambda doc: st.one_of(st.just(doc), _TIMESTAMPS.map(lambda ts: {**doc, "@timestamp": ts})))
_HOSTILE_LINES = st.one_of(
    _HOSTILE_DOCS.map(json.dumps), _VALUES.map(json.dumps),
    st.integers(min_value=1, max_value=20_000).map(lambda n: "{\"a\":" + "[" * n + "]" * n + "}"),
    st.text(max_size=40).filter(lambda s: "\n" not in s and "\r" not in s and "\x85" not in s
                                and "\u2028" not in s and "\u2029" not in s),
)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(hostile=st.lists(_HOSTILE_LINES, min_size=1, max_size=6))
def test_any_ndjson_line_is_indexed_or_skipped_with_its_line_and_the_good_ones_are_all_searchable(hostile):
    text, bad = _ndjson(hostile)
    with tempfile.TemporaryDirectory() as directory:
        backend = EmbeddedBackend(Path(directory) / "index")
        report = ingest_documents(backend, io.StringIO(text), "gen.ndjson")
        errors = one_line(report.errors)
        assert report.documents + len(errors) == 1 + 2 * len(hostile) - sum(1 for line in hostile if not line.strip())
        assert all(error.split(":")[0] == "gen.ndjson" and int(error.split(":")[1]) in bad for error in errors)
        for n in range(min(len(hostile), 3) + 1):
            assert backend.count(f'message:"good document {n}"') >= 1
