"""Event → comment latency of the real-time path (issue 2/6), once a build's
logs are indexed: the real Daemon (state database, readiness check, batched
classification, rendering) with 1,000 fingerprints, beside one search per
fingerprint for the same builds."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

from elastic_recheck.config import Settings, WatchSettings
from elastic_recheck.search import SearchBackend
from elastic_recheck.state import StateDB
from elastic_recheck.watch import Daemon, FingerprintSet


class StampingReviewer:
    """Notes when each review is handed over for posting."""

    def __init__(self) -> None:
        self.posted: dict[int, float] = {}

    def review(self, project: str, change: int, patchset: int, message: str) -> None:
        self.posted[change] = time.perf_counter()


def failure_event(change: int, job: str, build_uuid: str, project: str) -> dict[str, Any]:
    url = f"https://zuul.example.org/t/main/build/{build_uuid}"
    return {
        "type": "comment-added",
        "author": {"username": "zuul"},
        "comment": f"Patch Set 1:\n\nBuild failed (gate pipeline).\n\n- {job} {url} : FAILURE in 10m 02s\n",
        "change": {"number": str(change), "project": project, "branch": "master",
                   "url": f"https://review.example.org/{change}"},
        "patchSet": {"number": "1"},
        "eventCreatedOn": int(time.time()),
    }


def write_queries(directory: Path, queries: list[str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for number, query in enumerate(queries, 3000000):
        (directory / f"{number}.yaml").write_text(json.dumps({"query": query}))


def event_to_comment(backend: SearchBackend, builds: list[dict], queries: list[str], work: Path) -> dict[str, float]:
    """Median milliseconds from an event arriving to its review being posted,
    and for the baseline, one search per fingerprint for the same builds."""
    write_queries(work / "queries", queries)
    settings = Settings(data_dir=work, watch=WatchSettings(queries=str(work / "queries"), comment_unrecognized=True))
    state = StateDB(work / "latency-state.sqlite3")
    reviewer = StampingReviewer()
    daemon = Daemon(settings, backend, state, reviewer, FingerprintSet(settings.watch.queries))
    daemon.fingerprints.current()  # loaded at start-up, as `watch` does
    latencies = []
    for change, build in enumerate(builds, 700000):
        meta = json.loads((Path(build["dir"]) / "build.json").read_text())
        event = failure_event(change, meta["build_name"], build["build_uuid"], meta["project"])
        start = time.perf_counter()
        daemon.accept(event)
        daemon.process_due()
        if change not in reviewer.posted:
            raise AssertionError(f"no review for build {build['build_uuid']}")
        latencies.append((reviewer.posted[change] - start) * 1000)
    state.close()
    one_by_one = []
    for build in builds[:5]:
        start = time.perf_counter()
        [backend.count(f'({q}) AND build_uuid:"{build["build_uuid"]}"') > 0 for q in queries]
        one_by_one.append((time.perf_counter() - start) * 1000)
    return {"daemon_ms": statistics.median(latencies), "daemon_max_ms": max(latencies),
            "one_by_one_ms": statistics.median(one_by_one), "events": len(latencies)}


__all__ = ["event_to_comment"]
