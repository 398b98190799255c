"""Unexplained failures grouped by what is new in them.

Two failures of the same unknown bug print the same new line (an exception,
a timeout message) with different ids in it: the same template. Failed
voting builds that no fingerprint explains are grouped by the template they
share that hits the most distinct changes — a bug that breaks many changes
matters more than one change failing many times.

A new line that every failure prints ("Build FAILURE", a test-run summary
with a failed count) is new against passing builds but says nothing about
*which* failure it is. Such lines are recognised by also being in failures
that known fingerprints already explain, and are not used to group.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Collection, Iterable, Sequence

from .errors import RecheckError
from .explain import BuildInfo, Explainer, Explanation, NewLine
from .results import ResultStore, StoredBuild
from .search import TimeWindow
from .templates import Template

TEMPLATES_PER_BUILD = 30  # a build's best-ranked new templates considered for grouping
GENERIC_SHARE = 0.2  # of the explained failures sampled: a template in more of them is failure boilerplate
# With no explained failure to learn from (no fingerprint yet), a template
# this share of the unexplained failures print, in this many jobs, is taken
# for boilerplate: no one bug breaks nearly every failure of several jobs.
UNEXPLAINED_GENERIC_SHARE = 0.8
UNEXPLAINED_GENERIC_JOBS = 3
UNEXPLAINED_GENERIC_MIN = 10  # failures, for the share to mean something


@dataclass(frozen=True)
class ClusterLimits:
    max_builds: int = 100  # unexplained failures examined per run, newest first
    templates_per_build: int = TEMPLATES_PER_BUILD
    generic_share: float = GENERIC_SHARE


@dataclass
class Cluster:
    """Failures sharing one new template: ``template``, shown by ``example``."""

    template: Template
    example: NewLine
    builds: list[BuildInfo]
    lines: dict[str, NewLine] = field(default_factory=dict)  # each build's line of the template

    @property
    def key(self) -> int:
        return self.template.key

    @property
    def changes(self) -> list[str]:
        return sorted({b.change for b in self.builds if b.change})

    @property
    def jobs(self) -> list[str]:
        return _by_count(b.job for b in self.builds)

    @property
    def projects(self) -> list[str]:
        return _by_count(b.project for b in self.builds)

    @property
    def files(self) -> list[str]:
        return _by_count(line.filename for line in self.lines.values())

    @property
    def first_seen(self) -> dt.datetime | None:
        stamps = [b.newest for b in self.builds if b.newest is not None]
        return min(stamps) if stamps else None

    @property
    def last_seen(self) -> dt.datetime | None:
        stamps = [b.newest for b in self.builds if b.newest is not None]
        return max(stamps) if stamps else None

    @property
    def impact(self) -> tuple[int, int]:
        """Distinct changes hit, then builds: what the ranking sorts by."""
        return len(self.changes), len(self.builds)

    def as_json(self) -> dict[str, Any]:
        return {
            "template": self.template.text, "example": self.example.as_json(),
            "builds": [b.uuid for b in self.builds], "changes": self.changes, "jobs": self.jobs,
            "projects": self.projects, "files": self.files,
            "first_seen": _iso(self.first_seen), "last_seen": _iso(self.last_seen),
        }


@dataclass
class ClusterRun:
    clusters: list[Cluster]  # ranked by impact
    window: TimeWindow
    unexplained: int  # unexplained failed voting builds in the window
    examined: int  # of which read (``max_builds``)
    lines_read: int
    generic_templates: int  # templates left out as failure boilerplate
    errors: list[str] = field(default_factory=list)
    explanations: dict[str, Explanation] = field(default_factory=dict)  # by build uuid, of those read

    @property
    def capped(self) -> bool:
        return self.examined < self.unexplained


def unexplained_failures(store: ResultStore, window: TimeWindow,
                         stored: Iterable[StoredBuild] | None = None) -> list[StoredBuild]:
    """Failed voting builds no fingerprint explains, newest first. ``stored``:
    the window's stored builds, when the caller read them already."""
    builds = store.builds(window.start, window.end) if stored is None else stored
    return [b for b in builds if b.failed and b.voting and not b.matches]


