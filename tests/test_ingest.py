"""Ingest of CI builds (local and over HTTP) and of exported documents."""

from __future__ import annotations

import functools
import gzip
import http.server
import io
import json
import shutil
import threading
from pathlib import Path

import pytest

from elastic_recheck.errors import BackendError, IngestError
from elastic_recheck.ingest import ingest_build, ingest_build_dirs, ingest_documents
from elastic_recheck.ingest.sources import BuildMetadata, HttpRetry, fetch_zuul_build, open_logs
from elastic_recheck.search import ALL_TIME
from elastic_recheck.search.embedded import EmbeddedBackend

META = BuildMetadata(
    build_uuid="6d1b2f0c9f1e4c3a8e0b6a3f9a1c2d3e", build_name="tempest-full", build_change="864201",
    build_patchset="3", build_queue="gate", build_status="FAILURE", build_branch="master",
    project="openstack/nova", voting="1", log_url="https://logs.example.org/x/6d1b2f0", build_node="node-1",
    build_ref="refs/changes/01/864201/3",
)

CONSOLE = b"""2026-11-20 10:00:01.100123 | Job console starting...
2026-11-20 10:42:10.000000 | controller | tempest.api.compute.test_x ... FAILED
2026-11-20 10:42:10.100000 | controller | ERROR: it broke
"""
OSLO = b"""2026-11-20 10:20:00.100 7001 DEBUG cinder.api [req-1] noisy
2026-11-20 10:20:00.456 7001 ERROR cinder.api.middleware.fault [req-77] Caught error: Lost connection
Traceback (most recent call last):
  File "/usr/lib/python3/sqlalchemy/engine/base.py", line 1900, in _execute_context
pymysql.err.OperationalError: (2013, 'Lost connection to MySQL server during query')
2026-11-20 10:20:01.000 7001 WARNING cinder.api [req-78] after \xff\xfe bad bytes
"""
SYSLOG = b"""Nov 20 10:37:58.300000 host nova-compute[51234]: ERROR nova.compute.manager Timed out waiting for a reply
Nov 20 10:38:00 host kernel: [  301.1] EXT4-fs (vda1): re-mounted
"""


@pytest.fixture
def build_dir(tmp_path: Path) -> Path:
    root = tmp_path / "build"
    (root / "logs").mkdir(parents=True)
    (root / "job-output.txt").write_bytes(CONSOLE)
    (root / "logs" / "screen-c-api.txt").write_bytes(OSLO)
    (root / "logs" / "syslog.txt.gz").write_bytes(gzip.compress(SYSLOG))
    (root / "logs" / "image.png").write_bytes(b"\x89PNG not a log")
    return root


def all_docs(backend):
    return [h.source for h in backend.scan("*:*", ALL_TIME)]


def test_one_document_per_line_with_the_build_fields(backend, build_dir):
    report = ingest_build(backend, open_logs(str(build_dir)), META)
    assert report.files == 3 and report.skipped_debug == 1 and not report.errors
    docs = all_docs(backend)
    console = [d for d in docs if d["filename"] == "job-output.txt"]
    assert len(console) == 3
    first = min(console, key=lambda d: d["@timestamp"])
    assert first["tags"] == ["job-output.txt", "console"]
    assert first["@timestamp"].startswith("2026-11-20T10:00:01.100123")
    for field in ("build_uuid", "build_name", "build_change", "build_patchset", "build_queue", "build_status",
                  "build_branch", "project", "voting", "build_node", "build_ref"):
        assert first[field] == getattr(META, field)
    assert first["build_short_uuid"] == "6d1b2f0"
    assert first["log_url"] == "https://logs.example.org/x/6d1b2f0/job-output.txt"
    assert "loglevel" not in first  # console lines carry no level


