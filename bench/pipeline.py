"""The whole pipeline (issue 14): 100 builds × 50k lines served by a local
HTTP log server with a Zuul API (examples/demo_log_server.py, in its own
process), their Gerrit "Build failed" reports (Zuul v3 build URLs) replayed
through the real CLI, ``elastic-recheck watch --events FILE --dry-run``,
which resolves each build through Zuul's API, fetches its logs, indexes and
classifies them against 1,000 fingerprints shaped like the production ones
and prints each review from the stored result.

Measured: wall time from start to exit, the daemon's CPU and peak RSS, when
the server finished each build's last file (stamped server-side) and when
each review reached stdout (stamped as the line arrives): fetch vs the rest,
and per failed build the time from its last file to its review, with the
backlog of all the reports at once and with one report at a time (each sent
once the review before it is out, on ``--events -``).

Beside it, in the same run, the previous approach and the fastest plain
tools: the same builds from local disk through ``ingest_build_dirs`` (what
``ingest --builds`` ran before the pipeline: no classification) followed by
``match_build`` per build (how the daemon classified); the current
``elastic-recheck ingest --builds`` (index + percolation + stored results,
no fetching); and ``curl`` fetching every file, 4 at a time.

Run: .venv/bin/python bench/pipeline.py [--builds 100] [--lines 50000] [--single 10]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "examples"))

BIN = Path(sys.executable).parent
REVIEW = re.compile(rb"^review (\d+),(\d+):")


# -- the log server, in its own process ---------------------------------------


def serve(builds: str, port_file: str, stamps_file: str) -> None:
    """The demo log server, noting when it finished sending each log file."""
    import signal

    from demo_log_server import DemoLogServer

    server = DemoLogServer(Path(builds))
    out = open(stamps_file, "a", buffering=1)
    lock = threading.Lock()
    base = server.httpd.RequestHandlerClass

    class Stamping(base):  # type: ignore[misc, valid-type]
        def do_GET(self) -> None:  # noqa: N802
            started = time.time()
            super().do_GET()
            if self.path.startswith("/logs/") and not self.path.endswith("/"):
                with lock:
                    out.write(f"{started:.6f} {time.time():.6f} {self.path}\n")

    server.httpd.RequestHandlerClass = Stamping
    server.start()
    Path(port_file).write_text(str(server.httpd.server_address[1]))
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    stopped.wait()
    server.stop()
    out.close()


class LogServer:
    def __init__(self, builds: Path, work: Path) -> None:
        self.stamps = work / "served.txt"
        self.stamps.unlink(missing_ok=True)
        port_file = work / "port"
        port_file.unlink(missing_ok=True)
        self.process = subprocess.Popen([sys.executable, __file__, "--serve", str(builds), str(port_file),
                                         str(self.stamps)])
        for _ in range(200):
            if port_file.exists() and port_file.read_text():
                break
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{port_file.read_text()}"

    def served(self, since: float = 0.0) -> dict[str, tuple[float, float, int]]:
        """build directory -> (first request, last file finished, files), server-side, of requests since ``since``."""
        found: dict[str, list[float]] = {}
        for line in self.stamps.read_text().splitlines():
            started, finished, path = line.split(" ", 2)
            if float(started) < since:
                continue
            name = path.split("/")[2]
            entry = found.setdefault(name, [float(started), float(finished), 0])
            entry[0] = min(entry[0], float(started))
            entry[1] = max(entry[1], float(finished))
            entry[2] += 1
        return {name: (a, b, int(n)) for name, (a, b, n) in found.items()}

    def cpu(self) -> float:
        """The server's CPU seconds so far (from /proc)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


# -- builds and their reports -------------------------------------------------------


