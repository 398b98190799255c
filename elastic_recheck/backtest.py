"""How a query would have done over a window of builds: its backtest.

A fingerprint is only as good as what it does *not* match. Run over the
window, it matches failed builds (what it is for) and perhaps successful ones
(a line every healthy run prints too): the share of its matched builds that
succeeded is what ``lint --backtest`` gates on, and a suggested fingerprint
must match almost no successful build of the window at all.

Which status is which: ``SUCCESS`` is a success; ``builds.FAILED_STATUSES``
(FAILURE, TIMED_OUT, POST_FAILURE, RETRY_LIMIT) are failures; any other status
(NODE_FAILURE, ABORTED, SKIPPED, none) says nothing about the change or the
fingerprint, so such a build is in neither total, and matching it is counted
apart (``other_hits``).

The totals (how many builds failed and succeeded in the window) come from the
stored per-build results when there are any for the window: every build the
daemon or ``ingest`` fetched, successes included, read in one SQLite pass.
Otherwise (no results stored: an index fed by another pipeline, or
``ingest --docs``) from the index: one aggregation of the window's lines over
build ids, each build with its status. A matched build the stored results do
not know is added to the totals, so a figure is never more than its total.
The ``source`` of every Backtest says which was used.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Iterable, Iterator, Mapping, Sequence

from .builds import FAILED_STATUSES
from .classify import tests_allow
from .errors import FingerprintError, QuerySyntaxError
from .fingerprints import Fingerprint
from .results import ResultStore, StoredBuild
from .sanitize import escape_controls
from .search import BuildOutcome, SearchBackend, TimeWindow

SUCCESS_STATUSES = frozenset({"SUCCESS"})
FROM_STORED_RESULTS = "stored results"
FROM_INDEX = "index"
# What the index totals are counted over: every line, the builds sorted by status here. Naming the
# statuses (build_status:(...)) made it dearer on the embedded index: 0.5 s of CPU against 0.3 s over 5M lines.
TOTALS_QUERY = "*:*"
DEFAULT_MAX_SUCCESS_SHARE = 0.10  # er-query's warning and lint --backtest's default gate


def verdict(status: str) -> bool | None:
    """True for a success, False for a failure, None for a status that is neither."""
    if status in SUCCESS_STATUSES:
        return True
    if status in FAILED_STATUSES:
        return False
    return None


@dataclass(frozen=True)
class BuildTotals:
    """The builds of a window with a verdict, counted once and shared by every
    backtest over that window. ``counts``: (succeeded, voting) -> builds."""

    window: TimeWindow
    source: str  # FROM_STORED_RESULTS or FROM_INDEX
    counts: Mapping[tuple[bool, bool], int]
    known: frozenset[str]  # the uuids counted
    failed_tests: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # where the stored results know them

    def total(self, succeeded: bool, voting_only: bool = False) -> int:
        return self.counts.get((succeeded, True), 0) + (0 if voting_only else self.counts.get((succeeded, False), 0))


def build_totals(backend: SearchBackend, results: ResultStore | None, window: TimeWindow,
                 stored: Iterable[StoredBuild] | None = None) -> BuildTotals:
    """The window's totals, from the stored results when they hold any build
    of the window, else from the index. A build's place in the window is its
    newest line in the stored results and any of its lines in the index: the
    same for a window open at the end (``--days``). ``stored``: the window's
    stored builds, when the caller read them already."""
    if results is not None:
        counts: dict[tuple[bool, bool], int] = {}
        known: set[str] = set()
        tests: dict[str, tuple[str, ...]] = {}
        for build in results.builds(window.start, window.end) if stored is None else stored:
            succeeded = verdict(build.status)
            if succeeded is None or build.newest is None:  # nothing of it is indexed: no query could match it
                continue
            known.add(build.uuid)
            counts[(succeeded, build.voting)] = counts.get((succeeded, build.voting), 0) + 1
            if build.failed_tests is not None:
                tests[build.uuid] = build.failed_tests
        if known:
            return BuildTotals(window, FROM_STORED_RESULTS, counts, frozenset(known), tests)
    counts = {}
    known = set()
    for outcome in backend.builds(TOTALS_QUERY, window):
        succeeded = verdict(outcome.build_status)
        if succeeded is None or outcome.build_uuid in known:
            continue
        known.add(outcome.build_uuid)
        key = (succeeded, outcome.voting == "1")
        counts[key] = counts.get(key, 0) + 1
    return BuildTotals(window, FROM_INDEX, counts, frozenset(known))


@dataclass(frozen=True)
class Backtest:
    """What ``query`` matched over ``window``, in distinct builds.

    Every matched build is in exactly one of ``success_hits`` (it succeeded,
    in the cluster or not: a success is never excused), ``cluster_hits`` (one
    of the ``cluster`` builds given), ``failed_hits`` (another failed build)
    and ``other_hits`` (a status that is neither)."""

    query: str
    window: TimeWindow
    failed_total: int  # failed builds in the window
    success_total: int  # successful builds in the window
    failed_hits: int
    success_hits: int
    cluster_hits: int = 0
    cluster_size: int = 0
    other_hits: int = 0
    source: str = FROM_INDEX  # where the totals come from
    voting_only: bool = False  # only voting builds counted, matched and in the totals

    @property
    def matched_builds(self) -> int:
        return self.success_hits + self.cluster_hits + self.failed_hits + self.other_hits

    @property
    def success_share(self) -> float:
        """Of the builds it matched, the share that succeeded: the lint gate."""
        return self.success_hits / self.matched_builds if self.matched_builds else 0.0

    @property
    def success_rate(self) -> float:
        """Of the window's successful builds, the share it matched (a suggestion: at most 1%)."""
        return self.success_hits / self.success_total if self.success_total else 0.0

    @property
    def failed_rate(self) -> float:
        """Of the window's failed builds, the share it matched besides its cluster's."""
        return self.failed_hits / self.failed_total if self.failed_total else 0.0

    @property
    def cluster_rate(self) -> float:
        return self.cluster_hits / self.cluster_size if self.cluster_size else 0.0

    def exceeds(self, max_success_share: float) -> bool:
        return self.success_share > max_success_share

    def as_json(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "window": {"start": _iso(self.window.start), "end": _iso(self.window.end)},
            "source": self.source,
            "voting_only": self.voting_only,
            "failed_total": self.failed_total,
            "success_total": self.success_total,
            "failed_hits": self.failed_hits,
            "success_hits": self.success_hits,
            "cluster_hits": self.cluster_hits,
            "cluster_size": self.cluster_size,
            "other_hits": self.other_hits,
            "matched_builds": self.matched_builds,
            "success_share": self.success_share,
            "success_rate": self.success_rate,
            "cluster_rate": self.cluster_rate,
        }


