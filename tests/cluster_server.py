"""A local HTTP server that answers like an Elasticsearch or OpenSearch node
from recorded response shapes, and records every request it gets.

No cluster can run on the test machines (no JVM cluster fits their memory and
time), so the cluster backend
is tested over real HTTP — through the official client's transport, TLS-free
on loopback — against answers shaped like the ones real servers give. Each
test routes the requests it cares about; anything unrouted is a 404 with an
Elasticsearch-style error body, so a request nobody expected fails loudly.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

ROOTS = {
    ("elasticsearch", "8.15.0"): {
        "name": "es-node-1",
        "cluster_name": "ci-logs",
        "cluster_uuid": "N3QdJzvYQw6W9k3sQe1aBQ",
        "version": {
            "number": "8.15.0",
            "build_flavor": "default",
            "build_type": "docker",
            "build_hash": "1a77947f34deddb41af25e6f0ddb8e830159c179",
            "build_date": "2024-08-05T10:05:34.233336849Z",
            "build_snapshot": False,
            "lucene_version": "9.11.1",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0",
        },
        "tagline": "You Know, for Search",
    },
    ("elasticsearch", "7.4.2"): {
        "name": "es7",
        "cluster_name": "ci-logs",
        "cluster_uuid": "k8Rj0nBvQcWZ3GxW1yJd2g",
        "version": {
            "number": "7.4.2",
            "build_flavor": "oss",
            "build_type": "tar",
            "build_hash": "2f90bbf7b93631e52bafb59b3b049cb44ec25e96",
            "build_date": "2019-10-28T20:40:44.881551Z",
            "build_snapshot": False,
            "lucene_version": "8.2.0",
            "minimum_wire_compatibility_version": "6.8.0",
            "minimum_index_compatibility_version": "6.0.0-beta1",
        },
        "tagline": "You Know, for Search",
    },
    ("elasticsearch", "6.8.23"): {
        "name": "old",
        "cluster_name": "ci-logs",
        "version": {"number": "6.8.23", "build_flavor": "default", "lucene_version": "7.7.3"},
        "tagline": "You Know, for Search",
    },
    ("opensearch", "2.11.1"): {
        "name": "opensearch-node1",
        "cluster_name": "opensearch-cluster",
        "cluster_uuid": "c2oWZ6ZrT7CjUuYQ-R0ZAw",
        "version": {
            "distribution": "opensearch",
            "number": "2.11.1",
            "build_type": "tar",
            "build_hash": "6b1986e964d440be9137eba1413015c31c5a7752",
            "build_date": "2023-11-29T21:43:10.135035992Z",
            "build_snapshot": False,
            "lucene_version": "9.7.0",
            "minimum_wire_compatibility_version": "7.10.0",
            "minimum_index_compatibility_version": "7.0.0",
        },
        "tagline": "The OpenSearch Project: https://opensearch.org/",
    },
    ("opensearch", "3.0.0"): {  # the fields the backend reads, in OpenSearch 3's shape
        "name": "opensearch-node1",
        "cluster_name": "opensearch-cluster",
        "version": {"distribution": "opensearch", "number": "3.0.0", "build_type": "tar",
                    "lucene_version": "10.1.0", "minimum_wire_compatibility_version": "2.19.0",
                    "minimum_index_compatibility_version": "2.0.0"},
        "tagline": "The OpenSearch Project: https://opensearch.org/",
    },
}

HEALTH = {
    "cluster_name": "ci-logs",
    "status": "yellow",
    "timed_out": False,
    "number_of_nodes": 3,
    "number_of_data_nodes": 3,
    "active_primary_shards": 40,
    "active_shards": 70,
    "relocating_shards": 0,
    "initializing_shards": 0,
    "unassigned_shards": 10,
    "delayed_unassigned_shards": 0,
    "number_of_pending_tasks": 0,
    "number_of_in_flight_fetch": 0,
    "task_max_waiting_in_queue_millis": 0,
    "active_shards_percent_as_number": 87.5,
}


def error_body(status: int, kind: str, reason: str, **extra: Any) -> dict[str, Any]:
    """An error response as Elasticsearch shapes it."""
    cause = {"type": kind, "reason": reason, **extra}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


REJECTED = error_body(
    429, "es_rejected_execution_exception",
    "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, "
    "all_bytes=0, coordinating_operation_bytes=52428800, max_coordinating_and_primary_bytes=53687091]",
)
UNAVAILABLE = error_body(503, "search_phase_execution_exception", "all shards failed")


def shards(total: int = 5, failed: int = 0, reason: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"total": total, "successful": total - failed, "skipped": 0, "failed": failed}
    if failed:
        out["failures"] = [{
            "shard": 2, "index": "logstash-2026.11.20", "node": "Yq0pIbMZRXu1EXAMPLE0dA",
            "reason": {"type": "circuit_breaking_exception", "reason": reason or "[parent] Data too large",
                       "bytes_wanted": 1073741824, "bytes_limit": 1020054732, "durability": "TRANSIENT"},
        }]
    return out


def search_response(hits: list[dict[str, Any]], total: int | None = None, aggregations: Any = None,
                    **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "took": 7,
        "timed_out": False,
        "_shards": shards(),
        "hits": {
            "total": {"value": len(hits) if total is None else total, "relation": "eq"},
            "max_score": None,
            "hits": hits,
        },
        **extra,
    }
    if aggregations is not None:
        body["aggregations"] = aggregations
    return body


def hit(index: str, doc_id: str, source: dict[str, Any], millis: int) -> dict[str, Any]:
    return {"_index": index, "_id": doc_id, "_score": None, "_source": source, "sort": [millis]}


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def lines(self) -> list[Any]:
        """An NDJSON body, one parsed line each."""
        return [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]


Answer = tuple[int, Any]
Handler = Callable[[Request], Answer]


@dataclass
class RecordedCluster:
    product: str = "elasticsearch"
    version: str = "8.15.0"
    indices: list[str] = field(default_factory=list)
    delay: float = 0.0  # seconds before every answer but GET /
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def on(self, method: str, path: str, *answers: Answer | Handler) -> None:
        """Answer requests whose path matches the regex ``path``: each answer
        once, in order, the last one for good. A callable answers from the
        request. Later routes win over earlier ones."""
        queue = list(answers)

        def handler(request: Request) -> Answer:
            answer = queue.pop(0) if len(queue) > 1 else queue[0]
            return answer(request) if callable(answer) else answer

        with self._lock:
            self._routes.insert(0, (method, re.compile(path), handler))

    def seen(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and re.fullmatch(path, r.path)]

    def _answer(self, request: Request) -> tuple[int, Any]:
        if request.method == "GET" and request.path == "/":
            return 200, ROOTS[(self.product, self.version)]
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            routes = list(self._routes)
        for method, pattern, handler in routes:
            if method == request.method and pattern.fullmatch(request.path):
                return handler(request)
        if request.method == "GET" and request.path.startswith("/_cat/indices"):
            return 200, [{"index": name} for name in self.indices]
        if request.method == "GET" and request.path == "/_cluster/health":
            return 200, HEALTH
        if request.method == "POST" and request.path.endswith("/_refresh"):
            return 200, {"_shards": shards()}
        return 404, error_body(404, "no_handler_found", f"no route for {request.method} {request.path}")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        cluster = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:
                pass

            def _serve(self) -> None:
                parsed = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                request = Request(
                    self.command, urllib.parse.unquote(parsed.path), dict(urllib.parse.parse_qsl(parsed.query)),
                    {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length) if length else b"",
                )
                cluster.requests.append(request)
                status, body = cluster._answer(request)
                payload = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json; charset=UTF-8")
                if cluster.product == "elasticsearch":
                    self.send_header("x-elastic-product", "Elasticsearch")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

        return Handler

    def __enter__(self) -> "RecordedCluster":
        self.thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
