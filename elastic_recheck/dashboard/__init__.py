"""The QA dashboard: per-bug trends, uncategorized failures, classification rate."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any, Callable, Iterable

from ..config import Settings
from ..errors import FingerprintQueryError, RecheckError
from ..fingerprints import Fingerprint, load_fingerprints
from ..irc_messages import Announcement
from ..irc_outbox import Outbox
from ..results import ResultStore
from ..search import SearchBackend, TimeWindow
from ..suggest import SuggestRun, suggest_all
from . import incidents
from .lines import LineFinder
from .memory import DashboardMemory
from .publish import Publisher
from .site import FUTURE_TOLERANCE, Header, render_site
from .trends import Collected, collect, trends

log = logging.getLogger(__name__)
UTC = dt.timezone.utc


def backend_health(backend: SearchBackend) -> dict[str, Any]:
    try:
        return backend.health()
    except RecheckError as exc:
        return {"backend": getattr(backend, "name", "?"), "status": "unavailable", "error": str(exc)}


def log_timeouts(settings: Settings, since: dt.datetime) -> list[dict[str, Any]]:
    """Log timeouts the real-time path recorded in the window, newest first."""
    if not settings.state_db.exists():
        return []
    from ..state import StateDB

    state = StateDB(settings.state_db, recover=False)  # a daemon may be running
    try:
        found = [o for o in state.outcomes() if o["kind"] == "timeout" and o["at"] >= since.timestamp()]
    finally:
        state.close()
    for outcome in found:
        outcome["at"] = dt.datetime.fromtimestamp(outcome["at"], UTC)
    return sorted(found, key=lambda o: o["at"], reverse=True)


def gather(
    settings: Settings,
    backend: SearchBackend,
    queries: str | Path,
    now: dt.datetime | None = None,
    progress: Callable[[Iterable[Fingerprint]], Iterable[Fingerprint]] = lambda items: items,
) -> tuple[Collected, Header]:
    """Run every fingerprint over the window; what the pages and the terminal list share."""
    now = now or dt.datetime.now(UTC)
    good, bad = load_fingerprints(queries, backend.check_query, settings.fingerprints)
    # One the engine refuses keeps its row, showing why it cannot run; a file
    # that is not a fingerprint at all is listed among the load errors.
    refused = {e.fingerprint: e.detail for e in bad if isinstance(e, FingerprintQueryError)}
    unreadable = [e for e in bad if not isinstance(e, FingerprintQueryError)]
    for error in unreadable:
        log.error("fingerprint skipped: %s", error)
    runnable = sorted([*good, *refused], key=lambda fp: fp.path)
    store = ResultStore(settings.results_db)
    try:
        collected = collect(backend, runnable, now, settings.dashboard.days, progress, refused, store)
    finally:
        store.close()
    header = Header(
        generated=now, newest=backend.newest_timestamp(), health=backend_health(backend),
        window_start=collected.start, load_errors=[str(e) for e in unreadable],
        timeouts=log_timeouts(settings, collected.start),
    )
    if header.future_dated:
        header.newest_until_now = newest_until(backend, now)
    return collected, header


def newest_until(backend: SearchBackend, now: dt.datetime) -> dt.datetime | None:
    """The newest line dated up to ``now``: asked only when the newest line
    is dated in the future, so that the lag figure still means something."""
    try:
        hits = backend.search("*:*", TimeWindow(end=now + FUTURE_TOLERANCE), size=1).hits
    except RecheckError as exc:
        log.warning("could not find the newest log line dated up to now: %s", exc)
        return None
    return hits[0].timestamp if hits else None


def build_dashboard(settings: Settings, backend: SearchBackend, queries: str | Path, publisher: Publisher,
                    now: dt.datetime | None = None,
                    progress: Callable[[Iterable[Fingerprint]], Iterable[Fingerprint]] = lambda items: items) -> Path:
    """One run: gather, render, publish atomically. Returns the published copy."""
    publisher.check()
    with publisher.lock():
        collected, header = gather(settings, backend, queries, now, progress)
        found = clusters_of(settings, backend, collected)
        memory = DashboardMemory(settings.dashboard_state)
        try:
            everything = trends(collected, "all")
            alerts = incidents.update(collected, everything.rows, settings, memory)
            finder = LineFinder(backend, memory, settings.dashboard.line_search_seconds, collected.now.timestamp())
            memory.forget_lines(collected.start.timestamp() - 86400)
            files = render_site(collected, header, settings, found, alerts, finder, {"all": everything})
        finally:
            memory.close()
        published = publisher.publish(files)
        announce(settings, alerts.announced)
        return published


def announce(settings: Settings, items: list[Announcement]) -> None:
    """New incidents and regressions, left for the daemon's IRC bot (the one
    connection): it sends them to the channels that take negative events."""
    if not items:
        return
    outbox = Outbox(settings.irc_outbox)
    try:
        outbox.post(items)
        log.warning("left for watch's IRC bot to announce: %s", "; ".join(i.text for i in items)[:2000])
    except RecheckError as exc:
        log.error("incidents could not be left for IRC: %s", exc)
    finally:
        outbox.close()


def clusters_of(settings: Settings, backend: SearchBackend, collected: Collected) -> SuggestRun | str:
    """The window's unexplained failures grouped, with suggested
    fingerprints; or why they could not be (the rest of the site is still
    worth publishing)."""
    store = ResultStore.open_existing(settings.results_db)
    if store is None:
        return "no stored build results yet"
    try:
        return suggest_all(backend, store, collected.window, settings.explain, stored=collected.stored)
    except RecheckError as exc:
        log.error("clusters of unexplained failures could not be made: %s", exc)
        return str(exc)
    finally:
        store.close()


__all__ = ["build_dashboard", "gather"]
