"""Hostile fingerprints. Whatever a fingerprint file holds, it is either run —
by classification and by the dashboard's per-build aggregation, on a real
index, without an error — or refused when it is loaded, with one line naming
the file and line: never a crash, never an exception of another kind, never
unbounded memory. ``lint`` refuses exactly what the engine would, with or
without an index."""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from elastic_recheck.classify import Classifier
from elastic_recheck.cli import cli
from elastic_recheck.config import DashboardSettings, Settings
from elastic_recheck.dashboard import gather
from elastic_recheck.dashboard.trends import collect, trends
from elastic_recheck.errors import BackendError, FingerprintError, QuerySyntaxError
from elastic_recheck.fingerprints import KNOWN_KEYS, Fingerprint, inspect_fingerprint, lint_warnings, load_fingerprints
from elastic_recheck.search import TimeWindow
from elastic_recheck.search.cluster import check_cluster_query
from elastic_recheck.search.embedded import EmbeddedBackend
from elastic_recheck.search.translate import QueryPlanner
from elastic_recheck.watch import FingerprintSet

from .test_watch import TEMPEST, ZUUL, _ingest, failure

UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC).replace(microsecond=0)
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BUILD = "b" * 32
GOOD_QUERY = 'message:"Timed out waiting" AND tags:console'


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> EmbeddedBackend:
    """A small real index: one failed voting build that a good fingerprint hits, one successful build."""
    backend = EmbeddedBackend(tmp_path_factory.mktemp("hostile") / "index")
    with backend.writer() as writer:
        for uuid, status in ((BUILD, "FAILURE"), ("c" * 32, "SUCCESS")):
            fields = {"build_uuid": uuid, "build_short_uuid": uuid[:7], "build_name": "tempest-full",
                      "build_status": status, "build_queue": "gate", "voting": "1", "project": "openstack/nova",
                      "filename": "job-output.txt", "tags": ["job-output.txt", "console"], "module": "nova.compute"}
            for i, message in enumerate(["Running tempest", "Timed out waiting for a reply", "aaaa bbbb 2026"]):
                writer.add({**fields, "message": message}, NOW - dt.timedelta(hours=2) + dt.timedelta(seconds=i))
    return backend


def write(directory: Path, name: str, text: str | bytes) -> Path:
    path = directory / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def billion_laughs(levels: int = 9, width: int = 9, key: str = "test_ids") -> str:
    """The alias bomb: each level a list of ``width`` aliases of the one before (9**9 strings expanded)."""
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    lines += ["query: tags:console", f"{key}: *l{levels - 1}"]
    return "\n".join(lines) + "\n"


def assert_one_line_error_naming(path: Path, errors: list[FingerprintError]) -> None:
    assert errors
    for error in errors:
        assert isinstance(error, FingerprintError)
        text = str(error)
        assert "\n" not in text and "\r" not in text
        assert text.startswith(str(path)), text


# -- the queries that used to stop the daemon -------------------------------------------------

STOPPED_THE_DAEMON = [
    ("*:foo AND tags:console", "searching every field ('*:') is not supported"),
    ("message:/a{1000}/ AND tags:console", "regular expression is too complex for the embedded engine"),
    ("@timestamp:[now-1x TO now] AND tags:console", "unit 'x' is not supported"),
    ("@timestamp:[foo TO bar] AND tags:console", "not a date: 'foo'"),
    ("(" * 1000 + "tags:console" + ")" * 1000, "nests 65 levels deep; at most 64"),
    ("NOT " * 1000 + "tags:console", "nests 65 levels deep; at most 64"),
    ('message:"a b"~99999999999999999999 AND tags:console', "phrase slop ~99999999999999999999 is out of range"),
    ("@timestamp:[now-99999999999999d TO now] AND tags:console", "date math out of range"),
    # libyaml refuses the escape itself ("invalid Unicode character escape
    # code"); PyYAML's pure-Python loader reads it, then the query is refused
    ('message:"\ud800" AND tags:console', "Unicode"),
]


@pytest.mark.parametrize("query, why", STOPPED_THE_DAEMON)
def test_a_query_the_engine_cannot_run_is_refused_at_load_naming_file_and_line(index, tmp_path, query, why):
    path = write(tmp_path, "1234.yaml", f"title: hostile\nquery: {json.dumps(query)}\n")
    good, bad = load_fingerprints(tmp_path, index.check_query)
    assert good == []
    assert_one_line_error_naming(path, bad)
    assert str(bad[0]).startswith(f"{path}:2: ") and why in str(bad[0])


