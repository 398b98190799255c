"""What the daemon has done, for operators: Prometheus metrics on an optional
HTTP port, and the same figures in the state database for ``status``.

Counters live in memory (Prometheus' rule: they start at zero with the
process) and the daemon thread adds what changed to the state database about
once a second, so ``elastic-recheck status`` shows the totals since the data
directory was made, across restarts.

The text format comes from ``prometheus_client`` (its escaping and layout are
the reference scrapers are tested against); the port is served by our own
:class:`MetricsServer`, because ``http.server`` — and ``prometheus_client``'s
``start_http_server``, built on it — spends a thread per connection and has
no deadline for a request: 60 idle connections once left the daemon unable to
start a thread for its Gerrit reviewer.
"""

from __future__ import annotations

import bisect
import logging
import threading
from typing import Iterable, Iterator, Mapping

from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric

from .metrics_http import Answer, BoundedHTTPServer

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
GAUGES = {
    "queue_depth": "failure reports waiting for logs or for a retry",
    "builds_queued": "builds waiting to be fetched",
    "builds_fetching": "builds being fetched or indexed",
    "builds_indexed": "builds fetched, indexed and classified",
    "builds_failed": "builds whose logs could not be fetched",
}
LATENCY = "classification_seconds"
LATENCY_HELP = "time to classify one failure report against every fingerprint"
BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what generate_latest writes


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


class _Snapshot:
    """A prometheus_client collector over one snapshot of the values."""

    def __init__(self, values: Mapping[str, float]) -> None:
        self.values = values

    def collect(self) -> Iterator[Metric]:
        values = self.values
        for name, help_text in COUNTERS.items():
            yield CounterMetricFamily(PREFIX + name, help_text, value=values.get(name, 0))
        for name, help_text in GAUGES.items():
            yield GaugeMetricFamily(PREFIX + name, help_text, value=values.get(name, 0))
        count = values.get(f"{LATENCY}_count", 0)
        buckets = [(f"{bound:g}", values.get(bucket_name(bound), 0)) for bound in BUCKETS] + [("+Inf", count)]
        yield HistogramMetricFamily(PREFIX + LATENCY, LATENCY_HELP, buckets=buckets,
                                    sum_value=values.get(f"{LATENCY}_sum", 0.0))


def exposition(values: Mapping[str, float]) -> str:
    """The Prometheus text format (version 0.0.4): ``elastic_recheck_*_total``
    counters, the ``queue_depth`` gauge, the ``classification_seconds`` histogram."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(values))
    return generate_latest(registry).decode("utf-8")


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
    """``GET /metrics`` on ``address:port``, in a thread of its own; the limits
    on connections, time and request size are :class:`BoundedHTTPServer`'s."""

    def __init__(self, metrics: Metrics, address: str, port: int, *, max_connections: int = 64,
                 timeout: float = 10.0, max_request_bytes: int = 8192) -> None:
        self.metrics = metrics
        self.server = BoundedHTTPServer(self._answer, address, port, max_connections=max_connections,
                                        timeout=timeout, max_request_bytes=max_request_bytes, name="metrics",
                                        setting="watch.metrics_port")
        self.port = self.server.port

    def start(self) -> "MetricsServer":
        self.server.start()
        log.info("metrics on http://%s:%d/metrics", self.server.address, self.port)
        return self

    def stop(self) -> None:
        self.server.stop()

    def _answer(self, method: str, path: str) -> Answer:
        if path not in ("/metrics", "/"):
            return 404, "text/plain; charset=utf-8", b"404 Not Found: the metrics are at /metrics\n"
        return 200, CONTENT_TYPE, exposition(self.metrics.snapshot()).encode()
