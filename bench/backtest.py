"""What the backtest costs (issue 15, item 5): the window's totals from the
stored results and from the index, and every fingerprint of a directory
backtested as ``lint --backtest`` does, beside the same searches with the
``voting:1`` clause in the query (how the classifier's query reads).

It reads a data directory made by ``bench/dashboard_stored.py`` (an index and
its stored results; nothing is written to it: the results are copied first):

    .venv/bin/python bench/backtest.py /work/bench-cache/dashboard/data-5000000 QUERIES_DIR [QUERIES_DIR ...]

CPU time is printed beside wall time, and the load before and after, since
the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from elastic_recheck.backtest import backtest_fingerprints, build_totals, tally
from elastic_recheck.fingerprints import load_fingerprints
from elastic_recheck.results import ResultStore
from elastic_recheck.search import TimeWindow
from elastic_recheck.search.embedded import EmbeddedBackend


def timed(label: str, run: Callable[[], Any], repeat: int = 3) -> Any:
    walls, cpus = [], []
    result = None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    print(f"{label}: median {statistics.median(walls):.3f} s wall, {statistics.median(cpus):.3f} s CPU "
          f"(runs: {', '.join(f'{w:.2f}' for w in walls)})")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("queries", type=Path, nargs="+")
    parser.add_argument("--days", type=float, default=10.0)
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()[0]:.1f}")
    backend = EmbeddedBackend(args.data_dir / "index")
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copy(args.data_dir / "results.sqlite3", Path(scratch) / "results.sqlite3")
        store = ResultStore(Path(scratch) / "results.sqlite3")
        window = TimeWindow.last_days(args.days)
        print(f"index: {backend.health()['documents']:,} lines; window: {args.days:g} days")
        totals = timed("totals from the stored results", lambda: build_totals(backend, store, window))
        print(f"  {totals.total(False):,} failed, {totals.total(True):,} successful builds ({totals.source})")
        timed("totals from the index", lambda: build_totals(backend, None, window))
        for directory in args.queries:
            fingerprints, bad = load_fingerprints(directory, backend.check_query)
            print(f"{directory}: {len(fingerprints)} fingerprints ({len(bad)} refused)")
            _, done, errors = timed("  backtest_fingerprints (lint --backtest)",
                                    lambda: backtest_fingerprints(backend, store, fingerprints, window), repeat=1)
            over = sum(1 for item in done if item.backtest.exceeds(0.1))
            print(f"  {len(done)} backtested, {len(errors)} errors, {over} over 10%, "
                  f"{sum(1 for item in done if not item.backtest.matched_builds)} without hits")
            with_clause = timed("  the same with voting:1 in each query",
                                lambda: [tally(fp.voting_query, backend.builds(fp.voting_query, window), totals,
                                               voting_only=not fp.allow_nonvoting) for fp in fingerprints], repeat=1)
            same = all(item.backtest.matched_builds == other.matched_builds
                       for item, other in zip(done, with_clause) if not item.fingerprint.test_ids)
            print(f"  the same builds either way: {same}")
        store.close()
    backend.close()
    print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
