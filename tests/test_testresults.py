"""A build's failed tests, read from the subunit v2 stream its test runner wrote.

Every stream here is written by python-subunit's own writer (StreamResultToBytes),
as stestr and testr write them, into real files on disk; hostile files are those
bytes cut, corrupted, padded with garbage or blown up.
"""

from __future__ import annotations

import gzip
import io
import os
import tracemalloc
from pathlib import Path

import pytest
from subunit.v2 import StreamResultToBytes

from elastic_recheck import classify
from elastic_recheck.fingerprints import Fingerprint, load_fingerprint
from elastic_recheck.testresults import (
    MAX_EVENTS,
    MAX_FAILED_IDS,
    MAX_RESULT_BYTES,
    TestResultLimits,
    TestRunResult,
    failed_tests_in,
    read_failed_tests,
    result_files,
)

TEMPEST = "tempest.api.compute.servers.test_servers.ServersTest"
TAGGED = f"{TEMPEST}.test_update_server_name[id-5e6ccff8-349d-4852-a8b3-055df7988dd2,smoke]"
PACKET_ROOM = 4 * 1024 * 1024 - 200  # an attachment chunk that fills one subunit packet (at most 4 MiB)


def events(*outcomes: tuple[str, str], attachment: bytes = b"") -> bytes:
    """A stream as stestr records one: each test in progress, its attachment
    (a traceback, its log), then its outcome."""
    out = io.BytesIO()
    writer = StreamResultToBytes(out)
    for test_id, status in outcomes:
        writer.status(test_id=test_id, test_status="inprogress")
        if attachment:
            writer.status(test_id=test_id, file_name="traceback", file_bytes=attachment,
                          mime_type="text/plain;charset=utf8", eof=True)
        writer.status(test_id=test_id, test_status=status, test_tags={"worker-0"})
    return out.getvalue()


A_RUN = events(
    (f"{TEMPEST}.test_list_servers", "success"),
    (TAGGED, "fail"),
    (f"{TEMPEST}.test_rebuild_server", "skip"),
    (f"{TEMPEST}.test_known_bug", "xfail"),
    (f"{TEMPEST}.test_fixed_meanwhile", "uxsuccess"),
    attachment=b"Traceback (most recent call last):\n  ...\nAssertionError\n",
)
A_RUN_FAILED = {TAGGED, f"{TEMPEST}.test_fixed_meanwhile"}


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def read_with_peak_memory(path: Path) -> tuple[TestRunResult, int]:
    """The file read, and the most memory Python held at once while reading it."""
    tracemalloc.start()
    try:
        result = read_failed_tests(path)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def fingerprint(directory: Path, *test_ids: str) -> Fingerprint:
    """A fingerprint file as its author writes one, loaded by the project's loader."""
    listed = "".join(f"  - '{test}'\n" for test in test_ids)
    path = write(directory / "queries" / "1234567.yaml",
                 (f"query: message:\"Timed out\"\n" + (f"test_ids:\n{listed}" if test_ids else "")).encode())
    return load_fingerprint(path)


# -- reading one stream ----------------------------------------------------------------------


def test_failed_tests_are_fails_and_unexpected_successes_with_their_ids_as_recorded(tmp_path: Path) -> None:
    result = read_failed_tests(write(tmp_path / "testrepository.subunit", A_RUN))
    assert result == TestRunResult(path=str(tmp_path / "testrepository.subunit"), failed_tests=frozenset(A_RUN_FAILED),
                                   passed=1, failed=2, skipped=1, expected_failures=1)
    assert result.cut is None and result.tests_seen == 5


def test_in_progress_and_attachment_events_are_not_outcomes(tmp_path: Path) -> None:
    out = io.BytesIO()
    writer = StreamResultToBytes(out)
    writer.status(test_id="a.T.test_listed", test_status="exists")
    writer.status(test_id="a.T.test_started", test_status="inprogress")
    writer.status(file_name="stdout", file_bytes=b"not a test's output\n")
    result = read_failed_tests(write(tmp_path / "r.subunit", out.getvalue()))
    assert result.tests_seen == 0 and result.failed_tests == frozenset() and result.cut is None