def report(builds: list[dict[str, Any]], zuul: str, number: int) -> dict[str, Any]:
    """A Gerrit "Build failed" comment by Zuul listing these builds (Zuul v3 build URLs)."""
    first = builds[0]
    change, patchset = 900000 + number, 1
    lines = "".join(f"- {b['build_name']} {zuul}/t/main/build/{b['uuid']} : {b['build_status']} in 52m 10s\n"
                    for b in builds)
    return {
        "type": "comment-added",
        "author": {"name": "Zuul", "username": "zuul"},
        "approvals": [{"type": "Verified", "value": "-2"}],
        "comment": f"Build failed (gate pipeline).  For information on how to proceed, see the docs.\n\n{lines}",
        "patchSet": {"number": patchset, "revision": hashlib.sha1(str(change).encode()).hexdigest(),
                     "ref": f"refs/changes/{change % 100:02d}/{change}/{patchset}"},
        "change": {"project": first["project"], "branch": "master", "id": f"I{change:040d}", "number": change,
                   "subject": f"Change {number}", "owner": {"name": "A Developer"},
                   "url": f"https://review.example.org/c/{first['project']}/+/{change}"},
        "eventCreatedOn": int(time.time()),
    }


def reports(builds: list[dict[str, Any]], zuul: str) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """One report per failed build, the passing builds shared out among them
    (a failed buildset's report lists its passing jobs too); with the failed
    builds each comment waits for."""
    failed = [b for b in builds if b["build_status"] == "FAILURE"]
    passed = [b for b in builds if b["build_status"] != "FAILURE"]
    groups: list[list[dict[str, Any]]] = [[b] for b in failed]
    for i, b in enumerate(passed):
        groups[i % len(groups)].append(b)
    return [(report(group, zuul, n), [group[0]]) for n, group in enumerate(groups)]


# -- the daemon ------------------------------------------------------------------------


