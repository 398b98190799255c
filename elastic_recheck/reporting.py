"""What the daemon says about a classified failure, and where it says it."""

from __future__ import annotations

import base64
import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import IO, Protocol, Sequence

from .config import GerritSettings, WatchSettings
from .errors import ReportError
from .gerrit_events import FailedJob, FailureReport

DEFAULT_TEMPLATES = {
    "found_bug": "I noticed Zuul failed, I think you hit bug(s):\n\n{bugs}",
    "recheck_instructions": (
        "If you believe we've correctly identified the failure, feel free to leave a 'recheck' "
        "comment to run the tests again."
    ),
    "unrecognized": (
        "Some of the tests failed in a way that we did not understand. Please help us classify "
        "these issues so that they can be part of elastic-recheck."
    ),
    "no_bugs_found": "I noticed Zuul failed, but I couldn't find any known bug for:\n\n{bugs}",
    "footer": "For more details on this and other bugs, please see the elastic-recheck dashboard.",
}


@dataclass(frozen=True)
class JobResult:
    job: FailedJob
    build_uuid: str | None
    bugs: tuple[str, ...] = ()  # known bugs to tell the change's author about
    timed_out: bool = False
    silent_bugs: tuple[str, ...] = ()  # known bugs whose fingerprints say suppress-notification
    ambiguous: tuple[str, ...] = ()  # builds a short build id could not be told apart from

    @property
    def recognized(self) -> bool:
        """A known bug explains the failure, whether or not it is announced."""
        return bool(self.bugs or self.silent_bugs)

    @property
    def kind(self) -> str:
        """The outcome recorded for this job."""
        if self.recognized:
            return "bugs"
        return "timeout" if self.timed_out else "ambiguous" if self.ambiguous else "unrecognized"


@dataclass
class Review:
    report: FailureReport
    results: list[JobResult] = field(default_factory=list)

    @property
    def found_bugs(self) -> bool:
        return any(r.bugs for r in self.results)

    @property
    def all_recognized(self) -> bool:
        return all(r.recognized for r in self.results)

    def worth_commenting(self, comment_unrecognized: bool) -> bool:
        """A comment names a bug to recheck on, or (when configured) says a
        failure went unexplained; builds explained only by bugs marked
        suppress-notification are never commented on."""
        return self.found_bugs or (comment_unrecognized and not self.all_recognized)


def render_review(review: Review, settings: WatchSettings) -> str:
    """The review comment text (templates from the config, defaults above)."""
    templates = {**DEFAULT_TEMPLATES, **dict(settings.templates)}
    lines = []
    for result in review.results:
        if result.bugs:
            urls = ", ".join(settings.bug_url.replace("%s", bug) for bug in result.bugs)
            lines.append(f"- {result.job.name}: {urls}")
        elif result.silent_bugs:  # explained by a bug nobody is to be told about
            continue
        elif result.timed_out:
            lines.append(f"- {result.job.name}: logs were not indexed in time")
        elif result.ambiguous:
            lines.append(f"- {result.job.name}: not classified: its short build id {result.job.short_uuid} "
                         f"matches {len(result.ambiguous)} builds of this change")
        else:
            lines.append(f"- {result.job.name}: unrecognized error")
    listing = "\n".join(lines)
    head = templates["found_bug"] if review.found_bugs else templates["no_bugs_found"]
    parts = [head.replace("{bugs}", listing) if "{bugs}" in head else f"{head}\n\n{listing}"]
    if review.found_bugs and review.all_recognized:
        parts.append(templates["recheck_instructions"])
    elif not review.all_recognized:
        parts.append(templates["unrecognized"])
    if templates["footer"]:
        parts.append(templates["footer"])
    return "\n\n".join(part.strip("\n") for part in parts if part)


class Reviewer(Protocol):
    def review(self, project: str, change: int, patchset: int, message: str) -> None: ...


class PrintingReviewer:
    """``--dry-run``: print each review as ``review <change>,<patchset>:`` and its text."""

    def __init__(self, out: IO[str] = sys.stdout) -> None:
        self.out = out

    def review(self, project: str, change: int, patchset: int, message: str) -> None:
        try:
            self.out.write(f"review {change},{patchset}:\n{message}\n")
            self.out.flush()
        except BrokenPipeError:  # `watch --dry-run | head`: the reader left; retrying would never end
            raise ReportError(f"review {change},{patchset}: the output was closed", retry=False) from None


class RESTReviewer:
    """Posts reviews through Gerrit's REST API (``gerrit.rest_url``), HTTP basic auth."""

    def __init__(self, settings: GerritSettings, timeout: float = 30) -> None:
        self.base = settings.rest_url.rstrip("/")
        self.user = settings.user
        self.password = settings.rest_password
        self.timeout = timeout

    def review(self, project: str, change: int, patchset: int, message: str) -> None:
        url = f"{self.base}/a/changes/{change}/revisions/{patchset}/review"
        request = urllib.request.Request(
            url, data=json.dumps({"message": message}).encode(), method="POST",
            headers={"Content-Type": "application/json; charset=UTF-8"},
        )
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            # 4xx (bad credentials, no such change) will not get better by retrying; 408/429/5xx may.
            final = 400 <= exc.code < 500 and exc.code not in (408, 429)
            raise ReportError(f"POST {url} refused: HTTP {exc.code}", retry=not final) from None
        except (urllib.error.URLError, OSError) as exc:
            raise ReportError(f"POST {url} failed: {exc}") from None


def bug_list(results: Sequence[JobResult]) -> list[str]:
    return sorted({bug for r in results for bug in r.bugs})
