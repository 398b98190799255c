"""Metrics, ``status`` and the metrics port under hostile clients (the daemon
serving them is tested in test_watch.py)."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from elastic_recheck.errors import ConfigError
from elastic_recheck.metrics import COUNTERS, Metrics, MetricsServer, exposition

BIN = Path(sys.executable).parent


def test_status_without_a_daemon_run_says_so(tmp_path):
    result = subprocess.run([str(BIN / "elastic-recheck"), "status"], capture_output=True, text=True,
                            env={**os.environ, "ER_DATA_DIR": str(tmp_path)}, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "has `watch` run" in result.stderr


def test_latency_buckets_are_cumulative():
    metrics = Metrics()
    for seconds in (0.004, 0.07, 0.07, 3.0, 99.0):
        metrics.observe(seconds)
    text = exposition(metrics.snapshot())
    assert 'elastic_recheck_classification_seconds_bucket{le="0.01"} 1.0\n' in text
    assert 'elastic_recheck_classification_seconds_bucket{le="0.1"} 3.0\n' in text
    assert 'elastic_recheck_classification_seconds_bucket{le="5"} 4.0\n' in text
    assert 'elastic_recheck_classification_seconds_bucket{le="30"} 4.0\n' in text
    assert 'elastic_recheck_classification_seconds_bucket{le="+Inf"} 5.0\n' in text
    assert "elastic_recheck_classification_seconds_count 5.0\n" in text


# -- the metrics port under hostile clients ---------------------------------------------------

def _served(**limits) -> MetricsServer:
    metrics = Metrics()
    metrics.inc("events", 3)
    return MetricsServer(metrics, "127.0.0.1", 0, **limits).start()


def _scrape(port: int) -> tuple[float, str]:
    """(seconds taken, body) of one well-behaved GET /metrics."""
    started = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        body = response.read().decode()
    return time.monotonic() - started, body


def _exchange(port: int, request: bytes) -> bytes:
    """Sends ``request`` and reads until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_the_exposition_is_the_prometheus_text_format_with_the_same_names():
    metrics = Metrics()
    metrics.inc("commented", 2)
    metrics.set("queue_depth", 5)
    metrics.observe(0.07)
    families = {f.name: f for f in text_string_to_metric_families(exposition(metrics.snapshot()))}
    assert families["elastic_recheck_commented"].type == "counter"
    assert [(s.name, s.value) for s in families["elastic_recheck_commented"].samples] == [
        ("elastic_recheck_commented_total", 2.0)]
    assert {f"elastic_recheck_{name}" for name in COUNTERS} <= set(families)
    assert families["elastic_recheck_queue_depth"].type == "gauge"
    assert families["elastic_recheck_queue_depth"].samples[0].value == 5.0
    latency = families["elastic_recheck_classification_seconds"]
    assert latency.type == "histogram"
    assert {s.name for s in latency.samples} == {"elastic_recheck_classification_seconds_bucket",
                                                 "elastic_recheck_classification_seconds_sum",
                                                 "elastic_recheck_classification_seconds_count"}


def test_200_idle_connections_neither_keep_a_scraper_out_nor_add_threads():
    threads_before = threading.active_count()
    server = _served()  # the defaults: 64 connections, 10 s each
    idle = []
    try:
        for _ in range(200):
            idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
        took, body = _scrape(server.port)
        assert took < 3 and "elastic_recheck_events_total 3.0\n" in body
        assert threading.active_count() == threads_before + 1  # the port's one thread, whatever the clients
        assert server.server.open_connections <= 64
        idle[0].settimeout(2)
        assert idle[0].recv(1) == b""  # the oldest idle connection was closed to make room
    finally:
        for sock in idle:
            sock.close()
        server.stop()
    assert not server.server.thread.is_alive() and threading.active_count() == threads_before
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def test_clients_dripping_their_headers_are_cut_off_at_the_deadline_while_a_scraper_is_served():
    server = _served(timeout=1.0)
    drippers = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(30)]
    try:
        started = time.monotonic()
        for sock in drippers:
            sock.sendall(b"GET /metrics HTTP/1.1\r\n")
        answers: dict[socket.socket, bytes] = {}
        while len(answers) < len(drippers) and time.monotonic() - started < 5:
            for sock in drippers:
                if sock not in answers:
                    try:
                        sock.sendall(b"X")  # one header byte at a time, never a blank line
                    except OSError:  # already closed by the server
                        answers[sock] = b""
            readable, _, _ = select.select([s for s in drippers if s not in answers], [], [], 0.2)
            for sock in readable:
                try:
                    answers[sock] = sock.recv(4096)
                except OSError:
                    answers[sock] = b""
            if time.monotonic() - started < 0.8:  # while they drip, a scrape is answered at once
                took, _ = _scrape(server.port)
                assert took < 2
        elapsed = time.monotonic() - started
        assert len(answers) == len(drippers) and 0.5 <= elapsed < 4
        assert any(answer.startswith(b"HTTP/1.1 408 ") for answer in answers.values())
        assert server.server.open_connections <= 1
    finally:
        for sock in drippers:
            sock.close()
        server.stop()


def test_an_oversized_request_head_is_answered_431_and_closed():
    server = _served(max_request_bytes=1024)
    try:
        answer = _exchange(server.port, b"GET /metrics HTTP/1.1\r\nX-Padding: " + b"a" * 20_000 + b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
        assert b"limited to 1024 bytes" in answer and b"elastic_recheck" not in answer
        never_ending = _exchange(server.port, b"GET /" + b"m" * 5000)  # no end of line at all
        assert never_ending.startswith(b"HTTP/1.1 431 ")
        assert _scrape(server.port)[0] < 3  # and the port goes on serving
    finally:
        server.stop()


def test_only_get_and_head_of_the_metrics_path_are_answered():
    server = _served()
    try:
        assert _exchange(server.port, b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 404 ")
        refused = _exchange(server.port, b"POST /metrics HTTP/1.1\r\ncontent-length: 0\r\n\r\n")
        assert refused.startswith(b"HTTP/1.1 405 ") and b"\r\nallow: GET, HEAD\r\n" in refused
        assert _exchange(server.port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n").startswith(
            b"HTTP/1.1 400 ")  # a TLS hello, say
        head = _exchange(server.port, b"HEAD /metrics HTTP/1.0\n\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
        assert b"content-length: 0\r\n" not in head
        assert b"elastic_recheck_events_total 3.0" in _exchange(server.port, b"GET /metrics?x=1 HTTP/1.1\r\n\r\n")
    finally:
        server.stop()


def test_a_port_that_cannot_be_served_is_a_configuration_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ConfigError, match=r"watch.metrics_port: cannot listen on 127.0.0.1:\d+: "):
            MetricsServer(Metrics(), "127.0.0.1", taken.getsockname()[1])
    with pytest.raises(ConfigError, match="limits must be positive"):
        MetricsServer(Metrics(), "127.0.0.1", 0, max_connections=0)
