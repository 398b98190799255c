"""The dashboard from stored results (issue 14): ``elastic-recheck dashboard``
and ``uncategorized`` over 5M and 20M indexed log lines with 1,000
fingerprints shaped like the production ones, beside the previous approach
in the same run: the same command over the same index with no stored
results, so ``dashboard.trends.collect`` runs every fingerprint's
``backend.builds`` aggregation over the window (its per-fingerprint path:
more than CATCH_UP_BY_BUILD builds unclassified).

The index and the results are built through the pipeline
(``elastic_recheck.pipeline.index_builds``, the writer path ``ingest`` and
the daemon use: each build classified as it is indexed, its result stored),
every line kept, and cached under ``--work`` (default
/work/bench-cache/dashboard): a re-run the same day reuses them. Builds of
5,000 lines spread over the last 9.5 days; the cache is rebuilt when it is
more than a day old (its builds would leave the 10-day window).

Every command runs as a child process (its peak RSS from its own rusage).

Run: .venv/bin/python bench/dashboard_stored.py [--sizes 5000000,20000000] [--baseline-fingerprints 100 | --no-baseline]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cibuilds import specs, write_builds  # noqa: E402
from percolate import fingerprints, write_build  # noqa: E402

from elastic_recheck.fingerprints import load_fingerprints  # noqa: E402
from elastic_recheck.ingest.sources import load_metadata_file  # noqa: E402
from elastic_recheck.pipeline import LogsReady, index_builds  # noqa: E402
from elastic_recheck.results import ResultStore  # noqa: E402
from elastic_recheck.search.embedded import EmbeddedBackend  # noqa: E402

BIN = Path(sys.executable).parent
LINES_PER_BUILD = 5_000
CHUNK = 100  # builds generated, indexed, then deleted at a time
MAX_AGE = 86400.0  # a cache older than this is rebuilt: its builds would leave the window


def write_queries(directory: Path, queries: list[str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for number, query in enumerate(queries, 5000000):
        body = {"query": query, "title": f"generated fingerprint {number}", "projects": ["openstack/nova"]}
        (directory / f"{number}.yaml").write_text(json.dumps(body))


def child(command: list[str], env: dict[str, str], output: Path | None = None) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MiB) of one
    child process, from its own rusage: on a loaded machine the CPU time is
    the figure that compares."""
    start = time.perf_counter()
    with open(output or os.devnull, "wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out)
        _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{' '.join(command[:3])} failed with exit code {os.waitstatus_to_exitcode(status)}")
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def build_cache(work: Path, sizes: list[int], count: int) -> dict:
    """The queries and one data directory (index + results) per size, each
    holding the builds of the one before and more."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    now = time.time()
    sample = write_build(work / "sample", 30_000, seed=101)
    write_queries(work / "queries", fingerprints(count, Path(sample["dir"])))
    shutil.rmtree(work / "sample")
    info: dict = {"created": now, "sizes": {}, "generate_s": 0.0, "index_s": 0.0, "copy_s": 0.0}
    done = 0
    previous: Path | None = None
    for size in sorted(sizes):
        data = work / f"data-{size}"
        if previous is not None:
            started = time.perf_counter()
            shutil.copytree(previous, data)
            info["copy_s"] += time.perf_counter() - started
        backend = EmbeddedBackend(data / "index")
        good, bad = load_fingerprints(work / "queries", backend.check_query)
        assert not bad, bad[:3]
        wanted = size // LINES_PER_BUILD
        while done < wanted:
            batch = specs(min(CHUNK, wanted - done), LINES_PER_BUILD, now, 9.5, first=done)
            logs = work / "logs"
            written, generate_s = write_builds(logs, batch)
            started = time.perf_counter()
            items = [LogsReady(load_metadata_file(str(Path(b["dir"]) / "build.json")), b["dir"]) for b in written]
            report = index_builds(backend, data / "results.sqlite3", good, items, keep_debug=True, window_days=10)
            info["index_s"] += time.perf_counter() - started
            info["generate_s"] += generate_s
            info["lines"] = info.get("lines", 0) + report.documents
            shutil.rmtree(logs)
            done += len(batch)
            print(f"  {done} builds: {info['generate_s']:.0f}s generating, {info['index_s']:.0f}s indexing "
                  f"({info['lines']:,} lines)", flush=True)
        info["sizes"][str(size)] = {"builds": done, "documents": backend.health()["documents"]}
        previous = data
    (work / "cache.json").write_text(json.dumps(info))
    return info


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="5000000,20000000")
    parser.add_argument("--fingerprints", type=int, default=1000)
    parser.add_argument("--work", default="/work/bench-cache/dashboard")
    parser.add_argument("--no-baseline", action="store_true", help="skip the per-fingerprint runs (slow at 20M)")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--build-only", action="store_true", help="build the cache, measure nothing")
    parser.add_argument("--baseline-fingerprints", type=int, default=None,
                        help="run the previous approach on the first N fingerprints only (it takes minutes per "
                             "hundred at 20M lines); compared with the stored results' rows of the same fingerprints")
    args = parser.parse_args()
    work = Path(args.work)
    sizes = [int(s) for s in args.sizes.split(",")]
    cache = work / "cache.json"
    info = json.loads(cache.read_text()) if cache.exists() and not args.rebuild else None
    if (info is None or time.time() - info["created"] > MAX_AGE or any(str(s) not in info["sizes"] for s in sizes)):
        print(f"building the cache in {work} ...", flush=True)
        info = build_cache(work, sizes, args.fingerprints)
    print(f"cache: generated in {info['generate_s']:.0f}s (2 processes), indexed and classified through "
          f"index_builds in {info['index_s']:.0f}s ({info['lines']:,} lines in all), copied in {info['copy_s']:.0f}s")
    if args.build_only:
        return
    queries = work / "queries"
    for size in sizes:
        data = work / f"data-{size}"
        meta = info["sizes"][str(size)]
        print(f"\n{meta['documents']:,} indexed log lines in {meta['builds']:,} builds, {args.fingerprints:,} "
              f"fingerprints", flush=True)
        env = {**os.environ, "ER_DATA_DIR": str(data)}
        site = work / "site"
        dashboard = [str(BIN / "elastic-recheck"), "dashboard", "--output", str(site), "--queries", str(queries)]
        print(f"  (1-minute load before: {os.getloadavg()[0]:.1f})")
        for run in (1, 2):
            wall, cpu, rss = child(dashboard, env)
            print(f"  dashboard from stored results, run {run}: {wall:.2f}s wall, {cpu:.2f}s CPU, "
                  f"peak RSS {rss:.0f} MiB", flush=True)
        # Each run looks up the lines its bugs matched in builds not looked up
        # before, for dashboard.line_search_seconds; a store filled at once
        # (4,000 builds here) needs many runs for that, a daemon-fed one a
        # few searches a run. The steady state: every listed build's lines known.
        wall, cpu, rss = child(dashboard, {**env, "ER_DASHBOARD_LINE_SEARCH_SECONDS": "3600"})
        print(f"  (every listed build's lines looked up, one unbounded run: {wall:.0f}s wall)", flush=True)
        for run in (1, 2):
            wall, cpu, rss = child(dashboard, env)
            print(f"  dashboard from stored results, lines known, run {run}: {wall:.2f}s wall, {cpu:.2f}s CPU, "
                  f"peak RSS {rss:.0f} MiB", flush=True)
        for run in (1, 2):
            wall, cpu, rss = child([str(BIN / "elastic-recheck"), "uncategorized", "--queries", str(queries)], env,
                                   work / "uncategorized.txt")
            print(f"  uncategorized from stored results, run {run}: {wall:.2f}s wall, {cpu:.2f}s CPU, "
                  f"peak RSS {rss:.0f} MiB", flush=True)
        print("  " + (work / "uncategorized.txt").read_text().splitlines()[0])
        if args.no_baseline:
            continue
        # The previous approach: the same index, nothing stored; every
        # fingerprint's builds aggregation over the window.
        base = work / f"base-{size}"
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(mode=0o700)
        (base / "index").symlink_to(data / "index")
        base_site = work / "base-site"
        base_queries = queries
        sample = args.baseline_fingerprints
        if sample:
            base_queries = work / "base-queries"
            shutil.rmtree(base_queries, ignore_errors=True)
            base_queries.mkdir()
            for path in sorted(queries.iterdir())[:sample]:
                shutil.copy(path, base_queries / path.name)
        wall, _, rss = child([str(BIN / "elastic-recheck"), "dashboard", "--output", str(base_site),
                              "--queries", str(base_queries)], {**os.environ, "ER_DATA_DIR": str(base)})
        print(f"  previous approach (no stored results: one builds aggregation per fingerprint over the window), "
              f"dashboard, {sample or args.fingerprints} fingerprints: {wall:.2f}s wall, peak RSS {rss:.0f} MiB",
              flush=True)
        shown = {r["bug"]: r["fails_window"] for r in json.loads((site / "data" / "all.json").read_text())["bugs"]}
        expected = {r["bug"]: r["fails_window"]
                    for r in json.loads((base_site / "data" / "all.json").read_text())["bugs"]}
        differ = sorted(b for b in expected if shown.get(b) != expected[b])
        hit = sum(1 for v in expected.values() if v)
        print(f"  failure counts per fingerprint identical to the previous approach's: {not differ} "
              f"({hit} fingerprints with failures; {len(differ)} differ{': ' + ', '.join(differ[:5]) if differ else ''})")
        store = ResultStore(data / "results.sqlite3")
        try:
            print(f"  stored: {sum(1 for _ in store.builds()):,} builds")
        finally:
            store.close()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
