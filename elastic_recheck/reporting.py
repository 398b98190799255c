"""What the daemon says about a classified failure, and where it says it."""

from __future__ import annotations

import base64
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import IO, Protocol, Sequence

from .config import GERRIT_CREDENTIALS, GerritSettings, WatchSettings, check_http_url
from .errors import ReportError
from .fingerprints import Fingerprint
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

    @classmethod
    def from_matches(cls, job: FailedJob, build_uuid: str, matches: Sequence[Fingerprint]) -> "JobResult":
        """The fingerprints a build matched, split into the bugs to tell the
        change's author about and those marked suppress-notification."""
        return cls(job, build_uuid, tuple(fp.bug for fp in matches if not fp.suppress_notification),
                   silent_bugs=tuple(fp.bug for fp in matches if fp.suppress_notification))

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


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Follow no redirect: urllib would resend the Authorization header to
    wherever Gerrit (or anything in front of it) points, another host
    included, and turn the POST into a GET that "succeeds" without posting."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # urllib then raises the 3xx as an HTTPError


class RESTReviewer:
    """Posts reviews through Gerrit's REST API (``gerrit.rest_url``), HTTP basic auth."""

    def __init__(self, settings: GerritSettings, timeout: float = 30) -> None:
        self.base = check_http_url("gerrit.rest_url", settings.rest_url, GERRIT_CREDENTIALS).rstrip("/")
        self.user = settings.user
        self.password = settings.rest_password
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_RefuseRedirects)

    def review(self, project: str, change: int, patchset: int, message: str) -> None:
        url = f"{self.base}/a/changes/{change}/revisions/{patchset}/review"
        request = urllib.request.Request(
            url, data=json.dumps({"message": message}).encode(), method="POST",
            headers={"Content-Type": "application/json; charset=UTF-8"},
        )
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            if 300 <= exc.code < 400:
                raise _redirect_refused(url, exc) from None
            # 4xx (bad credentials, no such change) will not get better by retrying; 408/429/5xx may.
            final = 400 <= exc.code < 500 and exc.code not in (408, 429)
            raise ReportError(f"POST {url} refused: HTTP {exc.code}", retry=not final, answered=True) from None
        except urllib.error.URLError as exc:
            # urllib raises URLError only while connecting and sending (DNS failure,
            # connection refused, TLS handshake, a send cut short): the whole request
            # never left, so Gerrit cannot have carried it out and a retry is safe.
            raise ReportError(f"POST {url} failed before the request was sent: {exc.reason}") from None
        except Exception as exc:  # noqa: BLE001 - whatever breaks after the request was sent
            # Waiting for or reading the answer (a timeout, a reset, RemoteDisconnected,
            # IncompleteRead): Gerrit may have posted the review, so it is never retried;
            # posting it again could double the comment.
            raise ReportError(f"POST {url}: outcome unknown (the request was sent, then "
                              f"{type(exc).__name__}: {exc})"[:500], retry=False) from None


# A redirect answering the POST is never followed (see _RefuseRedirects). Whether
# the review may be retried depends on what the status says happened:
# 301/302/307/308 say the resource lives elsewhere: whatever answered (Gerrit's
# canonical-URL redirect, or a proxy sending http to https) did not carry out the
# POST, so nothing was posted and a retry cannot double the comment; the event
# waits (with backoff) until gerrit.rest_url is corrected, and is then posted.
# 303 is the answer to a POST that *was* processed ("see the result over there"),
# and the other 3xx mean nothing defined for a POST: the outcome is unknown, so
# no retry; the comment is recorded as unknown, as for a connection lost mid-post.
_REDIRECTS_NOTHING_DONE = (301, 302, 307, 308)


def _redirect_refused(url: str, exc: urllib.error.HTTPError) -> ReportError:
    # Only the scheme and host of the target are named: its path or userinfo may hold anything.
    try:
        location = urllib.parse.urlsplit(urllib.parse.urljoin(url, exc.headers.get("Location") or ""))
        host = f"[{location.hostname}]" if ":" in (location.hostname or "") else location.hostname
        port = f":{location.port}" if location.port else ""
        target = f"{location.scheme}://{host}{port}" if host else "an unnamed place"
    except ValueError:  # a Location that is not a URL
        target = "an unnamed place"
    retry = exc.code in _REDIRECTS_NOTHING_DONE
    return ReportError(
        f"POST {url} refused: HTTP {exc.code} redirects to {target}; redirects are not followed "
        f"(the credentials would go along){'' if retry else '; the review may have been posted'}"
        "; check gerrit.rest_url",
        retry=retry, answered=True,
    )


def bug_list(results: Sequence[JobResult]) -> list[str]:
    return sorted({bug for r in results for bug in r.bugs})