def test_tracebacks_fold_into_their_first_line_and_levels_are_parsed(backend, build_dir):
    ingest_build(backend, open_logs(str(build_dir)), META)
    api = sorted((d for d in all_docs(backend) if d["filename"] == "logs/screen-c-api.txt"),
                 key=lambda d: d["@timestamp"])
    assert [d["loglevel"] for d in api] == ["ERROR", "WARNING"]  # DEBUG dropped
    assert api[0]["message"].count("\n") == 3 and "pymysql.err.OperationalError" in api[0]["message"]
    assert api[0]["tags"] == ["screen-c-api.txt", "ERROR"]
    assert "\ufffd" in api[1]["message"]  # undecodable bytes replaced, not fatal
    assert backend.count('message:"Lost connection to MySQL server" AND loglevel:ERROR') == 1


def test_gz_files_are_read_and_named_without_gz(backend, build_dir):
    ingest_build(backend, open_logs(str(build_dir)), META)
    syslog = [d for d in all_docs(backend) if d["filename"] == "logs/syslog.txt"]
    assert len(syslog) == 2 and syslog[0]["tags"][0] == "syslog.txt"
    assert backend.count('tags:"syslog.txt" AND message:"timed out waiting"') == 1


def test_debug_is_kept_on_request(backend, build_dir):
    ingest_build(backend, open_logs(str(build_dir)), META, keep_debug=True)
    assert backend.count("loglevel:DEBUG") == 1


def test_reingesting_a_build_replaces_it(backend, build_dir):
    ingest_build(backend, open_logs(str(build_dir)), META)
    before = backend.count("*:*")
    (build_dir / "job-output.txt").write_bytes(CONSOLE + b"2026-11-20 10:50:00.000000 | one more line\n")
    ingest_build(backend, open_logs(str(build_dir)), META)
    assert backend.count("*:*") == before + 1
    assert backend.build_files(META.build_uuid)["job-output.txt"] == 4


def _builds(root: Path, build_dir: Path, count: int) -> list[Path]:
    dirs = []
    for n in range(count):
        target = root / f"build-{n}"
        shutil.copytree(build_dir, target)
        fields = {**META.fields(), "build_uuid": f"{n:032x}", "build_change": str(900000 + n)}
        (target / "build.json").write_text(json.dumps(fields))
        dirs.append(target)
    return dirs


def test_many_builds_in_one_session_each_commit_on_its_own(backend, build_dir, tmp_path):
    one = ingest_build(backend, open_logs(str(build_dir)), META).documents
    dirs = _builds(tmp_path / "many", build_dir, 3)
    (dirs[1] / "build.json").write_text("{not json")
    report = ingest_build_dirs(backend, tmp_path / "many")
    assert (report.builds, report.documents) == (2, 2 * one)
    assert [str(e) for e in report.errors] == [f"{dirs[1] / 'build.json'}:1: build metadata is not JSON: "
                                               "Expecting property name enclosed in double quotes"]
    assert backend.count(f'build_uuid:"{0:032x}" OR build_uuid:"{2:032x}"') == 2 * one
    report = ingest_build_dirs(backend, tmp_path / "many")  # again: replaced, not doubled
    assert backend.count("*:*") == 3 * one


@pytest.mark.parametrize("commit_every", [1, 20, 10_000])  # a commit per build, every few builds, one for all
def test_many_builds_committed_together_are_each_replaced_whole(backend, build_dir, tmp_path, commit_every):
    one = ingest_build(backend, open_logs(str(build_dir)), META).documents
    dirs = _builds(tmp_path / "many", build_dir, 4)
    shutil.copytree(dirs[2], tmp_path / "many" / "build-2-again")  # the same build twice in one run
    (tmp_path / "many" / "build-2-again" / "job-output.txt").write_bytes(CONSOLE + CONSOLE)
    report = ingest_build_dirs(backend, tmp_path / "many", commit_every=commit_every)
    assert (report.builds, report.documents) == (5, 5 * one + 3)
    assert backend.count(f'build_uuid:"{2:032x}"') == one + 3  # the later copy only
    assert backend.count("*:*") == 5 * one + 3
    ingest_build_dirs(backend, tmp_path / "many", commit_every=commit_every)  # again: replaced, not doubled
    assert backend.count("*:*") == 5 * one + 3


