"""Same answers as Lucene: the embedded engine against real Lucene.

Real Apache Lucene 8, set up as Elasticsearch's ``query_string`` over the
index template (tests/oracle/LuceneOracle.java), indexes the same documents
as the embedded index and answers the same queries. For every query either
both give the same documents, or the embedded engine refuses the query with
a clear QuerySyntaxError (it must refuse whatever Lucene refuses), never a
silently different answer and never a traceback. There is no list of known
differences: what the embedded engine cannot answer as Lucene does, it refuses
(docs/query-language.md, "Refused, not approximated").
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence
from unittest import mock

import pytest
from hypothesis import Phase, given, settings, strategies as st

from elastic_recheck.errors import QuerySyntaxError
from elastic_recheck.search import translate
from elastic_recheck.search.embedded import EmbeddedBackend
from elastic_recheck.search.translate import normalize

from .oracle.corpus import EDGE_QUERIES, log_documents
from .oracle.runner import ID_FIELD, Answer, LuceneOracle, missing_tools

UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC).replace(microsecond=0)
# Generated queries compared: fewer in the everyday suite, where each run costs the
# suite's time; the full count in CI, after the suite (marked full_scale).
GENERATED_QUERIES = 1000
GENERATED_QUERIES_FULL = 5000

@pytest.fixture(scope="session")
def lucene(tmp_path_factory) -> LuceneOracle:
    reason = missing_tools()
    if reason:
        pytest.skip(f"the Lucene oracle cannot run: {reason}")
    return LuceneOracle.build(tmp_path_factory.mktemp("lucene-oracle"))


def _index(path: Path, docs: Sequence[dict[str, Any]]) -> EmbeddedBackend:
    backend = EmbeddedBackend(path)
    with backend.writer() as writer:
        for doc in docs:
            writer.add(doc, dt.datetime.fromisoformat(doc["@timestamp"]))
    return backend


@dataclass(frozen=True)
class Outcome:
    query: str
    lucene: Answer
    ours: frozenset[str] | None  # None: refused
    refusal: str | None = None
    crash: str | None = None

    @property
    def differs(self) -> bool:
        if self.crash:
            return True
        if self.lucene.error is not None:
            return self.ours is not None  # Lucene refuses: so must we
        return self.ours is not None and self.ours != self.lucene.ids

    def describe(self) -> str:
        lucene = self.lucene.error or sorted(self.lucene.ids or ())
        ours = self.crash or (sorted(self.ours) if self.ours is not None else f"refused: {self.refusal}")
        return f"{self.query!r}: lucene {lucene} / embedded {ours}"


class Differential:
    """One corpus, indexed by both engines."""

    def __init__(self, lucene: LuceneOracle, backend: EmbeddedBackend, docs: Sequence[dict[str, Any]]) -> None:
        self.lucene = lucene
        self.backend = backend
        self.docs = docs

    def ours(self, query: str) -> tuple[frozenset[str] | None, str | None, str | None]:
        try:
            hits = self.backend.search(query, size=len(self.docs) + 1).hits
        except QuerySyntaxError as exc:
            message = str(exc)
            if "\n" in message or not message:
                return None, None, f"refusal is not one line: {message!r}"
            return None, message, None
        except Exception as exc:  # noqa: BLE001 - any other exception is the defect under test
            return None, None, f"{type(exc).__name__}: {exc}"
        return frozenset(hit.source[ID_FIELD] for hit in hits), None, None

    def compare(self, queries: Iterable[str]) -> list[Outcome]:
        queries = list(dict.fromkeys(queries))
        answers = self.lucene.run(self.docs, queries, NOW)
        outcomes = []
        # The embedded engine's date math ("now-3h", "now/d") at the oracle's NOW too, not at
        # the real clock: that has moved on since the import (minutes in a full run), maybe past midnight.
        at_now = translate.timestamp_micros
        with mock.patch.object(translate, "timestamp_micros", lambda node, now=None: at_now(node, now or NOW)):
            for query in queries:
                ours, refusal, crash = self.ours(query)
                outcomes.append(Outcome(query, answers[query], ours, refusal, crash))
        return outcomes


def check(outcomes: list[Outcome]) -> None:
    """No silent difference: the same documents, or a one-line refusal."""
    unexpected = [o for o in outcomes if o.differs]
    report = "\n".join(o.describe() for o in unexpected[:60])
    assert not unexpected, f"{len(unexpected)} of {len(outcomes)} queries differ from Lucene:\n{report}"


@pytest.fixture(scope="module")
def corpus(lucene, tmp_path_factory) -> Differential:
    docs = log_documents(NOW)
    return Differential(lucene, _index(tmp_path_factory.mktemp("oracle-corpus"), docs), docs)


def test_the_oracle_is_real_lucene_as_elasticsearch_configures_it(corpus):
    """The oracle itself, on answers known from Elasticsearch's documentation."""
    answers = corpus.lucene.run(corpus.docs, ["hash AND sum", "NOT hash", "a AND (b", "tags:*", "_exists_:severity"], NOW)
    by_message = {doc[ID_FIELD]: doc for doc in corpus.docs}
    assert [by_message[i]["message"][:7] for i in answers["hash AND sum"].ids] == ["E: Hash"]
    assert len(answers["NOT hash"].ids) == len(corpus.docs) - 1  # fixNegativeQueryIfNeeded
    assert answers["a AND (b"].error and "Cannot parse" in answers["a AND (b"].error
    # a field exists when it has a value, even one with no words ("!!!", ""); an empty list
    # or a list of nulls is none
    empty = {doc[ID_FIELD] for doc in corpus.docs if all(tag is None for tag in doc["tags"])}
    assert len(empty) == 2 and answers["tags:*"].ids == {doc[ID_FIELD] for doc in corpus.docs} - empty
    blank = {doc[ID_FIELD] for doc in corpus.docs if doc.get("severity") == ""}
    assert blank and blank <= answers["_exists_:severity"].ids


