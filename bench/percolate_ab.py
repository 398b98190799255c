"""The percolator's matcher against another build of its C extension, in one
process, run after run in turn (issue 14): on a machine other work shares,
two processes timed minutes apart differ by more than a change to the matcher
does; runs paired in time share the load.

Both matchers get the same percolator compile and the same build (written and
ingested as ``percolate.py`` does), fed as the pipeline feeds it: a batch of
1,000 events analysed (not timed), then matched with ``lines()`` per run of one
percolation handle. Their answers must be the same.

Run: .venv/bin/python bench/percolate_ab.py OTHER_PERCOLATE_SO [--size 500000] [--fingerprints 5000] [--rounds 20]
(OTHER_PERCOLATE_SO: e.g. main's ``elastic_recheck/_percolate.*.so``, built in its own tree)
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generate import KNOWN_FAILURES  # noqa: E402
from percolate import CHUNK, fingerprints, recorded, write_build  # noqa: E402

from elastic_recheck.analysis import index_text  # noqa: E402
from elastic_recheck.percolate import Percolator  # noqa: E402


def load_other(path: str) -> Any:
    """The other build of ``_percolate``, under a name of its own."""
    spec = importlib.util.spec_from_file_location("other_build._percolate", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path}: not an extension module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("other")
    parser.add_argument("--size", type=int, default=500_000)
    parser.add_argument("--fingerprints", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    other = load_other(args.other)
    work = Path(tempfile.mkdtemp(prefix="er-bench-perc-ab-"))
    try:
        sample = write_build(work / "sample", 30_000, seed=101)
        queries = {str(i): q for i, q in enumerate(fingerprints(args.fingerprints, Path(sample["dir"])))}
        build = write_build(work / "builds", args.size, seed=args.size % 97 + 1,
                            failure=KNOWN_FAILURES[args.size % 5])
        record = recorded(build["dir"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    this_p = Percolator(queries)
    other_p = Percolator(queries)
    other_p._engine, other_p._build_type = other.Matcher, other.Build  # the other build's tables and runs

    def fed(percolator: Percolator) -> tuple[float, list]:
        cpu = 0.0
        matching = percolator.start()
        handles = [matching.context(fields) for fields in record.contexts]
        for at in range(0, len(record.events), CHUNK):
            runs: list[tuple[int, list, list, list]] = []
            for cid, micros, message in record.events[at : at + CHUNK]:
                if not runs or runs[-1][0] != handles[cid]:  # as the pipeline groups them
                    runs.append((handles[cid], [], [], []))
                runs[-1][1].append(micros + 1 - 1)  # a fresh int, as the parser makes one per line
                runs[-1][2].append(message)
                runs[-1][3].append(index_text(message))
            start = time.process_time()
            for handle, micros, messages, texts in runs:
                matching.lines(handle, micros, messages, texts)
            cpu += time.process_time() - start
        found = matching.results()
        return cpu, sorted((key, m.hits, m.newest_micros) for key, m in found.items())

    this_answer, other_answer = fed(this_p)[1], fed(other_p)[1]  # also compiles each one's kinds of context
    if this_answer != other_answer:
        raise SystemExit("the two matchers answer differently")
    mine, theirs = [], []
    for _ in range(args.rounds):
        mine.append(fed(this_p)[0])
        theirs.append(fed(other_p)[0])
    ratios = [a / b for a, b in zip(mine, theirs)]
    print(f"{len(record.events):,} events x {len(queries):,} fingerprints, {len(this_answer)} matched; "
          f"lines() CPU, {args.rounds} rounds: this {statistics.median(mine) * 1000:.1f} ms median "
          f"(min {min(mine) * 1000:.1f}), other {statistics.median(theirs) * 1000:.1f} ms "
          f"(min {min(theirs) * 1000:.1f}); this / other, paired: median {statistics.median(ratios):.3f} "
          f"[{min(ratios):.3f}-{max(ratios):.3f}]")


if __name__ == "__main__":
    main()
