"""A build's failed tests, read from the test runner's own record of the run.

The console log says which tests failed only in lines written for people, and
classify.failed_tests can but guess them with regular expressions. stestr and
testr also record the run as a subunit v2 stream (``testrepository.subunit``,
gzipped by many jobs), where each test's outcome is a typed event: this module
reads that with the ``python-subunit`` library, so a fingerprint's ``test_ids``
are checked against what the runner itself reported.

The file comes from outside like every other log file: garbage, a stream cut
mid-packet, a gzip bomb, millions of tests, a test id of megabytes, attachments
of gigabytes. Reading is bounded (bytes, events, kept ids, id length), attachments are
never held (the parser hands over one packet of at most 4 MiB at a time and
this reader drops its bytes), and whatever goes wrong ends in a one-line reason
naming the file, never in an exception out of :func:`read_failed_tests`.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator

from subunit.v2 import SIGNATURE, ByteStreamToStreamResult, ParseError

from .ingest.streams import CHUNK, Cut, GzipIfMagic, StopReading
from .sanitize import escape_controls, exception_line

log = logging.getLogger(__name__)

# A tempest run records a few thousand tests (a unit test run some tens of
# thousands), a few events each, and reports a few hundred failures at most,
# each id a few hundred characters at most.
MAX_RESULT_BYTES = 1 << 30  # bytes read from one file, before and after gunzip
MAX_FAILED_IDS = 10_000  # distinct failed test ids kept from one build
MAX_TEST_ID_CHARS = 1_024  # a failed test with a longer id is counted, its id not kept
MAX_EVENTS = 1_000_000  # subunit events (outcomes, attachment chunks) read from one file: ~10 s of CPU
MAX_RESULT_FILES = 16  # test result files read from one build (one per node of a multinode job)
SEARCH_DEPTH = 4  # directory levels below the build's directory searched for them
MAX_SEARCHED_ENTRIES = 100_000  # directory entries looked at while searching

# What stestr/testr write: `stestr last --subunit > testrepository.subunit` in
# devstack and tox jobs (often published gzipped), and the runs of the
# repository itself, `.stestr/<n>` (testr: `.testrepository/<n>`).
RESULT_NAMES = ("testrepository.subunit", "testrepository.subunit.gz")
REPOSITORY_DIRS = (".stestr", ".testrepository")

_FAILED = frozenset({"fail", "uxsuccess"})
# A class or module fixture that failed is reported as "setUpClass (a.b.TestX)".
_FIXTURE = re.compile(r"^(?:setUpClass|tearDownClass|setUpModule|tearDownModule) \(([\w.]+)\)$")


@dataclass(frozen=True)
class TestResultLimits:
    """What reading one build's test results may cost (defaults: the module constants)."""

    __test__ = False  # not a pytest test class

    max_bytes: int = MAX_RESULT_BYTES
    max_failed_ids: int = MAX_FAILED_IDS
    max_id_chars: int = MAX_TEST_ID_CHARS
    max_events: int = MAX_EVENTS


@dataclass(frozen=True)
class TestRunResult:
    """One test result file as read. ``failed_tests``: the ids of the tests
    that failed (``fail``) or passed unexpectedly (``uxsuccess``), exactly as
    the stream names them, attribute suffix included
    (``a.b.TestX.test_y[id-1234,smoke]``: classify.tests_allow matches ``a.b.TestX.test_y``
    against it); a failed class or module fixture (``setUpClass (a.b.TestX)``)
    also adds the class or module's own id. The counts are of outcome events.
    ``cut``: why the file was not read to its end (one line naming it), None
    when it was; what was read before the cut is kept. ``ids_dropped``: failed
    tests counted whose id is not in ``failed_tests`` (too long, not
    printable, or over the limit of kept ids)."""

    __test__ = False  # not a pytest test class

    path: str
    failed_tests: frozenset[str] = frozenset()
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    expected_failures: int = 0
    ids_dropped: int = 0
    cut: str | None = None

    @property
    def tests_seen(self) -> int:
        """Outcomes read: 0 means the file says nothing about a test run."""
        return self.passed + self.failed + self.skipped + self.expected_failures


class _StopParsing(Exception):
    """Reading ends here: a packet the parser cannot read, or a limit."""


class _Source:
    """The file's bytes as the subunit parser asks for them: gunzipped when
    they start like gzip (whatever the name: a log server may have already
    decompressed a ``.gz``), at most ``limit`` bytes read from disk and at
    most ``limit`` after decompression. A limit or broken gzip ends the data
    and is kept in :attr:`cut`."""

    def __init__(self, handle: IO[bytes], limit: int) -> None:
        self._raw = _LimitedBytes(handle, limit)
        self._buffered = io.BufferedReader(self._raw, CHUNK)  # the parser reads a byte, a header, a body per packet
        self.count = 0  # bytes given to the parser

    @property
    def cut(self) -> str | None:
        return self._raw.cut

    def read(self, size: int = -1) -> bytes:
        # The parser asks for a negative count only when a corrupt header
        # claims a packet shorter than its header; "read everything" would
        # hold the whole file, so the packet is short instead (a parse error).
        if size is None or size < 0:
            return b""
        data = self._buffered.read(size)
        self.count += len(data)
        return data