def tally(query: str, matched: Iterable[BuildOutcome], totals: BuildTotals, cluster: Collection[str] = (), *,
          voting_only: bool = False, keep: Callable[[BuildOutcome], bool] | None = None) -> Backtest:
    """The figures of the builds ``query`` matched (``backend.builds``), over
    ``totals``. ``voting_only``: only voting builds count, matched or in the
    totals. ``keep``: which matched builds count (a fingerprint's test_ids)."""
    members = frozenset(cluster)
    hits = {"success": 0, "cluster": 0, "failed": 0, "other": 0}
    unknown = {True: 0, False: 0}
    seen: set[str] = set()
    for build in matched:
        if build.build_uuid in seen or (voting_only and build.voting != "1"):
            continue
        if keep is not None and not keep(build):
            continue
        seen.add(build.build_uuid)
        succeeded = verdict(build.build_status)
        if succeeded is True:
            hits["success"] += 1
        elif build.build_uuid in members:
            hits["cluster"] += 1
        elif succeeded is False:
            hits["failed"] += 1
        else:
            hits["other"] += 1
        if succeeded is not None and build.build_uuid not in totals.known:
            unknown[succeeded] += 1  # indexed after the totals were counted, or never stored
    return Backtest(
        query=query, window=totals.window,
        failed_total=totals.total(False, voting_only) + unknown[False],
        success_total=totals.total(True, voting_only) + unknown[True],
        failed_hits=hits["failed"], success_hits=hits["success"], cluster_hits=hits["cluster"],
        cluster_size=len(members), other_hits=hits["other"], source=totals.source, voting_only=voting_only,
    )


