"""HTTP to an Elasticsearch or OpenSearch cluster, through the official
clients' transport (``elastic-transport``).

Why the transport alone and not the ``elasticsearch`` client, and why no
opensearch-py:
the requests elastic-recheck sends (``_search``, ``_msearch``, ``_count``,
``_bulk``, ``_delete_by_query``, templates, health) are the same JSON on
Elasticsearch 7.x-9.x and OpenSearch 1.x-3.x. The client's API layer would
get in the way of that: it refuses any server that does not answer with
``X-Elastic-Product: Elasticsearch`` (OpenSearch, Elasticsearch before 7.14),
and version 9 of it sends ``compatible-with=9`` headers that Elasticsearch 8
and OpenSearch reject. Its transport (``elastic-transport``, the library the
client is built on) has all we use of it — node pool over several URLs, TLS
with a CA bundle, timeouts, retries on connection errors — and sends plain
JSON that every one of those servers reads. So one code path, tested once,
serves both products, and the client's 13 MB of API methods (twice the
import time of the transport) is not installed at all.

Retries on 429 and 502-504 are done here, with backoff, because the
transport retries those at once and an overloaded cluster needs a pause.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, TlsError, Transport, TransportError
from elastic_transport.client_utils import url_to_node_config

from ..config import CLUSTER_CREDENTIALS, ClusterSettings, check_http_url
from ..errors import BackendError, ConfigError

log = logging.getLogger(__name__)
RETRY_STATUSES = frozenset({429, 502, 503, 504})
BACKOFF_CAP = 30.0
PRODUCTS = {"elasticsearch": "Elasticsearch", "opensearch": "OpenSearch"}
SUPPORTED = {"elasticsearch": (7, 9), "opensearch": (1, 3)}


class ClusterHTTPError(BackendError):
    """The cluster answered with an error status; ``status`` says which."""

    def __init__(self, message: str, status: int, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class ServerInfo:
    product: str  # "elasticsearch" or "opensearch"
    number: str  # "8.15.0"
    cluster_name: str = ""

    @property
    def version(self) -> tuple[int, ...]:
        parts = []
        for part in self.number.split("-")[0].split("."):
            parts.append(int(part) if part.isdigit() else 0)
        return tuple(parts)

    @property
    def label(self) -> str:
        return f"{PRODUCTS[self.product]} {self.number}"


def check_urls(urls: tuple[str, ...]) -> list[str]:
    """The node URLs, refusing credentials in them (they would end up in logs):
    the same check as at config load, for settings built some other way."""
    if not urls:
        raise ConfigError("cluster.urls: give at least one URL of the cluster")
    where = "cluster.urls" if len(urls) == 1 else "cluster.urls (URL {})"
    return [check_http_url(where.format(number), url, CLUSTER_CREDENTIALS).rstrip("/")
            for number, url in enumerate(urls, 1)]


def auth_header(settings: ClusterSettings) -> str | None:
    if settings.api_key:
        key = settings.api_key
        if ":" in key:  # "id:api_key" as Elasticsearch prints it
            key = base64.b64encode(key.encode()).decode("ascii")
        return f"ApiKey {key}"
    if settings.username:
        pair = f"{settings.username}:{settings.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")
    return None


class ClusterConnection:
    """One cluster, requests as (method, path, params, body) -> parsed JSON."""

    def __init__(self, settings: ClusterSettings, product: str,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.product = product
        self.urls = check_urls(settings.urls)
        self.label = f"{PRODUCTS[product]} at {', '.join(self.urls)}"
        self._sleep = sleep
        options: dict[str, Any] = {}
        if any(url.startswith("https:") for url in self.urls):
            options["verify_certs"] = settings.verify_certs
            if settings.ca_certs:
                options["ca_certs"] = settings.ca_certs
            if not settings.verify_certs:
                options["ssl_show_warn"] = False
        try:
            nodes = [dataclasses.replace(url_to_node_config(url, use_default_ports_for_scheme=True), **options)
                     for url in self.urls]
            self._transport = Transport(nodes, meta_header=False)
        except (ValueError, TypeError, OSError) as exc:
            raise ConfigError(f"cluster: {exc}") from None
        self._headers = {"accept": "application/json"}
        authorization = auth_header(settings)
        if authorization:
            self._headers["authorization"] = authorization
        self._info: ServerInfo | None = None
        # The client's API methods pass these with every request; so do we.
        self._per_request = {
            "request_timeout": settings.request_timeout,
            "max_retries": settings.retries,  # connection errors and timeouts, trying the next node
            "retry_on_timeout": True,
            "retry_on_status": (),  # ours, with a pause: see the module docstring
            "retry_backoff_base": max(settings.retry_backoff, 0.001),
            "retry_backoff_cap": BACKOFF_CAP,
        }

    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        ndjson: bool = False,
        missing_ok: bool = False,
    ) -> Any:
        """The parsed response. ``body`` is JSON-encoded unless it is bytes
        already (NDJSON for ``_msearch`` and ``_bulk``)."""
        target = path
        if params:
            target += "?" + urllib.parse.urlencode(
                {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in params.items()}
            )
        headers = dict(self._headers)
        payload = None
        if body is not None:
            headers["content-type"] = "application/x-ndjson" if ndjson else "application/json"
            payload = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode("utf-8")
        attempt = 0
        while True:
            try:
                response = self._transport.perform_request(
                    method, target, body=payload, headers=headers, **self._per_request,
                )
            except ConnectionTimeout:
                raise BackendError(
                    f"{self.label}: {method} {path} timed out after {self.settings.request_timeout:g}s "
                    f"({self.settings.retries} retries)"
                ) from None
            except TlsError as exc:
                raise BackendError(f"{self.label}: TLS failed: {_transport_message(exc)}") from None
            except TransportConnectionError as exc:
                raise BackendError(f"{self.label}: unreachable: {_transport_message(exc)}") from None
            except TransportError as exc:
                raise BackendError(f"{self.label}: {method} {path} failed: {_transport_message(exc)}") from None
            status = response.meta.status
            if status in RETRY_STATUSES and attempt < self.settings.retries:
                log.warning("%s: %s %s answered %s; retrying in %.1fs",
                            self.label, method, path, status, self.backoff(attempt))
                self.pause(attempt)
                attempt += 1
                continue
            if status == 404 and missing_ok:
                return None
            if status >= 400:
                raise ClusterHTTPError(f"{self.label}: {method} {path}: {describe_error(status, response.body)}",
                                       status, error_reason(response.body))
            return response.body

    def backoff(self, attempt: int) -> float:
        return min(BACKOFF_CAP, self.settings.retry_backoff * 2 ** attempt)

    def pause(self, attempt: int) -> None:
        """Wait before retry number ``attempt + 1``."""
        self._sleep(self.backoff(attempt))

    def info(self) -> ServerInfo:
        """The server's product and version, checked against the configured
        backend once per connection."""
        if self._info is None:
            root = self.request("GET", "/")
            if not isinstance(root, dict) or not isinstance(root.get("version"), dict):
                raise BackendError(f"{self.label}: does not look like Elasticsearch or OpenSearch (GET / answered "
                                   f"{str(root)[:100]!r})")
            version = root["version"]
            product = "opensearch" if version.get("distribution") == "opensearch" else "elasticsearch"
            info = ServerInfo(product, str(version.get("number", "0")), str(root.get("cluster_name", "")))
            if product != self.product:
                raise BackendError(f"{self.label}: the server is {info.label}; set backend: {product}")
            low, high = SUPPORTED[product]
            if info.version[0] < low:
                raise BackendError(f"{self.label}: {info.label} is not supported "
                                   f"({PRODUCTS[product]} {low}.x-{high}.x are)")
            if info.version[0] > high:
                log.warning("%s: %s is newer than the versions tested (%d.x-%d.x)", self.label, info.label, low, high)
            self._info = info
        return self._info

    def close(self) -> None:
        self._transport.close()


def describe_error(status: int, body: Any) -> str:
    """One line from an error response: the root cause's type and reason."""
    if status == 401:
        return "HTTP 401: authentication failed (check cluster.username/password or cluster.api_key)"
    if status == 403:
        return f"HTTP 403: permission denied: {error_reason(body)}"
    return f"HTTP {status}: {error_reason(body)}"