@pytest.mark.parametrize("query, why", STOPPED_THE_DAEMON)
def test_lint_without_an_index_refuses_them_too(tmp_path, query, why):
    queries = tmp_path / "queries"
    queries.mkdir()
    path = write(queries, "1234.yaml", f"title: hostile\nquery: {json.dumps(query)}\n")
    result = lint(tmp_path, queries)
    assert result.exit_code == 1
    assert f"error: {path}:2: " in result.stderr and why in result.stderr
    assert result.stdout == "1 fingerprints: 1 errors, 0 warnings\n"
    assert not (tmp_path / "data").exists()  # no index was made to lint


def test_every_caller_drops_a_refused_fingerprint_through_the_same_check(index, tmp_path):
    """Classification plans each query once: the check at load leaves the plan for every build."""
    write(tmp_path, "1.yaml", f"query: '{GOOD_QUERY}'\n")
    write(tmp_path, "2.yaml", "query: 'message:/a{1000}/ AND tags:console'\n")
    fingerprints = FingerprintSet(tmp_path, index.check_query)
    assert [fp.bug for fp in fingerprints.current()] == ["1"]
    planned = dict(index._plans)
    assert f"({GOOD_QUERY}) AND voting:1" in planned
    assert [fp.bug for fp in Classifier(index, fingerprints.current()).classify(BUILD)] == ["1"]
    assert index._plans == planned  # nothing translated twice


# -- property: any query ------------------------------------------------------------------------

FIELDS = st.sampled_from(["message", "tags", "build_name", "build_status", "voting", "@timestamp", "*", "_exists_",
                          "module", "unknown_field", "t.x", "filename", "build_uuid", "a\\:b", "k_tags"])
BOUNDS = st.sampled_from(["*", "a", "z", "now", "now-1d", "now-1M", "now/d", "now-99999999999999d", "foo",
                          "2026-01-01", "2026-13-45", "9999-12-31T23:59:59Z", "0001-01-01", "1e400", '"x y"', "\ud800",
                          "\\*", ""])
WORDS = st.sampled_from(["a", "boom", "Timed", "TIMED", "*", "?", "a*", "*a", "a?b", "\\(", "\\", "AND", "OR", "NOT",
                         "TO", "&&", "||", "!", "\ud800", "\x00", "\x1b[31m", "é", "𝔘", "a" * 300, "2026", "-1",
                         '"', "/", "~", "^", "[", "}", ":", "\u3000"])
