"""The text analysis shared by indexing and querying.

Elasticsearch's *standard analyzer* splits text on Unicode word boundaries
(UAX #29) and lower-cases it. The embedded index must produce the same tokens
or fingerprints written against Elasticsearch would match differently. The
rules below are UAX #29's word-break rules as Lucene 8's StandardTokenizer
implements them (Unicode 9.0's tables), checked against real Lucene by
tests/test_lucene_oracle.py:

* letters, digits and connector punctuation (``_``) form words;
* a MidLetter/MidNumLet character (``:`` ``.`` ``'`` …) between two letters
  does not break: ``console.html``, ``slave.log``, ``a:b``, ``don't``;
* a MidNum/MidNumLet character (``,`` ``;`` ``.`` …) between two digits does
  not break: ``127.0.0.1``, ``1,000.5``;
* everything else breaks, so ``screen-n-cpu.txt`` is ``screen`` ``n``
  ``cpu.txt`` and ``10:30`` is ``10`` ``30``;
* each Han ideograph and Hiragana character is a token of its own; a Katakana
  run is a word that joins letters and digits only across ``_``; a run of a
  South East Asian script (Thai, Lao, Myanmar, Khmer...) is a token of its own;
* Hebrew letters also join across ``"`` and keep an apostrophe after them;
* combining marks and format characters (soft hyphen, joiners) stay in the
  word they follow, and one at the start of a word is dropped;
* an emoji (with its modifiers, variation selector and joined partners), a
  flag or a keycap is a token; superscripts, fractions and other non-decimal
  digits are not part of any token;
* letters are lower-cased one at a time as Java does, and a word over
  MAX_TOKEN_LENGTH UTF-16 units is cut as Lucene's scanner cuts it.

The pattern is written once, in the Rust regex dialect that tantivy's regex
tokenizer runs, so index and query analysis cannot drift apart.
"""

from __future__ import annotations

import functools
from typing import Iterator

import tantivy

from .native import without

try:
    from ._tokens import ascii_index_text
except ImportError:  # not built: every text goes through tantivy's regex analyzer, the same terms
    ascii_index_text = None

try:
    from ._tokens import index_texts as _native_index_texts
except ImportError:  # not built, or an older build of the extension
    _native_index_texts = None

ANALYZER_NAME = "er_standard"
PRETOKENIZED_NAME = "er_pretokenized"

# Lucene 8's StandardTokenizer is generated from Unicode 9.0's tables: a
# letter, digit or mark assigned later (Georgian Mtavruli, U+A7C4...) is no
# word character there. Such characters (Age above 9.0; emoji aside, whose
# rules come from Lucene's own emoji data) become spaces before the pattern
# runs (:func:`as_lucene_sees_it`): written into every class of the pattern,
# the condition made non-ASCII analysis markedly slower (measured).
_NEWER_THAN_UNICODE_9 = (
    r"[^\p{Age=9.0}\p{Extended_Pictographic}\p{Emoji_Modifier}\x{FE0F}\x{200D}\x{20E3}\x{1F1E6}-\x{1F1FF}]+"
)
# Scripts whose letters and marks Unicode's line breaking calls Complex_Context
# (South East Asian, written without spaces): a run of them is one token, as
# in Lucene's grammar, apart from letters and digits of other scripts.
# Their letters and marks (but the Tai Tham cryptogrammic dot) and the few
# symbols Unicode 9.0's LineBreak.txt puts in that class too (checked against
# Lucene character by character in tests/test_lucene_oracle.py).
_SOUTH_EAST_ASIAN = (
    rf"[[[\p{{Thai}}\p{{Lao}}\p{{Myanmar}}\p{{Khmer}}\p{{Tai_Le}}\p{{New_Tai_Lue}}\p{{Tai_Tham}}\p{{Tai_Viet}}"
    rf"\p{{Ahom}}]&&[\p{{L}}\p{{M}}]&&[^\x{{1A7F}}]]"
    r"\x{109E}\x{109F}\x{19DA}\x{19DE}\x{19DF}\x{1AA0}-\x{1AA6}\x{1AA8}-\x{1AAD}\x{AA77}-\x{AA79}"
    r"\x{AADE}\x{AADF}\x{1173A}\x{1173B}\x{1173F}]"
)
# Katakana (the word-break property, with the prolonged sound mark and the
# halfwidth forms, not the halfwidth sound marks, Extend in Unicode 9.0) joins
# Katakana and, across an underscore, letters and digits.
_KATAKANA_CHAR = rf"[\p{{Word_Break=Katakana}}&&[^\x{{FF9E}}\x{{FF9F}}]]"
_LETTER = (
    rf"[\p{{L}}\p{{Nl}}&&[^\p{{Han}}\p{{Hiragana}}\p{{Word_Break=Katakana}}\x{{FF9E}}\x{{FF9F}}]"
    rf"&&[^\p{{Thai}}\p{{Lao}}\p{{Myanmar}}\p{{Khmer}}\p{{Tai_Le}}\p{{New_Tai_Lue}}\p{{Tai_Tham}}\p{{Tai_Viet}}\p{{Ahom}}]]"
)
_DIGIT = r"\p{Nd}"
_CONNECTOR = r"\p{Pc}"
# Extend and Format characters (combining marks, soft hyphen, joiners; not the
# zero-width space) belong to the character before them, never start a token.
_EXTEND = rf"[\p{{M}}\p{{Cf}}\x{{FF9E}}\x{{FF9F}}&&[^\x{{200B}}]]*"
_MID_NUM_LET = r".'\x{2018}\x{2019}\x{2024}\x{FE52}\x{FF07}\x{FF0E}"
_MID_LETTER = r":\x{B7}\x{387}\x{5F4}\x{2027}\x{FE13}\x{FE55}\x{FF1A}"
_MID_NUM = (
    r",;\x{37E}\x{589}\x{60C}\x{60D}\x{66C}\x{7F8}\x{2044}"
    r"\x{FE10}\x{FE14}\x{FE50}\x{FE54}\x{FF0C}\x{FF1B}"
)
# An emoji with its modifiers, variation selector and zero-width-joined
# partners, a flag (two regional indicators) or a keycap is one token.
_PICTOGRAPH = r"\p{Extended_Pictographic}[\p{Emoji_Modifier}\x{FE0F}]*"
_EMOJI = (
    rf"[\x{{1F1E6}}-\x{{1F1FF}}]{{2}}|[0-9#*]\x{{FE0F}}?\x{{20E3}}"
    rf"|{_PICTOGRAPH}(?:\x{{200D}}{_PICTOGRAPH})*"
)
# Hebrew letters are letters, and also join across a double quote (an acronym:
# צה"ל) and keep an apostrophe after them (a geresh).
_HEBREW_LETTER = rf"[\p{{Hebrew}}&&\p{{L}}]{_EXTEND}"
_LETTERS = rf"(?:{_HEBREW_LETTER}(?:\"{_HEBREW_LETTER}|')?|{_LETTER}{_EXTEND})+"
_DIGITS = rf"(?:{_DIGIT}{_EXTEND})+"
_CONNECTORS = rf"(?:{_CONNECTOR}{_EXTEND})*"