def test_hand_written_edge_cases_agree_with_lucene(corpus):
    outcomes = corpus.compare(EDGE_QUERIES)
    assert len(outcomes) >= 300
    check(outcomes)


def test_every_cased_character_lower_cases_as_java_does(lucene, tmp_path):
    """Lucene lower-cases one code point at a time with Java's simple case
    mapping (İ is i), tantivy and Python with the full one: every character
    with a lower case, each in a word ``x<C>``, is found by its lower-cased
    form in both engines or in neither."""
    cased = [chr(cp) for cp in range(0x10FFFF) if not 0xD800 <= cp < 0xE000 and chr(cp).lower() != chr(cp)]
    assert "\u0130" in cased and len(cased) > 1400
    docs = [{ID_FIELD: "cased", "@timestamp": "2026-01-01T00:00:00+00:00",
             "message": " ".join("x" + ch for ch in cased)}]
    queries = ["x" + lower for lower in dict.fromkeys(normalize(ch) for ch in cased)]
    differential = Differential(lucene, _index(tmp_path / "cased", docs), docs)
    outcomes = differential.compare(queries)
    assert sum(bool(o.lucene.ids) for o in outcomes) > 1000
    check(outcomes)


# South East Asian scripts (Thai, Lao, Myanmar, Khmer, Tai Le, New Tai Lue,
# Tai Tham, Tai Viet, Ahom) and Katakana, whose runs Lucene's grammar keeps
# apart from other letters and digits.
_RUN_SCRIPTS = [(0x0E00, 0x0EFF), (0x1000, 0x109F), (0x1780, 0x17FF), (0x1950, 0x1AAF), (0x19E0, 0x19FF),
                (0xA9E0, 0xAADF), (0x11700, 0x1173F), (0x3031, 0x3035), (0x3099, 0x30FF), (0x31F0, 0x31FF),
                (0x32D0, 0x32FE), (0x3300, 0x3357), (0xFF66, 0xFF9F), (0x1B000, 0x1B001)]


