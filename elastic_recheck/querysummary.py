"""What ``er-query`` shows a fingerprint author: hit count, the spread of every
attribute over the hits, and how many matched builds actually succeeded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from .search import SearchBackend, TimeWindow

NOISY_ATTRIBUTES = frozenset(
    "build_master build_patchset build_ref build_short_uuid build_uuid error_pr host received_at type".split()
)
SUCCESS_WARNING_RATIO = 0.10


@dataclass(frozen=True)
class QuerySummary:
    total: int
    attributes: dict[str, list[tuple[int, str]]]  # name -> [(percent, value)]
    builds: int
    successful_builds: int

    @property
    def too_broad(self) -> bool:
        return self.builds > 0 and self.successful_builds / self.builds > SUCCESS_WARNING_RATIO

    def lines(self) -> Iterator[str]:
        yield f"total hits: {self.total}"
        for name, values in sorted(self.attributes.items()):
            yield name
            for percent, value in values:
                yield f"  {percent}% {value}"
        yield f"builds matched: {self.builds}, of which succeeded: {self.successful_builds}"
        if self.too_broad:
            share = round(100 * self.successful_builds / self.builds)
            yield (
                f"WARNING: {share}% of the matched builds succeeded: the fingerprint also matches "
                f"healthy runs and is not specific enough"
            )


def summarize(
    backend: SearchBackend, query: str, window: TimeWindow, quantity: int = 5, verbose: bool = False
) -> QuerySummary:
    total = backend.count(query, window)
    names = [
        name
        for name in backend.field_names()
        if name != "message" and not name.startswith("@") and (verbose or name not in NOISY_ATTRIBUTES)
    ]
    attributes: dict[str, list[tuple[int, str]]] = {}
    if total:
        for name, values in backend.facets(query, window, names, size=quantity).items():
            if values:
                attributes[name] = [(100 * count // total, value) for value, count in values]
    builds = backend.builds(query, window) if total else []
    return QuerySummary(
        total=total,
        attributes=attributes,
        builds=len(builds),
        successful_builds=sum(1 for b in builds if b.build_status == "SUCCESS"),
    )
