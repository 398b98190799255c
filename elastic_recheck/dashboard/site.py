"""The static site: pages from the jinja2 templates in ``web/``, plus JSON
data files with the same figures for other consumers."""

from __future__ import annotations

import datetime as dt
import json
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from ..config import Settings
from ..errors import ConfigError
from ..explain import NewLine
from ..suggest import SuggestRun, row_json
from .charts import bar_chart, rate_chart, sparkline
from .incidents import Alerts
from .lines import LineFinder, MatchedLine, matched_lines
from .trends import Collected, Hit, Trends, as_json, days, hours, last_day_hours, newest_first, trends

UTC = dt.timezone.utc
# A newest line dated this far past the page's own time is "in the future": a
# log clock or time zone is wrong. Less is clocks differing by a little.
FUTURE_TOLERANCE = dt.timedelta(minutes=1)
PAGES = (("index.html", "all", "All pipelines", None), ("gate.html", "gate", "Gate pipeline", "gate"))


@dataclass
class Header:
    generated: dt.datetime
    newest: dt.datetime | None
    health: dict[str, Any]
    window_start: dt.datetime
    load_errors: list[str]
    timeouts: list[dict[str, Any]]
    # The newest line dated up to ``generated``: what ingestion's lag is measured
    # from when ``newest`` is in the future (one wrongly dated line would
    # otherwise make the page say "0s behind" for as long as it is the newest).
    newest_until_now: dt.datetime | None = None

    @property
    def future_dated(self) -> bool:
        return self.newest is not None and self.newest > self.generated + FUTURE_TOLERANCE

    @property
    def ahead_seconds(self) -> float | None:
        """How far in the future the newest line is dated, when it is."""
        return (self.newest - self.generated).total_seconds() if self.future_dated and self.newest else None

    @property
    def lag_from(self) -> dt.datetime | None:
        """The newest line dated up to the page's time (or a few seconds past it)."""
        return self.newest_until_now if self.future_dated else self.newest

    @property
    def lag_seconds(self) -> float | None:
        """How far behind ingestion is: the page's time less :attr:`lag_from`."""
        return None if self.lag_from is None else max(0.0, (self.generated - self.lag_from).total_seconds())


def template_dirs(settings: Settings) -> list[Path]:
    """Where each page's template is looked for, first hit wins: the
    configured directory (it may replace a few templates only: a copy made
    before a page was added lacks that page), then ``web/`` of a source
    checkout, else the installed copy."""
    shipped = [Path(__file__).resolve().parents[2] / "web", Path(sys.prefix) / "share" / "elastic-recheck" / "web"]
    found = next((c for c in shipped if (c / "bugs.html").is_file()), None)
    if found is None:
        raise ConfigError(f"dashboard templates not found (looked in: {', '.join(map(str, shipped))})")
    if not settings.dashboard.templates:
        return [found]
    custom = Path(settings.dashboard.templates).expanduser()
    if not custom.is_dir():
        raise ConfigError(f"dashboard.templates: {custom} is not a directory")
    return [custom, found]


def safe_url(value: Any) -> str | None:
    """Only http(s) links reach a page: a ``javascript:`` URL from a log would run when clicked."""
    text = str(value or "").strip()
    return text if urllib.parse.urlsplit(text).scheme in ("http", "https") else None


def rison_string(text: str) -> str:
    return "'" + text.replace("!", "!!").replace("'", "!'") + "'"


def kibana_link(template: str, query: str) -> str | None:
    """The Discover URL running ``query`` (the ``{query}`` placeholder takes it rison-quoted)."""
    if not template:
        return None
    return safe_url(template.replace("{query}", urllib.parse.quote(rison_string(query), safe="!'()*,:")))


def change_link(base: str, project: str, change: str, patchset: str) -> str | None:
    """The change on Gerrit's web UI (``gerrit.web_url``), when both are known."""
    if not base or not str(change).isdigit():
        return None
    path = f"/c/{urllib.parse.quote(project, safe='/')}/+/{change}" if project else f"/{change}"
    return safe_url(base + path + (f"/{patchset}" if str(patchset).isdigit() else ""))