ATOMS = st.one_of(
    WORDS,
    st.text(max_size=6),
    st.builds(lambda f, w: f"{f}:{w}", FIELDS, WORDS),
    st.builds(lambda f, w: f'{f}:"{w} {w}"', FIELDS, WORDS),
    st.builds(lambda f, n: f"{f}:/a{{{n}}}/", FIELDS, st.integers(0, 3000)),
    st.builds(lambda f, p: f"{f}:/{p}/", FIELDS, st.sampled_from([".*", "[", "a&b", "~a", "<1-5>", "#", '"x', "a{2,1}",
                                                                  "(a|b)+c", "\\d", "[^a]", "a{99999}"])),
    st.builds(lambda f, lo, hi, a, b: f"{f}:{a}{lo} TO {hi}{b}", FIELDS, BOUNDS, BOUNDS, st.sampled_from("[{"),
              st.sampled_from("]}")),
    st.builds(lambda f, b, op: f"{f}:{op}{b}", FIELDS, BOUNDS, st.sampled_from([">", ">=", "<", "<="])),
    st.builds(lambda w, n: f"{w}~{n}", WORDS, st.one_of(st.integers(0, 10**25), st.just("0.5"), st.just("1e400"))),
    st.builds(lambda w, n: f'"{w} x"~{n}', WORDS, st.one_of(st.integers(0, 10**25), st.just("-1"))),
    st.builds(lambda w, n: f"{w}^{n}", WORDS, st.sampled_from(["2", "0", "1e400", "-1", "x"])),
    st.builds(lambda n: "(" * n + "tags:console" + ")" * n, st.integers(0, 1200)),
    st.builds(lambda n, op: op * n + "tags:console", st.integers(0, 1200), st.sampled_from(["NOT ", "-", "+", "!"])),
)
HOSTILE_QUERIES = st.one_of(
    st.text(max_size=40),
    st.recursive(ATOMS, lambda inner: st.one_of(
        st.builds(lambda a, op, b: f"{a} {op} {b}", inner, st.sampled_from(["AND", "OR", "&&", "||", "", "AND NOT"]),
                  inner),
        st.builds(lambda a: f"({a})", inner),
        st.builds(lambda f, a: f"{f}:({a})", FIELDS, inner),
        st.builds(lambda p, a: p + a, st.sampled_from(["-", "+", "!", "NOT "]), inner),
    ), max_leaves=6),
)


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(query=HOSTILE_QUERIES)
def test_any_query_either_runs_in_classification_and_the_dashboard_or_is_refused_in_one_line(index, query):
    with tempfile.TemporaryDirectory() as directory:
        path = write(Path(directory), "1234.yaml", yaml.safe_dump({"query": query, "allow-nonvoting": False}))
        found = inspect_fingerprint(path, index.check_query)
        offline = inspect_fingerprint(path, QueryPlanner().check)  # what lint sees with no index
    assert [str(e) for e in offline.errors] == [str(e) for e in found.errors]
    try:
        check_cluster_query(query)  # the cluster's local check: a verdict, nothing else
    except QuerySyntaxError:
        pass
    if found.errors:
        assert_one_line_error_naming(path, found.errors)
        return
    fingerprint = found.fingerprint
    assert all("\n" not in str(warning) for warning in lint_warnings(fingerprint, ["message", "tags"]))
    # Run for real: the classifier's batched pass, beside a good fingerprint, and the dashboard's aggregation.
    index.match_build(BUILD, [fingerprint.voting_query, f"({GOOD_QUERY}) AND voting:1"])
    good = Fingerprint("1", Path("1.yaml"), GOOD_QUERY)
    assert good in Classifier(index, [fingerprint, good]).classify(BUILD)
    index.builds(fingerprint.voting_query, TimeWindow(start=NOW - dt.timedelta(days=10), end=NOW))
    collected = collect(index, [fingerprint], NOW, 10)
    assert collected.errors == {}


# -- property: any YAML file --------------------------------------------------------------------

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                                              max_size=3), max_leaves=8)
DOCUMENTS = st.dictionaries(st.one_of(st.sampled_from([*KNOWN_KEYS, "other"]), st.text(max_size=4)),
                            st.one_of(VALUES, HOSTILE_QUERIES), max_size=6)


def _mutate(text: str, at: int, insert: str) -> str:
    at = at % (len(text) + 1)
    return text[:at] + insert + text[at:]


HOSTILE_YAML = st.one_of(
    DOCUMENTS.map(lambda doc: yaml.safe_dump(doc, allow_unicode=True)),
    st.builds(lambda doc, at, junk: _mutate(yaml.safe_dump(doc), at, junk), DOCUMENTS, st.integers(0, 400),
              st.sampled_from(["&a ", "*a", "*b ", "<<: *a\n", "[", "{", "? ", "- ", "!!python/object:os.system ",
                               "!!binary ", "\t", "\x00", "\ufeff", "\ud800", "---\n", "%YAML 1.1\n", ": ", "|",
                               "\"\\ud800\"", "1" * 5000, "&a [*a]"])),
    st.builds(billion_laughs, st.integers(2, 9), st.integers(2, 9), st.sampled_from(["test_ids", "projects", "title",
                                                                                     "query", "other", "<<"])),
    st.builds(lambda n, c: c * n, st.integers(1, 20_000), st.sampled_from(["[", "{", "- ", "? ", "a: ", "&a "])),
    st.text(max_size=200),
    st.binary(max_size=200),
)


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=HOSTILE_YAML)
def test_any_file_either_loads_and_runs_or_is_refused_in_one_line(index, text):
    with tempfile.TemporaryDirectory() as directory:
        if isinstance(text, str):
            text = text.encode("utf-8", "surrogatepass")
        path = write(Path(directory), "1234.yaml", text)
        found = inspect_fingerprint(path, index.check_query)
        good, bad = load_fingerprints(directory, index.check_query)
    assert len(good) + len(bad) == 1
    if found.errors:
        assert_one_line_error_naming(path, found.errors)
        return
    assert good == [found.fingerprint]
    index.match_build(BUILD, [found.fingerprint.voting_query])
    assert collect(index, good, NOW, 10).errors == {}