class _LimitedBytes(io.RawIOBase):
    """The bottom of :class:`_Source`: the bytes on disk (``raw_count`` of
    them) through GzipIfMagic, ``count`` bytes given out."""

    def __init__(self, handle: IO[bytes], limit: int) -> None:
        self._handle = handle
        self.limit = limit
        self.raw_count = 0
        self.count = 0
        self.cut: str | None = None
        self._layer = GzipIfMagic(self._raw_read).read

    def readable(self) -> bool:
        return True

    def _raw_read(self, size: int) -> bytes:
        room = self.limit - self.raw_count
        if room <= 0:
            if self._handle.read(1):
                raise StopReading(Cut(f"more than {self.limit} bytes on disk", False))
            return b""
        data = self._handle.read(min(size, room, CHUNK))
        self.raw_count += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        if self.cut is not None:
            return 0
        room = self.limit - self.count
        try:
            if room <= 0:
                if self._layer(1):
                    self.cut = f"more than {self.limit} bytes of test results"
                return 0
            data = self._layer(min(len(buffer), room))
        except StopReading as stop:
            self.cut = stop.cut.reason
            return 0
        self.count += len(data)
        buffer[: len(data)] = data
        return len(data)


class _Parser(ByteStreamToStreamResult):  # type: ignore[misc]
    """The library's parser, stopping at the first packet it cannot parse.

    The library reports such a packet as a failed test ``subunit.parser``
    and reads on; here that would be indistinguishable from a real
    ``subunit.parser`` failure the run itself recorded (stestr records one
    when a worker's output was corrupt), and the bytes after a corrupt
    packet are no better."""

    def _parse_packet(self, result: Any) -> None:
        try:
            self._parse([SIGNATURE], result)
        except ParseError as error:
            text = " ".join(str(error).split())[:200]
            if text.startswith("Short read") and not self.source.read(1):
                raise _StopParsing("the stream ends inside a packet (cut short)") from None
            raise _StopParsing(f"a corrupt subunit packet ({text})") from None


class _Outcomes:
    """The parser's events folded into counts and failed ids; attachments
    (file bytes) are dropped as they come."""

    def __init__(self, limits: TestResultLimits) -> None:
        self.limits = limits
        self.failed_tests: set[str] = set()
        self.counts = {"success": 0, "fail": 0, "uxsuccess": 0, "skip": 0, "xfail": 0}
        self.ids_dropped = 0
        self.events = 0

    def status(self, test_id: str | None = None, test_status: str | None = None, **_: Any) -> None:
        self.events += 1
        if self.events > self.limits.max_events:
            raise _StopParsing(f"more than {self.limits.max_events} subunit events")
        if test_status not in self.counts:
            return  # None (an attachment), "exists", "inprogress"
        self.counts[test_status] += 1
        if test_status in _FAILED:
            self._keep(test_id or "")

    def _keep(self, test_id: str) -> None:
        ids = [test_id]
        fixture = _FIXTURE.match(test_id)
        if fixture:
            ids.append(fixture.group(1))
        for one in ids:
            if one in self.failed_tests:
                continue
            if (not one or len(one) > self.limits.max_id_chars or not one.isprintable()
                    or len(self.failed_tests) >= self.limits.max_failed_ids):
                self.ids_dropped += 1
                return
            self.failed_tests.add(one)

    def result(self, path: str, cut: str | None) -> TestRunResult:
        c = self.counts
        return TestRunResult(path=path, failed_tests=frozenset(self.failed_tests), passed=c["success"],
                             failed=c["fail"] + c["uxsuccess"], skipped=c["skip"], expected_failures=c["xfail"],
                             ids_dropped=self.ids_dropped, cut=cut)


def read_failed_tests(path: Path, limits: TestResultLimits = TestResultLimits()) -> TestRunResult:
    """Read one subunit v2 file (gzipped or not: told by its first bytes) to
    its end or the first thing that stops it. Never raises: an unreadable
    file is a result with no outcomes and ``cut`` saying why."""
    shown = escape_controls(str(path))
    outcomes = _Outcomes(limits)
    try:
        handle = _open_regular(path)
    except OSError as exc:
        return outcomes.result(shown, f"{shown}: cannot be read: {exception_line(exc)}")
    with handle:
        source = _Source(handle, limits.max_bytes)
        why: str | None = None
        try:
            _Parser(source).run(outcomes)
        except _StopParsing as exc:
            why = str(exc)
        except OSError as exc:
            why = f"cannot be read: {exception_line(exc)}"
        except Exception as exc:  # a bare Exception for non-subunit bytes, struct.error for torn fields
            why = _not_subunit(exc, source)
        why = source.cut or why
        if why is not None:
            why = f"{shown}: {why}; test outcomes are read up to byte {source.count}"
        return outcomes.result(shown, why)


