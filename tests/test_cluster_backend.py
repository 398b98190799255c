"""The Elasticsearch / OpenSearch backend without a live cluster: the exact
requests it builds, and how it handles the answers real servers give —
errors, overload, shard failures, timeouts and more than 10,000 hits.

Requests go over real HTTP, through the official client's transport, to a
local server answering with recorded response shapes (tests/cluster_server.py).
The same backend against a live cluster is tested by test_backend_contract.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import socket
from pathlib import Path

import pytest

from elastic_recheck.config import ClusterSettings, load_settings
from elastic_recheck.errors import BackendError, ConfigError, QuerySyntaxError
from elastic_recheck.search import ALL_TIME, TimeWindow, epoch_micros, open_backend
from elastic_recheck.search import cluster_requests as rq
from elastic_recheck.search.cluster import ClusterBackend
from elastic_recheck.search.cluster_connection import ClusterConnection
from elastic_recheck.search.day_indices import DayIndices

from .cluster_server import (REJECTED, UNAVAILABLE, RecordedCluster, error_body, hit, search_response, shards)

UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC)
ROOT = Path(__file__).resolve().parents[1]
REALDATA = ROOT.parent / "shared" / "realdata" / "logstash" / "1284371.json"


def millis(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


TEN = dt.datetime(2026, 11, 21, 10, tzinfo=UTC)


def day(offset: int) -> str:
    return (NOW + dt.timedelta(days=offset)).strftime("logstash-%Y.%m.%d")


@pytest.fixture
def cluster():
    with RecordedCluster(indices=[day(-30), day(-3), day(-1)]) as server:
        yield server


def backend_for(server: RecordedCluster, product: str = "elasticsearch", sleeps: list[float] | None = None,
                **overrides) -> ClusterBackend:
    settings = ClusterSettings(**{"urls": (server.url,), "retry_backoff": 0.5, "request_timeout": 5, **overrides})
    pauses = sleeps if sleeps is not None else []
    return ClusterBackend(settings, product, ClusterConnection(settings, product, sleep=pauses.append))


# -- the requests built -------------------------------------------------------

def test_a_fingerprint_goes_out_as_query_string_exactly_as_written():
    query = 'message:"Timed out waiting for a reply" AND tags:"screen-n-cpu.txt"'
    window = TimeWindow(dt.datetime(2026, 11, 12, 6, 30, tzinfo=UTC), None)
    assert rq.search_body(query, window, size=5, offset=10) == {
        "query": {"bool": {
            "must": [{"query_string": {"query": query, "default_field": "message", "default_operator": "OR"}}],
            "filter": [{"range": {"@timestamp": {"format": "strict_date_optional_time",
                                                 "gte": "2026-11-12T06:30:00.000Z"}}}],
        }},
        "sort": [{"@timestamp": {"order": "desc"}}],
        "size": 5,
        "from": 10,
        "track_total_hits": True,
    }


def test_msearch_framing_is_a_header_and_a_body_line_per_fingerprint():
    body = rq.match_build_lines("6d1b2f0c", ["message:boom", 'build_name:"grenade"'], "logstash-*", ALL_TIME)
    assert body.endswith(b"\n")
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert len(lines) == 4
    assert lines[0] == lines[2] == {"index": "logstash-*", "ignore_unavailable": True, "allow_no_indices": True}
    assert lines[1] == {
        "size": 0, "terminate_after": 1, "track_total_hits": True,
        "query": {"bool": {
            "must": [{"query_string": {"query": "message:boom", "default_field": "message",
                                       "default_operator": "OR"}}],
            "filter": [{"match_phrase": {"build_uuid": "6d1b2f0c"}}],
        }},
    }
    assert lines[3]["query"]["bool"]["must"][0]["query_string"]["query"] == 'build_name:"grenade"'


def test_facets_histograms_and_builds_are_server_side_aggregations():
    facets = rq.facets_body("boom", ALL_TIME, ["build_name", "tags"], 5, "keyword")
    assert facets["size"] == 0
    assert facets["aggs"]["f0"] == {"terms": {"field": "build_name.keyword", "size": 5,
                                              "order": [{"_count": "desc"}, {"_key": "asc"}]}}
    tags = facets["aggs"]["f1"]["terms"]
    # a list in its stored order: from _source, since doc values hold it sorted and deduplicated
    assert tags["script"]["params"] == {"field": "tags"} and "params._source[params.field]" in tags["script"]["source"]
    assert "field" not in tags
    histogram = rq.histogram_body("boom", ALL_TIME, dt.timedelta(hours=1), "build_queue", "raw")
    assert histogram["aggs"]["s"]["terms"]["field"] == "build_queue.raw"
    assert histogram["aggs"]["s"]["aggs"]["h"] == {
        "date_histogram": {"field": "@timestamp", "fixed_interval": "3600s", "min_doc_count": 1}}
    builds = rq.builds_body("boom", ALL_TIME, "keyword")["aggs"]["b"]
    assert builds["composite"] == {"size": 1000, "sources": [{"build": {"terms": {"field": "build_uuid.keyword"}}}]}
    assert builds["aggs"]["newest"]["top_hits"]["sort"] == [{"@timestamp": {"order": "desc"}}]
    after = rq.builds_body("boom", ALL_TIME, "keyword", after={"build": "b9"})["aggs"]["b"]["composite"]
    assert after["after"] == {"build": "b9"}


def test_day_indices_of_a_window():
    days = DayIndices("logstash-%Y.%m.%d")
    assert days.wildcard == "logstash-*"
    window = TimeWindow(dt.datetime(2026, 11, 19, 23, 0, tzinfo=UTC), dt.datetime(2026, 11, 21, 1, 0, tzinfo=UTC))
    assert days.names(window) == ["logstash-2026.11.19", "logstash-2026.11.20", "logstash-2026.11.21"]
    assert days.names(ALL_TIME) is None  # all time: the wildcard
    assert days.names(TimeWindow.last_days(365)) is None  # too many to name
    assert days.matches("logstash-2026.11.19") and not days.matches("logstash-old")
    monthly = DayIndices("ci-%Y.%m")
    assert monthly.names(window) == ["ci-2026.11"]
    for bad in ("Logstash-%Y", "logs,all-%Y", "", "logs/%Y"):
        with pytest.raises(ConfigError, match="index_pattern"):
            DayIndices(bad)


def test_only_existing_day_indices_of_the_window_are_searched(cluster):
    backend = backend_for(cluster)
    # today's may appear; "today" is NOW's day, as the indices were named from NOW (maybe before midnight)
    assert backend.index_for(TimeWindow.last_days(5, now=NOW), now=NOW) == f"{day(-3)},{day(-1)},{day(0)}"
    assert backend.index_for(ALL_TIME) == "logstash-*"
    old = TimeWindow(NOW - dt.timedelta(days=10), NOW - dt.timedelta(days=8))
    assert backend.index_for(old) == day(-8)  # none exists: one name, ignore_unavailable answers "no hits"
    assert len(cluster.seen("GET", r"/_cat/indices/logstash-\*")) == 1  # the list is cached


def test_the_index_template_maps_strings_as_text_with_keyword_subfields():
    template = rq.index_template(["logstash-*"], "keyword", ["build_name", "tags"], legacy=False)
    mappings = template["template"]["mappings"]
    assert template["index_patterns"] == ["logstash-*"]
    assert mappings["properties"]["@timestamp"] == {"type": "date"}
    assert mappings["properties"]["message"] == {"type": "text"}  # no exact copy of every log line
    assert mappings["properties"]["build_name"] == {
        "type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 8191}}}
    assert mappings["dynamic_templates"][0]["strings"]["mapping"] == mappings["properties"]["tags"]
    # numbers and booleans in extra fields are text, as in the embedded index (error_pr:5 is the word 5)
    assert [(t[name]["match_mapping_type"], t[name]["mapping"]) for t in mappings["dynamic_templates"] for name in t] == [
        (kind, mappings["properties"]["tags"]) for kind in ("string", "long", "double", "boolean")]
    legacy = rq.index_template(["logstash-*"], "keyword", ["build_name"], legacy=True)
    assert legacy["mappings"] == {**mappings, "properties": {k: v for k, v in mappings["properties"].items()
                                                            if k != "tags"}}


# -- over HTTP: requests and answers ------------------------------------------

def test_search_sends_json_with_auth_and_reads_hits(cluster):
    sources = [
        {"@timestamp": "2026-11-21T10:00:02.000Z", "message": "boom two", "build_name": "grenade"},
        {"@timestamp": "2026-11-21T10:00:01.000Z", "message": "boom one", "build_name": "grenade"},
    ]
    cluster.on("POST", r"/[^/]+/_search", (200, search_response(
        [hit(day(-1), str(i), s, millis(TEN)) for i, s in enumerate(sources)], total=2)))
    backend = backend_for(cluster, username="er", password="s3cret")
    before = dt.datetime.now(UTC)
    result = backend.search("message:boom", TimeWindow.last_days(2), size=2)
    after = dt.datetime.now(UTC)  # the search named today's index by its own clock, in between
    assert result.total == 2
    assert [h.source["message"] for h in result.hits] == ["boom two", "boom one"]
    assert result.hits[0].timestamp == dt.datetime(2026, 11, 21, 10, 0, 2, tzinfo=UTC)
    (request,) = cluster.seen("POST", r"/[^/]+/_search")
    assert request.path in {f"/{day(-1)},{moment:logstash-%Y.%m.%d}/_search" for moment in (before, after)}
    assert request.params == {"ignore_unavailable": "true", "allow_no_indices": "true"}
    assert request.headers["content-type"] == "application/json"
    assert "compatible-with" not in request.headers.get("accept", "")  # OpenSearch and ES 7 refuse it
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"er:s3cret").decode()
    assert request.json["query"]["bool"]["must"][0]["query_string"]["query"] == "message:boom"


def test_an_api_key_is_sent_encoded(cluster):
    cluster.on("POST", r"/.*/_count", (200, {"count": 3, "_shards": shards()}))
    assert backend_for(cluster, api_key="VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw").count("boom") == 3
    (request,) = cluster.seen("POST", r"/.*/_count")
    assert request.headers["authorization"] == "ApiKey " + base64.b64encode(
        b"VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw").decode()


def test_classifying_a_build_is_one_msearch_round_trip(cluster, caplog):
    def answer(request):
        lines = request.lines
        assert len(lines) == 6
        return 200, {"took": 3, "responses": [
            search_response([], total=1, status=200),
            search_response([], total=0, status=200),
            {**error_body(400, "query_shard_exception", "Failed to parse query [message:/[/]"), "status": 400},
        ]}

    cluster.on("POST", "/_msearch", answer)
    backend = backend_for(cluster)
    with caplog.at_level(logging.ERROR):
        assert backend.match_build("6d1b2f0c", ["message:boom", "message:nothing", "message:/[/"]) == \
            [True, False, False]
    assert len(cluster.seen("POST", "/_msearch")) == 1
    (request,) = cluster.seen("POST", "/_msearch")
    assert request.headers["content-type"] == "application/x-ndjson"
    assert "message:/[/" in caplog.text and "query_shard_exception" in caplog.text  # skipped, named


def test_only_the_searches_the_cluster_rejected_are_sent_again(cluster):
    cluster.on("POST", "/_msearch",
               (200, {"responses": [search_response([], total=1, status=200), {**REJECTED, "status": 429}]}),
               (200, {"responses": [search_response([], total=1, status=200)]}))
    sleeps: list[float] = []
    assert backend_for(cluster, sleeps=sleeps).match_build("b", ["message:one", "message:two"]) == [True, True]
    first, second = cluster.seen("POST", "/_msearch")
    assert len(first.lines) == 4 and len(second.lines) == 2
    assert second.lines[1]["query"]["bool"]["must"][0]["query_string"]["query"] == "message:two"
    assert sleeps == [0.5]


def test_429_and_503_are_retried_with_growing_pauses(cluster):
    cluster.on("POST", r"/.*/_count", (429, REJECTED), (503, UNAVAILABLE), (200, {"count": 7, "_shards": shards()}))
    sleeps: list[float] = []
    assert backend_for(cluster, sleeps=sleeps).count("boom") == 7
    assert len(cluster.seen("POST", r"/.*/_count")) == 3
    assert sleeps == [0.5, 1.0]


def test_overload_that_persists_is_an_error_naming_the_cause(cluster):
    cluster.on("POST", r"/.*/_count", (429, REJECTED))
    sleeps: list[float] = []
    with pytest.raises(BackendError, match="HTTP 429: es_rejected_execution_exception"):
        backend_for(cluster, sleeps=sleeps, retries=2).count("boom")
    assert len(cluster.seen("POST", r"/.*/_count")) == 3 and sleeps == [0.5, 1.0]


def test_an_unreachable_cluster_is_one_clear_error_without_secrets():
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    settings = ClusterSettings(urls=(f"http://127.0.0.1:{port}",), retries=1, retry_backoff=0.01,
                               username="er", password="hunter2", api_key="")
    backend = ClusterBackend(settings, "elasticsearch")
    with pytest.raises(BackendError) as caught:
        backend.count("boom")
    message = str(caught.value)
    assert f"Elasticsearch at http://127.0.0.1:{port}: unreachable" in message
    assert "hunter2" not in message and "\n" not in message


def test_a_request_that_times_out_is_retried_then_reported():
    with RecordedCluster(indices=[], delay=0.6) as slow:
        slow.on("POST", r"/.*/_count", (200, {"count": 1, "_shards": shards()}))
        backend = backend_for(slow, request_timeout=0.2, retries=1, retry_backoff=0.01)
        with pytest.raises(BackendError, match=r"timed out after 0.2s \(1 retries\)"):
            backend.count("boom")
        assert len(slow.seen("POST", r"/.*/_count")) == 2


def test_shard_failures_are_errors_not_silently_partial_results(cluster):
    cluster.on("POST", r"/.*/_search", (200, search_response([], total=0, _shards=shards(5, 1))))
    with pytest.raises(BackendError, match=r"1 of 5 shards failed .*circuit_breaking_exception"):
        backend_for(cluster).search("boom")


def test_a_shard_failure_cannot_hide_a_match_but_can_hide_a_miss(cluster):
    cluster.on("POST", "/_msearch",
               (200, {"responses": [search_response([], total=1, _shards=shards(5, 1), status=200)]}),
               (200, {"responses": [search_response([], total=0, _shards=shards(5, 1), status=200)]}))
    backend = backend_for(cluster)
    assert backend.match_build("b", ["message:boom"]) == [True]
    with pytest.raises(BackendError, match="a match could be missed"):
        backend.match_build("b", ["message:boom"])


def test_a_query_the_cluster_refuses_is_a_query_error(cluster):
    cluster.on("POST", r"/.*/_search", (400, error_body(
        400, "search_phase_execution_exception", "all shards failed",
        caused_by={"type": "query_shard_exception", "reason": "Failed to parse query [build_name:[a TO]"})))
    with pytest.raises(QuerySyntaxError, match="search_phase_execution_exception"):
        backend_for(cluster).search("build_name:[a TO]")


def test_more_than_10000_hits(cluster):
    total = 12_345

    def page(start: int) -> list[dict]:
        return [hit(day(-1), str(n), {"@timestamp": "2026-11-21T00:00:00Z", "message": f"line {n}"}, 0)
                for n in range(start, min(start + rq.PAGE, total))]

    state = {"next": rq.PAGE}

    def scroll(request):
        start = state["next"]
        state["next"] += rq.PAGE
        return 200, {"_scroll_id": "DXF1ZXJ5QW5kRmV0Y2gBAAAAAAAAAD4WYm9laVYtZndUQlNsdDcwakFMNjU1QQ==",
                     "took": 2, "timed_out": False, "_shards": shards(), "hits": {
                         "total": {"value": total, "relation": "eq"}, "hits": page(start)}}

    cluster.on("POST", r"/.*/_count", (200, {"count": total, "_shards": shards()}))
    cluster.on("POST", r"/logstash-\*/_search", lambda request: (200, search_response(
        page(0), total=total, _scroll_id="DXF1ZXJ5QW5kRmV0Y2gBAAAAAAAAAD4WYm9laVYtZndUQlNsdDcwakFMNjU1QQ==")))
    cluster.on("POST", "/_search/scroll", scroll)
    cluster.on("DELETE", "/_search/scroll", (200, {"succeeded": True, "num_freed": 1}))
    backend = backend_for(cluster)
    assert backend.count("*:*") == total
    messages = [h.source["message"] for h in backend.scan("*:*")]
    assert len(messages) == total and messages[-1] == f"line {total - 1}"
    (first,) = cluster.seen("POST", r"/logstash-\*/_search")
    assert first.params["scroll"] == "2m" and first.json["size"] == rq.PAGE
    assert len(cluster.seen("DELETE", "/_search/scroll")) == 1  # the scroll is cleared
    with pytest.raises(BackendError, match="past the first 10,000"):
        backend.search("*:*", size=10, offset=9_995)


@pytest.mark.skipif(not REALDATA.exists(), reason="the recorded production data is not beside the checkout")
def test_a_real_2014_search_response_is_read():
    recorded = json.loads(REALDATA.read_text())  # hits.total is a plain number there
    with RecordedCluster() as old_shape:
        old_shape.on("POST", r"/.*/_search", (200, recorded))
        result = backend_for(old_shape).search('message:"Looks like the node went offline"', size=10)
    assert result.total == 353
    assert all(h.timestamp is not None and h.source["filename"] == "console.html" for h in result.hits)


def test_aggregations_are_read_into_the_contract_shapes(cluster):
    cluster.on("POST", r"/.*/_search", lambda request: (200, search_response([], total=9, aggregations={
        "f0": {"doc_count_error_upper_bound": 0, "sum_other_doc_count": 0,
               "buckets": [{"key": "grenade", "doc_count": 6}, {"key": "tempest-full", "doc_count": 3}]},
        "f1": {"doc_count_error_upper_bound": 0, "sum_other_doc_count": 0,
               "buckets": [{"key": "job-output.txt console", "doc_count": 9}]},
    } if "f0" in request.json["aggs"] else {
        "b": {"after_key": {"build": "b1"}, "buckets": [
            {"key": {"build": "b1"}, "doc_count": 6, "newest": {"hits": {"total": {"value": 6, "relation": "eq"},
             "max_score": None, "hits": [hit(day(-1), "x", {
                 "@timestamp": "2026-11-21T10:00:00.000Z", "build_status": "FAILURE", "build_name": "grenade",
                 "build_queue": "gate", "voting": "1", "log_url": "https://logs.example.org/b1/job-output.txt",
             }, 0)]}}},
        ]},
    } if "b" in request.json["aggs"] else {
        "h": {"buckets": [{"key_as_string": "2026-11-21T10:00:00.000Z", "key": millis(TEN), "doc_count": 4},
                          {"key_as_string": "2026-11-21T11:00:00.000Z", "key": millis(TEN) + 3_600_000, "doc_count": 0}]},
    })))
    backend = backend_for(cluster)
    assert backend.facets("boom", ALL_TIME, ["build_name", "tags"], size=5) == {
        "build_name": [("grenade", 6), ("tempest-full", 3)], "tags": [("job-output.txt console", 9)]}
    (build,) = backend.builds("boom")
    assert (build.build_uuid, build.build_status, build.build_name, build.voting, build.hits) == \
        ("b1", "FAILURE", "grenade", "1", 6)
    assert build.last_hit == dt.datetime(2026, 11, 21, 10, tzinfo=UTC)
    assert backend.histogram("boom", ALL_TIME, dt.timedelta(hours=1)) == {
        "": [(dt.datetime(2026, 11, 21, 10, tzinfo=UTC), 4)]}


def test_builds_are_paged_however_many_there_are_then_ranked_by_hits(cluster):
    def page(request):
        after = request.json["aggs"]["b"]["composite"].get("after")
        first = 0 if after is None else int(after["build"][1:]) + 1
        numbers = range(first, min(first + 1000, 1005))
        return 200, search_response([], total=10**6, aggregations={"b": {
            **({"after_key": {"build": f"b{numbers[-1]:04}"}} if numbers else {}),
            "buckets": [{"key": {"build": f"b{n:04}"}, "doc_count": 1 + n % 7,
                         "newest": {"hits": {"hits": []}}} for n in numbers]}})

    cluster.on("POST", r"/.*/_search", page)
    builds = backend_for(cluster).builds("*:*")
    assert len(builds) == 1005 and len(cluster.seen("POST", r"/.*/_search")) == 2
    assert [(b.build_uuid, b.hits) for b in builds[:3]] == [("b0006", 7), ("b0013", 7), ("b0020", 7)]
    assert [b.hits for b in builds] == sorted((b.hits for b in builds), reverse=True)


def test_health_and_newest_timestamp_for_the_dashboard_header(cluster):
    cluster.on("POST", f"/{day(-1)}/_search", (200, search_response([], total=0, aggregations={
        "newest": {"value": float(millis(TEN)), "value_as_string": "2026-11-21T10:00:00.000Z"}})))
    backend = backend_for(cluster)
    assert backend.newest_timestamp() == dt.datetime(2026, 11, 21, 10, tzinfo=UTC)
    health = backend.health()
    assert health["status"] == "yellow" and health["version"] == "Elasticsearch 8.15.0"
    assert health["nodes"] == 3 and health["url"] == cluster.url


def test_the_server_must_be_the_product_configured(caplog):
    with RecordedCluster(product="opensearch", version="2.11.1") as opensearch:
        with pytest.raises(BackendError, match="the server is OpenSearch 2.11.1; set backend: opensearch"):
            backend_for(opensearch, "elasticsearch").health()
        assert backend_for(opensearch, "opensearch").health()["version"] == "OpenSearch 2.11.1"
    with RecordedCluster(product="opensearch", version="3.0.0") as opensearch3:  # 3.x is supported
        with caplog.at_level(logging.WARNING):
            assert backend_for(opensearch3, "opensearch").health()["version"] == "OpenSearch 3.0.0"
        assert "newer than the versions tested" not in caplog.text
    with RecordedCluster(version="6.8.23") as old:
        with pytest.raises(BackendError, match=r"Elasticsearch 6.8.23 is not supported \(Elasticsearch 7.x-9.x"):
            backend_for(old).health()


def test_histograms_use_interval_before_elasticsearch_7_2():
    with RecordedCluster(version="7.4.2") as es7:
        es7.on("POST", r"/.*/_search", (200, search_response([], aggregations={"h": {"buckets": []}})))
        backend_for(es7).histogram("boom", ALL_TIME, dt.timedelta(hours=1))
        (request,) = es7.seen("POST", r"/.*/_search")
        assert "fixed_interval" in request.json["aggs"]["h"]["date_histogram"]  # 7.2 and later


# -- ingest through the bulk API ------------------------------------------------

def _bulk_answer(request, statuses):
    actions = request.lines[::2]
    items = []
    for action, status in zip(actions, statuses(len(actions))):
        meta = {"_index": action["index"]["_index"], "_id": action["index"]["_id"], "status": status}
        if status == 429:
            meta["error"] = REJECTED["error"]["root_cause"][0]
        elif status >= 400:
            meta["error"] = {"type": "document_parsing_exception",
                             "reason": "[1:52] failed to parse field [build_change] of type [long]"}
        else:
            meta.update(result="created", _version=1, _seq_no=0, _primary_term=1)
        items.append({"index": meta})
    return 200, {"took": 30, "errors": any(s >= 300 for s in statuses(len(actions))), "items": items}


def _context(writer, **fields):
    return writer.context({"build_uuid": "b1", "build_name": "grenade", "filename": "job-output.txt",
                           "tags": ["job-output.txt", "console"], **fields})


def test_ingest_installs_the_template_deletes_the_old_build_then_bulk_writes_day_indices(cluster):
    cluster.on("PUT", "/_index_template/elastic-recheck", (200, {"acknowledged": True}))
    cluster.on("POST", r"/.*/_delete_by_query", (200, {"took": 5, "deleted": 2, "failures": []}))
    cluster.on("POST", "/_bulk", lambda request: _bulk_answer(request, lambda n: [201] * n))
    cluster.on("POST", r"/.*/_refresh", (200, {"_shards": shards()}))
    backend = backend_for(cluster, bulk_documents=2)
    with backend.writer() as writer:
        writer.replace_build("b1")
        context = _context(writer)
        for n, moment in enumerate([dt.datetime(2026, 11, 20, 23, 59, tzinfo=UTC),
                                    dt.datetime(2026, 11, 21, 0, 1, tzinfo=UTC),
                                    dt.datetime(2026, 11, 21, 0, 2, tzinfo=UTC)]):
            writer.add_line(context, epoch_micros(moment), f"line {n}")
    order = [(r.method, r.path) for r in cluster.requests if r.path != "/"]
    assert order[0] == ("PUT", "/_index_template/elastic-recheck")
    assert order[1] == ("POST", "/logstash-*/_delete_by_query")
    assert order[2:] == [("POST", "/_bulk"), ("POST", "/_bulk"),
                         ("POST", "/logstash-2026.11.20,logstash-2026.11.21/_refresh")]
    delete = cluster.seen("POST", r"/.*/_delete_by_query")[0]
    assert delete.json == {"query": {"bool": {"filter": [{"match_phrase": {"build_uuid": "b1"}}]}}}
    assert delete.params["conflicts"] == "proceed"
    first, second = cluster.seen("POST", "/_bulk")
    assert first.headers["content-type"] == "application/x-ndjson"
    actions = first.lines[::2] + second.lines[::2]
    assert [a["index"]["_index"] for a in actions] == ["logstash-2026.11.20", "logstash-2026.11.21",
                                                      "logstash-2026.11.21"]
    assert first.lines[1] == {"build_uuid": "b1", "build_name": "grenade", "filename": "job-output.txt",
                              "tags": ["job-output.txt", "console"], "@timestamp": "2026-11-20T23:59:00.000Z",
                              "message": "line 0"}
    template = cluster.seen("PUT", "/_index_template/elastic-recheck")[0].json
    assert template["index_patterns"] == ["logstash-*"]


def test_bulk_ids_are_stable_so_a_resent_batch_overwrites_instead_of_duplicating(cluster):
    cluster.on("POST", "/_bulk", lambda request: _bulk_answer(request, lambda n: [201] * n))
    backend = backend_for(cluster, manage_template=False)
    for _ in range(2):
        with backend.writer() as writer:
            writer.add({"message": "same line", "build_uuid": "b1"}, dt.datetime(2026, 11, 21, tzinfo=UTC))
            writer.add({"message": "same line", "build_uuid": "b1"}, dt.datetime(2026, 11, 21, tzinfo=UTC))
    first, second = cluster.seen("POST", "/_bulk")
    ids = [a["index"]["_id"] for a in first.lines[::2]]
    assert len(set(ids)) == 2  # two identical lines stay two documents
    assert ids == [a["index"]["_id"] for a in second.lines[::2]]
    assert not cluster.seen("PUT", r"/_index_template/.*")  # manage_template: false


def test_partial_bulk_failures_are_retried_and_reported_if_they_persist(cluster):
    # First answer: 1 ok, 2 rejected (429), 3 refused (400). Then the 429 one succeeds.
    cluster.on("POST", "/_bulk", lambda request: _bulk_answer(request, lambda n: [201, 429, 400]),
               lambda request: _bulk_answer(request, lambda n: [201] * n))
    cluster.on("PUT", r"/_index_template/.*", (200, {"acknowledged": True}))
    sleeps: list[float] = []
    backend = backend_for(cluster, sleeps=sleeps)
    writer = backend.writer()
    context = _context(writer)
    for n in range(3):
        writer.add_line(context, epoch_micros(dt.datetime(2026, 11, 21, 0, n, tzinfo=UTC)), f"line {n}")
    with pytest.raises(BackendError, match=r"refused 1 of the documents \(the others were indexed\): "
                                           r"logstash-2026.11.21/.*document_parsing_exception"):
        writer.commit()
    first, second = cluster.seen("POST", "/_bulk")
    assert len(first.lines) == 6 and [line.get("message") for line in second.lines[1::2]] == ["line 1"]
    assert sleeps == [0.5]


def test_a_legacy_template_for_elasticsearch_before_7_8():
    with RecordedCluster(version="7.4.2") as es7:
        es7.on("PUT", r"/_template/elastic-recheck", (200, {"acknowledged": True}))
        with backend_for(es7).writer():
            pass
        (put,) = es7.seen("PUT", r"/_template/elastic-recheck")
        assert put.json["order"] == 200 and "properties" in put.json["mappings"]


# -- configuration ---------------------------------------------------------------

def test_the_backend_is_chosen_in_the_config_file_or_environment(tmp_path):
    config = tmp_path / "er.yaml"
    config.write_text("backend: opensearch\ncluster:\n  urls: [https://os1:9200, https://os2:9200]\n"
                      "  index_pattern: ci-%Y.%m.%d\n")
    settings = load_settings(str(config), env={})
    assert settings.backend == "opensearch" and settings.cluster.urls == ("https://os1:9200", "https://os2:9200")
    backend = open_backend(settings)
    assert backend.name == "opensearch" and backend.days.wildcard == "ci-*"
    from_env = load_settings(None, env={"ER_BACKEND": "elasticsearch", "ER_CLUSTER_URLS": "http://a:9200,http://b:9200",
                                        "ER_CLUSTER_API_KEY": "k", "HOME": str(tmp_path)})
    assert from_env.backend == "elasticsearch" and from_env.cluster.urls == ("http://a:9200", "http://b:9200")
    assert "api_key" not in repr(from_env.cluster) or "'k'" not in repr(from_env.cluster)
    with pytest.raises(ConfigError, match="not in the URL"):
        open_backend(load_settings(None, env={"ER_BACKEND": "elasticsearch",
                                              "ER_CLUSTER_URLS": "https://er:pw@es:9200", "HOME": str(tmp_path)}))
    with pytest.raises(ConfigError, match="backend 'solr' is not available"):
        load_settings(None, env={"ER_BACKEND": "solr", "HOME": str(tmp_path)})


# -- the command line on a cluster ------------------------------------------------

def _cli(*args, env: dict[str, str], stdin: str | None = None, timeout: float = 60):
    """elastic-recheck as a user runs it, with ``env`` added to the environment."""
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "elastic_recheck", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=timeout, cwd=ROOT, input=stdin)


def _on_cluster(url: str, data_dir: Path) -> dict[str, str]:
    return {"ER_DATA_DIR": str(data_dir), "ER_BACKEND": "elasticsearch", "ER_CLUSTER_URLS": url,
            "ER_CLUSTER_RETRIES": "0"}


def test_er_query_on_a_cluster_is_the_same_command(cluster, tmp_path):
    def aggregations(request):
        aggs = request.json.get("aggs", {})
        if "b" in aggs:
            return 200, search_response([], total=2, aggregations={"b": {"after_key": {"build": "b1"}, "buckets": [
                {"key": {"build": "b1"}, "doc_count": 2, "newest": {"hits": {"hits": [hit(day(-1), "x", {
                    "@timestamp": "2026-11-21T10:00:00Z", "build_status": "SUCCESS"}, 0)]}}}]}})
        answers = {}
        for key, spec in aggs.items():
            field = spec["terms"].get("field") or spec["terms"]["script"]["params"]["field"]
            answers[key] = {"sum_other_doc_count": 0, "buckets": [{"key": field.split(".")[0] + "-x", "doc_count": 2}]}
        return 200, search_response([], total=2, aggregations=answers)

    cluster.on("POST", r"/.*/_count", (200, {"count": 2, "_shards": shards()}))
    cluster.on("GET", r"/.*/_mapping", (200, {day(-1): {"mappings": {"properties": {
        "@timestamp": {"type": "date"}, "message": {"type": "text"},
        "build_name": {"type": "text", "fields": {"keyword": {"type": "keyword"}}},
        "build_uuid": {"type": "text", "fields": {"keyword": {"type": "keyword"}}},
        "tags": {"type": "text", "fields": {"keyword": {"type": "keyword"}}},
    }}}}))
    cluster.on("POST", r"/.*/_search", aggregations)
    result = _cli("query", "-e", 'message:"boom"', env=_on_cluster(cluster.url, tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "total hits: 2", "build_name", "  100% build_name-x", "tags", "  100% tags-x",
        "builds matched: 1, of which succeeded: 1",
        "WARNING: 100% of the matched builds succeeded: the fingerprint also matches healthy runs and is not "
        "specific enough",
        "backtest over the last 10 days (totals from the index):",  # no stored results: b1 is the window's one build
        "  failed builds matched: 0 of 0 (0%)",
        "  successful builds matched: 1 of 1 (100%)",
        "  share of the matched builds that succeeded: 100% (above lint --backtest's default 10%)",
    ]


def test_a_cluster_that_is_down_is_one_line_and_a_non_zero_exit(tmp_path):
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    result = _cli("query", "-e", "boom", env=_on_cluster(f"http://127.0.0.1:{port}", tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: Elasticsearch at http://127.0.0.1:{port}: unreachable: " + result.stderr.split("unreachable: ")[1].strip()]


def test_moving_from_the_embedded_index_to_a_cluster_and_back(cluster, tmp_path):
    """docs/backends.md: export with er-query --json, load with ingest --docs."""
    embedded = {"ER_DATA_DIR": str(tmp_path / "embedded"), "ER_BACKEND": "embedded"}

    def run(*args, env, stdin=None):
        result = _cli(*args, env=env, stdin=stdin, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout

    build = sorted((ROOT / "examples" / "builds").iterdir())[0]
    run("ingest", "--logs", str(build), "--metadata", str(build / "build.json"), env=embedded)
    exported = run("query", "--json", "--days", "0", "-e", "*:*", env=embedded)
    documents = [json.loads(line) for line in exported.splitlines()]
    assert documents and all("@timestamp" in d and "build_uuid" in d and "filename" in d for d in documents)

    cluster.on("PUT", r"/_index_template/.*", (200, {"acknowledged": True}))
    cluster.on("POST", "/_bulk", lambda request: _bulk_answer(request, lambda n: [201] * n))
    to_cluster = {"ER_DATA_DIR": str(tmp_path / "state"), "ER_BACKEND": "elasticsearch", "ER_CLUSTER_URLS": cluster.url}
    run("ingest", "--docs", "-", env=to_cluster, stdin=exported)
    sent = [line for request in cluster.seen("POST", "/_bulk") for line in request.lines[1::2]]
    assert sorted(map(json.dumps, sent)) == sorted(map(json.dumps, (
        {**d, "@timestamp": d["@timestamp"][:23] + "Z"} for d in documents)))  # milliseconds, as a cluster keeps

    back = {"ER_DATA_DIR": str(tmp_path / "back"), "ER_BACKEND": "embedded"}
    run("ingest", "--docs", "-", env=back, stdin="\n".join(json.dumps(d) for d in sent))
    assert run("query", "--days", "0", "-e", "*:*", env=back).splitlines()[0] == f"total hits: {len(documents)}"


def test_the_watch_daemon_on_a_cluster(cluster, tmp_path):
    """The real-time path unchanged on a cluster: readiness from a files
    aggregation, failed tests from a scroll, every fingerprint in one _msearch."""
    import io

    from elastic_recheck.config import Settings
    from elastic_recheck.reporting import PrintingReviewer
    from elastic_recheck.state import StateDB
    from elastic_recheck.watch import Daemon, FingerprintSet

    from .test_watch import failure

    uuid = "6d1b2f0c9f1e4c3a8e0b6a3f9a1c2d3e"

    def searches(request):
        if "aggs" in request.json:  # which files of the build are indexed
            return 200, search_response([], total=9, aggregations={"f": {"sum_other_doc_count": 0, "buckets": [
                {"key": "job-output.txt", "doc_count": 5}, {"key": "logs/screen-n-cpu.txt", "doc_count": 4}]}})
        return 200, search_response([hit(day(-1), "t", {  # the console's FAILED lines, through a scroll
            "@timestamp": "2026-11-21T10:42:10.000Z", "message": "{0} tempest.api.compute.servers.test_servers."
            "ServersTest.test_update_server_name [312.41s] ... FAILED"}, 0)], total=1)

    def msearch(request):
        queries = [line["query"]["bool"]["must"][0]["query_string"]["query"] for line in request.lines[1::2]]
        assert all(line["query"]["bool"]["filter"][0] == {"match_phrase": {"build_uuid": uuid}}
                   for line in request.lines[1::2])
        return 200, {"responses": [search_response([], total=int("Timed out waiting" in q or "failed to build" in q),
                                                   status=200) for q in queries]}

    cluster.on("POST", r"/.*/_search", searches)
    cluster.on("POST", "/_msearch", msearch)
    out = io.StringIO()
    settings = Settings(data_dir=tmp_path, backend="elasticsearch", cluster=ClusterSettings(urls=(cluster.url,)))
    state = StateDB(settings.state_db)
    daemon = Daemon(settings, open_backend(settings), state, PrintingReviewer(out),
                    FingerprintSet(ROOT / "queries"))
    daemon.accept(failure(864201, 3, [("tempest-full", "https://zuul.example.org/t/main/build/" + uuid, "FAILURE")]))
    daemon.process_due()
    state.close()
    assert out.getvalue().startswith("review 864201,3:\n")
    assert "bugs/2000001" in out.getvalue() and "bugs/2000004" in out.getvalue()
    assert len(cluster.seen("POST", "/_msearch")) == 1
    (msearch_request,) = cluster.seen("POST", "/_msearch")
    assert len(msearch_request.lines) == 2 * 4  # every fingerprint: suppress-notification ones explain builds too
