"""A log line's template: its analysed tokens with the variable ones masked.

Two lines that differ only in ids, numbers, hex, addresses, timestamps or
the numbered parts of paths share a template, so "is this line new?" can be
asked across builds: a request id or an instance name never repeats, the
sentence around it does.

The template is made of the index's own tokens (``analysis.index_text``),
not of the raw text, for two reasons: a run of constant tokens is exactly
a phrase the index can match (a suggested fingerprint is that phrase), and
the tokenizer already does at C speed the splitting that a regex-based log
miner (drain3 and its kind) does in Python. What it masks, after LUCI
Analysis's failure-reason clustering: every token with a digit in it (that
covers numbers, versions, IPs, UUIDs, hex ids, dates and times, numbered
host names), long hex runs without a digit, and long base64-looking tokens;
a run of masked tokens collapses into one ``<*>`` so that ``10:30:21.123``
and ``10:30:21`` do not make two templates.
"""

from __future__ import annotations

import array
import hashlib
import re
from collections import Counter, deque
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field

from .analysis import index_text, index_texts
from .native import without

try:
    from . import _templates as _native
except ImportError:  # not built: the regex twins below give the same templates
    _native = None

MASK = "<*>"
# Bump when template_of, or what a stored set covers, changes: stored sets are
# then computed again. 5: each file's newest lines, not the build's.
TEMPLATE_VERSION = 5
MAX_TEMPLATE_TOKENS = 64  # of a line; a longer line's tail makes it no more recognisable
# Distinct templates the writer keeps of one build (a real one prints a few
# thousand): past it, a build of random text is not kept, and explain reads
# it back from the index if it ever needs it.
MAX_WRITTEN_TEMPLATES = 200_000
# Zuul's console log prefixes each line with its time and the node it ran
# on ("2026-12-01 13:31:13.859739 | controller | ..."); the node's name is
# constant within a job and different across jobs, so it is no part of what
# a line says.
_CONSOLE_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)?\s*\|(?:\s*[\w.@:-]{1,64}\s*\|)?\s?")
# An oslo.log line: time, pid, level, logger, then the request context in
# brackets ("[None req-1a2b tempest-ServersTest-1]"); the level and the logger
# are fields of their own (``loglevel``, the file), the context is ids.
_OSLO_PREFIX = re.compile(
    r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)? \d+ (?:DEBUG|INFO|WARNING|ERROR|CRITICAL|TRACE|AUDIT) "
    r"[\w.]+ (?:\[[^\]]{0,300}\] ?)?")
# A token is variable when it has an ASCII digit, is a long hex run, has a
# long run of consonants (random names), or is very long without the dots
# and underscores of a real dotted or snake_case name. Tokens are separated
# by single spaces in ``index_text``'s output, so one pass of one regex masks
# a whole line.
_VARIABLE = re.compile(r"(?<![^ ])(?:[^ ]*[0-9][^ ]*|[0-9a-f]{12,}|[^ ]*[b-df-hj-np-tv-z_]{12,}[^ ]*|[^ _.]{32,})(?![^ ])")
_MASKED_RUN = re.compile(r"<\*>(?: <\*>)+")
# The tokenizer splits a UUID into its groups and a group is masked for its
# digit; one group in 40 has none ("3099fdf5-abcd-254a-...") and would give
# its line a template of its own: a short hex token between two masked ones
# is taken as part of the same id.
_ID_GROUP = re.compile(r"(?<=<\*> )[0-9a-f]{1,12}(?= <\*>)")
# Python's temporary names (tempfile: "tmp" and eight of [a-z0-9_]) have no
# digit one time in twelve.
_TMP_NAME = re.compile(r"(?<![^ ])tmp[a-z0-9_]{8}(?![^ ])")


@dataclass(frozen=True)
class Template:
    """``text``: the line's tokens joined by spaces, ``<*>`` for each run of
    masked ones."""

    text: str

    @property
    def tokens(self) -> tuple[str | None, ...]:
        """The tokens, ``None`` where a run was masked."""
        return tuple(None if token == MASK else token for token in self.text.split(" ") if token)

    @property
    def key(self) -> int:
        """A 63-bit hash of the text: what build template sets hold."""
        return template_key(self.text)

    def constant_runs(self) -> list[tuple[str, ...]]:
        """The maximal runs of unmasked tokens, in line order: each is a
        phrase every line of this template contains."""
        runs: list[tuple[str, ...]] = []
        current: list[str] = []
        for token in self.tokens:
            if token is None:
                if current:
                    runs.append(tuple(current))
                current = []
            else:
                current.append(token)
        if current:
            runs.append(tuple(current))
        return runs

    @property
    def constant_tokens(self) -> int:
        return sum(1 for token in self.tokens if token is not None)


def line_body(message: str) -> str:
    """The message without the console log's time-and-node prefix or an
    oslo.log line's time, level, logger and request context."""
    if not message[:1].isdigit():  # both prefixes start with the date: no regex for a line without
        return message
    found = _CONSOLE_PREFIX.match(message) or _OSLO_PREFIX.match(message)
    return message[found.end():] if found else message


def template_text(message: str) -> str:
    """The template of a line as text: what is compared across builds, at
    the speed of one tokenizer call and one masking pass (in C when built)."""
    tokens = index_text(line_body(message))
    if _native is not None and tokens.isascii():
        return _native.mask_tokens(tokens)
    if _native is None:
        without("elastic_recheck._templates", "masking log lines into templates")
    return _mask_tokens(tokens)