def test_south_east_asian_and_katakana_characters_break_words_as_lucene_does(lucene, tmp_path):
    """Each character of those scripts between Latin letters, before digits
    and before an underscore, in a document of its own: the same documents
    hold each word, and the character itself, in both engines."""
    chars = [chr(cp) for low, high in _RUN_SCRIPTS for cp in range(low, high + 1)]
    docs = [{ID_FIELD: f"c{ord(ch):X}", "@timestamp": "2026-01-01T00:00:00+00:00",
             "message": f"x{ch}x y{ch}1 {ch}_z {ch}{ch}"} for ch in chars]
    queries = ["x", "y", "1", "z", "_z", *(f'"{ch}"' for ch in chars), *(f'"{ch}{ch}"' for ch in chars)]
    differential = Differential(lucene, _index(tmp_path / "runs", docs), docs)
    outcomes = differential.compare(queries)
    assert sum(bool(o.lucene.ids) for o in outcomes) > 1000
    check(outcomes)


def test_a_fuzzy_term_keeps_the_50_best_index_terms_as_lucene_does(lucene, tmp_path):
    """Elasticsearch's max_expansions: with more than 50 index terms within the
    distance, Lucene keeps the 50 best (fewest edits for their length, then
    term order). A hundred job names two edits apart, tags with mixed lengths."""
    docs = [{ID_FIELD: f"n{i:02d}", "@timestamp": "2026-01-01T00:00:00+00:00", "message": f"node{i:02d} ok",
             "build_name": f"node{i:02d}", "tags": [f"tag{i:02d}", "tagx" * (1 + i % 3)]} for i in range(100)]
    docs += [{ID_FIELD: f"w{i}", "@timestamp": "2026-01-01T00:00:00+00:00", "message": "x", "build_name": word,
              "tags": [word]} for i, word in enumerate(["nod00", "node000", "onde00", "ndoe00", "anode00", "nodee"])]
    queries = ["build_name:node00~2", "build_name:node55~2", "build_name:node5~1", "build_name:node00~1",
               "build_name:node99~", "build_name:ndoe00~2", "build_name:NODE42~2", "tags:tag00~2", "tags:tag50~2",
               "tags:tagxtagx~2", "build_name:node00~2 AND tags:tag4*", "NOT build_name:node00~2",
               "message:node00~2", "message:node00~0", "build_name:node00~0"]
    differential = Differential(lucene, _index(tmp_path / "fuzzy", docs), docs)
    outcomes = differential.compare(queries)
    by_query = {o.query: o for o in outcomes}
    assert len(by_query["build_name:node00~2"].lucene.ids) == 50  # more than 50 within two edits
    assert by_query["message:node00~2"].ours is None  # refused: the message's terms are not enumerated
    check(outcomes)


def _documents_for(queries: Iterable[str]) -> list[dict[str, Any]]:
    """One document per query holding its words: every term and phrase of
    the query in the field it names, so the real fingerprints match something."""
    from elastic_recheck import lucene

    docs = []
    for query in queries:
        fields: dict[str, list[str]] = {}
        for leaf in lucene.iter_leaves(lucene.parse(query)):
            if isinstance(leaf, (lucene.Term, lucene.Phrase)):
                fields.setdefault(leaf.field, []).append(leaf.text)
        doc: dict[str, Any] = {name: values if name == "tags" else " ".join(values) for name, values in fields.items()}
        doc.setdefault("message", "")
        doc.update({ID_FIELD: f"f{len(docs)}", "@timestamp": "2020-03-01T12:00:00+00:00"})
        docs.append(doc)
    return docs


def test_real_fingerprints_agree_with_lucene_on_real_documents(lucene, realdata, tmp_path):
    from elastic_recheck.fingerprints import load_fingerprints
    from elastic_recheck.ingest import read_documents

    good, bad = load_fingerprints(realdata / "queries")
    assert len(good) == 91 and not bad
    queries = [fingerprint.query for fingerprint in good]
    docs = _documents_for(queries)
    for path in [realdata / "logstash" / "1284371.json", *sorted((realdata / "logstash" / "samples").glob("*.json"))]:
        with open(path) as handle:
            for number, (_, item) in enumerate(read_documents(handle, path.name)):
                if number >= 120 or not hasattr(item, "fields"):
                    continue
                # Numbers (error_pr: -7.1227) are text in the template, as here.
                fields = dict(item.fields)
                fields["@timestamp"] = item.timestamp.isoformat()
                fields[ID_FIELD] = f"r{len(docs)}"
                docs.append(fields)
    differential = Differential(lucene, _index(tmp_path / "real", docs), docs)
    outcomes = differential.compare(queries)
    assert sum(bool(o.lucene.ids) for o in outcomes) >= 80  # each finds at least its own document
    check(outcomes)


