"""A log server and a Zuul API on 127.0.0.1, serving the builds demo_builds.py wrote.

What the daemon meets in production, in miniature: each build's log
directory under ``/logs/<build dir>/`` (with an index page per directory, as
Apache and Swift serve them), and Zuul's REST API under ``/api/tenant/<tenant>/``:
``build/<uuid>`` (how a report's build page leads to its logs) and
``builds`` (newest first, ``limit``/``skip``), with every record's
``log_url`` pointing at this server.

    python examples/demo_log_server.py BUILDS_DIR [--port-file FILE]

serves until SIGTERM; ``--port-file`` receives the port once it listens.
"""

from __future__ import annotations

import html
import http.server
import json
import signal
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable


class DemoLogServer:
    """``builds``: a directory holding a directory per build (its logs and build.json).
    ``fault(path)``, asked before each log file is sent, may make the server
    misbehave as log servers do: "hang-up" (the connection closes half way
    through the file) or a number of seconds to stall first; None: serve it."""

    def __init__(self, builds: Path, port: int = 0, fault: Callable[[str], Any] | None = None) -> None:
        self.builds = Path(builds)
        self.fault = fault
        self.requests: list[str] = []
        handler = type("Handler", (_Handler,), {"server_state": self})
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="demo-log-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> "DemoLogServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def records(self) -> list[dict[str, Any]]:
        """Every build's Zuul record, newest first (by ``_id``, the order Zuul
        gives: the order builds started), its log_url on this server."""
        found = []
        for directory in sorted(self.builds.iterdir()) if self.builds.is_dir() else ():
            meta = directory / "build.json"
            if meta.is_file():
                record = _zuul_record(json.loads(meta.read_text()))
                record["log_url"] = f"{self.url}/logs/{urllib.parse.quote(directory.name)}/"
                found.append(record)
        found.sort(key=lambda r: (r.get("start_time") or "", r["uuid"]))
        for number, record in enumerate(found, 1):
            record["_id"] = number
        return found[::-1]


# build.json may use the index's field names (``ingest --builds`` reads both): Zuul's are served.
_ZUUL_NAMES = {"build_uuid": "uuid", "build_name": "job_name", "build_status": "result", "build_queue": "pipeline",
               "build_change": "change", "build_patchset": "patchset", "build_branch": "branch"}


def _zuul_record(meta: dict[str, Any]) -> dict[str, Any]:
    record = {_ZUUL_NAMES.get(key, key): value for key, value in meta.items()}
    for name in ("change", "patchset"):
        if isinstance(record.get(name), str) and record[name].isdigit():
            record[name] = int(record[name])
    if isinstance(record.get("voting"), str):
        record["voting"] = record["voting"] not in ("0", "false")
    return record


class _Handler(http.server.BaseHTTPRequestHandler):
    server_state: DemoLogServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # kept connections answer at once, not after the 40 ms delayed ACK

    def log_message(self, *args: Any) -> None:  # quiet: the demo prints what the daemon does
        pass

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        state = self.server_state
        parts = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(parts.path)
        state.requests.append(path)
        segments = [s for s in path.split("/") if s]
        if len(segments) >= 4 and segments[:2] == ["api", "tenant"]:
            return self._api(segments[3:], urllib.parse.parse_qs(parts.query))
        if segments[:1] == ["logs"] and len(segments) >= 2 and ".." not in segments:
            target = state.builds.joinpath(*segments[1:])
            if target.is_dir():
                if not path.endswith("/"):
                    return self._send(301, b"", "text/plain", {"Location": path + "/"})
                return self._send(200, _index(target, path).encode(), "text/html")
            if target.is_file() and target.name != "build.json":
                fault = state.fault(path) if state.fault else None
                body = target.read_bytes()
                if fault == "hang-up":  # as a log server under load does: the headers promise it all
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return None
                if isinstance(fault, (int, float)):
                    time.sleep(fault)
                return self._send(200, body, "text/plain")
        self._send(404, b"not found\n", "text/plain")

    def _api(self, rest: list[str], query: dict[str, list[str]]) -> None:
        records = self.server_state.records()
        if rest[:1] == ["build"] and len(rest) == 2:
            found = [r for r in records if r["uuid"] == rest[1]]
            if found:
                return self._json(found[0])
        elif rest == ["builds"]:
            skip = int(query.get("skip", ["0"])[0])
            limit = int(query.get("limit", ["50"])[0])
            return self._json(records[skip:skip + limit])
        self._send(404, b'{"error": "not found"}', "application/json")

    def _json(self, value: Any) -> None:
        self._send(200, json.dumps(value).encode(), "application/json")

    def _send(self, status: int, body: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        try:
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client went away (a daemon killed mid-fetch)
            self.close_connection = True


def _index(directory: Path, path: str) -> str:
    links = "".join(f'<a href="{html.escape(entry.name)}{"/" if entry.is_dir() else ""}">{html.escape(entry.name)}</a>\n'
                    for entry in sorted(directory.iterdir()) if entry.name != "build.json")
    return f"<html><body><h1>Index of {html.escape(path)}</h1>\n{links}</body></html>\n"


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    port_file = argv[argv.index("--port-file") + 1] if "--port-file" in argv else None
    server = DemoLogServer(Path(argv[0])).start()
    if port_file:
        Path(port_file).write_text(str(server.httpd.server_address[1]))
    print(f"serving {argv[0]} at {server.url}/logs/ and Zuul's API at {server.url}/api/tenant/main/", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
