"""The backtest: what a fingerprint matches over a window of builds, failed and
successful, and the gate ``lint --backtest`` puts on it.

The builds are written as a log server holds them and indexed through the
project's own path (``index_builds``: indexed, classified, results stored),
in a data directory the command line reads too.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from elastic_recheck.backtest import (
    FROM_INDEX, FROM_STORED_RESULTS, TOTALS_QUERY, Backtest, backtest, backtest_fingerprint, backtest_fingerprints,
    backtest_many, build_totals, percent, summary, verdict,
)
from elastic_recheck.builds import FAILED_STATUSES
from elastic_recheck.fingerprints import load_fingerprint
from elastic_recheck.ingest import ingest_documents
from elastic_recheck.ingest.sources import BuildMetadata
from elastic_recheck.pipeline import LogsReady, index_builds
from elastic_recheck.results import ResultStore
from elastic_recheck.search import ALL_TIME, TimeWindow
from elastic_recheck.search.embedded import EmbeddedBackend

from .cluster_server import RecordedCluster, error_body, search_response, shards
from .test_pipeline import write_build as write_logs

UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC).replace(microsecond=0)
ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = "MessagingTimeout: Timed out waiting for a reply to message ID 4f3e"
MIRROR = "E: Hash Sum mismatch"
TEN_DAYS = TimeWindow.last_days(10)

# uuid prefix -> (status, voting, age in days, console lines, service log lines, failed tests)
BUILDS = {
    "f1": ("FAILURE", "1", 1, ["Running tempest"], [TIMEOUT], ["tempest.api.compute.test_a.T.test_x"]),
    "f2": ("FAILURE", "1", 2, ["Running tempest"], [TIMEOUT], ["tempest.api.compute.test_b.T.test_y"]),
    "f3": ("TIMED_OUT", "1", 3, ["Running tempest"], [TIMEOUT], []),
    "f4": ("POST_FAILURE", "1", 4, ["Running tempest", MIRROR], ["fine"], []),
    "n1": ("FAILURE", "0", 1, ["Running tempest"], [TIMEOUT], []),  # non-voting
    "x1": ("NODE_FAILURE", "1", 2, ["Running tempest"], ["fine"], []),  # neither failed nor succeeded
    **{f"s{i}": ("SUCCESS", "1", i, ["Running tempest", "all good"], ["fine"], []) for i in range(1, 7)},
    "o1": ("FAILURE", "1", 20, ["Running tempest"], [TIMEOUT], []),  # outside the last 10 days
    "o2": ("SUCCESS", "1", 21, ["Running tempest", "all good"], ["fine"], []),
}


def uuid(name: str) -> str:
    return (name * 16)[:32]


def write_build(root: Path, name: str) -> Path:
    status, _, age, console, cpu, tests = BUILDS[name]
    return write_logs(root, name, console, cpu, age_hours=age * 24, tests=tests)


def metadata(name: str) -> BuildMetadata:
    status, voting, *_ = BUILDS[name]
    return BuildMetadata(build_uuid=uuid(name), build_name="tempest-full", build_status=status, build_queue="gate",
                         project="openstack/nova", build_change="864201", build_patchset="3", voting=voting,
                         log_url=f"https://logs.example.org/{name}")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A data directory as ``ingest`` leaves it: the index and the stored results."""
    root = tmp_path_factory.mktemp("backtest")
    logs = root / "logs"
    items = [LogsReady(metadata(name), str(write_build(logs, name))) for name in BUILDS]
    backend = EmbeddedBackend(root / "data" / "index")
    report = index_builds(backend, root / "data" / "results.sqlite3", [], items)
    assert report.builds == len(BUILDS) and not report.errors
    backend.close()
    return root / "data"


@pytest.fixture
def backend(data_dir):
    backend = EmbeddedBackend(data_dir / "index")
    yield backend
    backend.close()


@pytest.fixture
def results(data_dir):
    store = ResultStore(data_dir / "results.sqlite3")
    yield store
    store.close()