# -- generated queries ----------------------------------------------------------

_WORDS = [
    "timed", "out", "waiting", "hash", "sum", "node", "offline", "slave.log", "console.html", "error", "ERROR",
    "nova.compute.manager", "10.0.0.12", "5672", "don't", "snake_case_name", "déjà", "café", "istanbul", "İstanbul",
    "日本語", "🔥", "x²", "½", "soft\u00adhyphen", "repeat", "words", "quick", "fox", "the", "a", "b", "c",
    "tempest", "full", "grenade", "1.2.3", "rc1", "0x1f", "42", "3.14", "ошибка", "screen-n-cpu.txt", "and", "or",
    "not", "n", "cpu.txt", "job-output.txt", "failed", "FAILED", "libvirterror", "instance-id",
]
_FIELDS = ["message", "tags", "build_name", "filename", "build_uuid", "loglevel", "project", "pid", "unknown",
           "build_status", "voting", "severity", "build_change"]
_ESCAPABLE = '+-!():^[]"{}~*?\\/&|'


def _escape_term(word: str) -> str:
    return "".join("\\" + ch if ch in _ESCAPABLE else ch for ch in word)


_PATTERN_FIELDS = ["message", "tags", "build_name", "pid"]
_RANGE_LOW = ["a", "b", "c", "m", "*", "t"]
_RANGE_HIGH = ["b", "m", "z", "*", "tempest"]
_DATES = [
    "@timestamp:[now-1d TO now]", "@timestamp:[now-7d TO *]", "@timestamp:{2026-11-20 TO *]",
    "@timestamp:[* TO 2026-11-20]", "@timestamp:[2026-11 TO 2026-11]", "@timestamp:>now-5d",
    "@timestamp:2026-11-20", "@timestamp:[now-1d/d TO now/d}", "@timestamp:<2026-01-01||+1M",
]
_REGEXES = ["/tim.*/", "/[a-c]+/", "/.*log/", "/h.sh/", "/déjà/", "/[0-9]+/", "/(node|hash)/"]
_PREFIXES = ["", "", "", "NOT ", "-", "+", "!"]
_CONJUNCTIONS = [" ", " ", " AND ", " OR ", " && ", " || ", " and ", " or "]


class QueryGrammar:
    """Random queries over the corpus's words and fields, every construct of
    the query language mixed: a grammar driven by a seed hypothesis draws
    (derandomized), so thousands of queries cost milliseconds."""

    def __init__(self, rnd) -> None:
        self.rnd = rnd

    def pick(self, options: Sequence[str]) -> str:
        return options[self.rnd.randrange(len(options))]

    def term(self) -> str:
        word = self.pick(_WORDS)
        kind = self.rnd.randrange(11)
        if kind == 0:
            return _escape_term(word[:3]) + self.pick(["*", "?", "*x", "?*"])
        if kind == 1:
            return self.pick(["*", "?"]) + _escape_term(word[-3:])
        if kind == 2:
            return _escape_term(word) + self.pick(["~", "~0", "~1", "~2", "~0.5"])
        if kind == 3:
            words = [self.pick(_WORDS) for _ in range(self.rnd.randint(1, 4))]
            return '"' + " ".join(words) + '"' + self.pick(["", "", "~1", "~3"])
        if kind == 4:
            return self.pick(_REGEXES)
        if kind == 5:
            return f"{self.pick('[{')}{self.pick(_RANGE_LOW)} TO {self.pick(_RANGE_HIGH)}{self.pick(']}')}"
        if kind == 6:
            return "*"
        return _escape_term(word)

    def leaf(self) -> str:
        kind = self.rnd.randrange(10)
        if kind < 4:
            term = self.term()
            return term if not term.startswith(("[", "{")) else f"message:{term}"
        if kind < 7:
            term = self.term()
            # Patterns compile to automata (the costly part of a run): a few fields carry them.
            plain = term[:1] not in "[{/*?" and "*" not in term and "?" not in term
            field = self.pick(_FIELDS if plain else _PATTERN_FIELDS)
            return f"{field}:{term}"
        if kind == 7:
            return f"{self.pick(_FIELDS)}:{self.pick(['>', '>=', '<', '<='])}{self.pick(['b', 'm', 't', '900001'])}"
        if kind == 8:
            return f"_exists_:{self.pick(_FIELDS)}"
        return self.pick(_DATES)

    def query(self, depth: int = 0) -> str:
        clauses = []
        for _ in range(self.rnd.randint(1, 4)):
            if depth < 2 and self.rnd.random() < 0.25:
                inner = self.query(depth + 1)
                clause = f"({inner})" if self.rnd.random() < 0.6 else f"{self.pick(['message', 'tags', 'build_name'])}:({inner})"
            else:
                clause = self.leaf()
            clauses.append(self.pick(_PREFIXES) + clause)
        out = clauses[0]
        for clause in clauses[1:]:
            out += self.pick(_CONJUNCTIONS) + clause
        return out