def error_reason(body: Any) -> str:
    """The root cause of an error response (or of one ``_msearch`` / ``_bulk`` item)."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            causes = error.get("root_cause") or []
            cause = causes[0] if causes and isinstance(causes[0], dict) else error
            text = f"{cause.get('type', 'error')}: {cause.get('reason', '')}"
            if error is not cause and error.get("reason") and error.get("reason") != cause.get("reason"):
                text = f"{error.get('type', 'error')}: {error.get('reason')} ({text})"
            return text[:500]
        if error:
            return str(error)[:500]
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    return " ".join(text.split())[:200] or "no details"


def _transport_message(exc: TransportError) -> str:
    return " ".join(str(exc.message if hasattr(exc, "message") else exc).split())[:300]


def shard_failure(response: Any) -> str | None:
    """What went wrong when some shards failed (results would be partial)."""
    shards = response.get("_shards") if isinstance(response, dict) else None
    if not isinstance(shards, dict) or not shards.get("failed"):
        return None
    failures = shards.get("failures") or [{}]
    reason = failures[0].get("reason", {}) if isinstance(failures[0], dict) else {}
    where = failures[0].get("index", "?") if isinstance(failures[0], dict) else "?"
    detail = f"{reason.get('type', 'error')}: {reason.get('reason', '')}" if isinstance(reason, dict) else str(reason)
    return f"{shards['failed']} of {shards.get('total', '?')} shards failed (first in {where}: {detail[:300]})"
