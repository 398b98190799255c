"""A fingerprint proposed for each cluster of unexplained failures, with
its backtest.

The query is cut from the constant part of the cluster's template (the
words every line of it has, whatever the ids), written the way the
project's fingerprints are (``message:"…" AND tags:"…"``), and run over the
window before anyone sees it: how many of the cluster's builds it finds,
how many other failures, how many passing builds. Only a query that finds
nearly all of its cluster and almost no passing build is offered as a file
to commit; the others are shown with their figures, as leads.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import yaml

from .backtest import Backtest, backtest, build_totals
from .clusters import Cluster, ClusterLimits, ClusterRun, cluster_failures
from .config import ExplainSettings
from .explain import ExplainLimits, Explainer
from .analysis import analyze
from .lucene import quote
from .results import ResultStore, StoredBuild
from .search import SearchBackend, TimeWindow
from .templates import Template, line_body

MIN_CLUSTER_SHARE = 0.9  # of its cluster's builds a ready suggestion matches
MAX_SUCCESS_SHARE = 0.01  # of the window's passing builds it may match
# A line nearly all of the window's failures print is how failures
# end ("Build FAILURE", a summary with a failed count), not a bug: such a
# query is a lead, however clean its backtest. Judged only once the window
# has enough failures for a share to mean something.
MAX_FAILURE_SHARE = 0.8
MIN_FAILURES_FOR_SHARE = 10
MAX_PHRASE_TOKENS = 12  # a longer constant run is cut: the words nearest its start are kept
PHRASES = 2  # constant runs ANDed into one query, the longest first


@dataclass(frozen=True)
class Suggestion:
    cluster: Cluster
    query: str
    backtest: Backtest

    @property
    def ready(self) -> bool:
        return is_ready(self.backtest)

    @property
    def why_not_ready(self) -> str:
        return why_not_ready(self.backtest)

    def yaml(self, today: dt.date | None = None) -> str | None:
        """The fingerprint file's text, when the suggestion is ready."""
        return fingerprint_yaml(self, today) if self.ready else None

    def as_json(self) -> dict[str, Any]:
        bt = self.backtest
        out = self.cluster.as_json()
        out.update({
            "query": self.query, "ready": self.ready, "why_not_ready": self.why_not_ready or None,
            "cluster_size": bt.cluster_size,
            "cluster_hits": bt.cluster_hits, "failed_hits": bt.failed_hits, "success_hits": bt.success_hits,
            "failed_total": bt.failed_total, "success_total": bt.success_total, "yaml": self.yaml(),
        })
        return out


def row_json(cluster: Cluster, suggestion: Suggestion | None) -> dict[str, Any]:
    """One cluster as ``suggest --json`` and ``data/clusters.json`` give it,
    with or without a suggestion."""
    if suggestion is not None:
        return suggestion.as_json()
    return {**cluster.as_json(), "query": None, "ready": False, "yaml": None}


def is_ready(bt: Backtest) -> bool:
    return not why_not_ready(bt)


def why_not_ready(bt: Backtest) -> str:
    """Why a suggestion is only a lead; empty when it is ready."""
    if bt.cluster_size == 0 or bt.cluster_hits < MIN_CLUSTER_SHARE * bt.cluster_size:
        return f"finds {bt.cluster_hits} of the {bt.cluster_size} builds of its cluster (needs 90%)"
    if bt.success_hits > MAX_SUCCESS_SHARE * bt.success_total:
        return f"matches {bt.success_hits} of {bt.success_total} passing builds (at most 1%)"
    failed = bt.cluster_hits + bt.failed_hits
    if bt.failed_total >= MIN_FAILURES_FOR_SHARE and failed > MAX_FAILURE_SHARE * bt.failed_total:
        return (f"matches {failed} of all {bt.failed_total} failed builds: a line most failures print, "
                "not one bug")
    return ""


def candidate_queries(cluster: Cluster) -> list[str]:
    """Queries to try, most general first: the template's longest constant
    runs in the cluster's file; then the same restricted to the cluster's
    job when it has one job."""
    phrases = _phrases(cluster.template)
    if not phrases:
        return []
    body = line_body(cluster.example.message)
    clauses = [f"message:{quote(_as_written(body, run))}" for run in phrases]
    files = cluster.files
    if files:
        clauses.append(f"tags:{quote(files[0].rsplit('/', 1)[-1])}")
    levels = {line.level for line in cluster.lines.values()}
    if len(levels) == 1 and all(level.isalpha() for level in levels):
        clauses.append(f"loglevel:{levels.pop()}")
    queries = [" AND ".join(clauses)]
    jobs = cluster.jobs
    if len(jobs) == 1 and all(b.job for b in cluster.builds):
        queries.append(f"{queries[0]} AND build_name:{quote(jobs[0])}")
    return queries


def suggest(cluster: Cluster, run_backtest: Callable[[str, Sequence[str]], Backtest]) -> Suggestion | None:
    """The first candidate query that is ready, else the one finding the
    most of its cluster with the fewest passing builds."""
    uuids = [b.uuid for b in cluster.builds]
    tried: list[Suggestion] = []
    for query in candidate_queries(cluster):
        found = Suggestion(cluster, query, run_backtest(query, uuids))
        if found.ready:
            return found
        tried.append(found)
    if not tried:
        return None
    return max(tried, key=lambda s: (s.backtest.cluster_hits, -s.backtest.success_hits))


