"""The backend contract, one suite for every backend.

It always runs against the embedded index, and against a live cluster when
one is named: ``ER_TEST_ES_URL`` (Elasticsearch 7.x-9.x) and/or
``ER_TEST_OPENSEARCH_URL`` (OpenSearch 1.x-3.x), with optional
``ER_TEST_ES_API_KEY`` / ``ER_TEST_OPENSEARCH_USER`` and ``..._PASSWORD``, and
``..._CA`` for a CA bundle. On a cluster the suite writes to indices of its
own (``er-contract-<random>-*``) and deletes them afterwards.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid

import pytest

from elastic_recheck.config import ClusterSettings
from elastic_recheck.search import ALL_TIME, TimeWindow, epoch_micros

UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC).replace(microsecond=0)
LIVE = {
    "elasticsearch": "ER_TEST_ES",
    "opensearch": "ER_TEST_OPENSEARCH",
}


def at(days: float, seconds: int = 0) -> dt.datetime:
    return NOW - dt.timedelta(days=days) + dt.timedelta(seconds=seconds)


BUILDS = {
    "a1a1a1a1": dict(build_name="grenade", build_queue="gate", build_status="FAILURE", voting="1",
                     project="openstack/nova", build_change="900001", build_patchset="2"),
    "b2b2b2b2": dict(build_name="tempest-full", build_queue="check", build_status="FAILURE", voting="0",
                     project="openstack/neutron", build_change="900002", build_patchset="1"),
    "c3c3c3c3": dict(build_name="tempest-full", build_queue="gate", build_status="SUCCESS", voting="1",
                     project="openstack/nova", build_change="900003", build_patchset="5"),
}
AGE = {"a1a1a1a1": 1, "b2b2b2b2": 3, "c3c3c3c3": 20}
TIMEOUT = "Timed out waiting for a reply to message ID 7d0c"


def write_build(writer, build_uuid: str, errors: int = 2) -> None:
    fields = {"build_uuid": build_uuid, "build_short_uuid": build_uuid[:7], **BUILDS[build_uuid]}
    base = AGE[build_uuid]
    console = writer.context({**fields, "filename": "job-output.txt", "tags": ["job-output.txt", "console"],
                              "log_url": f"https://logs.example.org/{build_uuid}/job-output.txt"})
    writer.add_line(console, epoch_micros(at(base, 0)), "Running tempest")
    writer.add_line(console, epoch_micros(at(base, 60)), f"Build {BUILDS[build_uuid]['build_status']}")
    cpu = writer.context({**fields, "filename": "logs/screen-n-cpu.txt", "loglevel": "ERROR",
                          "tags": ["screen-n-cpu.txt", "ERROR"],
                          "log_url": f"https://logs.example.org/{build_uuid}/logs/screen-n-cpu.txt"})
    for n in range(errors):
        writer.add_line(cpu, epoch_micros(at(base, 10 + n)), f"{TIMEOUT} (attempt {n})")


def _cluster_backend(product: str):
    from elastic_recheck.search.cluster import ClusterBackend

    prefix = LIVE[product]
    url = os.environ.get(f"{prefix}_URL")
    if not url:
        pytest.skip(f"no live {product}: set {prefix}_URL to run the contract against one")
    run = uuid.uuid4().hex[:8]
    settings = ClusterSettings(
        urls=tuple(url.split(",")), api_key=os.environ.get(f"{prefix}_API_KEY", ""),
        username=os.environ.get(f"{prefix}_USER", ""), password=os.environ.get(f"{prefix}_PASSWORD", ""),
        ca_certs=os.environ.get(f"{prefix}_CA", ""), index_pattern=f"er-contract-{run}-%Y.%m.%d",
        template_name=f"er-contract-{run}",
    )
    return ClusterBackend(settings, product)


def _drop_cluster_data(backend) -> None:
    connection = backend.connection
    connection.request("DELETE", f"/{backend.days.wildcard}", {"expand_wildcards": "open,closed"}, missing_ok=True)
    connection.request("DELETE", f"/_index_template/{backend.settings.template_name}", missing_ok=True)


@pytest.fixture(scope="module", params=["embedded", "elasticsearch", "opensearch"])
def backend(request, tmp_path_factory):
    if request.param == "embedded":
        from elastic_recheck.search.embedded import EmbeddedBackend

        backend = EmbeddedBackend(tmp_path_factory.mktemp("contract") / "index")
    else:
        backend = _cluster_backend(request.param)
    try:
        with backend.writer() as writer:
            for build_uuid in BUILDS:
                writer.replace_build(build_uuid)
                write_build(writer, build_uuid)
            writer.add({"message": "exported line", "build_uuid": "d4d4d4d4", "custom_field": "kept",
                        "tags": ["syslog.txt"]}, at(2))
        yield backend
    finally:
        if request.param != "embedded":
            _drop_cluster_data(backend)
        backend.close()


TEN_DAYS = TimeWindow.last_days(10)


def test_search_is_newest_first_with_an_exact_total(backend):
    result = backend.search(f'message:"{TIMEOUT}"', ALL_TIME, size=3)
    assert result.total == 6
    stamps = [h.timestamp for h in result.hits]
    assert stamps == sorted(stamps, reverse=True) and len(stamps) == 3
    assert stamps[0] == at(1, 11)
    second_page = backend.search(f'message:"{TIMEOUT}"', ALL_TIME, size=3, offset=3)
    assert [h.timestamp for h in second_page.hits] == [at(3, 10), at(20, 11), at(20, 10)]
    assert result.hits[0].source["build_name"] == "grenade" and "attempt 1" in result.hits[0].source["message"]


def test_the_time_window_selects_days(backend):
    assert backend.count(f'message:"{TIMEOUT}"', TEN_DAYS) == 4
    assert backend.count(f'message:"{TIMEOUT}"', TimeWindow(at(4), at(2))) == 2
    assert backend.count(f'message:"{TIMEOUT}"', ALL_TIME) == 6


@pytest.mark.parametrize("query, expected", [
    ('message:"timed out WAITING"', 6),  # analysed: case-insensitive phrase
    ('build_name:"tempest-full"', 8),  # job names are phrases
    ('message:"Timed out" AND NOT build_name:grenade', 4),
    ('build_queue:(gate OR check) AND build_status:FAILURE', 8),
    ('tags:"screen-n-cpu.txt" AND voting:1', 4),
    ('filename:"job-output.txt" AND message:tempest', 3),
    ("build_name:temp*", 8),
    ("_exists_:loglevel", 6),
    ("custom_field:kept", 1),
])
def test_queries_mean_the_same_on_every_backend(backend, query, expected):
    assert backend.count(query, ALL_TIME) == expected


def test_facets_count_exact_values(backend):
    facets = backend.facets("message:timed", ALL_TIME, ["build_name", "tags", "voting"], size=5)
    assert facets["build_name"] == [("tempest-full", 4), ("grenade", 2)]
    assert facets["tags"] == [("screen-n-cpu.txt ERROR", 6)]  # a list: its entries in stored order
    assert facets["voting"] == [("1", 4), ("0", 2)]


def test_histograms_count_per_bucket_and_split(backend):
    hourly = backend.histogram("message:timed", TEN_DAYS, dt.timedelta(hours=1))
    assert sum(n for _, n in hourly[""]) == 4
    split = backend.histogram("message:timed", TEN_DAYS, dt.timedelta(days=1), split_by="build_queue")
    assert {name: sum(n for _, n in series) for name, series in split.items()} == {"check": 2, "gate": 2}


def test_builds_with_hits_carry_what_the_dashboard_shows(backend):
    builds = backend.builds('message:"timed out" OR message:"Build"', ALL_TIME)
    assert [b.build_uuid for b in builds] == ["a1a1a1a1", "b2b2b2b2", "c3c3c3c3"]  # ties by id
    first = builds[0]
    assert (first.build_status, first.build_name, first.build_queue, first.voting, first.project) == \
        ("FAILURE", "grenade", "gate", "1", "openstack/nova")
    assert (first.build_change, first.build_patchset, first.hits) == ("900001", "2", 3)
    assert first.last_hit == at(1, 60)
    assert first.log_url == "https://logs.example.org/a1a1a1a1/job-output.txt"  # the newest hit's file


def test_one_build_against_many_fingerprints(backend):
    queries = [f'message:"{TIMEOUT}"', "message:nothing", f'message:"{TIMEOUT}" AND voting:0',
               'message:"Build FAILURE" AND build_name:grenade']
    assert backend.match_build("a1a1a1a1", queries) == [True, False, False, True]
    assert backend.match_build("b2b2b2b2", queries) == [True, False, True, False]
    assert backend.match_build("nope0000", queries) == [False] * 4


def test_classifying_build_after_build_answers_what_each_query_alone_would(backend):
    queries = [f'message:"{TIMEOUT}" AND NOT build_queue:gate', '(build_name:grenade OR voting:0) AND message:Build',
               f'message:"{TIMEOUT}" AND @timestamp:[now-2d TO now]', 'tags:console AND NOT message:SUCCESS',
               'loglevel:ERROR OR build_status:SUCCESS', "NOT message:tempest"]
    for build_uuid in ("a1a1a1a1", "b2b2b2b2", "c3c3c3c3", "a1a1a1a1"):
        alone = [backend.count(f'({q}) AND build_uuid:"{build_uuid}"') > 0 for q in queries]
        assert backend.match_build(build_uuid, queries) == alone, build_uuid


def test_a_builds_files_tell_whether_its_logs_are_indexed(backend):
    assert backend.build_files("a1a1a1a1") == {"job-output.txt": 2, "logs/screen-n-cpu.txt": 2}
    assert backend.build_files("nope0000") == {}


def test_scan_streams_every_hit_newest_first(backend):
    scanned = list(backend.scan("*:*", ALL_TIME))
    assert len(scanned) == backend.count("*:*", ALL_TIME) == 13
    assert [h.timestamp for h in scanned] == sorted((h.timestamp for h in scanned), reverse=True)


def test_header_facts_for_the_dashboard(backend):
    assert backend.newest_timestamp() == at(1, 60)
    health = backend.health()
    assert health["backend"] == backend.name and health["status"] in ("green", "yellow")
    assert {"build_name", "message", "@timestamp", "custom_field"} <= set(backend.field_names())


def test_reingesting_a_build_replaces_it(backend):
    with backend.writer() as writer:
        writer.replace_build("c3c3c3c3")
        write_build(writer, "c3c3c3c3", errors=1)
    assert backend.count('build_uuid:"c3c3c3c3"', ALL_TIME) == 3
    assert backend.build_files("c3c3c3c3") == {"job-output.txt": 2, "logs/screen-n-cpu.txt": 1}
    with backend.writer() as writer:  # back as the other tests expect it
        writer.replace_build("c3c3c3c3")
        write_build(writer, "c3c3c3c3")
    assert backend.count('build_uuid:"c3c3c3c3"', ALL_TIME) == 4


def test_in_an_ingest_session_each_batch_is_searchable_when_it_commits(backend):
    with backend.ingest_session():
        for errors in (1, 3):
            with backend.writer() as writer:
                writer.replace_build("c3c3c3c3")
                write_build(writer, "c3c3c3c3", errors=errors)
            assert backend.count('build_uuid:"c3c3c3c3"', ALL_TIME) == 2 + errors
        with backend.writer() as writer:  # back as the other tests expect it
            writer.replace_build("c3c3c3c3")
            write_build(writer, "c3c3c3c3")
    assert backend.count('build_uuid:"c3c3c3c3"', ALL_TIME) == 4


def test_the_pipeline_stores_what_the_backend_answers(backend, tmp_path):
    """A build through the one writer path: on the embedded index classified
    by the percolator as its lines are written, on a cluster by a batched
    query after the commit; either way the stored result is the backend's answer."""
    from elastic_recheck.fingerprints import load_fingerprints
    from elastic_recheck.ingest.sources import BuildMetadata
    from elastic_recheck.pipeline import LogsReady, index_builds
    from elastic_recheck.results import ResultStore

    logs = tmp_path / "e5e5e5e5"
    (logs / "logs").mkdir(parents=True)
    stamp = at(0.5).strftime("%Y-%m-%d %H:%M:%S.%f")
    (logs / "job-output.txt").write_text(f"{stamp} | Running tempest\n{stamp} | Job failed\n")
    (logs / "logs" / "screen-n-cpu.txt").write_text(
        f"{stamp} 1 ERROR nova.compute.manager [req-1] {TIMEOUT}\n{stamp} 1 INFO nova.compute.manager [-] fine\n")
    queries = tmp_path / "queries"
    queries.mkdir()
    (queries / "1.yaml").write_text('query: message:"Timed out waiting for a reply" AND tags:"screen-n-cpu.txt"\n')
    (queries / "2.yaml").write_text('query: message:"Running tempest" AND NOT tags:console\n')
    (queries / "3.yaml").write_text("query: message:Runn*\n")  # no percolator: the index answers it
    fingerprints, bad = load_fingerprints(queries)
    assert not bad
    meta = BuildMetadata(build_uuid="e5e5e5e5", build_name="tempest-full", build_status="FAILURE", voting="1")
    report = index_builds(backend, tmp_path / "results.sqlite3", fingerprints, [LogsReady(meta, str(logs))])
    assert report.builds == 1 and not report.errors
    stored = ResultStore(tmp_path / "results.sqlite3").build("e5e5e5e5")
    assert {m.bug: m.hits for m in stored.matches} == {"1": 1, "3": 1}
    for fp in fingerprints:
        assert backend.count(f'({fp.voting_query}) AND build_uuid:"e5e5e5e5"') == \
            {m.bug: m.hits for m in stored.matches}.get(fp.bug, 0)


