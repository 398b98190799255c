"""Which known bugs a build hit: every active fingerprint in one batched pass."""

from __future__ import annotations

import logging
import re
from typing import Collection, Iterator, Sequence

from .errors import BackendError
from .fingerprints import Fingerprint
from .lucene import quote
from .sanitize import exception_line
from .results import Match
from .search import ALL_TIME, SearchBackend, epoch_micros

log = logging.getLogger(__name__)

# stestr/testr console lines: "{0} tempest.api.compute.test_x.Test.test_y [1.2s] ... FAILED"
# and unittest's "FAIL: test_y (tempest.api.compute.test_x.Test)".
_STESTR_FAILED = re.compile(r"(?:^|\s)(?:\{\d+\}\s+)?([\w.]+\.[\w]+)(?:\[[^\]]*\])?\s+\[[^\]]*\]\s+\.\.\.\s+FAILED")
_UNITTEST_FAILED = re.compile(r"\bFAIL: (\w+) \(([\w.]+)\)")


class Classifier:
    def __init__(self, backend: SearchBackend, fingerprints: Sequence[Fingerprint]) -> None:
        self.backend = backend
        self.fingerprints = list(fingerprints)

    def classify(self, build_uuid: str, failed: Collection[str] | None = None) -> list[Fingerprint]:
        """Fingerprints matching the build (voting filter applied), in file order.

        A fingerprint with ``test_ids`` also needs one of them among the
        build's ``failed`` tests, when those are known (None: unknown)."""
        if not self.backend.build_files(build_uuid):
            raise BackendError(f"build {build_uuid} has no indexed logs")
        candidates = [fp for fp in self.fingerprints if tests_allow(fp, failed)]
        failures: dict[str, Exception] = {}
        matched = match_fingerprints(self.backend, build_uuid, candidates, failures)
        if len(failures) == len(candidates) > 1:  # not one fingerprint's fault: no answer rather than a wrong one
            raise list(failures.values())[-1]
        return [fp for fp, hit in zip(candidates, matched) if hit]


def match_fingerprints(backend: SearchBackend, build_uuid: str, fingerprints: Sequence[Fingerprint],
                       failures: dict[str, Exception]) -> list[bool]:
    """Which fingerprints match the build, in one batched pass. If the batch
    fails for any reason but the backend being unavailable (BackendError:
    raised, so the caller retries later), a fingerprint is at fault: the
    batch is halved until the culprits are found, each logged in one line,
    put in ``failures`` (bug -> why) and counted as no match, and the others
    still classify."""
    if not fingerprints:
        return []
    try:
        return backend.match_build(build_uuid, [fp.voting_query for fp in fingerprints])
    except BackendError:
        raise
    except Exception as exc:
        if len(fingerprints) == 1:
            # one line: the daemon's log formatter escapes what the exception text holds
            log.error("fingerprint %s skipped for build %s: it cannot run: %s", fingerprints[0].bug,
                      build_uuid, exception_line(exc))
            failures[fingerprints[0].bug] = exc
            return [False]
    middle = len(fingerprints) // 2
    return (match_fingerprints(backend, build_uuid, fingerprints[:middle], failures)
            + match_fingerprints(backend, build_uuid, fingerprints[middle:], failures))


def index_match(backend: SearchBackend, fingerprint: Fingerprint, build_uuid: str) -> Match:
    """A fingerprint's lines in one build, as the index counts them: how many,
    and the newest (its time and text)."""
    found = backend.search(f"({fingerprint.voting_query}) AND build_uuid:{quote(build_uuid)}", size=1)
    newest = found.hits[0] if found.hits else None
    return Match(fingerprint.bug, found.total,
                 None if newest is None or newest.timestamp is None else epoch_micros(newest.timestamp),
                 "" if newest is None else str(newest.source.get("message", "")))


def tests_allow(fingerprint: Fingerprint, failed: Collection[str] | None) -> bool:
    """Whether the build's ``failed`` tests (None: unknown) let ``fingerprint``
    count: the one rule for ``test_ids``, in classify, watch and the dashboard."""
    if not fingerprint.test_ids or failed is None:
        return True
    return any(test == wanted or test.startswith(wanted + ".") or test.startswith(wanted + "[")
               for wanted in fingerprint.test_ids for test in failed)


# What one build's console log may cost failed_tests(), which runs for every
# failed build whenever a fingerprint has test_ids: the log is hostile input and
# ingest allows a GiB per file. A real run reports a few hundred failures at most,
# each on a line of a few hundred characters; past these caps the build's failed
# tests are the ones seen so far (logged), and the rest of the log is not read.
MAX_FAILED_TESTS = 10_000  # distinct failed test ids kept
MAX_FAILED_LINES = 100_000  # console lines with FAILED/FAIL looked at
MAX_FAILED_LINE_CHARS = 1_024  # characters of each such line searched for test ids (a test id line is short)


def failed_tests(backend: SearchBackend, build_uuid: str, max_tests: int = MAX_FAILED_TESTS,
                 max_lines: int = MAX_FAILED_LINES, max_chars: int = MAX_FAILED_LINE_CHARS) -> set[str] | None:
    """Test ids the build's console log reports as failed; None if it reports no test run."""
    query = f'build_uuid:{quote(build_uuid)} AND (tags:console) AND message:(FAILED OR FAIL)'
    tests: set[str] = set()
    for seen, hit in enumerate(backend.scan(query, ALL_TIME)):
        if seen == max_lines:
            log.warning("build %s: its console log has more than %d lines reporting failures; the failed tests "
                        "are taken from %d of them", build_uuid, max_lines, max_lines)
            break
        for test in _test_ids(str(hit.source.get("message", ""))[:max_chars]):
            if len(tests) == max_tests and test not in tests:
                log.warning("build %s: its console log reports more than %d failed tests; %d of them are kept",
                            build_uuid, max_tests, max_tests)
                return tests
            tests.add(test)
    return tests or None


def _test_ids(message: str) -> Iterator[str]:
    yield from (m.group(1) for m in _STESTR_FAILED.finditer(message))
    yield from (f"{m.group(2)}.{m.group(1)}" for m in _UNITTEST_FAILED.finditer(message))


def test_ids_in(message: str) -> list[str]:
    """The test ids a console line reports as failed (stestr/testr or unittest)."""
    return list(dict.fromkeys(_test_ids(message)))