# -- YAML and size limits -----------------------------------------------------------------------

def inspect_measuring_memory(path: Path):
    """The inspection, and the most memory Python allocated during it (bytes)."""
    tracemalloc.start()
    try:
        return inspect_fingerprint(path), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("key", ["test_ids", "projects", "<<"])
def test_an_alias_bomb_is_refused_with_bounded_memory(tmp_path, key):
    path = write(tmp_path, "1.yaml", billion_laughs(key=key))
    found, peak = inspect_measuring_memory(path)
    assert [str(e) for e in found.errors] == [
        f"{path}:2: YAML error: a YAML alias may repeat a plain value, not a list or mapping"]
    assert peak < 2_000_000  # expanded, the bomb is 387 million strings


def test_lint_refuses_an_alias_bomb_in_a_process_limited_to_1_gib(tmp_path):
    queries = tmp_path / "queries"
    queries.mkdir()
    write(queries, "1.yaml", billion_laughs())
    write(queries, "2.yaml", "a: &x [1]\nb: &y [*x, *x]\nquery: tags:console\n")
    write(queries, "3.yaml", "a: &a [*a]\nquery: tags:console\n")  # a recursive alias

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    result = subprocess.run([str(BIN / "elastic-recheck"), "lint", "--offline", str(queries)], capture_output=True,
                            text=True, timeout=120, preexec_fn=limit_memory,
                            env={**os.environ, "ER_DATA_DIR": str(tmp_path / "data"), "ER_INGEST_FETCH": "false"})
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [
        f"error: {queries / '1.yaml'}:2: YAML error: a YAML alias may repeat a plain value, not a list or mapping",
        f"error: {queries / '2.yaml'}:2: YAML error: a YAML alias may repeat a plain value, not a list or mapping",
        f"error: {queries / '3.yaml'}:1: YAML error: a YAML alias may repeat a plain value, not a list or mapping",
    ]


def test_aliases_of_plain_values_are_allowed_a_few_times(tmp_path):
    fine = write(tmp_path, "1.yaml", "title: &t Timeout\nquery: tags:console\nprojects: [*t, *t]\n")
    assert inspect_fingerprint(fine).fingerprint.projects == ("Timeout", "Timeout")
    many = write(tmp_path, "2.yaml", "title: &t T\nquery: tags:console\nprojects: [" + ", ".join(["*t"] * 9) + "]\n")
    assert [e.detail for e in inspect_fingerprint(many).errors] == ["YAML error: more than 8 YAML aliases"]


def test_deep_yaml_nesting_is_refused(tmp_path):
    path = write(tmp_path, "1.yaml", "query: tags:console\nother: " + "[" * 20 + "]" * 20 + "\n")
    assert [str(e) for e in inspect_fingerprint(path).errors] == [
        f"{path}:2: YAML error: nested more than 16 levels deep"]
    path = write(tmp_path, "2.yaml", "query: tags:console\nother: " + "[" * 20_000 + "]" * 20_000 + "\n")
    [error] = [str(e) for e in inspect_fingerprint(path).errors]  # libyaml's scanner may say it first
    assert error.startswith(f"{path}:2: YAML error: ") and "nest" in error


def test_a_one_megabyte_file_is_refused_before_it_is_parsed(tmp_path):
    path = write(tmp_path, "1.yaml", "query: " + "a " * 500_000 + "\n")
    found, peak = inspect_measuring_memory(path)
    assert [str(e) for e in found.errors] == [
        f"{path}: the file is over 65,536 bytes (setting fingerprints.max_file_bytes)"]
    assert peak < 200_000  # only the first 64 KiB were read