def test_a_failed_class_fixture_also_names_the_class(tmp_path: Path) -> None:
    result = read_failed_tests(write(tmp_path / "r.subunit", events((f"setUpClass ({TEMPEST})", "fail"))))
    assert result.failed_tests == {f"setUpClass ({TEMPEST})", TEMPEST}
    assert result.failed == 1


def test_a_subunit_parser_failure_the_run_recorded_is_a_failed_test(tmp_path: Path) -> None:
    """stestr records one when a worker's output was corrupt (a known bug's fingerprint
    looks for it); it is a real outcome, unlike a packet this reader cannot parse."""
    result = read_failed_tests(write(tmp_path / "r.subunit", events(("subunit.parser", "fail"))))
    assert result.failed_tests == {"subunit.parser"} and result.cut is None


@pytest.mark.parametrize("name", ["testrepository.subunit.gz", "testrepository.subunit"])
def test_gzip_is_told_by_its_first_bytes_not_its_name(tmp_path: Path, name: str) -> None:
    gzipped = read_failed_tests(write(tmp_path / "z" / name, gzip.compress(A_RUN)))
    plain = read_failed_tests(write(tmp_path / "p" / name, A_RUN))  # a log server may have gunzipped it already
    for result in (gzipped, plain):
        assert result.failed_tests == A_RUN_FAILED and result.cut is None


def test_concatenated_gzip_members_are_read_on(tmp_path: Path) -> None:
    first, second = events(("a.T.test_one", "fail")), events(("a.T.test_two", "fail"))
    result = read_failed_tests(write(tmp_path / "r.gz", gzip.compress(first) + gzip.compress(second)))
    assert result.failed_tests == {"a.T.test_one", "a.T.test_two"} and result.cut is None


# -- the ids and the test_ids rule --------------------------------------------------------------


def test_tests_allow_matches_a_fingerprints_test_ids_against_the_ids_as_read(tmp_path: Path) -> None:
    failed = read_failed_tests(write(tmp_path / "r.subunit", A_RUN)).failed_tests
    plain_name = TAGGED.split("[")[0]
    assert classify.tests_allow(fingerprint(tmp_path, plain_name), failed)  # the usual form: no attribute suffix
    assert classify.tests_allow(fingerprint(tmp_path, TAGGED), failed)  # the id exactly as tempest lists it
    assert classify.tests_allow(fingerprint(tmp_path, TEMPEST), failed)  # a class: any of its tests
    assert classify.tests_allow(fingerprint(tmp_path, "tempest.api.compute"), failed)  # a package
    assert not classify.tests_allow(fingerprint(tmp_path, f"{TEMPEST}.test_list_servers"), failed)  # it passed
    assert not classify.tests_allow(fingerprint(tmp_path, f"{TEMPEST}.test_rebuild_server"), failed)  # skipped
    assert not classify.tests_allow(fingerprint(tmp_path, f"{TEMPEST}.test_known_bug"), failed)  # failed as expected
    assert not classify.tests_allow(fingerprint(tmp_path, f"{TEMPEST}.test_update_server"), failed)  # a prefix of a name is not a test
    assert classify.tests_allow(fingerprint(tmp_path, f"{TEMPEST}.test_fixed_meanwhile"), failed)  # passed though expected to fail


def test_a_run_that_passed_whole_rules_out_every_test_specific_fingerprint(tmp_path: Path) -> None:
    write(tmp_path / "logs" / "testrepository.subunit", events(("a.T.test_one", "success")))
    failed = failed_tests_in(tmp_path)
    assert failed == set()  # known: nothing failed (None would mean unknown)
    assert not classify.tests_allow(fingerprint(tmp_path, "a.T.test_one"), failed)
    assert classify.tests_allow(fingerprint(tmp_path), failed)  # a fingerprint without test_ids is not concerned


# -- hostile files --------------------------------------------------------------------------------


def test_a_stream_cut_mid_packet_keeps_the_outcomes_before_the_cut(tmp_path: Path) -> None:
    path = write(tmp_path / "r.subunit", A_RUN[:-7])  # inside the last packet: test_fixed_meanwhile's outcome
    result = read_failed_tests(path)
    assert result.failed_tests == {TAGGED}
    assert (result.passed, result.failed, result.skipped, result.expected_failures) == (1, 1, 1, 1)
    assert result.cut is not None and result.cut.startswith(f"{path}: ")
    assert "cut short" in result.cut and "\n" not in result.cut