def test_explain_and_suggest_read_the_same_from_every_backend(backend, tmp_path):
    """What is new in a failed build, the groups and the suggested
    fingerprint's backtest come from the backend's scan, count and builds:
    the same answers on the embedded index and on a cluster."""
    from elastic_recheck.explain import Explainer
    from elastic_recheck.fingerprints import load_fingerprints
    from elastic_recheck.ingest.sources import BuildMetadata
    from elastic_recheck.pipeline import LogsReady, index_builds
    from elastic_recheck.results import ResultStore
    from elastic_recheck.suggest import suggest_all

    stamp = at(0.2).strftime("%Y-%m-%d %H:%M:%S.%f")
    items = []
    for n, status in enumerate(["SUCCESS", "SUCCESS", "FAILURE", "FAILURE"]):
        uuid_ = f"f{n}" * 4
        logs = tmp_path / uuid_
        (logs / "logs").mkdir(parents=True)
        console = [f"Running tempest on node {n}", "Cleaning up"]
        if status == "FAILURE":
            console.append(f"Volume {n}a-{n}b failed to attach to instance 7{n}: device busy")
        (logs / "job-output.txt").write_text("".join(f"{stamp} | {line}\n" for line in console))
        meta = BuildMetadata(build_uuid=uuid_, build_name="tempest-full", build_status=status, voting="1",
                             build_change=f"91000{n}", build_patchset="1")
        items.append(LogsReady(meta, str(logs)))
    queries = tmp_path / "queries"
    queries.mkdir()
    fingerprints, _ = load_fingerprints(queries)
    index_builds(backend, tmp_path / "results.sqlite3", fingerprints, items)
    store = ResultStore(tmp_path / "results.sqlite3")
    found = Explainer(backend, store).explain("f2" * 4)
    assert found.baseline == ["f1" * 4, "f0" * 4] or sorted(found.baseline) == ["f0" * 4, "f1" * 4]
    assert [line.message.split(" | ", 1)[1] for line in found.lines] == \
        ["Volume 2a-2b failed to attach to instance 72: device busy"]
    run = suggest_all(backend, store, TimeWindow.last_days(1))
    (cluster, suggestion), = run.suggestions
    assert sorted(b.uuid for b in cluster.builds) == ["f2" * 4, "f3" * 4]
    assert suggestion.query == ('message:"failed to attach to instance" AND message:"device busy" '
                                'AND tags:"job-output.txt"')
    assert (suggestion.backtest.cluster_hits, suggestion.backtest.success_hits) == (2, 0) and suggestion.ready