_KATAKANA = rf"(?:{_KATAKANA_CHAR}{_EXTEND})+"
_WORD_UNIT = (
    rf"(?:{_LETTERS}(?:[{_MID_LETTER}{_MID_NUM_LET}]{_LETTERS})*"
    rf"|{_DIGITS}(?:[{_MID_NUM}{_MID_NUM_LET}]{_DIGITS})*)"
)
# Letters and digits join each other directly, Katakana only across connectors.
_WORD_RUN = rf"(?:{_KATAKANA}|{_WORD_UNIT}(?:{_CONNECTORS}{_WORD_UNIT})*)"

TOKEN_PATTERN = (
    rf"{_EMOJI}"
    rf"|[\p{{Han}}\p{{Hiragana}}]{_EXTEND}"
    rf"|(?:{_SOUTH_EAST_ASIAN}{_EXTEND})+"
    rf"|{_CONNECTORS}{_WORD_RUN}(?:(?:{_CONNECTOR}{_EXTEND})+{_WORD_RUN})*{_CONNECTORS}"
)


# Lucene's LowerCaseFilter lower-cases one code point at a time with Java's
# simple case mapping; tantivy's lowercaser (like Python's str.lower) uses the
# full mapping, which differs for one character only: U+0130 (İ) is ``i`` in
# Java, ``i`` + U+0307 in tantivy. Written as ``I`` before analysis (a letter
# too, so the word breaks are the same), it lower-cases to Java's ``i``.
_JAVA_LOWER_ONLY = {0x130: "I"}


@functools.lru_cache(maxsize=1)
def _newer_characters() -> tantivy.TextAnalyzer:
    return tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.regex(_NEWER_THAN_UNICODE_9)).build()


def as_lucene_sees_it(text: str) -> str:
    """``text`` with the characters Java lower-cases differently from tantivy
    replaced by ones tantivy lower-cases as Java does, and those newer than
    Unicode 9.0 by spaces: what tantivy's analyzer must be given."""
    if "\u0130" in text:
        text = text.translate(_JAVA_LOWER_ONLY)
    if not text.isascii():
        for newer in set(_newer_characters().analyze(text)):
            text = text.replace(newer, " ")
    return text


def java_lower(text: str) -> str:
    """Lower-cased one code point at a time, as Lucene's LowerCaseFilter does
    (Java's Character.toLowerCase: a final sigma stays ``σ``, ``İ`` is ``i``)."""
    return "".join(ch.lower() for ch in text.translate(_JAVA_LOWER_ONLY))


def analysable(text: str) -> str:
    """The text to give tantivy's analyzer (a context field's value) so that
    it makes the tokens :func:`analyze` gives: a word over
    :data:`MAX_TOKEN_LENGTH` is given as its pieces (the tokens joined by
    spaces, which analyse to themselves)."""
    text = as_lucene_sees_it(text)
    if len(text) > MAX_TOKEN_LENGTH and _has_long_token(_shared_analyzer().analyze(text)):
        return " ".join(_lucene_tokens(text))
    return text


def build_analyzer() -> tantivy.TextAnalyzer:
    """A fresh analyzer for registering with an index; the text it analyses
    must go through :func:`analysable` first."""
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.regex(TOKEN_PATTERN))
        .filter(tantivy.Filter.lowercase())
        .build()
    )


@functools.lru_cache(maxsize=1)
def _shared_analyzer() -> tantivy.TextAnalyzer:
    return build_analyzer()


@functools.lru_cache(maxsize=1)
def _raw_analyzer() -> tantivy.TextAnalyzer:
    """The tokenizer alone: the tokens as they are written in the text."""
    return tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.regex(TOKEN_PATTERN)).build()


# Elasticsearch's standard tokenizer (max_token_length) cuts a longer word
# into pieces, each at its own position: Lucene's scanner sees at most this
# many UTF-16 code units from a token's start (and never half a surrogate
# pair), takes the longest token in them, and scans on from its end.
MAX_TOKEN_LENGTH = 255


def _utf16_length(text: str) -> int:
    return len(text) + sum(1 for ch in text if ch > "\uffff") if not text.isascii() else len(text)


def _has_long_token(tokens: list[str]) -> bool:
    return any(len(t) > MAX_TOKEN_LENGTH // 2 and _utf16_length(t) > MAX_TOKEN_LENGTH for t in tokens)


def _window(text: str, start: int, end: int) -> str:
    """The longest stretch of ``text`` from ``start`` (before ``end``) of at
    most MAX_TOKEN_LENGTH UTF-16 code units."""
    window = text[start : min(end, start + MAX_TOKEN_LENGTH)]
    while _utf16_length(window) > MAX_TOKEN_LENGTH:
        window = window[: len(window) - (_utf16_length(window) - MAX_TOKEN_LENGTH + 1) // 2]
    return window


def _pieces(text: str, start: int, end: int) -> Iterator[str]:
    """The tokens Lucene's scanner makes of the over-long word ``text[start:end]``."""
    while start < end:
        window = _window(text, start, end)
        if len(window) == end - start:
            yield from _shared_analyzer().analyze(window)
            return
        written = _raw_analyzer().analyze(window)
        if not written:
            start += 1
            continue
        offset = window.find(written[0])
        if offset > 0:  # no token starts before it within the window
            start += offset
            continue
        yield _shared_analyzer().analyze(window)[0]
        start += len(written[0])


def _lucene_tokens(text: str) -> list[str]:
    """``text``'s tokens (already :func:`as_lucene_sees_it`), over-long words cut as Lucene cuts them."""
    tokens = _shared_analyzer().analyze(text)
    if len(text) <= MAX_TOKEN_LENGTH or not _has_long_token(tokens):
        return tokens
    out: list[str] = []
    position = 0
    for written, token in zip(_raw_analyzer().analyze(text), tokens):
        start = text.find(written, position)
        position = start + len(written)
        if _utf16_length(written) <= MAX_TOKEN_LENGTH:
            out.append(token)
        else:
            out.extend(_pieces(text, start, position))
    return out


@functools.lru_cache(maxsize=65536)
def analyze(text: str) -> tuple[str, ...]:
    """Tokens of ``text`` exactly as the index stores them."""
    return tuple(_lucene_tokens(as_lucene_sees_it(text)))


def build_pretokenized_analyzer() -> tantivy.TextAnalyzer:
    """For text already analysed by :func:`index_text`: split on spaces only."""
    return tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace()).build()


def index_text(text: str) -> str:
    """The tokens of ``text`` joined by single spaces, for a field indexed
    with the pre-tokenized analyzer: the terms :func:`analyze` gives, at ingest speed.

    ASCII text, nearly every log line, goes through ``_tokens.ascii_index_text``:
    TOKEN_PATTERN restricted to ASCII (the only ASCII connector is ``_``,
    MidLetter/MidNumLet are ``:.'`` and MidNum/MidNumLet ``,;.'``) as a C scanner,
    ~20x faster than Python's re; the tests hold it to :func:`analyze`."""
    if text.isascii():
        if ascii_index_text is not None:
            return ascii_index_text(text)
        without("elastic_recheck._tokens", "tokenizing log lines")
    return " ".join(_lucene_tokens(as_lucene_sees_it(text)))


def index_texts(texts: list[str]) -> list[str]:
    """:func:`index_text` of each, in one call (the ingest batch path)."""
    if _native_index_texts is not None:
        return _native_index_texts(texts, index_text)
    return [index_text(text) for text in texts]