def test_garbage_is_no_stream_and_named_in_one_line(tmp_path: Path) -> None:
    path = write(tmp_path / "r.subunit", bytes(b for b in range(256) if b not in (0xB3, 0x1F)) * 256)
    result = read_failed_tests(path)
    assert result.tests_seen == 0 and result.failed_tests == frozenset()
    assert result.cut == f"{path}: bytes that are not subunit v2 at byte 1; test outcomes are read up to byte 1"


def test_subunit_v1_text_is_refused_by_name(tmp_path: Path) -> None:
    path = write(tmp_path / "r.subunit", b"test: a.T.test_one\nfailure: a.T.test_one\n")
    result = read_failed_tests(path)
    assert result.tests_seen == 0
    assert result.cut is not None and "subunit v1 text is not read" in result.cut


def test_garbage_after_good_packets_keeps_what_was_read(tmp_path: Path) -> None:
    result = read_failed_tests(write(tmp_path / "r.subunit", A_RUN + b"Killed\n"))
    assert result.failed_tests == A_RUN_FAILED
    assert result.cut is not None and f"not subunit v2 at byte {len(A_RUN) + 1}" in result.cut


def test_a_packet_with_a_wrong_checksum_ends_the_reading(tmp_path: Path) -> None:
    first = events(("a.T.test_one", "fail"))
    second = bytearray(events(("a.T.test_two", "fail")))
    second[-1] ^= 0xFF  # the last packet's CRC
    result = read_failed_tests(write(tmp_path / "r.subunit", first + bytes(second)))
    assert result.failed_tests == {"a.T.test_one"}
    assert result.cut is not None and "corrupt subunit packet (Bad checksum" in result.cut


def test_a_header_claiming_a_negative_length_does_not_read_the_whole_file(tmp_path: Path) -> None:
    """The library reads length - 6 more bytes: a header claiming 5 asks for -1,
    "everything", which would hold the whole file in memory."""
    path = write(tmp_path / "r.subunit", A_RUN + b"\xb3\x00\x00\x05" + b"\xb3" * (16 * 1024 * 1024))
    result, peak = read_with_peak_memory(path)
    assert peak < 2 * 1024 * 1024
    assert result.failed_tests == A_RUN_FAILED
    assert result.cut is not None and "corrupt subunit packet" in result.cut


def test_attachments_of_many_packets_are_never_held(tmp_path: Path) -> None:
    path = write(tmp_path / "r.subunit", _attachment_packets(12) + events(("a.T.test_chatty", "fail"))
                 + events(("a.T.test_after", "fail")))
    assert path.stat().st_size > 48_000_000
    result, peak = read_with_peak_memory(path)
    assert result.failed_tests == {"a.T.test_chatty", "a.T.test_after"} and result.cut is None
    assert peak < 24 * 1024 * 1024  # a packet or two, not the 48 MiB


def _attachment_packets(count: int) -> bytes:
    out = io.BytesIO()
    writer = StreamResultToBytes(out)
    chunk = b"x" * PACKET_ROOM
    for _ in range(count):
        writer.status(test_id="a.T.test_chatty", file_name="pythonlogging", file_bytes=chunk, mime_type="text/plain")
    return out.getvalue()


def test_a_gzip_bomb_stops_at_the_byte_limit(tmp_path: Path) -> None:
    member = gzip.compress(_attachment_packets(1), compresslevel=9)
    path = write(tmp_path / "testrepository.subunit.gz", gzip.compress(A_RUN) + member * 200)  # 800 MiB inflated
    assert path.stat().st_size < 2 * 1024 * 1024
    result = read_failed_tests(path, TestResultLimits(max_bytes=16 * 1024 * 1024))
    assert result.failed_tests == A_RUN_FAILED
    assert result.cut == (f"{path}: more than {16 * 1024 * 1024} bytes of test results; "
                          f"test outcomes are read up to byte {16 * 1024 * 1024}")


