"""Fingerprint files: every key a fingerprint may have, validation naming file and line, lint."""

from __future__ import annotations

import pytest

from elastic_recheck.errors import FingerprintError
from elastic_recheck.fingerprints import lint_warnings, load_fingerprint, load_fingerprints


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_key_is_read(tmp_path):
    fp = load_fingerprint(write(tmp_path, "1234567.yaml", """\
query: >-
  message:"Timed out waiting" AND tags:"screen-n-cpu.txt"
suppress-graph: true
suppress-notification: true
allow-nonvoting: true
test_ids: [tempest.api.compute.ServersTest.test_a]
title: RPC timeout
projects: [openstack/nova]
"""))
    assert fp.bug == "1234567"
    assert fp.query == 'message:"Timed out waiting" AND tags:"screen-n-cpu.txt"'
    assert (fp.suppress_graph, fp.suppress_notification, fp.allow_nonvoting) == (True, True, True)
    assert fp.test_ids == ("tempest.api.compute.ServersTest.test_a",)
    assert fp.projects == ("openstack/nova",) and fp.title == "RPC timeout"
    assert fp.voting_query == fp.query  # allow-nonvoting: no voting filter


def test_voting_filter_is_added_by_default(tmp_path):
    fp = load_fingerprint(write(tmp_path, "1.yaml", "query: a OR b\n"))
    assert fp.voting_query == "(a OR b) AND voting:1"


def test_yaml_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "2.yaml", "query: >\n  message:foo\nsuppress-graph: [unclosed\n")
    with pytest.raises(FingerprintError) as err:
        load_fingerprint(path)
    assert str(err.value).startswith(f"{path}:")
    assert err.value.line is not None and err.value.line >= 3


def test_query_that_does_not_parse_names_the_query_line(tmp_path):
    path = write(tmp_path, "3.yaml", "# comment\nsuppress-graph: false\nquery: message:(foo\n")
    with pytest.raises(FingerprintError, match=r"3\.yaml:3: query does not parse"):
        load_fingerprint(path)


def test_with_the_backends_check_a_query_that_does_not_parse_says_so_at_its_line(tmp_path):
    """The backend's check parses the query (in its voting form) and the
    loader does not parse it again; a query that does not parse is still
    told as such, not as one the search engine cannot run."""
    from elastic_recheck.search.embedded import EmbeddedBackend

    check = EmbeddedBackend(tmp_path / "index").check_query
    path = write(tmp_path, "3.yaml", "# comment\nsuppress-graph: false\nquery: message:(foo\n")
    with pytest.raises(FingerprintError, match=r"3\.yaml:3: query does not parse: syntax error"):
        load_fingerprint(path, check)
    good, bad = load_fingerprints(tmp_path, check)
    assert not good and [error.line for error in bad] == [3]
    write(tmp_path, "4.yaml", "query: message:foo\n")
    good, bad = load_fingerprints(tmp_path, check)
    assert [fp.bug for fp in good] == ["4"] and len(bad) == 1


@pytest.mark.parametrize("text, message", [
    ("suppress-graph: true\n", "missing required key 'query'"),
    ("query: ''\n", "'query' is empty"),
    ("query: a\nsuppress-graph: yes please\n", "'suppress-graph' must be a bool"),
    ("- a list\n", "must be a mapping"),
])
def test_invalid_fingerprints(tmp_path, text, message):
    with pytest.raises(FingerprintError, match=message):
        load_fingerprint(write(tmp_path, "4.yaml", text))


def test_a_bad_file_is_reported_and_the_rest_load(tmp_path):
    write(tmp_path, "5.yaml", "query: tags:console AND message:ok\n")
    write(tmp_path, "6.yaml", "query: message:(\n")
    good, bad = load_fingerprints(tmp_path)
    assert [fp.bug for fp in good] == ["5"] and "6.yaml" in str(bad[0])


@pytest.mark.parametrize("query, warning", [
    ("message:*timeout AND tags:console", "leading wildcard"),
    ('build_name:tempest-* AND message:"x"', "wildcard on build_name"),
    ('message:"just text"', "no field restriction"),
])
def test_lint_warnings(tmp_path, query, warning):
    fp = load_fingerprint(write(tmp_path, "7.yaml", f"query: '{query}'\n"))
    assert any(warning in str(w) for w in lint_warnings(fp))


def test_unknown_keys_are_warned_about(tmp_path):
    fp = load_fingerprint(write(tmp_path, "8.yaml", "query: tags:console\nsupress-graph: true\n"))
    assert [str(w).split("warning: ")[1] for w in lint_warnings(fp)] == ["unknown key 'supress-graph'"]


def test_the_projects_own_fingerprints_are_clean():
    from pathlib import Path

    good, bad = load_fingerprints(Path(__file__).parents[1] / "queries")
    assert good and not bad
    assert not [w for fp in good for w in lint_warnings(fp)]