def test_many_builds_stop_at_a_backend_refusal_naming_the_build(backend, build_dir, tmp_path):
    dirs = _builds(tmp_path / "many", build_dir, 2)
    other = EmbeddedBackend(backend.path).writer()  # another ingest holds the index
    try:
        with pytest.raises(BackendError, match=rf"^{dirs[0]}: .*being written by another process.*"
                                               r"\(the 0 builds before build-0 are indexed; build-0 and the"):
            ingest_build_dirs(backend, tmp_path / "many")
    finally:
        other.rollback()
        other.close()


def test_an_ingest_session_holds_the_index_for_writing_until_it_ends(backend, build_dir, tmp_path):
    reader = EmbeddedBackend(backend.path)  # as another process would open it
    with backend.ingest_session():
        ingest_build(backend, open_logs(str(build_dir)), META)
        assert reader.count("*:*") > 0  # committed with its batch
        with pytest.raises(BackendError, match="being written by another process"):
            reader.writer()
        with pytest.raises(RuntimeError), backend.writer() as writer:  # a failed batch rolls back alone
            writer.replace_build(META.build_uuid)
            raise RuntimeError("cut off")
        before = reader.count("*:*")
        assert before > 0
        ingest_build(backend, open_logs(str(build_dir)), META)  # and the session writes on
        assert reader.count("*:*") == before
        assert backend.build_files(META.build_uuid)["job-output.txt"] == 3
    with reader.writer() as writer:
        writer.replace_build(META.build_uuid)
    assert reader.count("*:*") == 0


def test_huge_lines_are_truncated_not_fatal(backend, tmp_path):
    root = tmp_path / "huge"
    root.mkdir()
    (root / "job-output.txt").write_bytes(b"2026-11-20 10:00:00.000 | " + b"x" * 200_000 + b"\n")
    ingest_build(backend, open_logs(str(root)), META)
    (doc,) = all_docs(backend)
    assert len(doc["message"]) < 70_000 and doc["message"].endswith("bytes truncated]")


def test_an_empty_directory_is_a_clear_error(backend, tmp_path):
    with pytest.raises(IngestError, match="no log files"):
        ingest_build(backend, open_logs(str(tmp_path)), META)


class _Server:
    def __init__(self, root: Path, busy: int = 0) -> None:
        """``busy``: answer each path's first ``busy`` requests with 503, as a loaded log server does."""
        self.requests: list[tuple[str, int]] = []
        handler = functools.partial(_QuietHandler, directory=str(root), busy=busy, requests=self.requests)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, busy: int, requests: list, **kwargs) -> None:
        self.busy, self.requests = busy, requests
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        if sum(1 for path, _ in self.requests if path == self.path) < self.busy:
            self.requests.append((self.path, 503))
            self.send_response(503)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.requests.append((self.path, 200))
        super().do_GET()

    def log_message(self, *args) -> None:  # keep test output clean
        pass


@pytest.fixture
def server(tmp_path):
    servers = []

    def start(root: Path, busy: int = 0) -> _Server:
        servers.append(_Server(root, busy))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def test_logs_from_a_log_server_directory_listing(backend, build_dir, server):
    srv = server(build_dir.parent)
    report = ingest_build(backend, open_logs(srv.url + "build/"), META)
    assert report.files == 3 and not report.errors
    assert backend.count('tags:"syslog.txt"') == 2


def test_logs_from_a_zuul_manifest(backend, build_dir, server):
    (build_dir / "zuul-manifest.json").write_text(json.dumps({"tree": [
        {"name": "job-output.txt", "mimetype": "text/plain"},
        {"name": "logs", "mimetype": "application/directory", "children": [
            {"name": "screen-c-api.txt", "mimetype": "text/plain"}]},
    ]}))
    srv = server(build_dir.parent)
    report = ingest_build(backend, open_logs(srv.url + "build/"), META)
    assert report.files == 2