class Watch:
    """``elastic-recheck watch --dry-run`` with every review line stamped as it arrives."""

    def __init__(self, data: Path, queries: Path, events: str, stdin: bool = False) -> None:
        shutil.rmtree(data, ignore_errors=True)
        env = {**os.environ, "ER_DATA_DIR": str(data), "ER_INGEST_LOG_HOSTS": "127.0.0.1"}
        self.log = open(data.parent / f"{data.name}-watch.log", "wb")
        self.reviews: dict[int, float] = {}
        self.arrived = threading.Condition()
        self.started = time.time()
        self.process = subprocess.Popen(
            [str(BIN / "elastic-recheck"), "watch", "--events", events, "--dry-run", "--queries", str(queries)],
            env=env, stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.threads: dict[int, tuple[str, float]] = {}  # thread id -> (name, CPU seconds), last seen
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        """Each thread's CPU, read from /proc every half second until the daemon exits:
        tantivy's threads are named by tantivy, Python's all carry the process's name."""
        tick = os.sysconf("SC_CLK_TCK")
        while self.process.poll() is None:
            try:
                for task in Path(f"/proc/{self.process.pid}/task").iterdir():
                    name, rest = task.joinpath("stat").read_text().rsplit(")", 1)
                    fields = rest.split()
                    self.threads[int(task.name)] = (name.split("(", 1)[1], (int(fields[11]) + int(fields[12])) / tick)
            except (OSError, ValueError, IndexError):
                pass
            time.sleep(0.5)

    def cpu_by_thread(self) -> str:
        totals: dict[str, float] = {}
        for name, used in self.threads.values():
            kind = "tantivy" if "tantivy" in name.lower() or name.startswith("thrd") else name
            totals[kind] = totals.get(kind, 0.0) + used
        return ", ".join(f"{name} {used:.1f}s" for name, used in sorted(totals.items(), key=lambda kv: -kv[1]))

    def _read(self) -> None:
        for line in self.process.stdout:  # type: ignore[union-attr]
            found = REVIEW.match(line)
            if found:
                with self.arrived:
                    self.reviews[int(found.group(1))] = time.time()
                    self.arrived.notify_all()

    def send(self, event: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(event).encode() + b"\n")
        self.process.stdin.flush()

    def wait_review(self, change: int, timeout: float = 120.0) -> float:
        with self.arrived:
            if not self.arrived.wait_for(lambda: change in self.reviews, timeout):
                raise SystemExit(f"no review for change {change} within {timeout:.0f}s; see {self.log.name}")
            return self.reviews[change]

    def finish(self) -> dict[str, float]:
        if self.process.stdin is not None:
            self.process.stdin.close()
        _, status, usage = os.wait4(self.process.pid, 0)
        ended = time.time()
        self._reader.join(10)
        self.log.close()
        if os.waitstatus_to_exitcode(status):
            raise SystemExit(f"watch failed with exit code {os.waitstatus_to_exitcode(status)}; see {self.log.name}")
        return {"wall": ended - self.started, "cpu": usage.ru_utime + usage.ru_stime,
                "rss": usage.ru_maxrss / 1024}


def stored(data: Path) -> dict[str, tuple[float, int, int]]:
    """build uuid -> (when its result was stored, its indexed lines, fingerprints matched)."""
    db = sqlite3.connect(data / "results.sqlite3")
    try:
        matched = dict(db.execute("SELECT uuid, COUNT(*) FROM matches GROUP BY uuid").fetchall())
        return {uuid: (at, lines, matched.get(uuid, 0))
                for uuid, at, lines in db.execute("SELECT uuid, stored, lines FROM builds")}
    finally:
        db.close()


def ms(values: list[float]) -> str:
    return (f"median {statistics.median(values) * 1000:,.0f} ms, min {min(values) * 1000:,.0f}, "
            f"max {max(values) * 1000:,.0f} ({len(values)} builds)")


# -- the previous approach ------------------------------------------------------------

PREVIOUS = r"""
import json, os, sys, time
from pathlib import Path
from elastic_recheck.fingerprints import load_fingerprints
from elastic_recheck.ingest import ingest_build_dirs
from elastic_recheck.search.embedded import EmbeddedBackend
backend = EmbeddedBackend(sys.argv[1])
fingerprints, _ = load_fingerprints(sys.argv[3], backend.check_query)
queries = [fp.voting_query for fp in fingerprints]
cpu = lambda: sum(os.times()[:2])
start, start_cpu = time.perf_counter(), cpu()
report = ingest_build_dirs(backend, Path(sys.argv[2]))  # `ingest --builds` before the pipeline
ingest_s, ingest_cpu = time.perf_counter() - start, cpu() - start_cpu
builds = [json.loads((d / "build.json").read_text()) for d in sorted(Path(sys.argv[2]).iterdir())]
start = time.perf_counter()
failed_s, matched = 0.0, {}
for build in builds:  # the daemon before the pipeline: match_build per build
    one = time.perf_counter()
    matched[build["build_uuid"]] = sum(backend.match_build(build["build_uuid"], queries))
    if build["build_status"] == "FAILURE":
        failed_s += time.perf_counter() - one
print(json.dumps({"ingest_s": ingest_s, "ingest_cpu": ingest_cpu, "documents": report.documents,
                  "classify_s": time.perf_counter() - start, "classify_failed_s": failed_s, "matched": matched}))
"""


def previous(work: Path, builds: Path, queries: Path) -> dict[str, Any]:
    index = work / "previous-index"
    shutil.rmtree(index, ignore_errors=True)
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", PREVIOUS, str(index), str(builds), str(queries)],
                               stdout=subprocess.PIPE)
    out = process.stdout.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit("the previous approach failed")
    shutil.rmtree(index, ignore_errors=True)
    return {**json.loads(out), "wall": time.perf_counter() - start, "cpu": usage.ru_utime + usage.ru_stime,
            "rss": usage.ru_maxrss / 1024}