def backtest(backend: SearchBackend, results: ResultStore | None, query: str, window: TimeWindow,
             cluster: Collection[str] = (), *, voting_only: bool = False, totals: BuildTotals | None = None,
             keep: Callable[[BuildOutcome], bool] | None = None) -> Backtest:
    """Run ``query`` over ``window`` and count the builds it matches.
    ``cluster``: the builds it was made for (counted in ``cluster_hits``, not
    ``failed_hits``). ``voting_only``: count voting builds only, matched and
    in the totals; cheaper than ``AND voting:1`` in the query on the embedded
    index, for the same builds (``voting`` is the same on all of a build's lines).
    ``totals``: counted once for many queries (``build_totals``)."""
    if totals is None:
        totals = build_totals(backend, results, window)
    elif totals.window != window:
        raise ValueError("the totals were counted over another window")
    return tally(query, backend.builds(query, window), totals, cluster, voting_only=voting_only, keep=keep)


def backtest_many(backend: SearchBackend, results: ResultStore | None, queries: Sequence[str], window: TimeWindow,
                  clusters: Sequence[Collection[str]] | None = None, *, voting_only: bool = False) -> list[Backtest]:
    """Each query's backtest, the totals counted once. ``clusters``: one per query."""
    if clusters is not None and len(clusters) != len(queries):
        raise ValueError(f"{len(clusters)} clusters for {len(queries)} queries")
    totals = build_totals(backend, results, window)
    return [backtest(backend, results, query, window, clusters[i] if clusters is not None else (),
                     voting_only=voting_only, totals=totals)
            for i, query in enumerate(queries)]


def backtest_fingerprint(backend: SearchBackend, results: ResultStore | None, fingerprint: Fingerprint,
                         window: TimeWindow, totals: BuildTotals | None = None) -> Backtest:
    """A fingerprint as the classifier runs it: voting builds only unless it
    allows non-voting ones, and with ``test_ids`` a build counts only if one
    of those tests failed in it, where the stored results know its failed tests.

    The query runs as written and the non-voting builds are dropped here:
    ``voting`` is the same on every line of a build, so that is the builds
    ``voting_query`` matches, and on the embedded index the ``voting:1``
    clause (nearly every build's contexts) made each search 6x dearer
    (91 real fingerprints over 5M lines: 4.3 s of CPU, 0.7 s without it)."""
    if totals is None:
        totals = build_totals(backend, results, window)
    elif totals.window != window:
        raise ValueError("the totals were counted over another window")
    keep: Callable[[BuildOutcome], bool] | None = None
    if fingerprint.test_ids:
        failed_tests = totals.failed_tests

        def allowed(build: BuildOutcome) -> bool:
            return tests_allow(fingerprint, failed_tests.get(build.build_uuid))

        keep = allowed

    return tally(fingerprint.voting_query, backend.builds(fingerprint.query, window), totals,
                 voting_only=not fingerprint.allow_nonvoting, keep=keep)


@dataclass(frozen=True)
class FingerprintBacktest:
    fingerprint: Fingerprint
    backtest: Backtest