def trend_mark(now: int, before: int | None, period: str) -> Markup:
    """↑/↓ and by how many, against the previous period of the same length."""
    if before is None:
        return Markup("")
    if now == before:
        return Markup(f'<span class="trend same" title="as many as the previous {escape(period)} ({before})">='
                      '</span>')
    up = now > before
    return Markup(f'<span class="trend {"up" if up else "down"}" title="{abs(now - before)} '
                  f'{"more" if up else "fewer"} than the previous {escape(period)} ({before})">'
                  f'{"↑" if up else "↓"}{abs(now - before)}</span>')


@dataclass
class BugBuild:
    """One build a bug hit, as its page lists it."""

    uuid: str
    when: dt.datetime | None
    job: str
    pipeline: str
    project: str
    change: str
    patchset: str
    status: str
    log_url: str
    lines: list[MatchedLine]


def newest_hits(collected: Collected, limit: int) -> dict[str, list[Hit]]:
    """bug -> its hits, newest first, at most ``limit``: one sort for every page."""
    out: dict[str, list[Hit]] = {}
    for hit in newest_first(collected.hits):
        mine = out.setdefault(hit.bug, [])
        if len(mine) < limit:
            mine.append(hit)
    return out


def bug_builds(mine: list[Hit] | None, query: str, finder: LineFinder | None) -> list[BugBuild]:
    """One bug's builds as its page lists them, from its rows of :func:`newest_hits`."""
    if not mine:
        return []
    found = finder.lines_of([r.build_uuid for r in mine], query) if finder is not None else {}
    return [BugBuild(r.build_uuid, r.last_hit, r.build_name, r.build_queue, r.project, r.build_change,
                     r.build_patchset, r.build_status, r.log_url,
                     matched_lines(found.get(r.build_uuid), str(r.message or ""))) for r in mine]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    days, rest = divmod(int(seconds), 86400)
    hours_, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours_}h"
    if hours_:
        return f"{hours_}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def render_site(collected: Collected, header: Header, settings: Settings,
                clusters: SuggestRun | str | None = None, alerts: Alerts | None = None,
                finder: LineFinder | None = None, computed: dict[str, Trends] | None = None) -> dict[str, bytes]:
    """Every file of the site, by relative path. ``clusters``: the
    unexplained failures grouped with their suggestions, or why there are
    none; ``alerts``: incidents and regressions; ``finder``: where a bug
    page's matching lines come from (else the stored newest line alone);
    ``computed``: selections already computed, by name (not computed again)."""
    templates = template_dirs(settings)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(t) for t in templates]),
        autoescape=True,  # everything from logs, jobs, fingerprints and queries is text, never markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    buckets = hours(collected)
    day_buckets = days(collected)
    last_day = last_day_hours(collected)
    alerts = alerts or Alerts([], [], [])
    env.filters["safe_url"] = safe_url
    env.filters["duration"] = _duration
    env.filters["when"] = lambda value: "—" if value is None else f"{value.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    env.filters["percent"] = lambda value: "—" if value is None else f"{value:.1f}%"
    env.globals.update(
        bug_url=lambda bug: safe_url(settings.watch.bug_url.replace("%s", bug)),
        kibana=lambda query: kibana_link(settings.dashboard.kibana_url, query),
        daily_chart=lambda row: bar_chart(row.daily, day_buckets, f"Bug {row.bug}: builds hit per day, by status",
                                          "day", chart_id="daily"),
        hourly_chart=lambda row: bar_chart(row.last_day, last_day,
                                           f"Bug {row.bug}: builds hit per hour, last 24 hours, by status",
                                           "hour", chart_id="hourly"),
        spark=lambda row: sparkline(row.sparkline or [0] * len(day_buckets), day_buckets,
                                    f"Bug {row.bug}, builds hit per day"),
        rate_chart=lambda u: rate_chart([d.day for d in u.daily], [d.failures for d in u.daily],
                                        [d.uncategorized for d in u.daily], "Classification rate per day"),
        trend=trend_mark,
        change_url=lambda project, change, patchset: change_link(settings.gerrit.change_web_url, project,
                                                                 change, patchset),
        alerts=alerts,
        incident_hours=settings.dashboard.incident_hours,
        root="",
        header=header,
        days=settings.dashboard.days,
        pages=PAGES,
        new_lines=lambda uuid: _new_lines(clusters, uuid),
    )
    files: dict[str, bytes] = {}
    data: dict[str, Any] = {"generated": as_json(header.generated), "newest_indexed": as_json(header.newest),
                            "newest_in_future": header.future_dated,
                            "newest_until_now": as_json(header.lag_from),
                            "lag_seconds": header.lag_seconds, "health": header.health,
                            "window_start": as_json(header.window_start)}
    by_name: dict[str, Trends] = {}
    in_incident = {i.bug for i in alerts.incidents}
    for filename, name, title, queue in PAGES:
        selection = (computed or {}).get(name) or trends(collected, name, queue)
        for row in selection.rows:
            row.incident = row.bug in in_incident
        by_name[name] = selection
        page = env.get_template("bugs.html").render(page=filename, title=title, trends=selection)
        files[filename] = page.encode()
        files[f"data/{name}.json"] = _json({**data, "pipeline": queue or "all", "hours": as_json(buckets),
                                            "bugs": as_json(selection.rows)})
    everything = by_name["all"].uncategorized
    files["uncategorized.html"] = env.get_template("uncategorized.html").render(
        page="uncategorized.html", title="Uncategorized failures", uncategorized=everything).encode()
    files["data/uncategorized.json"] = _json({**data, **as_json(everything),
                                              "log_timeouts": as_json(header.timeouts)})
    found = clusters if isinstance(clusters, SuggestRun) else None
    files["clusters.html"] = env.get_template("clusters.html").render(
        page="clusters.html", title="Unexplained failures, clustered", found=found,
        error=clusters if isinstance(clusters, str) else None).encode()
    files["data/clusters.json"] = _json({**data, **_clusters_json(found)})
    by_fingerprint = {fp.bug: fp for fp in collected.fingerprints}
    bug_page = env.get_template("bug.html")
    newest = newest_hits(collected, settings.dashboard.bug_builds)
    for row in by_name["all"].rows:
        fp = by_fingerprint[row.bug]
        builds = bug_builds(newest.get(row.bug), fp.query, finder)
        files[f"bugs/{row.bug}.html"] = bug_page.render(
            page=f"bugs/{row.bug}.html", title=f"Bug {row.bug}", row=row, fp=fp, builds=builds, root="../").encode()
    data["incidents"] = as_json(alerts.incidents)
    data["regressions"] = [row.bug for row in alerts.regressions]
    files["data/alerts.json"] = _json(data)
    files["style.css"] = next(t / "style.css" for t in templates if (t / "style.css").is_file()).read_bytes()
    return files


NEW_LINES_SHOWN = 3  # per build on the uncategorized page


def _new_lines(clusters: SuggestRun | str | None, uuid: str) -> list[NewLine]:
    if not isinstance(clusters, SuggestRun):
        return []
    found = clusters.run.explanations.get(uuid)
    return found.lines[:NEW_LINES_SHOWN] if found is not None else []


def _clusters_json(found: SuggestRun | None) -> dict[str, Any]:
    if found is None:
        return {"clusters": None}
    run = found.run
    return {"unexplained": run.unexplained, "examined": run.examined, "lines_read": run.lines_read,
            "clusters": [row_json(c, s) for c, s in found.suggestions]}


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False).encode()


__all__ = ["BugBuild", "Header", "bug_builds", "change_link", "kibana_link", "newest_hits", "render_site",
           "safe_url", "template_dirs", "trend_mark"]