def ingest_now(work: Path, builds: Path, queries: Path) -> dict[str, float]:
    data = work / "ingest-data"
    shutil.rmtree(data, ignore_errors=True)
    env = {**os.environ, "ER_DATA_DIR": str(data), "ER_WATCH_QUERIES": str(queries)}
    start = time.perf_counter()
    process = subprocess.Popen([str(BIN / "elastic-recheck"), "ingest", "--builds", str(builds)], env=env,
                               stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit("elastic-recheck ingest --builds failed")
    wall = time.perf_counter() - start
    lines = sum(v[1] for v in stored(data).values())
    shutil.rmtree(data, ignore_errors=True)
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss": usage.ru_maxrss / 1024, "lines": lines}


def curl_all(builds: Path, url: str, workers: int) -> float:
    files = sorted(str(p.relative_to(builds)) for p in builds.rglob("*") if p.is_file() and p.name != "build.json")
    listing = "".join(f"-o /dev/null {url}/logs/{name}\n" for name in files)
    start = time.perf_counter()
    subprocess.run(["xargs", "-P", str(workers), "-n", "60", "curl", "-s", "-f"], input=listing.encode(), check=True)
    return time.perf_counter() - start


# -- the run -----------------------------------------------------------------------------


def prepare(work: Path, count: int, lines: int, fingerprint_count: int) -> tuple[list[dict[str, Any]], Path, float]:
    """The builds and the fingerprints, cached in ``work`` (same arguments, same day: reused)."""
    from cibuilds import specs, write_builds
    from percolate import fingerprints, write_build

    stamp = work / "builds.json"
    key = {"count": count, "lines": lines, "fingerprints": fingerprint_count}
    if stamp.exists():
        cached = json.loads(stamp.read_text())
        if cached["key"] == key and time.time() - cached["created"] < 86400:
            return cached["builds"], work / "queries", cached["generate_s"]
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    sample = write_build(work / "sample", 30_000, seed=101)
    queries = work / "queries"
    queries.mkdir()
    for number, query in enumerate(fingerprints(fingerprint_count, Path(sample["dir"])), 6000000):
        (queries / f"{number}.yaml").write_text(json.dumps({"query": query, "title": f"fingerprint {number}"}))
    shutil.rmtree(work / "sample")
    written, generate_s = write_builds(work / "builds", specs(count, lines, time.time(), 2, seed=9))
    for b in written:
        b["dir_name"] = Path(b["dir"]).name
    stamp.write_text(json.dumps({"key": key, "created": time.time(), "builds": written, "generate_s": generate_s}))
    return written, queries, generate_s


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--builds", type=int, default=100)
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--fingerprints", type=int, default=1000)
    parser.add_argument("--single", type=int, default=10, help="reports sent one at a time, for the latency")
    parser.add_argument("--work", default="/work/bench-cache/pipeline")
    parser.add_argument("--skip", default="", help="comma-separated: backlog,single,previous,ingest,curl")
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve)
        return
    skip = set(args.skip.split(","))
    work = Path(args.work)
    builds, queries, generate_s = prepare(work, args.builds, args.lines, args.fingerprints)
    root = work / "builds"
    total_lines = sum(b["lines"] for b in builds)
    raw = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    failed = [b for b in builds if b["build_status"] == "FAILURE"]
    print(f"{len(builds)} builds, {total_lines:,} log lines ({raw / 2**20:,.0f} MiB on the server, 2 of 6 files "
          f"gzipped), {len(failed)} failed; generated in {generate_s:.0f}s; {args.fingerprints:,} fingerprints; "
          f"load before: {os.getloadavg()[0]:.2f}", flush=True)
    server = LogServer(root, work)
    by_uuid = {b["uuid"]: b for b in builds}
    try:
        if "backlog" not in skip:
            events = reports(builds, server.url)
            (work / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e, _ in events))
            server_cpu = server.cpu()
            watch = Watch(work / "backlog-data", queries, str(work / "events.jsonl"))
            done = watch.finish()
            served = server.served(watch.started)
            results = stored(work / "backlog-data")
            indexed_lines = sum(v[1] for v in results.values())
            fetch_end = max(s[1] for s in served.values()) - watch.started
            first_request = min(s[0] for s in served.values()) - watch.started
            last_stored = max(v[0] for v in results.values()) - watch.started
            fetch_each = [s[1] - s[0] for s in served.values()]
            latencies = []
            for event, waits_on in events:
                last_file = max(served[by_uuid[b["uuid"]]["dir_name"]][1] for b in waits_on)
                latencies.append(watch.reviews[event["change"]["number"]] - last_file)
            behind = [results[u][0] - served[b["dir_name"]][1] for u, b in by_uuid.items()]
            print(f"\nwatch --events (all {len(events)} reports at once, {len(builds)} builds): {done['wall']:.1f}s "
                  f"wall from start to exit, {done['cpu']:.1f}s CPU, peak RSS {done['rss']:.0f} MiB; "
                  f"{total_lines / done['wall']:,.0f} lines/s fetched+indexed+classified "
                  f"({indexed_lines:,} indexed: DEBUG dropped, the default); server {server.cpu() - server_cpu:.1f}s CPU")
            print(f"  first log request {first_request:.1f}s after start; last file served at {fetch_end:.1f}s; last "
                  f"result stored at {last_stored:.1f}s; each build's fetch (first request to last file): "
                  f"{ms(fetch_each)}; last file to result stored: {ms(behind)}")
            print(f"  CPU by thread (sampled every 0.5 s): {watch.cpu_by_thread()}")
            print(f"  builds stored: {len(results)}, {sum(1 for v in results.values() if v[2])} matched a fingerprint "
                  f"(reviews printed: {len(watch.reviews)} of {len(events)})")
            print(f"  last file served -> review printed (backlog): {ms(latencies)}", flush=True)
            (work / "backlog-matched.json").write_text(json.dumps({u: v[2] for u, v in results.items()}))
        if "single" not in skip:
            watch = Watch(work / "single-data", queries, "-", stdin=True)
            samples = []
            for n, b in enumerate(failed[: args.single + 1]):
                event = report([b], server.url, 1000 + n)
                sent = time.time()
                watch.send(event)
                at = watch.wait_review(event["change"]["number"])
                served = server.served(sent)[b["dir_name"]]
                samples.append((at - served[1], served[0] - sent, served[1] - served[0]))
            done = watch.finish()
            first, rest = samples[0], samples[1:]
            print(f"\none report at a time ({len(samples)}, each a failed build alone, sent once the review before "
                  f"it is out; the writer compiles the fingerprints before the daemon takes the first): last file "
                  f"served -> review printed: first {first[0] * 1000:,.0f} ms, then {ms([s[0] for s in rest])}; "
                  f"report sent -> first log request: {ms([s[1] for s in rest])}; fetch: {ms([s[2] for s in rest])}; "
                  f"peak RSS {done['rss']:.0f} MiB", flush=True)
        if "curl" not in skip:
            for workers in (4,):
                print(f"\ncurl, every file, {workers} at a time (xargs -P{workers}, 20 files per curl): "
                      f"{curl_all(root, server.url, workers):.1f}s", flush=True)
    finally:
        server.stop()
    if "ingest" not in skip:
        now = ingest_now(work, root, queries)
        print(f"\nelastic-recheck ingest --builds (local disk, no fetching; indexed, classified, results stored): "
              f"{now['wall']:.1f}s wall, {now['cpu']:.1f}s CPU, peak RSS {now['rss']:.0f} MiB "
              f"({now['lines']:,} lines indexed)", flush=True)
    if "previous" not in skip:
        old = previous(work, root, queries)
        matched = json.loads((work / "backlog-matched.json").read_text()) if (work / "backlog-matched.json").exists() else {}
        same = all(matched.get(u) == n for u, n in old["matched"].items()) if matched else None
        print(f"\nprevious approach (local disk): ingest_build_dirs, no classification: {old['ingest_s']:.1f}s wall "
              f"({old['ingest_cpu']:.1f}s CPU, {old['documents']:,} lines indexed); then match_build per build: "
              f"{old['classify_s']:.1f}s for all {len(builds)} builds ({old['classify_failed_s']:.1f}s for the "
              f"{len(failed)} failed ones); together {old['ingest_s'] + old['classify_s']:.1f}s, {old['cpu']:.1f}s "
              f"CPU, peak RSS {old['rss']:.0f} MiB; the same number of fingerprints matched per build as the "
              f"pipeline's stored results: {same}", flush=True)
    print(f"\nload after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
