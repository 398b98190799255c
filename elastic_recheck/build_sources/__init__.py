"""Where builds come from, each source turning what it reads into :class:`~elastic_recheck.builds.Build`.

One module a source: ``gerrit`` (the CI reports in Gerrit's event stream)
and ``zuul`` (Zuul's builds API, polled). Nothing past a source's edge reads
raw Gerrit JSON or Zuul records; a new source (a GitHub or GitLab webhook)
is a new module here.
"""

from __future__ import annotations

import datetime as dt
import importlib
import pkgutil
import queue
from typing import Any, Protocol


class PolledSource(Protocol):
    """A source the daemon runs beside Gerrit's stream: it puts
    ``polling.BuildBatch`` items on the daemon's queue."""

    polled: Any  # a threading.Event set once its first look is done (a replay waits for it)

    def start(self) -> Any: ...

    def stop(self) -> None: ...


def configured_sources(settings: Any, events: "queue.Queue[Any]", since: dt.datetime | None) -> list[PolledSource]:
    """Every polled source the settings turn on. A module of this package
    takes part by defining ``source_from_settings(settings, events, since)``
    (returning None when its settings leave it off): so a new source is a new
    module here, and nothing else changes."""
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        make = getattr(module, "source_from_settings", None)
        if make is not None:
            source = make(settings, events, since)
            if source is not None:
                found.append(source)
    return found
