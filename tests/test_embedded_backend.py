"""The embedded backend: time windows, newest-first hits with exact totals,
facets, histograms, batched build matching, and processes sharing the index."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from elastic_recheck.errors import BackendError
from elastic_recheck.querysummary import summarize
from elastic_recheck.search import ALL_TIME, TimeWindow
from elastic_recheck.search.embedded import EmbeddedBackend

from .conftest import make_doc

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def _docs(count, days_ago, **fields):
    stamp = (NOW - dt.timedelta(days=days_ago)).isoformat()
    return [make_doc(f"line {i} boom", **{"@timestamp": stamp, **fields}) for i in range(count)]


@pytest.fixture
def idx(index_docs):
    return index_docs(
        _docs(3, 1, build_uuid="new", build_name="tempest-full")
        + _docs(2, 5, build_uuid="mid", build_name="grenade", build_status="SUCCESS")
        + _docs(1, 30, build_uuid="old", build_name="grenade")
    )


def test_time_window_and_exact_total(idx):
    assert idx.count("boom", TimeWindow.last_days(10, now=NOW)) == 5
    assert idx.count("boom", TimeWindow.last_days(2, now=NOW)) == 3
    assert idx.count("boom", TimeWindow.last_days(0, now=NOW)) == 6
    result = idx.search("boom", TimeWindow.last_days(10, now=NOW), size=2)
    assert result.total == 5 and len(result.hits) == 2


def test_hits_come_newest_first_across_pages(idx):
    stamps = [h.timestamp for h in idx.search("boom", ALL_TIME, size=4).hits]
    stamps += [h.timestamp for h in idx.search("boom", ALL_TIME, size=4, offset=4).hits]
    assert len(stamps) == 6 and stamps == sorted(stamps, reverse=True)


def test_facets_count_exact_values(idx):
    facets = idx.facets("boom", ALL_TIME, ["build_name", "tags", "build_status"])
    assert facets["build_name"] == [("grenade", 3), ("tempest-full", 3)]  # ties by value
    assert facets["tags"] == [("job-output.txt console", 6)]  # a list: its entries in stored order
    assert facets["build_status"] == [("FAILURE", 4), ("SUCCESS", 2)]


def test_a_list_facet_keeps_the_stored_order_as_the_original_er_query_printed_it(index_docs):
    backend = index_docs(
        _docs(3, 1, build_uuid="old-style", filename="console.html", tags=["console.html", "console"])
        + _docs(1, 1, build_uuid="reversed", tags=["console", "console.html"])
        + _docs(1, 1, build_uuid="untagged", tags=[])
    )
    facets = backend.facets("boom", ALL_TIME, ["tags"])
    assert facets["tags"] == [("console.html console", 3), ("console console.html", 1)]
    summary = summarize(backend, "boom", ALL_TIME)
    assert summary.attributes["tags"] == [(60, "console.html console"), (20, "console console.html")]


def test_histogram_split_by_status(idx):
    series = idx.histogram("boom", ALL_TIME, dt.timedelta(hours=1), split_by="build_status")
    assert sum(c for _, c in series["FAILURE"]) == 4
    assert [c for _, c in series["SUCCESS"]] == [2]
    (only,) = idx.histogram("boom", ALL_TIME, dt.timedelta(days=1))[""][-1:]
    assert only[1] == 3


def test_builds_and_newest_timestamp(idx):
    builds = {b.build_uuid: b.build_status for b in idx.builds("boom")}
    assert builds == {"new": "FAILURE", "mid": "SUCCESS", "old": "FAILURE"}
    assert idx.newest_timestamp() == NOW - dt.timedelta(days=1)


def test_match_build_answers_every_query_in_one_call(idx):
    queries = [f'build_name:"grenade" AND message:"line {i}"' for i in range(40)] + ["boom", "nothing"]
    matched = idx.match_build("mid", queries)
    assert [i for i, m in enumerate(matched) if m] == [0, 1, 40]


def test_more_contexts_than_one_aggregation_holds_are_counted_in_parts(index_docs, tmp_path):
    docs = []
    for build in range(60):  # 120 contexts: a build's console at two levels
        for level in ("INFO", "ERROR"):
            docs += _docs(1 + build % 3, build % 9, build_uuid=f"b{build:02}", build_name=f"job-{build % 7}",
                          filename="job-output.txt", loglevel=level)
    whole = index_docs(docs)
    parts = EmbeddedBackend(whole.path, max_buckets=8)  # at most 8 contexts an aggregation: split 16+ ways
    fields = ["build_name", "build_uuid", "loglevel"]
    assert parts.facets("boom", ALL_TIME, fields, size=100) == whole.facets("boom", ALL_TIME, fields, size=100)
    assert len(parts.facets("boom", ALL_TIME, ["build_uuid"], size=100)["build_uuid"]) == 60
    assert parts.builds("boom") == whole.builds("boom")
    day = dt.timedelta(days=1)
    assert parts.histogram("boom", ALL_TIME, day, "build_name") == whole.histogram("boom", ALL_TIME, day, "build_name")


def test_empty_index(backend):
    assert backend.newest_timestamp() is None
    assert backend.search("boom").total == 0
    assert backend.health()["documents"] == 0


def test_a_reader_in_another_process_sees_each_commit(tmp_path):
    path = tmp_path / "index"
    writer_backend = EmbeddedBackend(path)
    reader = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from elastic_recheck.search.embedded import EmbeddedBackend
            backend = EmbeddedBackend({str(path)!r})
            print(backend.count("boom"), flush=True)
            sys.stdin.readline()
            print(backend.count("boom"), flush=True)
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert reader.stdout.readline().strip() == "0"
    with writer_backend.writer() as writer:
        for doc in _docs(3, 1):
            writer.add(doc, NOW)
    reader.stdin.write("go\n")
    reader.stdin.flush()
    assert reader.stdout.readline().strip() == "3"
    assert reader.wait(timeout=30) == 0


def test_a_second_writer_gets_a_clear_error(tmp_path):
    first = EmbeddedBackend(tmp_path / "index")
    with first.writer():
        other = subprocess.run(
            [sys.executable, "-c",
             "from elastic_recheck.search.embedded import EmbeddedBackend as B\n"
             f"B({str(tmp_path / 'index')!r}).writer()"],
            capture_output=True, text=True, timeout=60,
        )
    assert other.returncode != 0
    assert "being written by another process" in other.stderr


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="threads are found by name in /proc")
def test_merges_run_at_a_lower_priority_than_indexing(tmp_path):
    """A merge is background work: at the same priority it took the CPU
    from the writer that every build waits on."""
    def niceness(prefix: str) -> list[int]:
        found = []
        for task in Path("/proc/self/task").iterdir():
            try:
                if (task / "comm").read_text().startswith(prefix):
                    found.append(os.getpriority(os.PRIO_PROCESS, int(task.name)))
            except OSError:  # a thread that ended meanwhile (another test's writer)
                continue
        return found

    with EmbeddedBackend(tmp_path / "index").writer() as writer:
        for _ in range(2):  # each commit finds the threads named since the last (they name themselves as they start)
            writer.add(make_doc("a line"), NOW)
            writer.commit()
        assert niceness("merge_thread") and min(niceness("merge_thread")) >= 10
        assert niceness("thrd-tantivy") and max(niceness("thrd-tantivy")) == os.getpriority(os.PRIO_PROCESS, 0)


def test_a_process_that_stops_without_waiting_for_merges_leaves_every_commit_whole(tmp_path):
    """A daemon stopping does not wait for tantivy's merges (seconds after a
    backlog): it exits with them cut off. Every commit is still there, once,
    and the next process writes on."""
    path = tmp_path / "index"
    stopping = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import datetime as dt
        from elastic_recheck.search.embedded import EmbeddedBackend
        backend = EmbeddedBackend({str(path)!r})
        now = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.timezone.utc)
        with backend.ingest_session(finish_merges=lambda: False):
            for batch in range(12):  # segments enough for merges
                with backend.writer() as writer:
                    for i in range(300):
                        writer.add({{"message": f"line {{i}} of batch {{batch}} boom", "build_uuid": f"b{{batch}}",
                                    "@timestamp": now.isoformat()}}, now)
        print("stopped", flush=True)
    """)], capture_output=True, text=True, timeout=120)
    assert stopping.returncode == 0, stopping.stderr
    backend = EmbeddedBackend(path)
    assert backend.count("boom", ALL_TIME) == 12 * 300
    assert backend.count('build_uuid:"b11"', ALL_TIME) == 300
    with backend.writer() as writer:
        writer.replace_build("b0")
    assert backend.count("boom", ALL_TIME) == 11 * 300


