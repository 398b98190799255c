"""The command line as users run it: real processes, a real index on disk."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(*args, data_dir, check=True, stdin=None):
    env = {**os.environ, "ER_DATA_DIR": str(data_dir)}
    exe = args[0]
    command = [str(BIN / exe)] if (BIN / exe).exists() else [sys.executable, "-m", "elastic_recheck"]
    if not (BIN / exe).exists() and exe == "er-query":
        pytest.skip("er-query is not installed in this environment")
    result = subprocess.run(command + list(args[1:]), capture_output=True, text=True, env=env, cwd=ROOT,
                            input=stdin, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(result.stderr)
    return result


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    """The example builds ingested one by one: built once for the tests that only read it."""
    data = tmp_path_factory.mktemp("examples")
    for build in sorted((ROOT / "examples" / "builds").iterdir()):
        run("elastic-recheck", "ingest", "--logs", str(build), "--metadata", str(build / "build.json"),
            data_dir=data)
    return data


def test_ingest_many_builds_at_once_indexes_what_one_by_one_does(examples, tmp_path):
    builds = sorted((ROOT / "examples" / "builds").iterdir())
    bulk = tmp_path / "bulk"
    out = run("elastic-recheck", "ingest", "--builds", str(ROOT / "examples" / "builds"), data_dir=bulk).stdout
    assert out.startswith(f"{len(builds)} builds: ")
    query = ["er-query", "--days", "0", "--verbose", "-e", "tags:console OR loglevel:ERROR OR loglevel:WARNING"]
    assert run(*query, data_dir=bulk).stdout == run(*query, data_dir=examples).stdout


def test_ingest_on_a_terminal_shows_a_progress_count_and_elsewhere_nothing(tmp_path):
    build = tmp_path / "build"
    build.mkdir()
    (build / "job-output.txt").write_text("".join(f"2026-11-20 10:00:{n % 60:02d}.000 | step {n}\n" for n in range(2500)))
    (build / "build.json").write_text(json.dumps({"build_uuid": "0123456789abcdef"}))
    exe = [str(BIN / "elastic-recheck")] if (BIN / "elastic-recheck").exists() else [sys.executable, "-m", "elastic_recheck"]
    command = [*exe, "ingest", "--logs", str(build), "--metadata", str(build / "build.json"),
               "--data-dir", str(tmp_path / "data")]
    terminal, other_end = pty.openpty()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=other_end, cwd=ROOT)
    os.close(other_end)
    shown = b""
    while True:
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # the process closed its end
            break
        if not chunk:
            break
        shown += chunk
    os.close(terminal)
    assert proc.wait(timeout=60) == 0
    assert b"indexing build 0123456" in shown and b"  2000" in shown and b"/0" not in shown
    assert proc.stdout.read().startswith(b"build 0123456789abcdef: 2500 log events")
    piped = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert piped.returncode == 0 and piped.stderr == ""


def test_er_query_shows_the_attribute_spread(examples):
    out = run("er-query", "--days", "0", "queries/2000001.yaml", data_dir=examples).stdout.splitlines()
    assert out[0] == "total hits: 2"
    assert "build_name" in out and out[out.index("build_name") + 1] == "  100% tempest-full"
    assert out[out.index("loglevel") + 1] == "  100% ERROR"
    assert out[out.index("tags") + 1] == "  100% screen-n-cpu.txt ERROR"  # a list in stored order, joined
    assert "message" not in out and "build_uuid" not in out and "@timestamp" not in out
    assert out[-5] == "builds matched: 1, of which succeeded: 0"
    assert out[-4].startswith("backtest over all time, voting jobs only as the classifier runs it")


def test_er_query_verbose_shows_noisy_attributes(examples):
    out = run("er-query", "--days", "0", "--verbose", "-e", 'message:"hash sum mismatch"',
              data_dir=examples).stdout.splitlines()
    assert "build_uuid" in out and "build_short_uuid" in out


def test_er_query_percentages_and_quantity(examples):
    out = run("elastic-recheck", "query", "--days", "0", "--quantity", "2", "-e", "tags:console",
              data_dir=examples).stdout.splitlines()
    total = int(out[0].split(": ")[1])
    build_names = out[out.index("build_name") + 1: out.index("build_name") + 3]
    assert len(build_names) == 2
    percents = [int(line.split("%")[0]) for line in build_names]
    assert percents == sorted(percents, reverse=True) and total > 0


def test_er_query_warns_when_successful_builds_match(tmp_path):
    docs = [{"message": "flaky", "@timestamp": "2026-11-20T10:00:00Z", "build_uuid": f"b{i}",
             "build_status": "SUCCESS" if i < 2 else "FAILURE"} for i in range(5)]
    run("elastic-recheck", "ingest", "--docs", "-", data_dir=tmp_path, stdin="\n".join(map(json.dumps, docs)))
    out = run("er-query", "--days", "0", "-e", "flaky", data_dir=tmp_path).stdout
    assert "builds matched: 5, of which succeeded: 2" in out
    assert "WARNING: 40% of the matched builds succeeded" in out


def test_er_query_json_prints_hits(examples):
    out = run("er-query", "--days", "0", "--json", "-e", 'message:"hash sum mismatch"', data_dir=examples).stdout
    (hit,) = [json.loads(line) for line in out.splitlines()]
    assert hit["build_name"] == "grenade" and "Hash Sum mismatch" in hit["message"]


def test_er_query_days_window(examples):
    out = run("er-query", "-e", "tags:console", data_dir=examples).stdout  # default: last 10 days
    assert out.splitlines()[0].startswith("total hits: ")


def test_classify_names_the_known_bugs(examples):
    out = run("elastic-recheck", "classify", "--build", "6d1b2f0c9f1e4c3a8e0b6a3f9a1c2d3e",
              data_dir=examples).stdout
    assert "bug 2000001" in out and "bug 2000003" in out and "bug 2000002" not in out


def test_lint_passes_the_production_fingerprints(tmp_path, realdata):
    result = run("elastic-recheck", "lint", str(realdata / "queries"), data_dir=tmp_path)
    assert "91 fingerprints: 0 errors, 1 warnings" in result.stdout
    # No index here: field names are checked against the standard schema, which has no 'module'
    # (documents exported from a logstash that parsed oslo.log lines do).
    assert result.stderr.startswith(f"{realdata / 'queries' / '1739482.yaml'}:1: warning: unknown field(s) 'module'; "
                                    "fields the standard logstash schema knows: @timestamp, build_branch")


def test_lint_fails_on_a_bad_fingerprint(tmp_path):
    (tmp_path / "1.yaml").write_text("query: tags:console\n")
    (tmp_path / "2.yaml").write_text("query: message:(broken\n")
    result = run("elastic-recheck", "lint", str(tmp_path), data_dir=tmp_path, check=False)
    assert result.returncode == 1
    assert f"error: {tmp_path / '2.yaml'}:1: query does not parse" in result.stderr


def test_errors_are_one_line_without_debug_and_traceback_with_it(tmp_path):
    result = run("er-query", "-e", "message:(", data_dir=tmp_path, check=False)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: syntax error")
    debug = run("er-query", "--debug", "-e", "message:(", data_dir=tmp_path, check=False)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_ingest_reports_bad_documents_and_keeps_the_rest(tmp_path):
    stdin = json.dumps({"message": "ok", "@timestamp": "2026-11-20T10:00:00Z"}) + "\n{bad\n"
    result = run("elastic-recheck", "ingest", "--docs", "-", data_dir=tmp_path, stdin=stdin, check=False)
    assert result.returncode == 1
    assert "-:2: invalid JSON" in result.stderr
    assert "total hits: 1" in run("er-query", "--days", "0", "-e", "ok", data_dir=tmp_path).stdout


def test_the_demo_data_is_recent_and_hits_known_and_unknown_failures(tmp_path):
    """bin/demo's builds: dated relative to now, several jobs, the four known
    bugs, and failures no fingerprint explains."""
    import datetime as dt

    generated = subprocess.run([sys.executable, str(ROOT / "examples" / "demo_builds.py"), str(tmp_path / "demo")],
                               capture_output=True, text=True, timeout=60)
    assert generated.returncode == 0, generated.stderr
    from elastic_recheck.results import ResultStore

    builds = sorted((tmp_path / "demo" / "builds").iterdir())
    # Indexed and classified (against queries/, watch.queries' default) in one run, as a backfill would be.
    run("elastic-recheck", "ingest", "--builds", str(tmp_path / "demo" / "builds"), data_dir=tmp_path / "data")
    store = ResultStore(tmp_path / "data" / "results.sqlite3")
    found = {}
    for build in builds:
        meta = json.loads((build / "build.json").read_text())
        found.setdefault(meta["job_name"], set()).add(len(store.build(meta["uuid"]).bugs))
    one = json.loads((builds[0] / "build.json").read_text())["uuid"]  # classify asks the index: the same answer
    out = run("elastic-recheck", "classify", "--build", one, "--queries", "queries", data_dir=tmp_path / "data").stdout
    assert out.count(": bug ") == len(store.build(one).bugs)
    assert found["tempest-full"] >= {2} and found["grenade"] == {1} and found["cinder-tempest-plugin-lvm"] == {1}
    assert found["openstack-tox-py312"] == {0} and found["nova-live-migration"] == {0}
    newest = run("er-query", "--days", "1", "-e", "*:*", data_dir=tmp_path / "data").stdout
    assert not newest.startswith("total hits: 0")  # yesterday's builds are in the last day
    events = json.loads((tmp_path / "demo" / "events.json").read_text())
    assert len(events) == 16 and max(e["eventCreatedOn"] for e in events) > dt.datetime.now().timestamp() - 86400


def test_the_configuration_reference_names_every_setting():
    import dataclasses

    from elastic_recheck import config

    reference = (ROOT / "docs" / "configuration.md").read_text()
    for section, cls in config._SECTIONS.items():
        assert f"### `{section}:`" in reference
        for setting in dataclasses.fields(cls):
            row = next((line for line in reference.splitlines() if line.startswith(f"| `{setting.name}` |")
                        and (f"ER_{section.upper()}_{setting.name.upper()}" in line or "config file only" in line)),
                       None)
            assert row is not None, f"{section}.{setting.name} is not in docs/configuration.md"
            assert not row.endswith("|  |"), f"{section}.{setting.name} has no meaning in docs/configuration.md"