def fingerprint(directory: Path, name: str, body: str):
    directory.mkdir(exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(body)
    return load_fingerprint(path)


PRECISE = 'query: message:"Timed out waiting for a reply" AND tags:"screen-n-cpu.txt"\n'
BROAD = 'query: message:"Running tempest" AND tags:console\n'
NOTHING = 'query: message:"never printed by anything" AND tags:console\n'


# -- which builds count as what -------------------------------------------------------------

def test_success_is_a_success_the_failed_statuses_are_failures_and_the_rest_is_neither():
    assert verdict("SUCCESS") is True
    assert all(verdict(status) is False for status in FAILED_STATUSES)
    assert {verdict(status) for status in ("NODE_FAILURE", "SKIPPED", "ABORTED", "", "success")} == {None}


# -- the gate ---------------------------------------------------------------------------------

def test_a_fingerprint_that_hits_only_failed_builds_passes_the_gate(backend, results, tmp_path):
    found = backtest_fingerprint(backend, results, fingerprint(tmp_path, "1", PRECISE), TEN_DAYS)
    # f1-f3 (n1 is non-voting, o1 too old); 4 voting failures and 6 successes in the window.
    assert (found.failed_hits, found.failed_total, found.success_hits, found.success_total) == (3, 4, 0, 6)
    assert found.success_share == 0.0 and not found.exceeds(0.0) and not found.exceeds(0.1)
    assert found.failed_rate == 0.75 and found.voting_only and found.source == FROM_STORED_RESULTS
    assert summary(found) == ("3 of 4 failed voting builds (75%), 0 of 6 successful (0%); "
                              "0% of the 3 builds it matches succeeded")


def test_one_that_also_hits_successful_builds_fails_it(backend, results, tmp_path):
    found = backtest_fingerprint(backend, results, fingerprint(tmp_path, "2", BROAD), TEN_DAYS)
    assert (found.failed_hits, found.success_hits, found.other_hits, found.matched_builds) == (4, 6, 1, 11)
    assert found.success_share == pytest.approx(6 / 11) and found.success_rate == 1.0
    assert found.exceeds(0.1) and found.exceeds(0.5) and not found.exceeds(0.6)
    assert summary(found).endswith("1 neither failed nor succeeded; 54.5% of the 11 builds it matches succeeded")


def test_a_fingerprint_with_no_hits_is_reported_and_passes(backend, results, tmp_path):
    found = backtest_fingerprint(backend, results, fingerprint(tmp_path, "3", NOTHING), TEN_DAYS)
    assert found.matched_builds == 0 and found.success_share == 0.0 and not found.exceeds(0.0)
    assert summary(found) == "no hits (4 failed and 6 successful voting builds in the window)"


def test_non_voting_builds_count_only_for_a_fingerprint_that_allows_them(backend, results, tmp_path):
    allowing = fingerprint(tmp_path, "4", PRECISE + "allow-nonvoting: true\n")
    found = backtest_fingerprint(backend, results, allowing, TEN_DAYS)
    assert (found.failed_hits, found.failed_total, found.success_total) == (4, 5, 6) and not found.voting_only
    raw = backtest(backend, results, 'message:"Timed out waiting for a reply"', TEN_DAYS)  # a bare query: all builds
    assert (raw.failed_hits, raw.failed_total) == (4, 5)
    voting = backtest(backend, results, 'message:"Timed out waiting for a reply"', TEN_DAYS, voting_only=True)
    assert (voting.failed_hits, voting.failed_total) == (3, 4)  # n1 dropped from both


def test_test_ids_rule_out_builds_whose_stored_failed_tests_do_not_name_them(backend, results, tmp_path):
    narrowed = fingerprint(tmp_path, "5", PRECISE + "test_ids: [tempest.api.compute.test_a]\n")
    found = backtest_fingerprint(backend, results, narrowed, TEN_DAYS)
    # f1 failed that test; f2 failed another (ruled out, as the classifier rules it out); f3 reports none.
    assert found.failed_hits == 2


# -- the totals ---------------------------------------------------------------------------------

def test_totals_come_from_the_stored_results_and_agree_with_the_index(backend, results):
    stored = build_totals(backend, results, TEN_DAYS)
    indexed = build_totals(backend, None, TEN_DAYS)
    assert (stored.source, indexed.source) == (FROM_STORED_RESULTS, FROM_INDEX)
    assert dict(stored.counts) == dict(indexed.counts) == {(False, True): 4, (False, False): 1, (True, True): 6}
    assert stored.known == indexed.known and uuid("x1") not in stored.known  # NODE_FAILURE: in no total
    assert stored.total(False) == 5 and stored.total(False, voting_only=True) == 4


def test_stored_results_with_nothing_in_the_window_leave_the_totals_to_the_index(backend, tmp_path):
    empty = ResultStore(tmp_path / "results.sqlite3")
    try:
        assert build_totals(backend, empty, TEN_DAYS).source == FROM_INDEX
    finally:
        empty.close()


def test_a_matched_build_the_stored_results_do_not_know_is_added_to_the_totals(tmp_path):
    """Documents loaded with ``ingest --docs`` are indexed but no result is stored for them."""
    backend = EmbeddedBackend(tmp_path / "index")
    store = ResultStore(tmp_path / "results.sqlite3")
    try:
        index_builds(backend, tmp_path / "results.sqlite3", [],
                     [LogsReady(metadata("s1"), str(write_build(tmp_path / "logs", "s1")))])
        stamp = (NOW - dt.timedelta(hours=5)).isoformat()
        docs = [{"message": TIMEOUT, "@timestamp": stamp, "build_uuid": f"exported{i}", "build_status": status,
                 "voting": "1", "tags": ["screen-n-cpu.txt"]} for i, status in enumerate(["FAILURE", "SUCCESS"])]
        assert ingest_documents(backend, io.StringIO("\n".join(map(json.dumps, docs))), "export.ndjson").documents == 2
        found = backtest(backend, store, 'message:"Timed out waiting"', TEN_DAYS)
        assert found.source == FROM_STORED_RESULTS
        assert (found.failed_hits, found.failed_total, found.success_hits, found.success_total) == (1, 1, 1, 2)
    finally:
        store.close()
        backend.close()


def test_the_window_bounds_the_builds_and_the_totals(backend, results, tmp_path):
    precise = fingerprint(tmp_path, "6", PRECISE)
    ever = backtest_fingerprint(backend, results, precise, ALL_TIME)
    assert (ever.failed_hits, ever.failed_total, ever.success_total) == (4, 5, 7)  # o1 and o2 too
    before = TimeWindow(start=NOW - dt.timedelta(days=30), end=NOW - dt.timedelta(days=10))
    for store in (results, None):  # [start, end) on both sources: only o1 and o2
        old = backtest_fingerprint(backend, store, precise, before)
        assert (old.failed_hits, old.failed_total, old.success_hits, old.success_total) == (1, 1, 0, 1)
    assert old.window == before
    # the start is inclusive: a window starting at f3's newest line (its timeout) still holds f3
    newest = dt.datetime.fromtimestamp(results.build(uuid("f3")).newest / 1e6, UTC)
    assert backtest_fingerprint(backend, results, precise, TimeWindow(start=newest)).failed_hits == 3
    assert backtest_fingerprint(backend, results, precise,
                                TimeWindow(start=newest + dt.timedelta(seconds=1))).failed_hits == 2


def test_backtest_many_counts_the_totals_once(backend, results):
    class Counting:
        """The real backend, counting the build aggregations asked of it."""

        def __init__(self, inner):
            self.inner, self.asked = inner, []

        def builds(self, query, window=ALL_TIME):
            self.asked.append(query)
            return self.inner.builds(query, window)

    counting = Counting(backend)
    queries = ['message:"Timed out waiting for a reply"', 'message:"Hash Sum mismatch"', "message:tempest"]
    many = backtest_many(counting, None, queries, TEN_DAYS)
    assert counting.asked == [TOTALS_QUERY, *queries]
    assert many == [backtest(backend, None, query, TEN_DAYS) for query in queries]
    assert [b.failed_hits for b in many] == [4, 1, 5]
    with pytest.raises(ValueError, match="2 clusters for 3 queries"):
        backtest_many(backend, None, queries, TEN_DAYS, clusters=[(), ()])


# -- clusters (suggested fingerprints) ----------------------------------------------------------

def test_cluster_builds_are_counted_apart_from_other_failures(backend, results):
    cluster = {uuid("f1"), uuid("f2"), "a-build-it-does-not-match"}
    found = backtest(backend, results, 'message:"Timed out waiting for a reply"', TEN_DAYS, cluster)
    assert (found.cluster_hits, found.cluster_size, found.failed_hits) == (2, 3, 2)  # f3 and n1 are the others
    assert found.cluster_rate == pytest.approx(2 / 3) and found.matched_builds == 4
    as_json = found.as_json()
    assert {key: as_json[key] for key in ("cluster_hits", "failed_hits", "success_hits", "source")} == {
        "cluster_hits": 2, "failed_hits": 2, "success_hits": 0, "source": "stored results"}
    assert json.loads(json.dumps(as_json))["window"]["end"] is None


def test_a_successful_build_in_a_cluster_still_counts_as_a_success(backend, results):
    found = backtest(backend, results, "message:tempest", TEN_DAYS, {uuid("s1"), uuid("f1")})
    assert (found.cluster_hits, found.success_hits) == (1, 6)


def test_the_figures_of_no_builds_are_zero_not_an_error():
    empty = Backtest("q", TEN_DAYS, failed_total=0, success_total=0, failed_hits=0, success_hits=0)
    assert (empty.success_share, empty.success_rate, empty.cluster_rate, empty.failed_rate) == (0, 0, 0, 0)
    assert percent(0.0005) == "0.05%" and percent(1) == "100%" and percent(6 / 11) == "54.5%"


# -- the cluster backend ------------------------------------------------------------------------

CLUSTER_BUILDS = {"c-fail-1": ("FAILURE", "1"), "c-fail-2": ("TIMED_OUT", "1"), "c-pass-1": ("SUCCESS", "1"),
                  "c-pass-2": ("SUCCESS", "1"), "c-pass-3": ("SUCCESS", "0"), "c-node": ("NODE_FAILURE", "1")}
CLUSTER_MATCHES = {"message:boom": ["c-fail-1", "c-fail-2", "c-pass-1"], "message:rare": ["c-fail-1"]}


def _answer_builds(request):
    """Builds per query_string, as a composite aggregation of build ids answers."""
    query = request.json["query"]["bool"]["must"][0]["query_string"]["query"]
    if query.startswith("message:[a TO"):
        return 400, error_body(400, "search_phase_execution_exception", "all shards failed",
                               caused_by={"type": "query_shard_exception", "reason": "Failed to parse query"})
    if query == TOTALS_QUERY:
        names = list(CLUSTER_BUILDS)
    else:
        names = CLUSTER_MATCHES[query.split(" AND ")[0].strip("()")]
    buckets = [{"key": {"build": name}, "doc_count": 2, "newest": {"hits": {"hits": [{
        "_index": "logstash-x", "_id": name, "_source": {"@timestamp": NOW.isoformat(),
                                                         "build_status": CLUSTER_BUILDS[name][0],
                                                         "voting": CLUSTER_BUILDS[name][1]}}]}}} for name in names]
    return 200, search_response([], total=2 * len(names), aggregations={"b": {"buckets": buckets}})


def _recorded_cluster() -> RecordedCluster:
    day = NOW.strftime("logstash-%Y.%m.%d")
    server = RecordedCluster(indices=[day])
    server.on("POST", r"/.*/_search", _answer_builds)
    server.on("POST", r"/.*/_count", (200, {"count": 2, "_shards": shards()}))
    server.on("GET", r"/.*/_mapping", (200, {day: {"mappings": {"properties": {"message": {"type": "text"}}}}}))
    return server


def test_on_a_cluster_the_totals_are_one_aggregation_of_build_ids_by_status():
    from elastic_recheck.config import ClusterSettings
    from elastic_recheck.search.cluster import ClusterBackend

    with _recorded_cluster() as server:
        settings = ClusterSettings(urls=(server.url,), retries=0)
        many = backtest_many(ClusterBackend(settings, "elasticsearch"), None, ["message:boom", "message:rare"],
                             TEN_DAYS)
        searches = [r.json for r in server.seen("POST", r"/.*/_search")]
    assert [s["query"]["bool"]["must"][0]["query_string"]["query"] for s in searches] == [
        TOTALS_QUERY, "message:boom", "message:rare"]
    assert all("composite" in s["aggs"]["b"] and s["query"]["bool"]["filter"][0]["range"]["@timestamp"]["gte"]
               for s in searches)
    boom, rare = many
    assert (boom.source, boom.failed_hits, boom.failed_total, boom.success_hits, boom.success_total) == (
        FROM_INDEX, 2, 2, 1, 3)
    assert boom.success_share == pytest.approx(1 / 3) and rare.success_share == 0.0


def test_a_query_the_cluster_refuses_is_that_fingerprint_s_error_and_the_others_still_run(tmp_path):
    from elastic_recheck.config import ClusterSettings
    from elastic_recheck.search.cluster import ClusterBackend

    fingerprints = [fingerprint(tmp_path, "1", "query: message:[a TO b]\n"),
                    fingerprint(tmp_path, "2", "query: message:rare\n")]
    with _recorded_cluster() as server:
        backend = ClusterBackend(ClusterSettings(urls=(server.url,), retries=0), "elasticsearch")
        totals, done, errors = backtest_fingerprints(backend, None, fingerprints, TEN_DAYS)
    assert [item.fingerprint.bug for item in done] == ["2"] and done[0].backtest.failed_hits == 1
    (error,) = errors
    assert str(error).startswith(f"{tmp_path / '1.yaml'}:1: the search engine cannot run the query: ")
    assert "search_phase_execution_exception" in str(error) and "\n" not in str(error)


# -- the command line ---------------------------------------------------------------------------

def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "elastic_recheck", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=ROOT, timeout=120)