def _generate(count: int) -> list[str]:
    """``count`` distinct queries, the same ones on every run (derandomized)."""
    seen: dict[str, None] = {}
    batches = 5

    @settings(max_examples=batches, derandomize=True, database=None, deadline=None, phases=[Phase.generate])
    @given(st.integers(min_value=0, max_value=2**32 - 1))
    def collect(seed: int) -> None:
        grammar = QueryGrammar(random.Random(seed))
        target = len(seen) + count // batches
        while len(seen) < target:
            seen[grammar.query()] = None

    collect()
    while len(seen) < count:  # hypothesis may run fewer examples than asked
        collect()
    return list(seen)[:count]


@pytest.mark.parametrize("count", [GENERATED_QUERIES, pytest.param(GENERATED_QUERIES_FULL, marks=pytest.mark.full_scale)])
def test_generated_queries_agree_with_lucene(corpus, count):
    queries = _generate(count)
    assert len(queries) >= count
    outcomes = corpus.compare(queries)
    answered = sum(o.ours is not None for o in outcomes)
    assert answered >= len(outcomes) // 2, f"only {answered} of {len(outcomes)} generated queries were answered"
    assert sum(bool(o.lucene.ids) for o in outcomes) >= len(outcomes) // 2  # the queries match something
    check(outcomes)


# -- a live cluster -------------------------------------------------------------


@pytest.fixture(scope="module", params=["elasticsearch", "opensearch"])
def live_cluster(request, lucene):
    """The corpus on a live cluster named by ER_TEST_ES_URL / ER_TEST_OPENSEARCH_URL
    (see tests/test_backend_contract.py); skipped when none is named."""
    from .test_backend_contract import _cluster_backend, _drop_cluster_data

    backend = _cluster_backend(request.param)
    docs = log_documents(NOW)
    try:
        with backend.writer() as writer:
            for doc in docs:
                writer.add(doc, dt.datetime.fromisoformat(doc["@timestamp"]))
        yield Differential(lucene, backend, docs)
    finally:
        _drop_cluster_data(backend)
        backend.close()


def test_a_live_cluster_agrees_with_lucene(live_cluster):
    """The oracle models Elasticsearch 7 (Lucene 8) over the template; a live
    cluster answers the same corpus. Where Lucene answers, the cluster gives
    the same documents or refuses the query with a clear error."""
    outcomes = live_cluster.compare([*EDGE_QUERIES, *_generate(1000)])
    wrong = [o for o in outcomes if o.lucene.error is None and (o.crash or (o.ours is not None and o.ours != o.lucene.ids))]
    report = "\n".join(o.describe() for o in wrong[:40])
    assert not wrong, f"{len(wrong)} of {len(outcomes)} queries differ between the cluster and Lucene:\n{report}"
