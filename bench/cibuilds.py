"""Many CI builds for the pipeline and dashboard benchmarks, written by
``percolate.write_build`` (a Zuul console log, oslo-format service logs with
tracebacks, syslog; two of the six files gzipped; Zipf-drawn words), with
the build metadata and failures of ``generate.py`` (a third of the builds
fail on a known bug, another seventh fail on nothing known, the rest pass),
dated over a window that ends now."""

from __future__ import annotations

import multiprocessing
import random
import time
from pathlib import Path
from typing import Any

from generate import JOBS, KNOWN_FAILURES, PROJECTS
from percolate import write_build


def specs(count: int, lines: int, now: float, days: float, seed: int = 5, first: int = 0) -> list[dict[str, Any]]:
    """What each build will be: ``count`` builds from number ``first`` on
    (the same numbers give the same builds), each starting between three
    hours and ``days`` before ``now`` (its lines, a few hours long, end
    before now)."""
    found = []
    for b in range(first, first + count):
        rng = random.Random(seed * 1_000_003 + b)
        failure = KNOWN_FAILURES[b % len(KNOWN_FAILURES)] if b % 3 == 0 else None
        status = "FAILURE" if failure or b % 7 == 0 else "SUCCESS"
        fields = {"build_name": JOBS[b % len(JOBS)], "build_status": status, "voting": "1",
                  "build_queue": "gate" if b % 2 else "check", "build_change": str(800000 + b),
                  "build_patchset": "1", "project": PROJECTS[b % len(PROJECTS)], "build_node": f"node-{b % 40}"}
        start = now - rng.uniform(3 * 3600, days * 86400)
        found.append({"number": b, "seed": seed * 1_000_003 + b, "lines": lines, "start": start,
                      "failure": failure, "fields": fields})
    return found


def _write(job: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    root, spec = job
    written = write_build(Path(root), spec["lines"], spec["seed"], spec["failure"], start=spec["start"],
                          **spec["fields"])
    return {**written, **spec["fields"], "number": spec["number"], "failure": spec["failure"]}


def write_builds(root: Path, wanted: list[dict[str, Any]], processes: int = 2) -> tuple[list[dict[str, Any]], float]:
    """Write the builds under ``root`` (a directory per build, its
    build.json beside its logs); returns them and the seconds it took."""
    started = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    jobs = [(str(root), spec) for spec in wanted]
    if processes > 1 and len(jobs) > 1:
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            written = pool.map(_write, jobs, chunksize=max(1, len(jobs) // (processes * 8)))
    else:
        written = [_write(job) for job in jobs]
    return written, time.perf_counter() - started