def test_metadata_from_the_zuul_build_api(tmp_path, server):
    api = tmp_path / "api"
    api.mkdir()
    (api / "build").write_text(json.dumps({
        "uuid": "abcdef0123456789", "job_name": "grenade", "result": "FAILURE", "voting": False,
        "log_url": "https://logs.example.org/g/", "ref": {"project": "openstack/neutron", "change": 5,
                                                          "patchset": 2, "branch": "master", "ref": "refs/x"},
        "buildset": {"pipeline": "gate"},
    }))
    srv = server(api)
    meta = fetch_zuul_build(srv.url + "build")
    assert (meta.build_uuid, meta.build_name, meta.build_status, meta.voting) == ("abcdef0123456789", "grenade",
                                                                                 "FAILURE", "0")
    assert (meta.project, meta.build_change, meta.build_patchset, meta.build_queue) == ("openstack/neutron", "5",
                                                                                       "2", "gate")


QUICK_RETRY = HttpRetry(attempts=3, delay=0.01)


def test_a_busy_log_server_is_asked_again(backend, build_dir, server):
    srv = server(build_dir.parent, busy=2)  # every path: 503, 503, then the file
    report = ingest_build(backend, open_logs(srv.url + "build/", QUICK_RETRY), META)
    assert report.files == 3 and not report.errors
    assert [status for path, status in srv.requests if path == "/build/job-output.txt"] == [503, 503, 200]


def test_a_log_server_busy_for_longer_is_a_clear_error_and_a_missing_file_is_not_retried(backend, build_dir, server):
    srv = server(build_dir.parent, busy=5)
    with pytest.raises(IngestError, match=r"HTTP 503 .* \(after 3 attempts\)"):
        ingest_build(backend, open_logs(srv.url + "build/", QUICK_RETRY), META)
    srv = server(build_dir.parent)
    with pytest.raises(IngestError, match="HTTP 404"):
        open_logs(srv.url + "build/", QUICK_RETRY).open("logs/gone.txt")
    assert [path for path, _ in srv.requests].count("/build/logs/gone.txt") == 1


def test_unreachable_log_server_is_a_clear_error(backend):
    with pytest.raises(IngestError, match=r"cannot fetch: .* \(after 3 attempts\)"):
        ingest_build(backend, open_logs("http://127.0.0.1:9/nowhere/", QUICK_RETRY), META)


# -- exported documents ---------------------------------------------------------

def test_ndjson_with_a_bad_line_keeps_the_good_ones(backend):
    lines = [
        json.dumps({"message": "one", "@timestamp": "2026-11-20T10:00:00Z", "build_uuid": "u", "custom": "kept"}),
        "{not json",
        json.dumps({"message": "two", "@timestamp": "2026-11-20T10:01:00Z", "build_uuid": "u"}),
        json.dumps({"message": "no time"}),
    ]
    report = ingest_documents(backend, io.StringIO("\n".join(lines)), "export.ndjson")
    assert report.documents == 2
    assert [str(e) for e in report.errors] == [
        "export.ndjson:2: invalid JSON: Expecting property name enclosed in double quotes",
        "export.ndjson:4: bad @timestamp: missing or non-text @timestamp",
    ]
    assert backend.count("custom:kept") == 1
    assert backend.search("*:*", size=1).hits[0].source["message"] == "two"  # newest first


def test_search_response_in_the_old_logstash_format(backend, realdata):
    path = realdata / "logstash" / "samples" / "bug-1191960.json"
    with open(path) as handle:
        report = ingest_documents(backend, handle, str(path))
    raw = json.loads(path.read_text())["hits"]["hits"]
    assert report.documents == len(raw) and not report.errors
    source = raw[0]["_source"]
    hit = next(h.source for h in backend.scan("*:*", ALL_TIME) if h.source["message"] == source["@message"])
    assert hit["tags"] == source["@tags"]
    assert hit["build_name"] == source["@fields"]["build_name"][0]
    assert backend.count(f'build_uuid:"{source["@fields"]["build_uuid"][0]}"') >= 1