def test_the_limits_are_settings(tmp_path):
    query = " OR ".join(f"message:w{i}" for i in range(2500)) + " AND tags:console"
    path = write(tmp_path, "1.yaml", f"query: {query}\n")
    assert [e.detail for e in inspect_fingerprint(path).errors] == [
        f"the query is {len(query):,} characters long; at most 10,000 are allowed "
        "(setting fingerprints.max_query_chars)"]
    config = write(tmp_path.parent, f"{tmp_path.name}-config.yaml",
                   "fingerprints:\n  max_query_chars: 50000\n  max_file_bytes: 100000\n")
    result = lint(tmp_path, tmp_path, "--config", str(config))
    assert result.exit_code == 0, result.stderr
    result = lint(tmp_path, tmp_path, env={"ER_FINGERPRINTS_MAX_FILE_BYTES": "1000"})
    assert result.exit_code == 1 and "the file is over 1,000 bytes" in result.stderr


def test_values_yaml_cannot_build_are_errors_not_exceptions(tmp_path):
    cases = {
        "1": ("query: tags:console\ntitle: 2026-13-45\n", "YAML value cannot be read: month must be in 1..12"),
        "2": ("query: tags:console\ntest_ids: [" + "9" * 5000 + "]\n", "YAML value cannot be read: Exceeds the limit"),
        "3": ("query: tags:console\n---\nquery: x\n",
              "YAML error: expected a single document in the stream, but found another document"),
        "4": ("query: !!python/object/apply:os.system [echo]\n", "YAML error: could not determine a constructor"),
        "5": ("query: tags:console\ntest_ids: [[a], {b: c}]\n", "'test_ids' must be a list of strings"),
    }
    for bug, (text, why) in cases.items():
        path = write(tmp_path, f"{bug}.yaml", text)
        errors = inspect_fingerprint(path).errors
        assert_one_line_error_naming(path, errors)
        assert why in str(errors[0]), (bug, errors)


def test_a_file_name_that_is_not_a_bug_id_is_an_error_in_one_line(tmp_path):
    path = write(tmp_path, "12\n34.yaml", "query: tags:console\n")
    [error] = inspect_fingerprint(path).errors
    assert str(error) == (f"{tmp_path}/12\\n34.yaml: the file name '12\\n34' is not a bug id "
                          "(letters, digits, '.', '_' and '-', starting with a letter or digit)")


# -- lint: exit codes and messages ------------------------------------------------------------

def lint(tmp_path: Path, queries: Path, *args: str, env: dict[str, str] | None = None):
    runner = CliRunner()
    environment = {"ER_CONFIG": None, "ER_BACKEND": None, **(env or {})}
    return runner.invoke(cli, ["lint", str(queries), "--data-dir", str(tmp_path / "data"), *args], env=environment)


def test_lint_reports_every_error_of_a_file_each_with_its_line(tmp_path):
    path = write(tmp_path, "1.yaml", "test_ids: 5\nsuppress-graph: maybe\nquery: message:(broken\n")
    result = lint(tmp_path, tmp_path)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: {path}:2: 'suppress-graph' must be a bool, not str",
        f"error: {path}:1: 'test_ids' must be a list, not int",
        f"error: {path}:3: query does not parse: syntax error: Syntax error in input : unexpected end of expression "
        "(maybe due to unmatched parenthesis) at the end!",
    ]
    assert result.stdout == "1 fingerprints: 3 errors, 0 warnings\n"


def test_lint_passes_good_fingerprints_and_warns_about_a_name_that_is_not_a_number(tmp_path):
    write(tmp_path, "2000001.yaml", f"query: '{GOOD_QUERY}'\n")
    write(tmp_path, "PROJ-12.yaml", f"query: '{GOOD_QUERY}'\n")
    result = lint(tmp_path, tmp_path)
    assert result.exit_code == 0
    assert result.stderr == (f"{tmp_path / 'PROJ-12.yaml'}:1: warning: the file name 'PROJ-12' is not a number; "
                             "the file name is the bug id\n")
    assert result.stdout == "2 fingerprints: 0 errors, 1 warnings\n"


