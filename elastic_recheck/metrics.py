"""What the daemon has done, for operators: Prometheus metrics on an optional
HTTP port, and the same figures in the state database for ``status``.

Counters live in memory (Prometheus' rule: they start at zero with the
process) and the daemon thread adds what changed to the state database about
once a second, so ``elastic-recheck status`` shows the totals since the data
directory was made, across restarts.
"""

from __future__ import annotations

import bisect
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable, Mapping

from .errors import ConfigError

log = logging.getLogger(__name__)
PREFIX = "elastic_recheck_"
COUNTERS = {
    "events": "Gerrit events seen",
    "accepted": "failure reports accepted and persisted",
    "duplicates": "failure reports seen before, ignored",
    "malformed": "malformed events skipped",
    "classified": "failed jobs matched to at least one known bug",
    "unrecognized": "failed jobs no fingerprint explains",
    "timeouts": "failed jobs whose logs were not indexed in time",
    "ambiguous": "failed jobs whose short build id matched several builds",
    "errors": "events parked after an unexpected error",
    "commented": "review comments posted on Gerrit",
    "announced": "IRC lines queued",
    "backend_errors": "search backend failures (the event is retried)",
    "gerrit_errors": "review comments Gerrit did not take",
    "irc_errors": "IRC connection and send failures",
    "irc_dropped": "IRC lines dropped because the outbox was full",
}
GAUGES = {"queue_depth": "failure reports waiting for logs or for a retry"}
LATENCY = "classification_seconds"
LATENCY_HELP = "time to classify one failure report against every fingerprint"
BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def bucket_name(bound: float) -> str:
    return f"{LATENCY}_bucket:{bound:g}"


class Metrics:
    """Counters, gauges and one latency histogram; safe to read from the
    HTTP thread while the daemon thread writes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, float] = {name: 0 for name in COUNTERS}
        self._values.update({name: 0 for name in GAUGES})
        self._values.update({bucket_name(b): 0 for b in BUCKETS})
        self._values.update({f"{LATENCY}_sum": 0.0, f"{LATENCY}_count": 0})
        self._flushed: dict[str, float] = {}

    def inc(self, name: str, amount: float = 1) -> None:
        if name not in COUNTERS:
            raise KeyError(name)
        with self._lock:
            self._values[name] += amount

    def set(self, name: str, value: float) -> None:
        if name not in GAUGES:
            raise KeyError(name)
        with self._lock:
            self._values[name] = value

    def observe(self, seconds: float) -> None:
        """One classification's duration into the cumulative buckets."""
        with self._lock:
            for bound in BUCKETS[bisect.bisect_left(BUCKETS, seconds):]:
                self._values[bucket_name(bound)] += 1
            self._values[f"{LATENCY}_sum"] += seconds
            self._values[f"{LATENCY}_count"] += 1

    def __getitem__(self, name: str) -> float:
        with self._lock:
            return self._values[name]

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return dict(self._values)

    def unflushed(self) -> tuple[dict[str, float], dict[str, float]]:
        """(counter increments, changed gauges) since the last flush, and
        marks them flushed: what the daemon thread writes to the state DB,
        nothing at all while the daemon is idle."""
        with self._lock:
            deltas: dict[str, float] = {}
            gauges: dict[str, float] = {}
            for name, value in self._values.items():
                if name in GAUGES:
                    if self._flushed.get(name) != value:
                        gauges[name] = value
                elif value != self._flushed.get(name, 0):
                    deltas[name] = value - self._flushed.get(name, 0)
                else:
                    continue
                self._flushed[name] = value
        return deltas, gauges


def exposition(values: Mapping[str, float]) -> str:
    """The Prometheus text format (version 0.0.4)."""
    lines: list[str] = []
    for name, help_text in COUNTERS.items():
        lines += [f"# HELP {PREFIX}{name}_total {help_text}", f"# TYPE {PREFIX}{name}_total counter",
                  f"{PREFIX}{name}_total {_number(values.get(name, 0))}"]
    for name, help_text in GAUGES.items():
        lines += [f"# HELP {PREFIX}{name} {help_text}", f"# TYPE {PREFIX}{name} gauge",
                  f"{PREFIX}{name} {_number(values.get(name, 0))}"]
    metric = PREFIX + LATENCY
    lines += [f"# HELP {metric} {LATENCY_HELP}", f"# TYPE {metric} histogram"]
    for bound in BUCKETS:
        lines.append(f'{metric}_bucket{{le="{bound:g}"}} {_number(values.get(bucket_name(bound), 0))}')
    count = values.get(f"{LATENCY}_count", 0)
    lines += [f'{metric}_bucket{{le="+Inf"}} {_number(count)}',
              f"{metric}_sum {values.get(f'{LATENCY}_sum', 0.0):.6f}", f"{metric}_count {_number(count)}"]
    return "\n".join(lines) + "\n"


def summary_lines(values: Mapping[str, float]) -> Iterable[str]:
    """The same figures for people (``elastic-recheck status``)."""
    width = max(len(help_text) for help_text in (*COUNTERS.values(), *GAUGES.values()))
    for name, help_text in {**COUNTERS, **GAUGES}.items():
        yield f"{help_text:<{width}}  {_number(values.get(name, 0))}"
    count = values.get(f"{LATENCY}_count", 0)
    if count:
        mean = values.get(f"{LATENCY}_sum", 0.0) / count
        median = next((b for b in BUCKETS if values.get(bucket_name(b), 0) >= count / 2), None)
        within = f"at most {median:g}s" if median is not None else f"over {BUCKETS[-1]:g}s"
        yield f"{'classification time':<{width}}  {int(count)} classified, mean {mean:.3f}s, median {within}"
    else:
        yield f"{'classification time':<{width}}  nothing classified yet"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6f}"


class MetricsServer:
    """``GET /metrics`` on ``address:port``, in a thread of its own."""

    def __init__(self, metrics: Metrics, address: str, port: int) -> None:
        self.metrics = metrics
        handler = self._handler_class()
        try:
            self.server = ThreadingHTTPServer((address, port), handler)
        except OSError as exc:
            raise ConfigError(f"watch.metrics_port: cannot listen on {address}:{port}: {exc.strerror}") from None
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.2,), name="metrics", daemon=True)

    def start(self) -> "MetricsServer":
        self.thread.start()
        log.info("metrics on http://%s:%d/metrics", self.server.server_address[0], self.port)
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        metrics = self.metrics

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (the http.server API)
                if self.path.split("?")[0] not in ("/metrics", "/"):
                    self.send_error(404)
                    return
                body = exposition(metrics.snapshot()).encode()
                self.send_response(200)
                self.send_header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler
