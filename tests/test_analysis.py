"""Text is split like Elasticsearch's standard analyzer (UAX #29 words, lower-cased)."""

import regex
from hypothesis import given, settings, strategies as st

from elastic_recheck.analysis import analyze, index_text


def test_file_names_are_single_tokens():
    assert analyze("console.html and slave.log") == ("console.html", "and", "slave.log")


def test_hyphens_split_words():
    assert analyze("screen-n-cpu.txt") == ("screen", "n", "cpu.txt")
    assert analyze("Hash-Sum") == ("hash", "sum")


def test_lower_cases():
    assert analyze("Timed Out WAITING") == ("timed", "out", "waiting")


def test_numbers_keep_their_separators():
    assert analyze("127.0.0.1 1,000.5 v1.2") == ("127.0.0.1", "1,000.5", "v1.2")


def test_colon_joins_letters_but_not_digits():
    assert analyze("a:b 10:30:00") == ("a:b", "10", "30", "00")


def test_letter_dot_digit_breaks():
    assert analyze("a.1 a1.b") == ("a", "1", "a1", "b")


def test_apostrophes_and_underscores_stay_inside_words():
    assert analyze("don't foo_bar") == ("don't", "foo_bar")


def test_ideographs_are_tokens_of_their_own():
    assert analyze("東京") == ("東", "京")


def test_punctuation_only_is_no_token():
    assert analyze(" -- () [] ") == ()


_ALPHABET = st.sampled_from(list("abcXY019 .:,;'-_/()[]\"é"))


def _reference_words(text: str) -> tuple[str, ...]:
    """UAX #29 word segments that hold a letter or digit, from the `regex`
    module's Unicode word boundaries (Elasticsearch's standard tokenizer follows UAX #29). The module keeps
    a mid-word character at the very edge of a piece ("'a"), where UAX #29
    (WB6/WB7 need a letter on both sides) and Elasticsearch break: strip it."""
    pieces = regex.split(r"(?wV1)\b", text)
    edges = "'.:,;"
    return tuple(p.strip(edges).lower() for p in pieces if regex.search(r"[\p{L}\p{N}]", p))


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.text(alphabet=_ALPHABET, max_size=30))
def test_tokens_match_unicode_word_boundaries(text):
    assert analyze(text) == _reference_words(text)


_LOG_ALPHABET = st.sampled_from(list("abzAZ09_.:',;-/ =[]()\"\\\t") + ["é", "ß", "中", "\u0301", "١"])


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.text(_LOG_ALPHABET, max_size=40) | st.text(max_size=20))
def test_indexing_fast_path_gives_the_same_terms_as_queries(text):
    """Lines are analysed by index_text at ingest; queries through the tantivy
    analyzer. Both must produce the same terms or phrases would miss."""
    assert index_text(text) == " ".join(analyze(text))


_ASCII_EDGES = st.sampled_from(list("aZ09_.:',;-/ \t\"\\") + ["ab", "12", "__", "a.b", "1.2", "a'", "_1", "x:"])


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(st.lists(_ASCII_EDGES, max_size=40).map("".join))
def test_native_ascii_scanner_gives_the_same_terms_as_queries(text):
    """The C scanner ingest runs on ASCII lines, on the characters where word
    rules turn: underscores, mid-word and mid-number punctuation, edges."""
    assert index_text(text) == " ".join(analyze(text))


def test_native_ascii_scanner_on_log_lines():
    line = "2026-11-20 10:30:00.123 ERROR nova.compute.manager [req-1a2b] Instance_ID 3f.x don't: 1,000.5;7 __init__ a.1 'q'"
    assert index_text(line) == " ".join(analyze(line))
    assert index_text(line).split()[:6] == ["2026", "11", "20", "10", "30", "00.123"]


def test_letters_lower_case_one_at_a_time_as_java_does():
    """Lucene's LowerCaseFilter: Java's simple mapping, per code point (İ is i, a final Σ is σ)."""
    assert analyze("İstanbul Iİ ΟΔΟΣ") == ("istanbul", "ii", "οδοσ")
    assert index_text("İSTANBUL") == "istanbul"


def test_letters_newer_than_unicode_9_are_no_word_characters():
    """Lucene 8's tokenizer tables are Unicode 9.0's: Georgian Mtavruli (Unicode 11) breaks a word."""
    assert analyze("ab\u1c90cd") == ("ab", "cd")


def test_a_word_over_255_characters_is_cut_as_lucenes_scanner_cuts_it():
    assert analyze("a" * 600) == ("a" * 255, "a" * 255, "a" * 90)
    # 255 UTF-16 code units: an astral letter is two, never split
    assert analyze("x" * 254 + "\U0001D400y") == ("x" * 254, "\U0001D400y")
    # the longest token within the 255: a joining '.' with nothing after it is left out
    assert analyze("a" * 254 + ".bc") == ("a" * 254, "bc")
    assert analyze("É" * 300) == ("é" * 255, "é" * 45)
    assert index_text("x " + "É" * 300) == "x " + "é" * 255 + " " + "é" * 45


_LONG_ASCII = st.sampled_from(["a" * 100, "_" * 100, "1" * 100, "a", "1", "_", ".", ",", ":", " ", "-", "a.b", "1,2"])


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(_LONG_ASCII, max_size=16).map("".join))
def test_native_ascii_scanner_cuts_long_words_as_queries_do(text):
    assert index_text(text) == " ".join(analyze(text))