def test_an_unreadable_index_is_a_backend_error(tmp_path):
    EmbeddedBackend(tmp_path)
    (tmp_path / "lines" / "meta.json").write_text("{broken")
    with pytest.raises(BackendError, match="cannot open the index"):
        EmbeddedBackend(tmp_path)


def test_an_index_from_an_older_layout_is_refused_not_misread(tmp_path):
    (tmp_path / "meta.json").write_text("{}")
    with pytest.raises(BackendError, match="older version"):
        EmbeddedBackend(tmp_path)


def test_an_index_analysed_by_an_older_version_must_be_re_ingested(tmp_path):
    """Version 4 indexed İ as i + U+0307 and words over 255 characters whole:
    its terms are not what queries now look for."""
    EmbeddedBackend(tmp_path).close()
    (tmp_path / "er-layout.json").write_text('{"version": 4}')
    with pytest.raises(BackendError, match=r"layout version 4; this version reads 5 .*re-ingest") as error:
        EmbeddedBackend(tmp_path)
    assert "\n" not in str(error.value)


def test_lines_share_one_stored_context_per_build_file_and_level(index_docs, backend):
    index_docs([make_doc(f"line {i}", loglevel="ERROR" if i % 2 else "INFO") for i in range(10)])
    assert backend.health()["documents"] == 10
    assert backend.health()["contexts"] == 2
    hit = backend.search("message:line", size=1).hits[0]
    assert hit.source["build_name"] == "tempest-full" and hit.source["message"].startswith("line")


