"""The dashboard benchmark (issue 3/6): the whole dashboard for 500
fingerprints over 10 days of a 5M-line index, beside a baseline that runs the
same fingerprints one by one and counts their hits in Python, in the same run.
Both run as child processes so each one's peak RSS is its own.

Run: .venv/bin/python bench/dashboard.py [--lines N] [--keep]"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generate import JOBS, fingerprints, generate  # noqa: E402

from elastic_recheck.ingest import ingest_build  # noqa: E402
from elastic_recheck.ingest.sources import load_metadata_file, open_logs  # noqa: E402
from elastic_recheck.search.embedded import EmbeddedBackend  # noqa: E402

BIN = Path(sys.executable).parent

BASELINE = r"""
import datetime as dt, json, sys
from elastic_recheck.fingerprints import load_fingerprints
from elastic_recheck.search import TimeWindow
from elastic_recheck.search.embedded import EmbeddedBackend
from elastic_recheck.dashboard.trends import FAILED_STATUSES
backend = EmbeddedBackend(sys.argv[1])
fingerprints, _ = load_fingerprints(sys.argv[2])
now = dt.datetime.now(dt.timezone.utc)
window = TimeWindow(now - dt.timedelta(days=10), now)
fails = {}
for fp in fingerprints:  # one search per fingerprint, every hit pulled into Python
    failed = set()
    for hit in backend.scan(fp.voting_query, window):
        if hit.source.get("build_status") in FAILED_STATUSES:
            failed.add(hit.source["build_uuid"])
    fails[fp.bug] = len(failed)
json.dump(fails, open(sys.argv[3], "w"))
"""


def child(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child process, from its own rusage."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"{command[:2]} failed with exit code {process.returncode}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def write_fingerprints(directory: Path, count: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for number, query in enumerate(fingerprints(count), 4000000):
        body = {"query": query, "title": f"generated fingerprint {number}",
                "projects": ["openstack/nova"]}
        (directory / f"{number}.yaml").write_text(json.dumps(body))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=5_000_000)
    parser.add_argument("--builds", type=int, default=1000)
    parser.add_argument("--fingerprints", type=int, default=500)
    parser.add_argument("--keep", action="store_true", help="keep the generated logs and index in the work dir")
    parser.add_argument("--work", default=None, help="work directory (reused: an existing index is not rebuilt)")
    args = parser.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="er-bench-dashboard-"))
    try:
        run(work, args)
    finally:
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)


def run(work: Path, args: argparse.Namespace) -> None:
    data_dir = work / "data"
    index = data_dir / "index"
    if not index.exists():
        logs = generate(work / "logs", args.builds, args.lines // args.builds)
        print(f"generated {logs['lines']:,} log lines in {len(logs['builds'])} builds over 10 days")
        backend = EmbeddedBackend(index)
        start = time.perf_counter()
        for build in logs["builds"]:
            meta = load_metadata_file(str(Path(build["dir"]) / "build.json"))
            ingest_build(backend, open_logs(build["dir"]), meta, keep_debug=True)
        print(f"indexed in {time.perf_counter() - start:.0f}s")
        shutil.rmtree(work / "logs", ignore_errors=True)
    backend = EmbeddedBackend(index)
    print(f"index: {backend.health()['documents']:,} log lines, {len(JOBS)} jobs")
    queries = work / "queries"
    shutil.rmtree(queries, ignore_errors=True)
    write_fingerprints(queries, args.fingerprints)
    env = {**os.environ, "ER_DATA_DIR": str(data_dir)}
    site = work / "site"
    wall, rss = child([str(BIN / "elastic-recheck"), "dashboard", "--output", str(site), "--queries", str(queries)],
                      env)
    print(f"dashboard, {args.fingerprints} fingerprints x 10 days: {wall:.1f}s wall, peak RSS {rss:.0f} MiB")
    counts = work / "baseline.json"
    base_wall, base_rss = child([sys.executable, "-c", BASELINE, str(index), str(queries), str(counts)], env)
    print(f"baseline, one search per fingerprint counting hits in Python (no pages rendered): {base_wall:.1f}s "
          f"wall, peak RSS {base_rss:.0f} MiB")
    shown = {row["bug"]: row["fails_window"] for row in json.loads((site / "data" / "all.json").read_text())["bugs"]}
    expected = json.loads(counts.read_text())
    mismatched = {bug for bug in expected if shown.get(bug) != expected[bug]}
    hit = sum(1 for value in expected.values() if value)
    print(f"failure counts per fingerprint identical to the baseline: {not mismatched} "
          f"({hit} fingerprints with failures; {len(mismatched)} differ)")


if __name__ == "__main__":
    main()