def _phrases(template: Template) -> list[tuple[str, ...]]:
    runs = [run[:MAX_PHRASE_TOKENS] for run in template.constant_runs()]
    # One word alone is a phrase only when it is a distinctive one (a dotted
    # name, an exception class): "error" alone matches half of every log.
    runs = [run for run in runs if len(run) >= 2 or (len(run[0]) >= 8 and any(c in run[0] for c in "._"))]
    best = sorted(range(len(runs)), key=lambda i: (-len(runs[i]), i))[:PHRASES]
    return [runs[i] for i in sorted(best)]


def _as_written(body: str, run: tuple[str, ...]) -> str:
    """The run as the line writes it (``SSHTimeout: Connection``) when it can
    be found there and analyses to the same tokens, else its tokens."""
    pattern = r"\W+".join(re.escape(token) for token in run)
    found = re.search(pattern, body, re.IGNORECASE)
    if found:
        written = re.sub(r"\s+", " ", found.group(0))  # a line break inside the run reads as a space
        if written.isprintable() and analyze(written) == run:
            return written
    return " ".join(run)


def fingerprint_yaml(suggestion: Suggestion, today: dt.date | None = None) -> str:
    cluster, bt = suggestion.cluster, suggestion.backtest
    today = today or dt.datetime.now(dt.timezone.utc).date()  # UTC, like every date it prints
    changes = len(cluster.changes)
    header = [
        f"Suggested by elastic-recheck suggest on {today.isoformat()}: {len(cluster.builds)} unexplained "
        f"failure{'s' if len(cluster.builds) != 1 else ''} of {changes} change{'s' if changes != 1 else ''}",
        f"(jobs: {', '.join(cluster.jobs[:5]) or 'unknown'}; first seen {_day(cluster.first_seen)}, "
        f"last seen {_day(cluster.last_seen)}).",
        f"Backtest: {bt.cluster_hits} of {bt.cluster_size} builds of the cluster, {bt.failed_hits} other failed "
        f"builds, {bt.success_hits} of {bt.success_total} passing builds.",
        "Rename this file to the bug's number and give it a title and the bug's link.",
    ]
    text = ("".join(f"# {line}\n" for line in header) + "query: >-\n"
            + "".join(f"  {clause}\n" for clause in _clause_lines(suggestion.query))
            + yaml.safe_dump({"title": _title(cluster)}, allow_unicode=True, width=1000))
    expected = {"query": suggestion.query, "title": _title(cluster)}
    try:
        same = yaml.safe_load(text) == expected
    except yaml.YAMLError:
        same = False
    if not same:  # a query the folded style would change: plain YAML instead
        text = "".join(f"# {line}\n" for line in header) + yaml.safe_dump(expected, sort_keys=False,
                                                                           allow_unicode=True, width=1000)
    return text


def _clause_lines(query: str) -> list[str]:
    parts = query.split(" AND ")
    return [parts[0], *(f"AND {part}" for part in parts[1:])]


def _title(cluster: Cluster) -> str:
    words = " ".join(line_body(cluster.example.message).split())
    return words if len(words) <= 100 else words[:99] + "…"


def _day(moment: dt.datetime | None) -> str:
    return moment.date().isoformat() if moment else "unknown"


@dataclass
class SuggestRun:
    """Every cluster of the window with its suggestion (None when its
    template has no constant words to search for)."""

    run: ClusterRun
    suggestions: list[tuple[Cluster, Suggestion | None]]

    @property
    def ready(self) -> int:
        return sum(1 for _, s in self.suggestions if s is not None and s.ready)


def suggest_all(backend: SearchBackend, store: ResultStore, window: TimeWindow,
                settings: ExplainSettings = ExplainSettings(), max_builds: int | None = None,
                stored: Sequence[StoredBuild] | None = None) -> SuggestRun:
    """Cluster the window's unexplained failures and backtest a fingerprint
    for each of the ``settings.max_clusters`` with the most impact (each
    backtest is a query over the window). ``stored``: the window's stored
    builds, newest first, when the caller has them (the dashboard's tables
    are made from them)."""
    # The window's stored builds, read once: the passing builds to compare
    # with, the failure sample, the unexplained failures and the totals.
    explainer = Explainer(backend, store, ExplainLimits.from_settings(settings), window, stored)
    run = cluster_failures(explainer, store, window, ClusterLimits(max_builds=max_builds or settings.cluster_builds))

    totals = build_totals(backend, store, window, explainer.stored_builds())

    def run_backtest(query: str, uuids: Sequence[str]) -> Backtest:
        # As the classifier will run it: on voting builds, unless the file says otherwise.
        return backtest(backend, store, query, window, cluster=uuids, totals=totals, voting_only=True)

    suggestions = [(cluster, suggest(cluster, run_backtest)) for cluster in run.clusters[: settings.max_clusters]]
    return SuggestRun(run, suggestions)