def test_bytes_on_disk_are_bounded_even_when_they_inflate_to_nothing(tmp_path: Path) -> None:
    path = write(tmp_path / "r.gz", gzip.compress(A_RUN) + gzip.compress(b"") * 20_000)
    result = read_failed_tests(path, TestResultLimits(max_bytes=64 * 1024))
    assert result.failed_tests == A_RUN_FAILED
    assert result.cut is not None and "more than 65536 bytes on disk" in result.cut


def test_a_truncated_gzip_file_keeps_what_inflated(tmp_path: Path) -> None:
    data = gzip.compress(A_RUN + _attachment_packets(1))
    result = read_failed_tests(write(tmp_path / "r.gz", data[: len(data) // 2]))
    assert result.failed_tests == A_RUN_FAILED
    assert result.cut is not None and "gzip data ends early" in result.cut


def test_a_flood_of_events_stops_at_the_event_limit(tmp_path: Path) -> None:
    run = events(*((f"a.T.test_{n}", "fail" if n % 2 else "success") for n in range(2_000)))
    result = read_failed_tests(write(tmp_path / "r.subunit", run), TestResultLimits(max_events=1_000))
    assert result.cut is not None and "more than 1000 subunit events" in result.cut
    assert result.tests_seen == 500  # two events a test


def test_failed_ids_past_the_limit_are_counted_not_kept(tmp_path: Path) -> None:
    run = events(*((f"a.T.test_{n}", "fail") for n in range(50)))
    result = read_failed_tests(write(tmp_path / "r.subunit", run), TestResultLimits(max_failed_ids=10))
    assert result.failed == 50 and len(result.failed_tests) == 10 and result.ids_dropped == 40
    assert result.cut is None


def test_an_enormous_or_unprintable_test_id_is_counted_not_kept(tmp_path: Path) -> None:
    huge = "a.T.test_" + "x" * (2 * 1024 * 1024)
    run = events((huge, "fail"), ("a.T.test_\nforged log line", "fail"), ("a.T.test_fine", "fail"))
    result = read_failed_tests(write(tmp_path / "r.subunit", run))
    assert result.failed == 3 and result.failed_tests == {"a.T.test_fine"} and result.ids_dropped == 2


def test_a_file_that_cannot_be_read_is_a_one_line_reason(tmp_path: Path) -> None:
    missing = read_failed_tests(tmp_path / "gone.subunit")
    a_directory = read_failed_tests(tmp_path)
    os.mkfifo(tmp_path / "testrepository.subunit")  # opening it to read would wait for a writer for ever
    a_fifo = read_failed_tests(tmp_path / "testrepository.subunit")
    assert "not a regular file" in (a_directory.cut or "") and "not a regular file" in (a_fifo.cut or "")
    for result in (missing, a_directory, a_fifo):
        assert result.tests_seen == 0 and result.cut is not None and "cannot be read" in result.cut
        assert "\n" not in result.cut


def test_a_control_character_in_the_path_is_escaped_in_the_reason(tmp_path: Path) -> None:
    path = write(tmp_path / "bad\nname.subunit", b"junk")
    result = read_failed_tests(path)
    assert result.cut is not None and "\n" not in result.cut and "bad\\nname.subunit" in result.cut


def test_the_defaults_are_far_above_a_real_run() -> None:
    limits = TestResultLimits()
    assert (limits.max_bytes, limits.max_failed_ids, limits.max_events) == (MAX_RESULT_BYTES, MAX_FAILED_IDS,
                                                                            MAX_EVENTS)
    assert limits.max_bytes >= 512 * 1024 * 1024 and limits.max_failed_ids >= 10_000 and limits.max_events >= 10 ** 6


# -- finding a build's test results ------------------------------------------------------------


def test_a_build_without_test_results_is_unknown(tmp_path: Path) -> None:
    write(tmp_path / "job-output.txt", b"{0} a.T.test_one [1.0s] ... FAILED\n")
    assert failed_tests_in(tmp_path) is None


@pytest.mark.parametrize("where", ["testrepository.subunit", "logs/testrepository.subunit",
                                   "logs/testrepository.subunit.gz", "controller/logs/tempest/testrepository.subunit"])
def test_the_usual_places_are_found(tmp_path: Path, where: str) -> None:
    data = gzip.compress(A_RUN) if where.endswith(".gz") else A_RUN
    write(tmp_path / where, data)
    assert failed_tests_in(tmp_path) == A_RUN_FAILED


def test_every_node_of_a_multinode_job_counts(tmp_path: Path) -> None:
    write(tmp_path / "controller/logs/testrepository.subunit", events(("a.T.test_one", "fail")))
    write(tmp_path / "compute1/logs/testrepository.subunit.gz", gzip.compress(events(("a.T.test_two", "fail"))))
    assert failed_tests_in(tmp_path) == {"a.T.test_one", "a.T.test_two"}


def test_the_newest_run_of_a_stestr_repository_is_read(tmp_path: Path) -> None:
    write(tmp_path / "logs/.stestr/0", events(("a.T.test_old", "fail")))
    write(tmp_path / "logs/.stestr/1", events(("a.T.test_new", "fail")))
    write(tmp_path / "logs/.stestr/failing", events(("a.T.test_failing_list", "fail")))
    write(tmp_path / "logs/.stestr/next-stream", b"2\n")
    assert result_files(tmp_path) == [tmp_path / "logs/.stestr/1"]
    assert failed_tests_in(tmp_path) == {"a.T.test_new"}


def test_results_too_deep_or_behind_a_symlink_are_not_looked_for(tmp_path: Path) -> None:
    build = tmp_path / "build"
    write(build / "a/b/c/d/e/testrepository.subunit", A_RUN)  # five levels down
    outside = write(tmp_path / "elsewhere/testrepository.subunit", A_RUN)
    (build / "logs").mkdir()
    (build / "logs/testrepository.subunit").symlink_to(outside)
    (build / "linked").symlink_to(outside.parent, target_is_directory=True)
    assert result_files(build) == []
    assert failed_tests_in(build) is None
    write(build / "a/b/c/d/testrepository.subunit", A_RUN)  # four levels: found
    assert failed_tests_in(build) == A_RUN_FAILED


def test_a_result_file_with_no_outcome_leaves_the_console_to_decide(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    garbage = write(tmp_path / "logs/testrepository.subunit", b"<html>404 Not Found</html>")
    write(tmp_path / "other/testrepository.subunit", b"")  # the job captured an empty run
    assert failed_tests_in(tmp_path) is None
    assert any(str(garbage) in record.getMessage() and "not subunit v2" in record.getMessage()
               for record in caplog.records)


def test_a_cut_stream_still_gives_its_failures_with_a_warning(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "logs/testrepository.subunit", A_RUN[:-7])
    assert failed_tests_in(tmp_path) == {TAGGED}
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        read_failed_tests(path).cut]


def test_the_builds_failed_ids_are_bounded_across_its_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for node in range(3):
        write(tmp_path / f"node{node}/testrepository.subunit",
              events(*((f"a.T{node}.test_{n}", "fail") for n in range(8))))
    failed = failed_tests_in(tmp_path, TestResultLimits(max_failed_ids=20))
    assert failed is not None and len(failed) == 20
    assert any("more than 20 failed test ids" in r.getMessage() for r in caplog.records)


def test_a_directory_of_countless_entries_is_searched_within_a_bound(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    for n in range(30):
        write(tmp_path / f"screen-{n}.txt", b"")
    write(tmp_path / "logs/testrepository.subunit", A_RUN)
    assert result_files(tmp_path, max_entries=40) == [tmp_path / "logs/testrepository.subunit"]
    assert result_files(tmp_path, max_entries=20) == []
    assert any("more than 20 directory entries" in r.getMessage() for r in caplog.records)


def test_result_files_are_read_in_path_order_up_to_a_bound(tmp_path: Path) -> None:
    for node in range(20):
        write(tmp_path / f"node{node:02d}/testrepository.subunit", events((f"a.T.test_{node}", "fail")))
    files = result_files(tmp_path)
    assert files == sorted(files) and len(files) == 16
    assert files[0] == tmp_path / "node00/testrepository.subunit"
