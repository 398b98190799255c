"""The text analysis shared by indexing and querying.

Elasticsearch's *standard analyzer* splits text on Unicode word boundaries
(UAX #29) and lower-cases it. The embedded index must produce the same tokens
or fingerprints written against Elasticsearch would match differently. The
rules below are UAX #29's word-break rules restricted to what occurs in CI
logs (see docs/query-language.md for the known differences):

* letters, digits and connector punctuation (``_``) form words;
* a MidLetter/MidNumLet character (``:`` ``.`` ``'`` …) between two letters
  does not break: ``console.html``, ``slave.log``, ``a:b``, ``don't``;
* a MidNum/MidNumLet character (``,`` ``;`` ``.`` …) between two digits does
  not break: ``127.0.0.1``, ``1,000.5``;
* everything else breaks, so ``screen-n-cpu.txt`` is ``screen`` ``n``
  ``cpu.txt`` and ``10:30`` is ``10`` ``30``;
* each Han ideograph and Hiragana character is a token of its own.

The pattern is written once, in the Rust regex dialect that tantivy's regex
tokenizer runs, so index and query analysis cannot drift apart.
"""

from __future__ import annotations

import functools

import tantivy

from ._tokens import ascii_index_text

try:
    from ._tokens import index_texts as _native_index_texts
except ImportError:  # an older build of the extension
    _native_index_texts = None

ANALYZER_NAME = "er_standard"
PRETOKENIZED_NAME = "er_pretokenized"

_LETTER = r"[\p{L}\p{M}\p{Nl}\p{No}&&[^\p{Han}\p{Hiragana}]]"
_DIGIT = r"\p{Nd}"
_CONNECTOR = r"\p{Pc}"
_MID_NUM_LET = r".'\x{2018}\x{2019}\x{2024}\x{FE52}\x{FF07}\x{FF0E}"
_MID_LETTER = r":\x{B7}\x{387}\x{5F4}\x{2027}\x{FE13}\x{FE55}\x{FF1A}"
_MID_NUM = (
    r",;\x{37E}\x{589}\x{60C}\x{60D}\x{66C}\x{7F8}\x{2044}"
    r"\x{FE10}\x{FE14}\x{FE50}\x{FE54}\x{FF0C}\x{FF1B}"
)

TOKEN_PATTERN = (
    r"[\p{Han}\p{Hiragana}]"
    rf"|(?:{_CONNECTOR}*(?:{_LETTER}+(?:[{_MID_LETTER}{_MID_NUM_LET}]{_LETTER}+)*"
    rf"|{_DIGIT}+(?:[{_MID_NUM}{_MID_NUM_LET}]{_DIGIT}+)*))+{_CONNECTOR}*"
)


def build_analyzer() -> tantivy.TextAnalyzer:
    """A fresh analyzer for registering with an index."""
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.regex(TOKEN_PATTERN))
        .filter(tantivy.Filter.lowercase())
        .build()
    )


@functools.lru_cache(maxsize=1)
def _shared_analyzer() -> tantivy.TextAnalyzer:
    return build_analyzer()


@functools.lru_cache(maxsize=65536)
def analyze(text: str) -> tuple[str, ...]:
    """Tokens of ``text`` exactly as the index stores them."""
    return tuple(_shared_analyzer().analyze(text))


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
        return ascii_index_text(text)
    return " ".join(_shared_analyzer().analyze(text))


def index_texts(texts: list[str]) -> list[str]:
    """:func:`index_text` of each, in one call (the ingest batch path)."""
    if _native_index_texts is not None:
        return _native_index_texts(texts, index_text)
    return [index_text(text) for text in texts]