def test_without_the_native_batch_path_the_same_documents_are_indexed(tmp_path, build_dir, monkeypatch):
    """An install without a compiler reads, analyses and writes lines in Python: same index."""
    from elastic_recheck import analysis
    from elastic_recheck.ingest import logparse
    from elastic_recheck.search import embedded

    (build_dir / "logs" / "screen-n-cpu.txt").write_bytes(
        "2026-11-20 10:30:00.000 1 ERROR nova Ошибка: \"quoted\" \\ path 😀 ÉTÉ 東京 tab\there\n"
        "  continued ünïcode\n2026-11-20 10:30:01.000 1 INFO nova plain\n".encode())

    def indexed(path):
        backend = EmbeddedBackend(path)
        report = ingest_build(backend, open_logs(str(build_dir)), META)
        docs = sorted((d["@timestamp"], d["filename"], d.get("loglevel", ""), d["message"]) for d in all_docs(backend))
        counts = [backend.count(q) for q in ('message:"ошибка quoted"', "message:東", 'message:"ünïcode"',
                                             'message:"path 😀"', "message:été", "message:plain")]
        return report.documents, report.skipped_debug, docs, counts

    native = indexed(tmp_path / "native")
    monkeypatch.setattr(logparse, "NativeEventParser", None)
    monkeypatch.setattr(analysis, "_native_index_texts", None)
    monkeypatch.setattr(embedded, "_native_line_docs", None)
    assert indexed(tmp_path / "python") == native
    assert native[3][:3] == [1, 1, 1] and native[3][-1] == 1


from hypothesis import given, settings, strategies as st  # noqa: E402

from elastic_recheck.ingest.streams import bounded_line_batches, bounded_lines, bounded_text  # noqa: E402


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from([b"\n", b"\r\n", b"\r", b"x", b"yy", b"0123456789", b"a" * 40, b" "]), max_size=60)
       .map(b"".join), st.integers(1, 30), st.integers(1, 50))
def test_lines_read_a_block_at_a_time_are_those_read_one_by_one(data, limit, block):
    """Same lines, same cuts of a line over ``ingest.max_line_bytes``, whatever the block size."""
    one_by_one = [line[:-1] if line.endswith(b"\n") else line
                  for line in bounded_lines(io.BufferedReader(io.BytesIO(data)), limit)]
    source = io.BytesIO(data)
    batches = list(bounded_line_batches(source.read, limit, block))
    assert [line for batch in batches for line in batch] == one_by_one
    assert all(batches)


class _Pieces:
    """A source that answers each read with at most ``sizes``' next number of bytes, as a socket may."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self.data, self.sizes, self.at = data, sizes or [1], 0

    def read(self, size: int) -> bytes:
        take = min(size, self.sizes[self.at % len(self.sizes)])
        self.at += 1
        out, self.data = self.data[:take], self.data[take:]
        return out


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from([b"\n", b"\r\n", b"x", b"0123456789", b"a" * 700, b"b" * 4096, b"c" * 4097]),
                max_size=40).map(b"".join),
       st.sampled_from([1, 30, 4095, 4096, 4097, 5000, 9000]), st.lists(st.integers(1, 12000), max_size=5))
def test_the_spool_s_text_holds_the_lines_read_one_by_one(data, limit, sizes):
    """What the fetch workers write is every bounded line with its newline,
    whatever the size of the reads and wherever a long line falls."""
    one_by_one = [line[:-1] if line.endswith(b"\n") else line
                  for line in bounded_lines(io.BufferedReader(io.BytesIO(data)), limit)]
    assert b"".join(bounded_text(_Pieces(data, sizes).read, limit)) == b"".join(line + b"\n" for line in one_by_one)
