"""The percolation benchmark (issue 14, classification): one build against
1,000 and 5,000 fingerprints shaped like the production ones, beside the
fastest alternatives a user has, measured in the same run:

* ``grep -wF -f patterns`` and ``rg -wF -f patterns`` over the build's raw
  files (process start included; gzipped files decompressed by ``gzip -dc``
  for grep, by ``rg -z`` itself);
* the index path before percolation: ``EmbeddedBackend.match_build`` over
  the build already indexed.

The percolator is measured in a fresh process per build (for its peak RSS)
on exactly what the pipeline gives it: the events and contexts ``ingest``
produces (a recording writer takes them from the real ingest path), with the
tokens analysed beforehand, as indexing does (matcher only), and with the
analysis counted (``analysis.index_text`` per event).

Run: .venv/bin/python bench/percolate.py [--sizes 5000,100000,500000] [--fingerprints 1000,5000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generate import JOBS, KNOWN_FAILURES, LEVELS, MODULES, PROJECTS, WORDS  # noqa: E402

from elastic_recheck import lucene  # noqa: E402
from elastic_recheck.analysis import index_text  # noqa: E402
from elastic_recheck.ingest import ingest_build  # noqa: E402
from elastic_recheck.ingest.sources import load_metadata_file, open_logs  # noqa: E402
from elastic_recheck.percolate import Percolator  # noqa: E402
from elastic_recheck.search import WriterBatch  # noqa: E402
from elastic_recheck.search.embedded import EmbeddedBackend  # noqa: E402

CHUNK = 1000  # events analysed, then matched, at a time, as the pipeline indexes them
SERVICES = ["screen-n-cpu.txt", "screen-n-api.txt", "screen-q-svc.txt", "screen-c-vol.txt", "syslog.txt"]
GZIPPED = {"screen-q-svc.txt", "syslog.txt"}
# Words that make log lines: generate.py's, the production fingerprints' kind
# of vocabulary, and a long tail of identifiers, drawn with Zipf's law so a few
# words are everywhere and most are rare, as in real logs.
_STEMS = ("compute instance volume network port server request conductor scheduler placement allocation "
          "libvirt domain attach detach snapshot image flavor quota token endpoint router subnet agent "
          "timeout waiting reply message failed error unable connection refused reset lost retry status "
          "state active building deleted spawning rebuild migrate resize confirm revert host node cell "
          "database mysql rabbit queue exchange channel heartbeat lock acquired released held seconds "
          "traceback exception raise return call rpc api http response code body header json").split()


def vocabulary(size: int = 3000, seed: int = 3) -> list[str]:
    rng = random.Random(seed)
    words = list(dict.fromkeys(WORDS + _STEMS))
    while len(words) < size:
        a, b = rng.choice(_STEMS), rng.choice(_STEMS)
        words.append(rng.choice([f"{a}_{b}", f"{a}{rng.randint(0, 99)}", f"{a}.{b}", f"{a}-{b}", f"{b}s"]))
    return list(dict.fromkeys(words))


class Text:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.words = vocabulary()
        weights = [1 / (rank + 1) for rank in range(len(self.words))]
        total = sum(weights)
        self.cumulative = []
        acc = 0.0
        for w in weights:
            acc += w / total
            self.cumulative.append(acc)

    def sentence(self, low: int = 4, high: int = 16) -> str:
        n = self.rng.randint(low, high)
        return " ".join(self.rng.choices(self.words, cum_weights=self.cumulative, k=n))


def write_build(root: Path, lines: int, seed: int, failure: tuple[str, str] | None = None,
                start: float = 1_780_000_000.0, **fields: str) -> dict[str, Any]:
    """One build in generate.py's layout (a Zuul console log, oslo-format
    service logs with tracebacks, syslog), some files gzipped. ``start``:
    its first line's time (epoch seconds); ``fields``: build.json values
    that replace the defaults (status, change, job...)."""
    rng = random.Random(seed)
    text = Text(seed)
    uuid = f"{rng.getrandbits(128):032x}"
    build_dir = root / uuid
    (build_dir / "logs").mkdir(parents=True, exist_ok=True)
    job = JOBS[seed % len(JOBS)]
    meta = {"build_uuid": uuid, "build_name": job, "build_status": "FAILURE", "voting": "1",
            "build_queue": "gate", "build_change": "800001", "build_patchset": "1",
            "project": PROJECTS[seed % len(PROJECTS)], "build_branch": "master", "build_node": "node-1",
            "log_url": f"https://logs.example.org/{uuid[:7]}/", **fields}
    job = meta["build_name"]
    (build_dir / "build.json").write_text(json.dumps(meta))
    per_file = lines // (len(SERVICES) + 2)
    clock = start

    def stamp(fmt: str) -> str:
        nonlocal clock
        clock += rng.randint(1, 400) / 1000
        return time.strftime(fmt, time.gmtime(clock)) + f".{int(clock * 1000) % 1000:03d}"

    written = 0
    with open(build_dir / "job-output.txt", "w") as out:
        for i in range(per_file * 2):
            line = text.sentence()
            if failure and failure[1] == "job-output.txt" and i == per_file:
                line = f"E: {failure[0]} while fetching packages"
            out.write(f"{stamp('%Y-%m-%d %H:%M:%S')} | controller | {line}\n")
            written += 1
    for service in SERVICES:
        path = build_dir / "logs" / (service + (".gz" if service in GZIPPED else ""))
        opener = gzip.open if service in GZIPPED else open
        with opener(path, "wt") as out:
            i = 0
            while i < per_file:
                level = rng.choice(LEVELS)
                body = text.sentence(6, 18)
                if failure and failure[1] == service and i == per_file // 2:
                    level, body = "ERROR", f"Exception during message handling: {failure[0]} 5f3e"
                out.write(f"{stamp('%Y-%m-%d %H:%M:%S')} {rng.randint(1000, 9999)} {level} "
                          f"{rng.choice(MODULES)} [req-{rng.getrandbits(32):08x}] {body}\n")
                i += 1
                if level == "ERROR":
                    for frame in ("Traceback (most recent call last):",
                                  '  File "/opt/stack/nova/nova/compute/manager.py", line 2743, in spawn',
                                  "    yield resources", f"RuntimeError: {body}"):
                        out.write(frame + "\n")
                        i += 1
            written += i
    return {"dir": str(build_dir), "uuid": uuid, "lines": written, "job": job}


def fingerprints(count: int, sample_dir: Path, seed: int = 11) -> list[str]:
    """``count`` voting queries shaped like the production ones: phrases of
    3-10 consecutive words cut from the lines of another build of the same
    kind (so their words occur in logs, and some phrases recur), each
    restricted to the file it came from (now and then another), a fifth to a
    job; some with two phrases, some an OR of two, a few with NOT."""
    rng = random.Random(seed)
    pool: list[tuple[str, str]] = []
    for path in sorted(Path(sample_dir).rglob("*.txt*")):
        name = path.name.removesuffix(".gz")
        tag = "console" if name == "job-output.txt" else name
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as handle:
            for line in handle:
                words = line.split()[3:] if tag == "console" else line.split()[5:]
                if len(words) >= 3:
                    pool.append((" ".join(words), tag))
    rng.shuffle(pool)

    def phrase(lengths: tuple[int, ...] = (3, 4, 4, 5, 5, 6, 7, 8, 10)) -> tuple[str, str]:
        line, tag = pool[rng.randrange(len(pool))]
        words = line.split()
        n = min(len(words), rng.choice(lengths))
        start = rng.randrange(len(words) - n + 1)
        text = " ".join(words[start : start + n]).replace("\\", "").replace('"', "")
        return text, tag

    queries = [f'(message:"{p}" AND tags:"{t}") AND voting:1' for p, t in KNOWN_FAILURES]
    while len(queries) < count:
        text, tag = phrase()
        if rng.random() < 0.1:
            tag = rng.choice(SERVICES + ["console"])
        roll = rng.random()
        body = f'message:"{text}"'
        if roll < 0.15:  # a second, shorter clause, as in message:"Timeout" AND message:"waiting for ..."
            body += f' AND message:"{phrase((1, 2, 3))[0]}"'
        elif roll < 0.25:
            body = f'(message:"{text}" OR message:"{phrase()[0]}")'
        elif roll < 0.30:
            body += f' AND NOT message:"{phrase()[0]}"'
        query = f'{body} AND tags:"{tag}"'
        if rng.random() < 0.2:
            query += f' AND build_name:"{rng.choice(JOBS)}"'
        queries.append(f"({query}) AND voting:1")
    return queries


def patterns(queries: list[str]) -> list[str]:
    """Every message phrase of the queries: what a grep user would search."""
    found: dict[str, None] = {}
    for query in queries:
        for leaf in lucene.iter_leaves(lucene.parse(query)):
            if getattr(leaf, "field", None) == "message":
                found[leaf.text] = None
    return list(found)


# -- the ingest path, recorded -------------------------------------------------


class _Recorder(WriterBatch):
    """A writer that keeps what ingest gives it: each context's fields and the
    (context, micros, message) of every event, in order."""

    def __init__(self) -> None:
        self.contexts: list[dict[str, Any]] = []
        self.events: list[tuple[int, int, str]] = []

    def replace_build(self, build_uuid: str) -> None:
        pass

    def context(self, fields: dict[str, Any]) -> int:
        self.contexts.append(dict(fields))
        return len(self.contexts) - 1

    def add_line(self, cid: int, micros: int, message: str) -> None:
        self.events.append((cid, micros, message))

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass


class _RecordingBackend:
    def __init__(self) -> None:
        self.recorder = _Recorder()

    def writer(self) -> _Recorder:
        return self.recorder


def recorded(build_dir: str) -> _Recorder:
    backend = _RecordingBackend()
    meta = load_metadata_file(str(Path(build_dir) / "build.json"))
    ingest_build(backend, open_logs(build_dir), meta, keep_debug=True)  # type: ignore[arg-type]
    return backend.recorder


# -- the measured child process ----------------------------------------------------


def measure(build_dir: str, queries_file: str, repeat: int) -> dict[str, Any]:
    queries = json.loads(Path(queries_file).read_text())
    keyed = {str(i): q for i, q in enumerate(queries)}
    record = recorded(build_dir)
    events = record.events
    start = time.perf_counter()
    tokens = [index_text(message) for _, _, message in events]
    analysis_s = time.perf_counter() - start
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    percolator = Percolator(keyed)
    compile_s = time.perf_counter() - start
    def runs_of(chunk: list[tuple[int, int, str]], texts: list[str],
                handles: list[int]) -> list[tuple[int, list, list, list]]:
        """Runs of consecutive events of one percolation handle (contexts it
        cannot tell apart share one), for the bulk entry point, as the pipeline
        makes them."""
        runs: list[tuple[int, list, list, list]] = []
        for (cid, micros, message), text in zip(chunk, texts):
            if not runs or runs[-1][0] != handles[cid]:
                runs.append((handles[cid], [], [], []))
            runs[-1][1].append(micros + 1 - 1)  # a fresh int, as the parser makes one per line
            runs[-1][2].append(message)
            runs[-1][3].append(text)
        return runs

    def fed(target: Percolator, bulk: bool) -> tuple[float, dict, float]:
        """The matcher's time alone, fed as the pipeline feeds it: a batch of
        events is analysed for indexing (not timed), then matched while its
        objects are still in the cache. Also its CPU time: on a machine other
        work shares, the wall-clock figure waits for the CPU."""
        spent = cpu = 0.0
        start, start_cpu = time.perf_counter(), time.process_time()
        build = target.start()
        handles = [build.context(fields) for fields in record.contexts]
        spent += time.perf_counter() - start
        cpu += time.process_time() - start_cpu
        for at in range(0, len(events), CHUNK):
            chunk = events[at : at + CHUNK]
            runs = runs_of(chunk, [index_text(message) for _, _, message in chunk], handles)
            start, start_cpu = time.perf_counter(), time.process_time()
            if bulk:
                for handle, micros, messages, texts in runs:
                    build.lines(handle, micros, messages, texts)
            else:
                line = build.line
                for handle, micros, messages, texts in runs:
                    for when, message, text in zip(micros, messages, texts):
                        line(handle, when, message, text)
            spent += time.perf_counter() - start
            cpu += time.process_time() - start_cpu
        start, start_cpu = time.perf_counter(), time.process_time()
        results = build.results()
        return spent + time.perf_counter() - start, results, cpu + time.process_time() - start_cpu

    def with_analysis() -> float:
        start = time.perf_counter()
        build = percolator.start()
        handles = [build.context(fields) for fields in record.contexts]
        line = build.line
        for cid, micros, message in events:
            line(handles[cid], micros, message, index_text(message))
        build.results()
        return time.perf_counter() - start

    def cold() -> float:
        """Every event analysed beforehand, then matched: the objects have left the cache."""
        start = time.perf_counter()
        build = percolator.start()
        handles = [build.context(fields) for fields in record.contexts]
        line = build.line
        for (cid, micros, message), text in zip(events, tokens):
            line(handles[cid], micros, message, text)
        build.results()
        return time.perf_counter() - start

    first_s, _, _ = fed(percolator, bulk=True)  # the first build of a new percolator compiles its kinds of context
    _, results, _ = fed(percolator, bulk=False)
    timings = {"first_build": first_s}
    bulk_runs = [fed(percolator, True) for _ in range(repeat)]
    timings["bulk_cpu"] = statistics.median(run[2] for run in bulk_runs)
    timings["bulk"] = statistics.median(run[0] for run in bulk_runs)
    for name, fn in (("per_line", lambda: fed(percolator, False)[0]), ("with_analysis", with_analysis), ("cold", cold)):
        timings[name] = statistics.median(fn() for _ in range(repeat))
    return {
        "events": len(events), "contexts": len(record.contexts), "analysis_s": analysis_s,
        "compile_s": compile_s, "fallback": len(percolator.fallback), "native": percolator.native,
        "matched": sorted(int(k) for k in results), "hits": sum(r.hits for r in results.values()),
        "rss_before_mib": rss_before / 1024, "rss_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **{f"{k}_s": v for k, v in timings.items()},
    }


# -- baselines ------------------------------------------------------------------------


def raw_files(build_dir: str) -> tuple[list[str], list[str]]:
    files = sorted(str(p) for p in Path(build_dir).rglob("*.txt*"))
    return [f for f in files if not f.endswith(".gz")], [f for f in files if f.endswith(".gz")]


def timed(command: list[str], repeat: int) -> tuple[float, str, float]:
    """Median wall-clock time, the output, and median CPU time (user + system of every process it ran)."""
    samples, cpu, output = [], [], ""
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        samples.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        output = done.stdout
    return statistics.median(samples), output, statistics.median(cpu)


def grep_command(build_dir: str, pattern_file: str) -> list[str]:
    plain, gzipped = raw_files(build_dir)
    quoted = " ".join(f"'{f}'" for f in plain)
    packed = " ".join(f"'{f}'" for f in gzipped)
    return ["sh", "-c", f"{{ cat {quoted}; gzip -dc {packed}; }} | grep -c -wF -f '{pattern_file}'"]


def rg_command(build_dir: str, pattern_file: str) -> list[str]:
    plain, gzipped = raw_files(build_dir)
    return ["rg", "-z", "-c", "--no-filename", "-wF", "-f", pattern_file, *plain, *gzipped]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="5000,100000,500000")
    parser.add_argument("--fingerprints", default="1000,5000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-index", action="store_true", help="skip the match_build baseline (ingest is slow)")
    parser.add_argument("--measure", nargs=2, metavar=("BUILD_DIR", "QUERIES_JSON"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], args.measure[1], args.repeat)))
        return
    work = Path(tempfile.mkdtemp(prefix="er-bench-perc-"))
    try:
        run(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.sizes.split(",")]
    counts = [int(c) for c in args.fingerprints.split(",")]
    sample = write_build(work / "sample", 30_000, seed=101)
    for n in counts:
        queries = fingerprints(n, Path(sample["dir"]))
        (work / f"queries-{n}.json").write_text(json.dumps(queries))
        (work / f"patterns-{n}.txt").write_text("\n".join(patterns(queries)) + "\n")
    print(f"machine: {os.cpu_count()} CPUs; rg: {subprocess.run(['rg', '--version'], capture_output=True, text=True).stdout.split(chr(10))[0]}")
    for size in sizes:
        build = write_build(work / "builds", size, seed=size % 97 + 1, failure=KNOWN_FAILURES[size % 5])
        plain, gzipped = raw_files(build["dir"])
        raw_bytes = sum(os.path.getsize(f) for f in plain) + sum(len(gzip.open(f).read()) for f in gzipped)
        backend = None
        if not args.no_index:
            backend = EmbeddedBackend(work / f"index-{size}")
            meta = load_metadata_file(str(Path(build["dir"]) / "build.json"))
            ingest_build(backend, open_logs(build["dir"]), meta, keep_debug=True)
        print(f"\nbuild of {build['lines']:,} lines ({raw_bytes / 2**20:.1f} MiB raw, {len(plain)} files + "
              f"{len(gzipped)} gzipped)")
        for n in counts:
            queries_file, pattern_file = work / f"queries-{n}.json", work / f"patterns-{n}.txt"
            child = subprocess.run([sys.executable, __file__, "--measure", build["dir"], str(queries_file),
                                    "--repeat", str(args.repeat)], capture_output=True, text=True, check=True)
            m = json.loads(child.stdout)
            grep_s, grep_out, grep_cpu = timed(grep_command(build["dir"], str(pattern_file)), args.repeat)
            rg_s, _, _ = timed(rg_command(build["dir"], str(pattern_file)), args.repeat)
            line = (f"  {n:,} fingerprints ({m['fallback']} fallback, {len(m['matched'])} matched, {m['hits']:,} "
                    f"hits; {m['events']:,} events in {m['contexts']} contexts; C matcher: {m['native']}):\n"
                    f"    percolator, tokens given: {m['per_line_s'] * 1000:.1f} ms per line() call, "
                    f"{m['bulk_s'] * 1000:.1f} ms in bulk (lines(), as the pipeline feeds it; CPU "
                    f"{m['bulk_cpu_s'] * 1000:.1f} ms), {m['cold_s'] * 1000:.1f} ms with every event analysed "
                    f"beforehand (out of the cache); with analysis: {m['with_analysis_s'] * 1000:.1f} ms "
                    f"(analysis alone {m['analysis_s'] * 1000:.1f} ms); first build of a new percolator "
                    f"{m['first_build_s'] * 1000:.1f} ms; compile {m['compile_s']:.2f} s once; peak RSS "
                    f"{m['rss_peak_mib']:.0f} MiB ({m['rss_before_mib']:.0f} MiB before the percolator)\n"
                    f"    grep -wF -f: {grep_s * 1000:.0f} ms (CPU {grep_cpu * 1000:.0f} ms; "
                    f"{grep_out.strip()} lines); "
                    f"rg -wF -f: {rg_s * 1000:.0f} ms")
            if backend is not None:
                queries = json.loads(queries_file.read_text())
                for query in queries:  # translated once, as the daemon does
                    backend.check_query(query)
                start = time.perf_counter()
                matched = backend.match_build(build["uuid"], queries)
                index_s = time.perf_counter() - start
                agree = [i for i, hit in enumerate(matched) if hit] == m["matched"]
                line += f"; match_build (index): {index_s * 1000:.0f} ms; same fingerprints matched: {agree}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