def test_context_clauses_combine_exactly_with_line_clauses(index_docs, backend):
    index_docs([
        make_doc("timeout here", build_uuid="a", build_name="grenade"),
        make_doc("timeout here", build_uuid="b", build_name="tempest-full", voting="0"),
        make_doc("all good", build_uuid="c", build_name="grenade"),
    ])
    assert backend.count('message:timeout AND build_name:grenade') == 1
    assert backend.count('message:timeout AND NOT build_name:grenade') == 1
    assert backend.count('message:timeout OR build_name:grenade') == 3
    assert backend.count('build_name:grenade AND voting:1 AND NOT build_uuid:c') == 1
    assert backend.count('(message:good AND build_name:grenade) OR (message:here AND voting:0)') == 2
    assert backend.count('message:timeout AND build_name:"--"') == 2  # analyses to nothing: dropped
    assert backend.match_build("b", ['message:timeout AND voting:0', 'message:timeout AND voting:1']) == [True, False]


def test_an_index_directory_gone_from_under_a_reader_is_a_backend_error(tmp_path):
    import os

    backend = EmbeddedBackend(tmp_path / "index")
    with backend.writer() as writer:
        writer.add({"message": "boom", "build_uuid": "b", "filename": "job-output.txt"},
                   dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc))
    os.rename(tmp_path / "index", tmp_path / "away")  # an unmounted disk, say
    with pytest.raises(BackendError, match="cannot be read"):
        backend.count("boom")
    with pytest.raises(BackendError):
        backend.match_build("b", ["boom"])
    os.rename(tmp_path / "away", tmp_path / "index")
    assert backend.count("boom") == 1  # back by itself


from hypothesis import given, settings, strategies as st  # noqa: E402

from elastic_recheck.analysis import analyze, index_text, index_texts  # noqa: E402
from elastic_recheck.search import schema as sch  # noqa: E402

try:
    from elastic_recheck._tokens import add_line_docs
except ImportError:  # the extension built without it: nothing native to hold to line_json
    add_line_docs = None


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(0, 2**63 - 1), st.integers(-(2**62), 2**62),
                          st.text(max_size=40) | st.sampled_from(["plain ascii", 'a "quote" \\ x', "é 😀 東京\x01"])),
                max_size=6))
def test_line_documents_built_natively_are_those_of_line_json(lines):
    """The batch path's documents (built in C) read back as schema.line_json's, a
    message no UTF-8 encoder takes (a lone surrogate) included."""
    if add_line_docs is None:
        pytest.skip("the native batch path is not built")
    cids = [cid for cid, _, _ in lines]
    micros = [when for _, when, _ in lines]
    messages = [message for _, _, message in lines]
    tokens = index_texts(messages)
    assert tokens == [index_text(m) for m in messages]
    built: list[str] = []
    add_line_docs(built.append, cids, micros, messages, tokens,
                  lambda cid, when, message, terms: sch.line_json(sch.line_prefix(cid), when, message, terms))
    expected = [sch.line_json(sch.line_prefix(c), w, m, t) for c, w, m, t in zip(cids, micros, messages, tokens)]
    assert [json.loads(doc) for doc in built] == [json.loads(doc) for doc in expected]
    for message, terms in zip(messages, tokens):
        if not any(0xD800 <= ord(ch) < 0xE000 for ch in message):
            assert tuple(terms.split()) == analyze(message)


def test_a_compiled_query_is_kept_from_its_second_use_on(idx):
    """A compiled query holds its context clauses' id sets; a one-off query
    (a bug page's look-up of its builds' lines) must not keep them alive."""
    query = "message:boom AND build_name:grenade"
    first, second, third = idx.compile(query), idx.compile(query), idx.compile(query)
    assert first is not second  # used once: compiled and let go
    assert second is third  # used again: kept
    assert idx.count(query) == idx.count(query) == 3