def cluster_failures(explainer: Explainer, store: ResultStore, window: TimeWindow,
                     limits: ClusterLimits = ClusterLimits()) -> ClusterRun:
    failures = unexplained_failures(store, window, explainer.stored_builds())
    generic = {key for key, share in explainer.boilerplate().items() if share > limits.generic_share}
    explanations: list[Explanation] = []
    errors: list[str] = []
    for stored in failures[: limits.max_builds]:
        try:
            explanations.append(explainer.explain(stored.uuid))
        except RecheckError as exc:  # one unreadable build must not hide the others' clusters
            errors.append(f"build {stored.uuid}: {exc}")
    if not explainer.boilerplate():
        generic |= _common_to_most(explanations)
    clusters = group(explanations, generic, limits.templates_per_build)
    return ClusterRun(clusters, window, len(failures), len(failures[: limits.max_builds]),
                      sum(e.lines_read for e in explanations), len(generic), errors,
                      {e.build.uuid: e for e in explanations})


def group(explanations: Sequence[Explanation], generic: Collection[int] = frozenset(),
          templates_per_build: int = TEMPLATES_PER_BUILD) -> list[Cluster]:
    """Greedy cover: the template reaching the most distinct changes among
    the builds not yet grouped makes a cluster of every such build; repeat.
    A build left with no template shared by another becomes a cluster of one
    under its best-ranked line."""
    candidates: dict[str, list[NewLine]] = {}
    builds: dict[str, BuildInfo] = {}
    for explanation in explanations:
        uuid = explanation.build.uuid
        builds[uuid] = explanation.build
        ranked = sorted((line for key, line in explanation.new_templates.items() if key not in generic),
                        key=lambda line: -line.score)
        candidates[uuid] = ranked[:templates_per_build]
    holders: dict[int, dict[str, NewLine]] = defaultdict(dict)
    for uuid, lines in candidates.items():
        for line in lines:
            holders[line.template.key][uuid] = line
    pool = set(builds)
    clusters: list[Cluster] = []
    while pool:
        best_key, best = None, None
        for key, held in holders.items():
            members = [uuid for uuid in held if uuid in pool]
            if len(members) < 2:
                continue
            rank = (len({builds[u].change or u for u in members}), len(members),
                    sum(held[u].score for u in members) / len(members))
            if best is None or rank > best:
                best_key, best = key, rank
        if best_key is None:
            break
        held = holders[best_key]
        members = sorted((u for u in held if u in pool), key=lambda u: _newest(builds[u]), reverse=True)
        lines = {u: held[u] for u in members}
        clusters.append(Cluster(lines[members[0]].template, lines[members[0]], [builds[u] for u in members], lines))
        pool.difference_update(members)
    for uuid in sorted(pool, key=lambda u: _newest(builds[u]), reverse=True):
        if candidates[uuid]:
            line = candidates[uuid][0]
            clusters.append(Cluster(line.template, line, [builds[uuid]], {uuid: line}))
    clusters.sort(key=lambda c: (c.impact, _newest_of(c)), reverse=True)
    return clusters


def _common_to_most(explanations: Sequence[Explanation]) -> set[int]:
    if len(explanations) < UNEXPLAINED_GENERIC_MIN:
        return set()
    holders: dict[int, list[BuildInfo]] = defaultdict(list)
    for explanation in explanations:
        for key in explanation.new_templates:
            holders[key].append(explanation.build)
    return {key for key, builds in holders.items()
            if len(builds) >= UNEXPLAINED_GENERIC_SHARE * len(explanations)
            and len({b.job for b in builds}) >= UNEXPLAINED_GENERIC_JOBS}


def _newest(build: BuildInfo) -> dt.datetime:
    return build.newest or dt.datetime.min.replace(tzinfo=dt.timezone.utc)


def _newest_of(cluster: Cluster) -> dt.datetime:
    return cluster.last_seen or dt.datetime.min.replace(tzinfo=dt.timezone.utc)


def _by_count(values: Any) -> list[str]:
    return [value for value, _ in Counter(v for v in values if v).most_common()]


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment else None