def template_texts(messages: list[str]) -> list[str]:
    """``template_text`` of each message: a build's lines in three C calls
    (prefixes, tokens, masks) with no Python call per ASCII line."""
    if _native is None:
        return [template_text(message) for message in messages]
    return _native.masks(index_texts(_native.line_bodies(messages, line_body)), _mask_tokens)


def _mask_tokens(tokens: str) -> str:
    """The masking of ``template_text`` on analysed tokens: the Python twin
    of ``_templates.mask_tokens`` (and the one for non-ASCII lines)."""
    text = _VARIABLE.sub(MASK, tokens)
    text = _MASKED_RUN.sub(MASK, _TMP_NAME.sub(MASK, _ID_GROUP.sub(MASK, text)))
    if text.count(" ") >= MAX_TEMPLATE_TOKENS:
        text = " ".join(text.split(" ", MAX_TEMPLATE_TOKENS)[:MAX_TEMPLATE_TOKENS])
    return text


def template_of(message: str) -> Template:
    return Template(template_text(message))


def has_words(text: str) -> bool:
    """Whether a template has a constant token: one that is all masks says nothing."""
    return bool(text.replace(MASK, "").strip())


def template_key(text: str) -> int:
    """The 63-bit key of a template's text: its BLAKE2b-64, shifted to a
    positive SQLite integer. A cryptographic hash: a crafted line takes ~2^63
    tries to share a given template's key; by chance, two of a few million
    templates share one about once in a million stores."""
    if _native is not None:
        return _native.text_key(text)
    return _blake2b_key(text)


def _blake2b_key(text: str) -> int:
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def template_keys(messages: list[str], tokens: list[str] | None = None) -> list[int]:
    """``template_key(template_text(m))`` of each message: what the writer
    records of every line it indexes, with no template text made for an
    ASCII line. ``tokens``: each message's ``index_text``, when the caller
    has it (the writer does, for the index); a body's tokens are cut from
    them, not analysed again (~1 us a line in C; ~6 us through the texts)."""
    if _native is None:
        return [template_key(text) for text in template_texts(messages)]
    return list(_unpack(template_key_array(messages, tokens)))


_KEY_BYTES = 8
_KEYING_AHEAD = 8  # batches of lines a build's keying thread may be behind the writer
_KEYING_MIN_LINES = 64


def template_key_array(messages: list[str], tokens: list[str] | None = None) -> bytes:
    """``template_keys`` packed as native uint64s; in C, the ASCII lines
    keyed with the GIL released."""
    if _native is None:
        return array.array("Q", template_keys(messages, tokens)).tobytes()
    return _native.key_array(messages, index_texts(messages) if tokens is None else tokens, template_text)


def unique_keys(packed: bytes | bytearray) -> bytes:
    """The distinct keys of a packed array, ascending."""
    if _native is None:
        return array.array("Q", sorted(set(_unpack(packed)))).tobytes()
    return _native.unique_keys(packed)


def _unpack(packed: bytes | bytearray) -> array.array:
    keys = array.array("Q")
    keys.frombytes(bytes(packed))
    return keys


@dataclass
class WrittenTemplates:
    """The templates of every line of one build, recorded as the writer
    indexes it (the lines are in memory then; read back from the index they
    cost ~8 us each), with each file's line count: the set is what explain
    reads of the build (each file's newest N lines) for any N at least the
    largest file's.

    The keys are kept packed, a line's 8 bytes, and made distinct only now
    and then (``packed``): an int object and a set insertion a line cost the
    writer more than the key itself (~3 s a hundred 50k-line builds)."""

    # Where the keys are made: a thread of the writer's (they are made in C
    # with the GIL released, while the writer thread indexes), or None: here.
    keying: Executor | None = None
    _keys: bytearray = field(default_factory=bytearray)  # packed native uint64s, distinct once compacted
    file_lines: Counter[str] = field(default_factory=Counter)
    _complete: bool = True  # False past MAX_WRITTEN_TEMPLATES: nothing to keep
    _keying: deque["Future[bytes]"] = field(default_factory=deque)

    @property
    def complete(self) -> bool:
        if self._complete and len(self._keys) > _KEY_BYTES * MAX_WRITTEN_TEMPLATES:
            self.packed()  # as many keys as that may still be fewer templates
        return self._complete

    def add(self, messages: list[str], tokens: list[str] | None = None) -> None:
        """``tokens``: each message's ``index_text``, if known."""
        if not self._complete:
            return
        if self.keying is None or len(messages) < _KEYING_MIN_LINES:  # a thread's turn costs more than a few keys
            self._keys += template_key_array(messages, tokens)
        else:
            self._keying.append(self.keying.submit(template_key_array, messages, tokens))
            while len(self._keying) > _KEYING_AHEAD or (self._keying and self._keying[0].done()):
                self._keys += self._keying.popleft().result()
        if len(self._keys) > 2 * _KEY_BYTES * MAX_WRITTEN_TEMPLATES:
            self.packed()

    def packed(self) -> bytes:
        """The distinct keys, ascending, as native uint64s (b"" once past the bound)."""
        while self._keying:
            self._keys += self._keying.popleft().result()
        if not self._complete:
            return b""
        distinct = unique_keys(self._keys)
        if len(distinct) > _KEY_BYTES * MAX_WRITTEN_TEMPLATES:
            distinct = b""
            self._complete = False
        self._keys = bytearray(distinct)
        return distinct

    def count(self, filename: str, lines: int) -> None:
        self.file_lines[filename] += lines

    @property
    def largest_file(self) -> int:
        return max(self.file_lines.values(), default=0)

    def keys(self) -> frozenset[int]:
        return frozenset(_unpack(self.packed()))