def test_lint_warns_about_unknown_fields_against_the_index_or_the_standard_schema(tmp_path, index):
    queries = tmp_path / "queries"
    queries.mkdir()
    path = write(queries, "1.yaml", "query: 'module:nova AND buidl_name:tempest AND tags:console'\n")
    standard = lint(tmp_path, queries)  # no index in this data dir
    assert standard.exit_code == 0, standard.stderr
    assert standard.stderr.startswith(f"{path}:1: warning: unknown field(s) 'buidl_name', 'module'; fields the "
                                      "standard logstash schema knows: @timestamp, build_branch, ")
    shutil.copytree(index.path, tmp_path / "data" / "index")  # an index whose documents have a 'module' field
    indexed = lint(tmp_path, queries)
    assert indexed.exit_code == 0, indexed.stderr
    assert indexed.stderr.startswith(f"{path}:1: warning: unknown field(s) 'buidl_name'; fields the index knows: "
                                     "@timestamp, build_branch, ")
    assert "module" in indexed.stderr.split("knows: ")[1]
    offline = lint(tmp_path, queries, "--offline")
    assert "'buidl_name', 'module'" in offline.stderr


def test_lint_for_a_cluster_refuses_only_what_a_cluster_would(tmp_path):
    write(tmp_path, "1.yaml", "query: '*:foo AND tags:console'\n")  # Elasticsearch searches every field
    write(tmp_path, "2.yaml", "query: '@timestamp:[now-1M TO now] AND tags:console'\n")
    path = write(tmp_path, "3.yaml", "query: '@timestamp:[foo TO bar] AND tags:console'\n")
    result = lint(tmp_path, tmp_path, "--offline", env={"ER_BACKEND": "elasticsearch"})
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: {path}:1: the search engine cannot run the query: @timestamp range: not a date or date math: 'foo'"]


# -- classification, the dashboard and the daemon keep going -----------------------------------

class BrokenFor:
    """A real backend in which one query meets a bug of another kind (not a
    RecheckError), or, while ``down`` is set, every call finds the backend unavailable."""

    def __init__(self, backend: EmbeddedBackend, poison: str) -> None:
        self.backend = backend
        self.poison = poison
        self.down = False

    def __getattr__(self, name: str):
        return getattr(self.backend, name)

    def _call(self, queries):
        if self.down:
            raise BackendError("connection refused")
        if any(self.poison in q for q in queries):
            raise TypeError("a bug met by one query")

    def match_build(self, build_uuid, queries):
        self._call(queries)
        return self.backend.match_build(build_uuid, queries)

    def builds(self, query, window=TimeWindow()):
        self._call([query])
        return self.backend.builds(query, window)


def test_classification_isolates_the_fingerprint_that_fails_and_logs_it_in_one_line(index, caplog):
    good = Fingerprint("1", Path("1.yaml"), GOOD_QUERY)
    unchecked = [Fingerprint(str(n), Path(f"{n}.yaml"), q) for n, q in
                 [(2, "message:/a{1000}/"), (3, "@timestamp:[foo TO bar]"), (4, "tags:poison")]]
    backend = BrokenFor(index, "poison")
    fingerprints = [unchecked[0], good, *unchecked[1:]]
    assert Classifier(backend, fingerprints).classify(BUILD) == [good]
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 3 and all("\n" not in line for line in skipped)
    assert skipped[0].startswith(f"fingerprint 2 skipped for build {BUILD}: it cannot run: UnsupportedQueryError: ")
    assert skipped[2] == (f"fingerprint 4 skipped for build {BUILD}: it cannot run: TypeError: a bug met by one query")
    backend.down = True
    with pytest.raises(BackendError):  # the backend down is retried by the daemon, not blamed on a fingerprint
        Classifier(backend, fingerprints).classify(BUILD)


def test_the_dashboard_shows_a_fingerprint_that_cannot_run_on_its_own_row(index, tmp_path):
    queries = tmp_path / "queries"
    queries.mkdir()
    write(queries, "1.yaml", f"query: '{GOOD_QUERY}'\n")
    write(queries, "2.yaml", "query: 'message:/a{1000}/ AND tags:console'\n")  # the engine refuses it
    write(queries, "3.yaml", "query: tags:poison\n")  # meets a bug when run
    write(queries, "4.yaml", billion_laughs())  # not a fingerprint at all
    settings = Settings(data_dir=tmp_path / "data", dashboard=DashboardSettings())
    collected, header = gather(settings, BrokenFor(index, "poison"), queries, now=NOW)
    rows = {row.bug: row for row in trends(collected, "all").rows}
    assert rows["1"].error is None and rows["1"].fails_window == 1
    assert "regular expression is too complex" in rows["2"].error
    assert rows["3"].error == "TypeError: a bug met by one query"
    assert "4" not in rows and [e.split(": ", 1)[0] for e in header.load_errors] == [f"{queries / '4.yaml'}:2"]


