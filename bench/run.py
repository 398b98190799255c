"""The search-core benchmark (issue 1/6): ingest rate, er-query latency, and
one build against 1,000 fingerprints, each beside a brute-force baseline
measured in the same run. Run: .venv/bin/python bench/run.py [--lines N]"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generate import fingerprints, generate  # noqa: E402
from latency import event_to_comment  # noqa: E402

from elastic_recheck.ingest import ingest_build, ingest_build_dirs  # noqa: E402
from elastic_recheck.ingest.sources import load_metadata_file, open_logs  # noqa: E402
from elastic_recheck.querysummary import summarize  # noqa: E402
from elastic_recheck.search import TimeWindow  # noqa: E402
from elastic_recheck.search.embedded import EmbeddedBackend  # noqa: E402


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def median_ms(fn, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def _phrase_and_tag(query: str) -> tuple[str, str]:
    phrase, tag = re.match(r'message:"([^"]+)" AND tags:"([^"]+)"', query).groups()
    return phrase.lower(), tag


def brute_force_build(build_dir: Path, queries: list[str]) -> list[bool]:
    """Baseline: read the build's raw log files and test every fingerprint's
    phrase against every line (case-insensitive), the way a regex scan would."""
    wanted = [_phrase_and_tag(q) for q in queries]
    matched = [False] * len(queries)
    for path in [build_dir / "job-output.txt", *sorted((build_dir / "logs").iterdir())]:
        tags = {path.name, "console"} if path.name == "job-output.txt" else {path.name}
        text = path.read_text().lower()
        for i, (phrase, tag) in enumerate(wanted):
            if not matched[i] and tag in tags and phrase in text:
                matched[i] = True
    return matched


def brute_force_query(builds: list[dict], phrase: str) -> int:
    pattern = re.compile(re.escape(phrase), re.I)
    hits = 0
    for build in builds:
        for path in Path(build["dir"]).rglob("*.txt"):
            hits += len(pattern.findall(path.read_text()))
    return hits


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_050_000)
    parser.add_argument("--builds", type=int, default=210)
    parser.add_argument("--fingerprints", type=int, default=1000)
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    parser.add_argument("--only-search", action="store_true",
                        help="skip the default-settings ingest run (it takes the longest)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="er-bench-"))
    try:
        run(work, args)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def run(work: Path, args: argparse.Namespace) -> None:
    data = generate(work / "logs", args.builds, args.lines // args.builds)
    builds = data["builds"]
    print(f"generated {data['lines']:,} log lines in {len(builds)} builds")

    # -- baseline for ingest: just reading and splitting the same files
    start_wall = time.perf_counter()
    lines = 0
    for build in builds:
        for path in Path(build["dir"]).rglob("*.txt"):
            with open(path, "rb") as handle:
                lines += sum(1 for _ in handle)
    read_rate = lines / (time.perf_counter() - start_wall)

    def ingest_all(index: Path, keep_debug: bool, bulk: bool) -> tuple[EmbeddedBackend, int, float, float]:
        """Every build: all at once as ``ingest --builds`` does (a commit per
        100,000 log events), or the way one ``ingest`` run per build does (a
        commit per build, the index writers opened for each)."""
        backend = EmbeddedBackend(index)
        start_wall, start_cpu = time.perf_counter(), cpu()
        if bulk:
            documents = ingest_build_dirs(backend, work / "logs", keep_debug=keep_debug).documents
        else:
            documents = 0
            for build in builds:
                meta = load_metadata_file(str(Path(build["dir"]) / "build.json"))
                documents += ingest_build(backend, open_logs(build["dir"]), meta, keep_debug=keep_debug).documents
        return backend, documents, time.perf_counter() - start_wall, cpu() - start_cpu

    def report(label: str, documents: int, wall: float, cpu_used: float) -> None:
        print(f"ingest, {label}: {lines:,} lines read ({documents:,} documents) in {wall:.1f}s wall, "
              f"{cpu_used:.1f}s CPU: {lines / wall:,.0f} lines/s, {lines / cpu_used:,.0f} lines per CPU-second")

    # The product's default drops DEBUG lines; the rest of the benchmark uses
    # the bigger index with every line kept.
    if not args.only_search:
        for bulk, label in ((True, "default (DEBUG dropped), all builds in one run (ingest --builds)"),
                            (False, "default (DEBUG dropped), a commit per build (one ingest per build)")):
            _, documents, wall, cpu_used = ingest_all(work / "index-default", keep_debug=False, bulk=bulk)
            report(label, documents, wall, cpu_used)
            shutil.rmtree(work / "index-default", ignore_errors=True)
    backend, documents, wall, cpu_used = ingest_all(work / "index", keep_debug=True, bulk=False)
    report("every line kept, a commit per build", documents, wall, cpu_used)
    print(f"baseline for ingest, reading and splitting the files only: {read_rate:,.0f} lines/s")

    window = TimeWindow.last_days(10)
    query = 'message:"Timed out waiting for a reply to message ID" AND tags:"screen-n-cpu.txt"'
    summarize(backend, query, window)  # warm
    er_query_ms = median_ms(lambda: summarize(backend, query, window), 5)
    scan_ms = median_ms(lambda: brute_force_query(builds, "Timed out waiting for a reply to message ID"), 1)
    print(f"er-query over 10 days: median {er_query_ms:.0f} ms (baseline regex scan of all raw logs: {scan_ms:.0f} ms)")

    queries = fingerprints(args.fingerprints)
    backend.match_build(builds[0]["build_uuid"], queries)  # compile once, as the daemon does
    sample = builds[:30]
    batched, brute, one_by_one = [], [], []
    for build in sample:
        uuid = build["build_uuid"]
        start = time.perf_counter()
        result = backend.match_build(uuid, queries)
        batched.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        expected = brute_force_build(Path(build["dir"]), queries)
        brute.append((time.perf_counter() - start) * 1000)
        assert result == expected, f"batched classification disagrees with the raw scan for {uuid}"
    for build in sample[:5]:
        start = time.perf_counter()
        [backend.count(q) > 0 for q in (f'({q}) AND build_uuid:"{build["build_uuid"]}"' for q in queries)]
        one_by_one.append((time.perf_counter() - start) * 1000)
    print(f"classify one build against {len(queries)} fingerprints: median {statistics.median(batched):.1f} ms "
          f"(baseline raw-log scan of the build: {statistics.median(brute):.1f} ms; "
          f"one search per fingerprint: {statistics.median(one_by_one):.0f} ms); results identical to the scan")

    latency = event_to_comment(backend, sample, queries, work / "watch")
    print(f"event -> comment, logs already indexed, {len(queries)} fingerprints, {latency['events']} events: "
          f"median {latency['daemon_ms']:.1f} ms, max {latency['daemon_max_ms']:.1f} ms "
          f"(baseline, one search per fingerprint, classification alone: {latency['one_by_one_ms']:.0f} ms)")


if __name__ == "__main__":
    main()