def backtest_fingerprints(
    backend: SearchBackend, results: ResultStore | None, fingerprints: Sequence[Fingerprint], window: TimeWindow,
    progress: Callable[[Iterable[Fingerprint]], Iterable[Fingerprint]] = lambda items: items,
) -> tuple[BuildTotals, list[FingerprintBacktest], list[FingerprintError]]:
    """Every fingerprint's backtest over one window, the totals counted once.
    A query the engine refuses (a cluster's own parser) is that file's error,
    the others still run; the backend failing (BackendError) stops them all.
    Each fingerprint is one search over the window (on the embedded index
    10-100 ms of CPU over 5M lines), hence ``progress``."""
    totals = build_totals(backend, results, window)
    done: list[FingerprintBacktest] = []
    errors: list[FingerprintError] = []
    for fingerprint in progress(fingerprints):
        try:
            done.append(FingerprintBacktest(fingerprint, backtest_fingerprint(backend, results, fingerprint, window,
                                                                              totals)))
        except QuerySyntaxError as exc:
            errors.append(FingerprintError(escape_controls(str(fingerprint.path)),
                                           f"the search engine cannot run the query: {escape_controls(exc.detail)}",
                                           fingerprint.query_line))
    return totals, done, errors


# -- the figures as text ------------------------------------------------------------------

def percent(share: float) -> str:
    """3 significant digits: a 0.05% success rate is not rounded to 0%."""
    return f"{100 * share:.3g}%"


def window_label(days: float) -> str:
    return "all time" if days <= 0 else f"the last {days:g} days"


def totals_line(totals: BuildTotals, days: float) -> str:
    return (f"backtest over {window_label(days)}: {totals.total(False):,} failed and {totals.total(True):,} "
            f"successful builds (totals from the {totals.source})")


def summary(result: Backtest) -> str:
    """One line of figures: what ``lint --backtest`` prints per fingerprint."""
    scope = "voting " if result.voting_only else ""
    if not result.matched_builds:
        return (f"no hits ({result.failed_total:,} failed and {result.success_total:,} successful {scope}builds "
                "in the window)")
    parts = [f"{result.failed_hits:,} of {result.failed_total:,} failed {scope}builds ({percent(result.failed_rate)})",
             f"{result.success_hits:,} of {result.success_total:,} successful ({percent(result.success_rate)})"]
    if result.cluster_size:
        parts.insert(0, f"{result.cluster_hits:,} of its cluster's {result.cluster_size:,}")
    if result.other_hits:
        parts.append(f"{result.other_hits:,} neither failed nor succeeded")
    return (", ".join(parts)
            + f"; {percent(result.success_share)} of the {result.matched_builds:,} builds it matches succeeded")


def report_lines(result: Backtest, days: float, max_success_share: float = DEFAULT_MAX_SUCCESS_SHARE) -> Iterator[str]:
    """The block ``er-query`` prints after its summary."""
    scope = ", voting jobs only as the classifier runs it" if result.voting_only else ""
    yield f"backtest over {window_label(days)}{scope} (totals from the {result.source}):"
    yield (f"  failed builds matched: {result.failed_hits:,} of {result.failed_total:,} "
           f"({percent(result.failed_rate)})")
    yield (f"  successful builds matched: {result.success_hits:,} of {result.success_total:,} "
           f"({percent(result.success_rate)})")
    if result.other_hits:
        yield f"  other builds matched (neither failed nor succeeded): {result.other_hits:,}"
    verdict_text = "above" if result.exceeds(max_success_share) else "within"
    yield (f"  share of the matched builds that succeeded: {percent(result.success_share)} "
           f"({verdict_text} lint --backtest's default {percent(max_success_share)})")


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


__all__ = [
    "Backtest", "BuildTotals", "DEFAULT_MAX_SUCCESS_SHARE", "FROM_INDEX", "FROM_STORED_RESULTS", "FingerprintBacktest",
    "SUCCESS_STATUSES", "TOTALS_QUERY", "backtest", "backtest_fingerprint", "backtest_fingerprints", "backtest_many",
    "build_totals", "percent", "report_lines", "summary", "tally", "totals_line", "verdict", "window_label",
]