def queries_dir(tmp_path: Path, **bodies: str) -> Path:
    directory = tmp_path / "queries"
    directory.mkdir()
    for name, body in bodies.items():
        (directory / f"{name}.yaml").write_text(body)
    return directory


def test_lint_backtest_prints_each_fingerprint_s_figures_and_passes_when_none_hits_successes(data_dir, tmp_path):
    directory = queries_dir(tmp_path, **{"100001": PRECISE, "100002": NOTHING})
    result = run("lint", str(directory), "--backtest", env={"ER_DATA_DIR": str(data_dir)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:] == [
        "backtest over the last 10 days: 5 failed and 6 successful builds (totals from the stored results)",
        f"{directory / '100001.yaml'}: 3 of 4 failed voting builds (75%), 0 of 6 successful (0%); "
        "0% of the 3 builds it matches succeeded",
        f"{directory / '100002.yaml'}: no hits (4 failed and 6 successful voting builds in the window)",
        "backtest: 2 fingerprints, 0 over the allowed success share, 1 without hits, 0 errors",
    ]


def test_lint_backtest_fails_naming_the_file_that_matches_successful_builds(data_dir, tmp_path):
    directory = queries_dir(tmp_path, **{"100001": PRECISE, "100002": BROAD})
    env = {"ER_DATA_DIR": str(data_dir)}
    result = run("lint", str(directory), "--backtest", "--days", "0", env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: {directory / '100002.yaml'}: 53.8% of the 13 builds it matches succeeded (7), more than the 10% "
        "allowed (--max-success-share 0.1)"]
    assert "backtest over all time: 6 failed and 7 successful builds" in result.stdout
    allowed = run("lint", str(directory), "--backtest", "--days", "0", "--max-success-share", "0.6", env=env)
    assert allowed.returncode == 0 and allowed.stderr == ""


@pytest.mark.parametrize("args, why", [
    (["--backtest", "--days", "-1"], "-1 is not a number of days from 0 (all time)"),
    (["--backtest", "--max-success-share", "1.5"], "1.5 is not a share from 0 to 1"),
    (["--backtest", "--max-success-share", "nan"], "nan is not a share from 0 to 1"),
    (["--days", "3"], "--days and --max-success-share go with --backtest"),
])
def test_lint_backtest_refuses_bad_options_in_one_line(data_dir, tmp_path, args, why):
    result = run("lint", str(queries_dir(tmp_path, **{"1": PRECISE})), *args, env={"ER_DATA_DIR": str(data_dir)})
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith("Error: ") and why in result.stderr.splitlines()[-1]


def test_lint_backtest_without_builds_to_run_over_is_an_error_not_a_pass(data_dir, tmp_path):
    directory = queries_dir(tmp_path, **{"1": PRECISE})
    no_index = run("lint", str(directory), "--backtest", env={"ER_DATA_DIR": str(tmp_path / "empty")})
    assert no_index.returncode == 1
    assert no_index.stderr == (f"error: no index in {tmp_path / 'empty' / 'index'}: `elastic-recheck ingest` or "
                               "`watch` makes one (is --data-dir / ER_DATA_DIR right?)\n")
    assert not (tmp_path / "empty" / "index").exists()
    too_far_back = run("lint", str(directory), "--backtest", "--days", "0.001", env={"ER_DATA_DIR": str(data_dir)})
    assert too_far_back.returncode == 1
    assert too_far_back.stderr == ("error: no failed or successful builds in the last 0.001 days to backtest the "
                                   "fingerprints against (totals from the index)\n")


def test_er_query_shows_the_same_figures(data_dir, tmp_path):
    path = queries_dir(tmp_path, **{"100001": PRECISE}) / "100001.yaml"
    env = {"ER_DATA_DIR": str(data_dir)}
    out = run("query", str(path), env=env).stdout.splitlines()
    start = out.index("builds matched: 4, of which succeeded: 0")  # the query as written: n1 too
    assert out[start + 1:] == [
        "backtest over the last 10 days, voting jobs only as the classifier runs it (totals from the stored results):",
        "  failed builds matched: 3 of 4 (75%)",
        "  successful builds matched: 0 of 6 (0%)",
        "  share of the matched builds that succeeded: 0% (within lint --backtest's default 10%)",
    ]
    broad = run("query", "-e", "message:tempest", env=env).stdout.splitlines()
    assert broad[-5:] == [
        "backtest over the last 10 days (totals from the stored results):",
        "  failed builds matched: 5 of 5 (100%)",
        "  successful builds matched: 6 of 6 (100%)",
        "  other builds matched (neither failed nor succeeded): 1",
        "  share of the matched builds that succeeded: 50% (above lint --backtest's default 10%)",
    ]


def test_lint_backtest_on_a_cluster(tmp_path):
    directory = queries_dir(tmp_path, **{"100001": "query: message:boom\nallow-nonvoting: true\n",
                                         "100002": "query: message:rare\nallow-nonvoting: true\n"})
    with _recorded_cluster() as server:
        result = run("lint", str(directory), "--backtest", env={
            "ER_DATA_DIR": str(tmp_path / "data"), "ER_BACKEND": "elasticsearch", "ER_CLUSTER_URLS": server.url,
            "ER_CLUSTER_RETRIES": "0"})
    assert result.returncode == 1
    assert "backtest over the last 10 days: 2 failed and 3 successful builds (totals from the index)" in result.stdout
    assert result.stderr.splitlines()[-1] == (
        f"error: {directory / '100001.yaml'}: 33.3% of the 3 builds it matches succeeded (1), more than the 10% "
        "allowed (--max-success-share 0.1)")


def test_a_fingerprint_s_builds_are_those_its_voting_query_matches(backend, results, tmp_path):
    """The query runs as written and non-voting builds are dropped after: the same builds."""
    for name, body in (("7", PRECISE), ("8", BROAD), ("9", PRECISE + "allow-nonvoting: true\n")):
        fp = fingerprint(tmp_path, name, body)
        assert backtest_fingerprint(backend, results, fp, TEN_DAYS) == backtest(
            backend, results, fp.voting_query, TEN_DAYS, voting_only=not fp.allow_nonvoting)
