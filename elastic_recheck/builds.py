"""The project's own model of a CI build, which every source produces.

A Gerrit CI report, a Zuul builds API record and an operator's ``ingest``
name builds in three different shapes. Each source turns what it read into
a :class:`Build` at its edge, so the fetch queue, the classifier, the stored
results and the reporters read one shape only and never raw JSON: adding a
source (a GitHub or GitLab webhook) is a new module that yields Builds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, replace
from typing import Any

from .ingest.sources import BuildMetadata

UTC = dt.timezone.utc
FAILED_STATUSES = frozenset({"FAILURE", "TIMED_OUT", "POST_FAILURE", "RETRY_LIMIT"})


@dataclass(frozen=True)
class Build:
    """One run of one CI job.

    ``uuid`` is Zuul's build id when the source knows it; a legacy Gerrit
    report names a build by the first characters only (``short_uuid``) and
    its log URL. ``log_url`` is where the build's logs are (a directory on a
    log server); ``build_url`` is Zuul's page of the build, when that is all a
    report gives (resolved to a ``log_url`` through Zuul's builds API)."""

    job: str
    status: str  # SUCCESS, FAILURE, TIMED_OUT, POST_FAILURE, RETRY_LIMIT, ...
    uuid: str = ""
    short_uuid: str = ""
    change: int | None = None
    patchset: int | None = None
    project: str = ""
    branch: str = ""
    pipeline: str = ""
    ref: str = ""  # the git ref built (refs/changes/..., refs/heads/master for a periodic build)
    voting: bool = True
    log_url: str = ""
    build_url: str = ""
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    source: str = ""  # which source reported it: gerrit, zuul, ingest

    @property
    def key(self) -> str:
        """What names the build in the queue and the stored results: its uuid,
        else its short uuid and log URL (legacy short ids collide across changes)."""
        if self.uuid:
            return self.uuid
        return f"{self.short_uuid or '-'}@{self.log_url or self.build_url}"

    @property
    def index_uuid(self) -> str:
        """The build_uuid its lines are indexed under. A legacy report names a
        build by a 7-character prefix only, and those collide across changes,
        so its log URL is folded in (the first 7 characters stay the short id)."""
        if self.uuid:
            return self.uuid
        digest = hashlib.sha256((self.log_url or self.build_url).encode("utf-8", "surrogatepass")).hexdigest()[:24]
        return f"{self.short_uuid or 'legacy'}-{digest}"

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES

    def with_log_url(self, log_url: str) -> "Build":
        return replace(self, log_url=log_url)

    def metadata(self) -> BuildMetadata:
        """The fields every indexed line of the build carries."""
        return BuildMetadata(
            build_uuid=self.index_uuid,
            build_name=self.job,
            build_change="" if self.change is None else str(self.change),
            build_patchset="" if self.patchset is None else str(self.patchset),
            build_queue=self.pipeline,
            build_status=self.status,
            build_branch=self.branch,
            project=self.project,
            voting="1" if self.voting else "0",
            log_url=self.log_url,
            build_ref=self.ref,
        )

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            out[name] = value.isoformat() if isinstance(value, dt.datetime) else value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Build":
        """A Build this module wrote (the queue's own records, not outside input)."""
        values = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        for name in ("start", "end"):
            if values.get(name):
                values[name] = dt.datetime.fromisoformat(values[name])
        return cls(**values)


__all__ = ["Build", "FAILED_STATUSES"]