def test_dashboard_every_survives_a_run_that_fails_with_any_exception(index, tmp_path):
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "web", templates)
    page = templates / "base.html"
    page.write_text(page.read_text() + "{{ 1 // 0 }}")  # every run fails with ZeroDivisionError
    queries = tmp_path / "queries"
    shutil.copytree(ROOT / "queries", queries)
    shutil.copytree(index.path, tmp_path / "data" / "index")
    log = tmp_path / "every.log"
    env = {**os.environ, "ER_DATA_DIR": str(tmp_path / "data"), "ER_INGEST_FETCH": "false", "ER_DASHBOARD_TEMPLATES": str(templates)}
    with open(log, "w") as stderr:
        process = subprocess.Popen([str(BIN / "elastic-recheck"), "dashboard", "--output", str(tmp_path / "site"),
                                    "--queries", str(queries), "--every", "1s"], stderr=stderr, env=env)
    try:
        _wait_for(lambda: log.read_text().count("dashboard run failed: ZeroDivisionError") >= 2)
        shutil.copy(ROOT / "web" / "base.html", page)
        _wait_for(lambda: "dashboard published" in log.read_text())
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert process.returncode == 0, log.read_text()
    failed = [line for line in log.read_text().splitlines() if "run failed" in line]
    assert failed[0].endswith("dashboard run failed: ZeroDivisionError: integer division or modulo by zero")


def _wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_watch_comments_with_the_good_fingerprints_while_poisonous_ones_are_skipped(tmp_path):
    backend = EmbeddedBackend(tmp_path / "data" / "index")
    _ingest(backend, TEMPEST)
    backend.close()
    queries = tmp_path / "queries"
    shutil.copytree(ROOT / "queries", queries)
    poison = {
        "666": "query: '*:foo AND tags:console'\n",
        "667": "query: 'message:/a{1000}/'\n",
        "668": "query: '@timestamp:[now-1x TO now]'\n",
        "669": "query: " + "(" * 1000 + "a" + ")" * 1000 + "\n",
        "670": billion_laughs(),
        "671": "query: " + "a " * 600_000 + "\n",
    }
    for bug, text in poison.items():
        write(queries, f"{bug}.yaml", text)
    events = write(tmp_path, "events.json", json.dumps([failure(864201, 3, [("tempest-full", ZUUL + TEMPEST,
                                                                                "FAILURE")])]))
    result = subprocess.run([str(BIN / "elastic-recheck"), "watch", "--queries", str(queries), "--events",
                             str(events), "--dry-run"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "ER_DATA_DIR": str(tmp_path / "data"), "ER_INGEST_FETCH": "false"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("review 864201,3:\nI noticed Zuul failed, I think you hit bug(s):\n\n"
                                    "- tempest-full: https://bugs.launchpad.net/bugs/2000001, "
                                    "https://bugs.launchpad.net/bugs/2000004\n")
    skipped = [line for line in result.stderr.splitlines() if "fingerprint skipped" in line]
    assert [line.split("fingerprint skipped: ")[1].split(":")[0] for line in skipped] == [
        str(queries / f"{bug}.yaml") for bug in poison]
    assert "loaded 4 fingerprints" in result.stderr


def test_a_key_given_twice_is_an_error_naming_its_second_line(tmp_path):
    path = write(tmp_path, "1234.yaml", "query: tags:console\ntitle: x\nquery: message:other\n")
    [error] = inspect_fingerprint(path).errors
    assert str(error) == f"{path}:3: the key 'query' is given twice"


def test_the_unknown_field_warning_lists_a_bounded_number_of_known_fields(tmp_path):
    from elastic_recheck.fingerprints import MAX_FIELDS_LISTED, lint_warnings, load_fingerprint

    fingerprint = load_fingerprint(write(tmp_path, "1234.yaml", "query: nosuchfield:x AND tags:console\n"))
    known = [f"field_{n:05d}" for n in range(3000)] + ["tags", "message"]
    (warning,) = [w for w in lint_warnings(fingerprint, known) if "unknown field" in str(w)]
    assert f"and {len(known) - MAX_FIELDS_LISTED} more" in str(warning) and len(str(warning)) < 1500