def _open_regular(path: Path) -> IO[bytes]:
    """The file opened for reading, if it is a regular file: a FIFO would
    block the reader for ever, a device would never end."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _not_subunit(exc: Exception, source: _Source) -> str:
    if exc.args and exc.args[0] == "Non subunit content":
        if source.count == 1 and len(exc.args) > 1 and exc.args[1][:1].isalpha():
            return "not a subunit v2 stream (subunit v1 text is not read: stestr and testr write v2)"
        return f"bytes that are not subunit v2 at byte {source.count}"
    return f"a corrupt subunit packet ({exception_line(exc)})"


def result_files(directory: Path, max_entries: int = MAX_SEARCHED_ENTRIES) -> list[Path]:
    """The test result files of a build's spooled files: ``testrepository.subunit``
    (or ``.gz``) up to :data:`SEARCH_DEPTH` levels down (``logs/``,
    ``controller/logs/``, …), and the newest run of a ``.stestr`` or
    ``.testrepository`` directory. Symlinks are not followed (a build's
    files may not lead outside it); at most :data:`MAX_RESULT_FILES`, in path order,
    found among at most ``max_entries`` directory entries."""
    found: list[Path] = []
    budget = [max_entries]
    for entry_path, kind in _walk(directory, 0, budget):
        if kind == "file":
            found.append(entry_path)
        else:
            newest = _newest_run(entry_path, budget)
            if newest is not None:
                found.append(newest)
    if budget[0] < 0:
        log.warning("%s: more than %d directory entries; test result files were searched among the first of them",
                    escape_controls(str(directory)), max_entries)
    found.sort()
    if len(found) > MAX_RESULT_FILES:
        log.warning("%s: %d test result files; the first %d are read", escape_controls(str(directory)), len(found),
                    MAX_RESULT_FILES)
    return found[:MAX_RESULT_FILES]


def _walk(directory: Path, depth: int, budget: list[int]) -> Iterator[tuple[Path, str]]:
    try:
        with os.scandir(directory) as entries:
            subdirs: list[Path] = []
            for entry in entries:
                budget[0] -= 1
                if budget[0] < 0:
                    return
                try:
                    if entry.is_symlink():
                        continue
                    if entry.is_file(follow_symlinks=False) and entry.name in RESULT_NAMES:
                        yield Path(entry.path), "file"
                    elif entry.is_dir(follow_symlinks=False):
                        if entry.name in REPOSITORY_DIRS:
                            yield Path(entry.path), "repository"
                        elif depth < SEARCH_DEPTH:
                            subdirs.append(Path(entry.path))
                except OSError:
                    continue
    except OSError as exc:
        log.warning("%s: cannot be searched for test results: %s", escape_controls(str(directory)),
                    exception_line(exc))
        return
    for subdir in sorted(subdirs):
        yield from _walk(subdir, depth + 1, budget)


def _newest_run(repository: Path, budget: list[int]) -> Path | None:
    """The newest run a stestr/testr repository holds: its highest numbered file."""
    newest: tuple[int, Path] | None = None
    try:
        with os.scandir(repository) as entries:
            for entry in entries:
                budget[0] -= 1
                if budget[0] < 0:
                    break
                if entry.name.isdigit() and len(entry.name) < 10 and entry.is_file(follow_symlinks=False):
                    number = int(entry.name)
                    if newest is None or number > newest[0]:
                        newest = (number, Path(entry.path))
    except OSError as exc:
        log.warning("%s: cannot be searched for test results: %s", escape_controls(str(repository)),
                    exception_line(exc))
    return newest[1] if newest else None


def failed_tests_in(directory: Path, limits: TestResultLimits = TestResultLimits()) -> set[str] | None:
    """The failed test ids of the build whose files are in ``directory``, from
    its test result files (all of them: one per node of a multinode job).
    None when it has none, or none that records a test outcome (then
    classify.failed_tests can read the console log instead). A file cut
    short still gives the failures it recorded before the cut (a run killed
    by a timeout ends that way), with a warning naming it."""
    failed: set[str] | None = None
    for path in result_files(directory):
        result = read_failed_tests(path, limits)
        if result.cut:
            log.warning("%s", result.cut)
        if result.ids_dropped:
            log.warning("%s: %d failed tests are counted but their ids not kept (longer than %d characters, "
                        "not printable, or more than %d ids)", result.path, result.ids_dropped, limits.max_id_chars,
                        limits.max_failed_ids)
        if not result.tests_seen:
            continue
        if failed is None:
            failed = set()
        room = limits.max_failed_ids - len(failed)
        new = result.failed_tests - failed
        if len(new) > room:
            log.warning("%s: more than %d failed test ids in the build; %d of them are kept",
                        escape_controls(str(directory)), limits.max_failed_ids, limits.max_failed_ids)
            new = set(sorted(new)[:room])
        failed |= new
    return failed
