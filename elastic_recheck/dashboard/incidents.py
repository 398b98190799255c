"""Incidents and regressions: what the QA lead must hear about now.

An incident is one fingerprint hitting failed builds of several different
changes within a few hours: a bug hitting everyone, not one patch's own
failure. It opens at ``dashboard.incident_changes`` changes within
``dashboard.incident_hours`` and stays open until the count falls to
``incident_clear_changes`` or fewer: with one threshold, a count wavering
around it would open and close (and announce) by turns. A regression is a
fingerprint marked ``resolved:`` hitting a failed build dated after that day.
Each is announced once, on IRC, through the daemon's outbox (unless its
fingerprint says ``suppress-notification``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


from ..config import Settings
from ..irc_messages import Announcement
from ..sanitize import strip_controls
from .memory import DashboardMemory
from .trends import FAILED_STATUSES, BugRow, Collected

UTC = dt.timezone.utc


@dataclass
class Incident:
    bug: str
    title: str | None
    changes: int  # different changes with failed builds it hit within the incident window
    builds: int
    projects: tuple[str, ...]
    opened: dt.datetime
    new: bool  # opened by this run (announced now)


@dataclass
class Alerts:
    incidents: list[Incident]
    regressions: list[BugRow]  # rows with hits after their resolved: day
    announced: list[Announcement]


def changes_hit(collected: Collected, hours: float) -> dict[str, tuple[int, int, tuple[str, ...]]]:
    """bug -> (different changes, failed builds, projects) of failed builds hit in the last ``hours``."""
    since = collected.now - dt.timedelta(hours=hours)
    changes: dict[str, set[tuple[str, str]]] = {}
    builds: dict[str, set[str]] = {}
    for hit in collected.hits:
        if (hit.build_status in FAILED_STATUSES and hit.last_hit is not None and hit.last_hit >= since
                and str(hit.build_change) != ""):
            changes.setdefault(hit.bug, set()).add((hit.project, hit.build_change))
            builds.setdefault(hit.bug, set()).add(hit.build_uuid)
    return {bug: (len(pairs), len(builds[bug]), tuple(sorted({str(project) for project, _ in pairs})))
            for bug, pairs in sorted(changes.items())}


def update(collected: Collected, rows: list[BugRow], settings: Settings, memory: DashboardMemory) -> Alerts:
    """Open, keep or close each incident (the state is kept between runs),
    flag the rows, and say what is new: those lines go to IRC."""
    config = settings.dashboard
    counts = changes_hit(collected, config.incident_hours)
    by_bug = {row.bug: row for row in rows}
    quiet = {fp.bug for fp in collected.fingerprints if fp.suppress_notification}  # shown, never announced
    before = memory.open_incidents()
    now = collected.now.timestamp()
    kept: dict[str, tuple[float, int]] = {}
    incidents, announced = [], []
    for bug, (changes, builds, projects) in sorted(counts.items()):
        row = by_bug.get(bug)
        if row is None:  # suppress-graph: not shown, not announced
            continue
        was_open = bug in before
        if changes >= config.incident_changes or (was_open and changes > config.incident_clear_changes):
            opened = before[bug][0] if was_open else now
            kept[bug] = (opened, changes)
            row.incident = True
            incident = Incident(bug, row.title, changes, builds, projects,
                                dt.datetime.fromtimestamp(opened, UTC), not was_open)
            incidents.append(incident)
            if incident.new and bug not in quiet:
                announced.append(_incident_line(incident, settings, row.projects))
    memory.save_incidents(kept)
    regressions = [row for row in rows if row.regressions]
    for row in regressions:
        if (row.resolved is not None and memory.first_regression(row.bug, row.resolved.isoformat(), now)
                and row.bug not in quiet):
            announced.append(_regression_line(row, settings))
    incidents.sort(key=lambda i: (-i.changes, i.bug))
    return Alerts(incidents, regressions, announced)


def _bug_link(settings: Settings, bug: str) -> str:
    return strip_controls(settings.watch.bug_url.replace("%s", bug))


def _incident_line(incident: Incident, settings: Settings, bug_projects: tuple[str, ...]) -> Announcement:
    title = f" ({strip_controls(incident.title)})" if incident.title else ""
    hours = settings.dashboard.incident_hours
    text = (f"Incident: bug {incident.bug}{title} hit failed builds of {incident.changes} different changes "
            f"in the last {hours:g} h ({incident.builds} builds; {', '.join(map(strip_controls, incident.projects))}): "
            f"{_bug_link(settings, incident.bug)}")
    return Announcement("negative", frozenset(incident.projects) | frozenset(bug_projects), text)


def _regression_line(row: BugRow, settings: Settings) -> Announcement:
    title = f" ({strip_controls(row.title)})" if row.title else ""
    projects = frozenset(p.project for p in row.hit_projects) | frozenset(row.projects)
    text = (f"Regression: bug {row.bug}{title}, resolved on {row.resolved}, hit {row.regressions} failed "
            f"build{'s' if row.regressions != 1 else ''} since: {_bug_link(settings, row.bug)}")
    return Announcement("negative", projects, text)


__all__ = ["Alerts", "Incident", "changes_hit", "update"]
