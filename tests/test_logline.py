"""How ingest reads the head of a log line: timestamp and level.

The native reader (elastic_recheck/_logline.c) must agree with the regular
expressions in elastic_recheck/ingest/line_head.py (what runs where the extension is not built) on every line; the examples first
say what those expressions mean."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings, strategies as st

from elastic_recheck._logline import line_head
from elastic_recheck.ingest.logparse import parse_lines

from elastic_recheck.ingest import line_head as reference

UTC = dt.timezone.utc


def micros(*args: int, tz: dt.tzinfo = UTC) -> int:
    delta = dt.datetime(*args, tzinfo=tz) - dt.datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def test_oslo_lines_give_their_time_and_level():
    line = b"2026-11-20 10:00:01.123 4242 ERROR nova.compute.manager [req-1] boom"
    assert line_head(line, 2026, True) == (micros(2026, 11, 20, 10, 0, 1, 123000), "ERROR")


def test_console_lines_keep_their_time_but_not_a_level():
    line = b"2026-11-20 10:00:01.123456 | controller | ERROR: the job failed"
    assert line_head(line, 2026, False) == (micros(2026, 11, 20, 10, 0, 1, 123456), None)


def test_iso_offsets_are_applied():
    five_thirty = dt.timezone(dt.timedelta(hours=5, minutes=30))
    expected = micros(2026, 11, 20, 10, 0, 1, tz=five_thirty)
    assert line_head(b"2026-11-20T10:00:01+05:30 x", 2026, True) == (expected, None)
    assert line_head(b"2026-11-20T10:00:01+0530 x", 2026, True) == (expected, None)
    assert line_head(b"2026-11-20T10:00:01Z x", 2026, True) == (micros(2026, 11, 20, 10, 0, 1), None)


def test_syslog_lines_take_the_year_they_are_given():
    line = b"Nov  5 10:00:01 host kernel: WARN: disk slow"
    assert line_head(line, 2025, True) == (micros(2025, 11, 5, 10, 0, 1), "WARNING")


def test_syslog_lines_from_before_new_year_read_after_it_keep_their_year():
    lines = [b"Dec 31 23:59:58 host kernel: x\n", b"2027-06-01T00:00:00Z a clock in the future\n",
             b"Jan  1 00:00:05 host kernel: y\n"]
    events = list(parse_lines(lines, default_time=dt.datetime(2027, 1, 1, 0, 30, tzinfo=UTC)))
    assert [e.micros for e in events] == [micros(2026, 12, 31, 23, 59, 58), micros(2027, 6, 1),
                                          micros(2027, 1, 1, 0, 0, 5)]


def test_fatal_is_critical_and_warn_is_warning():
    assert line_head(b"2026-11-20 10:00:01 1 FATAL x", 2026, True)[1] == "CRITICAL"
    assert line_head(b"2026-11-20 10:00:01 1 WARN x", 2026, True)[1] == "WARNING"


def test_a_level_word_must_stand_alone_within_80_bytes():
    assert line_head(b"2026-11-20 10:00:01 1 INFOS x", 2026, True)[1] is None
    assert line_head(b"2026-11-20 10:00:01 " + b"x" * 80 + b" ERROR x", 2026, True)[1] is None


def test_impossible_moments_are_no_timestamp():
    for line in (b"2026-02-30 10:00:00 x", b"2026-11-20 24:00:00 x", b"2026-13-01 10:00:00 x",
                 b"2026-11-20 10:00:00+9900 x", b"Foo 20 10:00:00 x", b"Nov 31 10:00:00 x"):
        assert line_head(line, 2026, True) is None, line


_DIGITS = st.sampled_from(list(b"0123456789"))
_PIECES = st.sampled_from([
    b"2026-11-20", b"1970-01-01", b"0000-01-01", b"9999-12-31", b"2024-02-29", b"2023-02-29", b"2026-13-01",
    b" ", b"T", b"10:00:01", b"23:59:59", b"24:00:00", b"00:60:00", b".", b",", b"123", b"1234567890",
    b"Z", b"+", b"-", b"05:30", b"0530", b"05:3", b"23:59", b"24:00", b"99", b":", b"\t", b"\n",
    b"Jan", b"Feb", b"Nov", b"Foo", b"jan", b" 5", b"31", b"1", b"  ",
    b"DEBUG", b"INFO", b"AUDIT", b"WARNING", b"WARN", b"ERROR", b"CRITICAL", b"TRACE", b"FATAL",
    b"]", b"|", b"[req-1]", b"nova.compute", b"x" * 30, b"\xff\xfe", b"\xc3\xa9",
])
_LINES = st.lists(_PIECES | st.binary(max_size=4) | _DIGITS.map(lambda d: bytes([d])), max_size=16).map(b"".join)
_LEVELED = st.tuples(
    st.sampled_from([b"", b" 4242", b" 1 ", b" | host |"]) | st.integers(68, 80).map(lambda n: b"x" * n),
    st.sampled_from([b" ", b"]", b":", b"|", b"\t", b"x", b""]),
    st.sampled_from([b"DEBUG", b"INFO", b"AUDIT", b"WARNING", b"WARN", b"ERROR", b"CRITICAL", b"TRACE", b"FATAL",
                     b"WARNINGS", b"Error"]),
    st.sampled_from([b" ", b":", b"\n", b"", b"x", b"-"]),
    _LINES,
).map(b"".join)
_TAILS = _LEVELED | _LINES
_DATE_LIKE = st.tuples(
    st.sampled_from([b"", b" ", b"\t"]),
    st.integers(0, 9999), st.integers(0, 13), st.integers(0, 32),
    st.sampled_from([b" ", b"T"]), st.integers(0, 25), st.integers(0, 61), st.integers(0, 61),
    st.sampled_from([b"", b".", b",", b".1", b",12", b".123456", b".123456789", b".1234567891"]),
    st.sampled_from([b"", b"Z", b"+05:30", b"-0800", b"+23:59", b"+24:00", b"-99:99", b"+5", b"+05:"]),
    _TAILS,
).map(lambda t: t[0] + b"%04d-%02d-%02d%s%02d:%02d:%02d" % (t[1], t[2], t[3], t[4], t[5], t[6], t[7]) + t[8] + t[9]
      + t[10])
_SYSLOG_LIKE = st.tuples(
    st.sampled_from([b"Jan", b"Feb", b"Dec", b"Foo", b"JAN"]), st.sampled_from([b" ", b"  ", b"   "]),
    st.integers(0, 32), st.integers(0, 24), st.integers(0, 60),
    st.sampled_from([b"", b".", b".5", b".123456789", b".1234567890"]), st.sampled_from([b" ", b"", b"x"]), _TAILS,
).map(lambda t: t[0] + t[1] + b"%d %02d:%02d:00" % (t[2], t[3], t[4]) + t[5] + t[6] + t[7])


_LEVEL_SEARCH = st.tuples(
    st.sampled_from([b"2026-11-20 10:00:01.123", b"2026-11-20T10:00:01Z", b"Nov  5 10:00:01 ", b"Jan 12 00:00:00.5 "]),
    _LEVELED,
).map(b"".join)


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(_DATE_LIKE | _SYSLOG_LIKE | _LEVEL_SEARCH | _LINES, st.integers(1, 9999), st.booleans())
def test_native_reader_agrees_with_the_regular_expressions(line, year, detect_level):
    assert line_head(line, year, detect_level) == reference.line_head(line, year, detect_level)


# -- a file's events a batch of lines at a time (the ingest path) -------------------

from elastic_recheck.ingest.logparse import NativeEventParser, PyEventParser, event_parser  # noqa: E402

_PARSERS = [PyEventParser] + ([NativeEventParser] if NativeEventParser is not None else [])


def _events_in_batches(kind, lines, cuts, default_time, detect_level, keep_debug):
    """(micros, level, message) of every event kept, the lines fed in batches cut at ``cuts``."""
    parser = kind(reference_micros(default_time), default_time.year, detect_level, keep_debug)
    events = []
    bounds = sorted({0, len(lines), *(c % (len(lines) + 1) for c in cuts)})
    for start, end in zip(bounds, bounds[1:]):
        events.extend(zip(*parser.feed(lines[start:end])))
    events.extend(zip(*parser.finish()))
    return events, parser.last, parser.skipped_debug


def reference_micros(moment: dt.datetime) -> int:
    return micros(moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second,
                  moment.microsecond)


def _expected(lines, default_time, detect_level, keep_debug):
    every = list(parse_lines(lines, default_time, detect_level=detect_level, max_line_bytes=None))
    kept = [(e.micros, e.level, e.message) for e in every if keep_debug or e.level != "DEBUG"]
    last = every[-1].micros if every else reference_micros(default_time)
    return kept, last, sum(1 for e in every if e.level == "DEBUG" and not keep_debug)


_FILE_LINES = st.lists(
    (_DATE_LIKE | _SYSLOG_LIKE | _LEVEL_SEARCH | _LINES | st.sampled_from([b"", b"  \t", b"\r", b"  at x.py"]))
    .flatmap(lambda line: st.sampled_from([line, line + b"\n", line + b"\r\n"])),
    max_size=40,
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(_FILE_LINES, st.lists(st.integers(0, 40), max_size=4), st.booleans(), st.booleans(),
       st.sampled_from([dt.datetime(2027, 1, 1, 0, 30, tzinfo=UTC), dt.datetime(2026, 11, 20, 12, tzinfo=UTC)]))
def test_events_read_in_batches_are_the_events_of_parse_lines(lines, cuts, detect_level, keep_debug, default_time):
    expected = _expected(lines, default_time, detect_level, keep_debug)
    for kind in _PARSERS:
        assert _events_in_batches(kind, lines, cuts, default_time, detect_level, keep_debug) == expected, kind


def test_a_long_traceback_is_folded_up_to_its_limits_by_either_reader():
    default_time = dt.datetime(2026, 11, 20, 12, tzinfo=UTC)
    lines = [b"2026-11-20 10:00:01.123 4242 ERROR nova boom\n"] + [b"  frame %d\n" % i for i in range(600)]
    lines += [b"2026-11-20 10:00:02 1 INFO x " + b"y" * 300_000 + b"\n", b"  \xff more\n"]
    expected = _expected(lines, default_time, True, False)
    assert len(expected[0]) == 102  # 500 lines folded into the first event, the next 100 stand alone
    assert expected[0][-1][2].endswith(" [... truncated]")
    for kind in _PARSERS:
        assert _events_in_batches(kind, lines, [7, 300], default_time, True, False) == expected, kind


def test_the_native_reader_is_used_when_built():
    parser = event_parser(dt.datetime(2026, 11, 20, tzinfo=UTC), True, False)
    assert isinstance(parser, NativeEventParser or PyEventParser)
    assert isinstance(event_parser(dt.datetime(2026, 11, 20, tzinfo=UTC), True, False, native=False), PyEventParser)
