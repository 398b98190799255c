"""The percolator gives each fingerprint the answer its query gives over the
index: the number of a build's lines it matches and the newest of them.

The contract is checked against a real embedded index: generated builds and
fingerprints (hypothesis), the production fingerprints, and readable cases.
Both matcher engines (C and pure Python) are held to it."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elastic_recheck import lucene
from elastic_recheck.analysis import index_text
from elastic_recheck.fingerprints import load_fingerprints
from elastic_recheck.percolate import NativeMatcher, LineMatches, Percolator
from elastic_recheck.search import epoch_micros
from elastic_recheck.search.embedded import EmbeddedBackend

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
T0_MICROS = epoch_micros(T0)
UUID = "b1"
ENGINES = [False, True] if NativeMatcher is not None else [False]


def _index(root: Path, contexts: list[tuple[dict[str, Any], list[tuple[int, str]]]]) -> EmbeddedBackend:
    backend = EmbeddedBackend(root)
    writer = backend.writer()
    for fields, lines in contexts:
        cid = writer.context(fields)
        for micros, message in lines:
            writer.add_line(cid, micros, message)
    writer.commit()
    writer.close()
    return backend


def _feed(percolator: Percolator, contexts, bulk: bool = False) -> dict[str, LineMatches]:
    build = percolator.start()
    for fields, lines in contexts:
        handle = build.context(fields)
        if bulk:
            build.lines(handle, [m for m, _ in lines], [t for _, t in lines], [index_text(t) for _, t in lines])
        else:
            for micros, message in lines:
                build.line(handle, micros, message, index_text(message))
    return build.results()


def _index_answer(backend: EmbeddedBackend, query: str) -> LineMatches | None:
    scoped = f'({query}) AND build_uuid:"{UUID}"'
    hits = backend.count(scoped)
    if not hits:
        return None
    newest = backend.search(scoped, size=1).hits[0]
    return LineMatches(hits, epoch_micros(newest.timestamp), newest.source["message"])


def _assert_same(backend, queries, contexts, *, expect_native: set[str] | None = None) -> dict:
    """Every engine, line by line and in bulk, gives the index's answer."""
    expected = {key: _index_answer(backend, q) for key, q in queries.items()}
    answers = []
    for native in ENGINES:
        percolator = Percolator(queries, now=T0, native=native)
        for bulk in (False, True):
            found = _feed(percolator, contexts, bulk)
            if expect_native is not None:
                assert set(percolator.keys) >= expect_native, percolator.fallback
            for key in percolator.keys:
                want, got = expected[key], found.get(key)
                assert (want is None) == (got is None), (key, queries[key], want, got)
                if want is not None:
                    assert (got.hits, got.newest_micros) == (want.hits, want.newest_micros), (key, queries[key])
            assert set(found) <= set(percolator.keys)
            answers.append((percolator.fallback, {k: (v.hits, v.newest_micros) for k, v in found.items()}))
    assert all(a == answers[0] for a in answers)  # C and Python, line and bulk: the same
    return expected


# -- generated builds and fingerprints -----------------------------------------

WORDS = ["alpha", "beta", "gamma", "error", "failed", "node", "x1", "a.b"]
FILES = ["job-output.txt", "console.html", "logs/screen-n-cpu.txt", "logs/syslog.txt"]
LEVELS = [None, "ERROR", "INFO"]
SEPARATORS = [" ", " ", " ", ", ", " - ", "\n", ": ", "|"]


@st.composite
def lines(draw) -> str:
    words = draw(st.lists(st.sampled_from(WORDS), min_size=0, max_size=7))
    out = ""
    for word in words:
        out += draw(st.sampled_from(SEPARATORS)) + (word.upper() if draw(st.booleans()) and word == "error" else word)
    return out


@st.composite
def builds(draw) -> list[tuple[dict[str, Any], list[tuple[int, str]]]]:
    contexts = []
    seen = set()
    for _ in range(draw(st.integers(1, 4))):
        filename = draw(st.sampled_from(FILES))
        level = draw(st.sampled_from(LEVELS))
        base = filename.rsplit("/", 1)[-1]
        tags = [base, "console"] if base in ("job-output.txt", "console.html") else [base]
        fields: dict[str, Any] = {
            "build_uuid": UUID, "build_name": draw(st.sampled_from(["tempest-full", "grenade"])),
            "voting": draw(st.sampled_from(["1", "0"])), "project": "openstack/nova", "filename": filename,
            "tags": [*tags, level] if level else tags,
        }
        if level:
            fields["loglevel"] = level
        if draw(st.booleans()):
            fields["module"] = draw(st.sampled_from(["nova.compute.manager", "oslo_messaging.rpc.server"]))
        key = repr(sorted(fields.items()))
        if key in seen:
            continue
        seen.add(key)
        texts = draw(st.lists(lines(), min_size=1, max_size=12))
        stamps = draw(st.lists(st.integers(0, 20), min_size=len(texts), max_size=len(texts)))
        contexts.append((fields, [(T0_MICROS + s * 1_000_000, t) for s, t in zip(stamps, texts)]))
    return contexts


def _iso(seconds: int) -> str:
    return (T0 + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


LEAVES = st.one_of(
    st.sampled_from(WORDS).map(lambda w: f"message:{w}" if "." not in w else f'message:"{w}"'),
    st.lists(st.sampled_from(WORDS), min_size=2, max_size=3).map(lambda ws: f'message:"{" ".join(ws)}"'),
    st.sampled_from(['tags:console', 'tags:"job-output.txt"', 'tags:"console.html console"', 'tags:"syslog.txt"',
                     'tags:"txt console"', 'tags:error', 'filename:"job-output.txt"', 'filename:"screen-n-cpu.txt"',
                     'build_name:grenade', 'build_name:"tempest-full"', 'voting:1', 'loglevel:ERROR',
                     'module:"nova.compute.manager"', 'module:oslo_messaging', '_exists_:loglevel', '_exists_:module',
                     'message:*', 'message:"!!"', 'tags:scr*', 'filename:/logs.*/']),
    st.tuples(st.integers(0, 20), st.integers(0, 20), st.booleans()).map(
        lambda t: f"@timestamp:{'[' if t[2] else '{'}{_iso(min(t[:2]))} TO {_iso(max(t[:2]))}{']' if t[2] else '}'}"),
)


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, children).map(lambda p: f"({p[0]} AND {p[1]})"),
        st.tuples(children, children).map(lambda p: f"({p[0]} OR {p[1]})"),
        st.tuples(children, children).map(lambda p: f"({p[0]} AND NOT ({p[1]}))"),
        children.map(lambda c: f"NOT ({c})"),  # Lucene takes one NOT before a clause
        st.tuples(children, children, children).map(lambda p: f"({p[0]} {p[1]} -({p[2]}))"),
    )


QUERIES = st.recursive(LEAVES, _combine, max_leaves=6)


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(build=builds(), queries=st.lists(QUERIES, min_size=1, max_size=25))
def test_generated_fingerprints_get_the_index_answer_on_generated_builds(build, queries):
    keyed = {f"q{i}": q for i, q in enumerate(queries)}
    with tempfile.TemporaryDirectory() as root:
        backend = _index(Path(root), build)
        _assert_same(backend, keyed, build)


# -- the production fingerprints -----------------------------------------------

REAL_FIELDS = {"build_uuid": UUID, "build_name": "neutron-fullstack", "voting": "1", "build_queue": "gate",
               "build_branch": "master", "build_node": "ubuntu-bionic", "project": "openstack/python-openstackclient"}


def _real_contexts(fingerprints) -> list[dict[str, Any]]:
    """A context for every file a production fingerprint names, with the
    tags ingest gives it."""
    files = {"job-output.txt", "console.html"}
    for fp in fingerprints:
        for leaf in lucene.iter_leaves(lucene.parse(fp.query)):
            if getattr(leaf, "field", None) in ("tags", "filename") and leaf.text.endswith(".txt"):
                files.add(leaf.text)
    contexts = []
    for name in sorted(files):
        tags = [name, "console"] if name in ("job-output.txt", "console.html") else [name]
        fields = {**REAL_FIELDS, "filename": name if tags[-1] == "console" else f"logs/{name}", "tags": tags}
        if name == "screen-c-bak.txt":
            fields["module"] = "oslo_messaging.rpc.server"
        contexts.append(fields)
    return contexts


def _phrases(query: str) -> list[str]:
    return [leaf.text for leaf in lucene.iter_leaves(lucene.parse(query))
            if getattr(leaf, "field", None) == "message" and isinstance(leaf, (lucene.Phrase, lucene.Term))]


def test_the_production_fingerprints_get_the_index_answer(tmp_path, realdata):
    fingerprints, bad = load_fingerprints(realdata / "queries")
    assert len(fingerprints) == 91 and not bad
    queries = {fp.bug: fp.voting_query for fp in fingerprints}
    texts = []
    for fp in fingerprints:
        phrases = _phrases(fp.query)
        texts.append(" ... ".join(phrases))  # every phrase of the fingerprint in one line: a match
        texts.append(" ... ".join(phrases[:-1] + [phrases[-1] + "Z"]))  # the last one's last word altered
        texts.append(" ".join(reversed(phrases[-1].split())))  # near-miss: the words, out of order
    contexts = [(fields, [(T0_MICROS + i * 1000 + n, t) for i, t in enumerate(texts)])
                for n, fields in enumerate(_real_contexts(fingerprints))]
    backend = _index(tmp_path / "index", contexts)
    expected = _assert_same(backend, queries, contexts, expect_native=set(queries))
    matched = [key for key, answer in expected.items() if answer is not None]
    assert len(matched) >= 80  # most find their line...
    assert any(answer.hits < len(contexts) * 3 for answer in expected.values() if answer)  # ...not every line


# -- readable cases --------------------------------------------------------------


def _build(*contexts: tuple[dict[str, Any], list[str]]):
    base = {"build_uuid": UUID, "build_name": "tempest-full", "voting": "1", "project": "openstack/nova"}
    return [({**base, **fields}, [(T0_MICROS + i, text) for i, text in enumerate(texts)]) for fields, texts in contexts]


CONSOLE = {"filename": "job-output.txt", "tags": ["job-output.txt", "console"]}
CPU = {"filename": "logs/screen-n-cpu.txt", "tags": ["screen-n-cpu.txt", "ERROR"], "loglevel": "ERROR"}


def _check(tmp_path, queries, build) -> dict[str, LineMatches | None]:
    backend = _index(tmp_path / "index", build)
    return _assert_same(backend, queries, build, expect_native=set(queries))


def test_a_phrase_runs_across_the_lines_of_a_folded_multi_line_event(tmp_path):
    build = _build((CPU, ["Traceback (most recent call last):\n  File \"x.py\", line 3\nRuntimeError: boom",
                          "RuntimeError: boom"]))
    answers = _check(tmp_path, {"across": 'message:"line 3 RuntimeError"', "alone": 'message:"RuntimeError boom"'},
                     build)
    assert answers["across"].hits == 1 and answers["alone"].hits == 2


def test_not_clauses_exclude_lines_and_a_purely_negative_query_matches_the_rest(tmp_path):
    build = _build((CONSOLE, ["RUN END RESULT_TIMED_OUT", "POST-RUN END RESULT_TIMED_OUT", "all fine"]))
    answers = _check(tmp_path, {
        "timed out": 'message:"RUN END RESULT_TIMED_OUT" AND NOT message:"POST-RUN END RESULT_TIMED_OUT"',
        "everything else": 'NOT message:"RESULT_TIMED_OUT"',
        "nothing": 'message:fine AND NOT tags:console',
    }, build)
    assert answers["timed out"].hits == 1 and answers["everything else"].hits == 1 and answers["nothing"] is None


def test_voting_1_leaves_out_the_lines_of_a_non_voting_job(tmp_path):
    build = _build((CONSOLE, ["Hash Sum mismatch"]), ({**CPU, "voting": "0"}, ["Hash Sum mismatch"]))
    answers = _check(tmp_path, {"voting": '(message:"Hash Sum mismatch") AND voting:1'}, build)
    assert answers["voting"].hits == 1


def test_tags_is_a_list_of_values_and_a_phrase_does_not_run_from_one_into_the_next(tmp_path):
    build = _build((CONSOLE, ["boom"]), (CPU, ["boom"]))
    answers = _check(tmp_path, {
        "console": "message:boom AND tags:console",
        "level tag": "message:boom AND tags:error",
        "one value": 'message:boom AND tags:"job-output.txt"',
        "across values": 'message:boom AND tags:"txt console"',
    }, build)
    assert answers["console"].hits == 1 and answers["level tag"].hits == 1 and answers["one value"].hits == 1
    assert answers["across values"] is None


def test_an_empty_list_is_no_value_and_an_empty_string_is_one(tmp_path):
    """As Elasticsearch indexes them: ``_exists_`` and ``field:*`` skip ``[]``
    (and a list of nulls), and count ``""``; a long word and an İ analyse alike."""
    build = _build(({"tags": [], "loglevel": "", "component": [None]}, ["İstanbul " + "é" * 300]),
                   ({"tags": ["console"], "component": ["x"]}, ["istanbul"]))
    answers = _check(tmp_path, {
        "tags": "_exists_:tags", "no tags": "NOT _exists_:tags", "tags any": "tags:*",
        "level": "_exists_:loglevel", "component": "_exists_:component",
        "turkish": "message:istanbul", "piece": "message:" + "é" * 45,
    }, build)
    assert answers["tags"].hits == 1 and answers["no tags"].hits == 1 and answers["tags any"].hits == 1
    assert answers["level"].hits == 1 and answers["component"].hits == 1
    assert answers["turkish"].hits == 2 and answers["piece"].hits == 1


def test_the_newest_matching_line_is_reported(tmp_path):
    build = [({**CONSOLE, "build_uuid": UUID}, [(T0_MICROS + 5, "boom late"), (T0_MICROS + 1, "boom early")])]
    found = _feed(Percolator({"boom": "message:boom"}, native=ENGINES[-1]), build)
    assert found == {"boom": LineMatches(2, T0_MICROS + 5, "boom late")}


@pytest.mark.parametrize("native", ENGINES)
def test_what_the_matcher_cannot_evaluate_exactly_falls_back_with_its_reason(native):
    percolator = Percolator({
        "slop": 'message:"a b"~2', "fuzzy": "message:boom~", "regex": "message:/bo+m/", "wild": "message:bo*m",
        "nothing": 'message:"!!"', "syntax": 'message:"unclosed', "plain": "message:boom",
        "job fuzzy": "build_name:grenad~",  # its 50 expansions come from every context: the index answers
    }, native=native)
    assert set(percolator.fallback) == {"slop", "fuzzy", "regex", "wild", "nothing", "syntax", "job fuzzy"}
    assert "slop" in percolator.fallback["slop"] and "analyses to nothing" in percolator.fallback["nothing"]
    assert "max_expansions" in percolator.fallback["job fuzzy"]
    assert percolator.keys == ["plain"]


def test_hostile_fingerprints_do_not_stop_the_build():
    huge_or = " OR ".join(f"message:w{i}" for i in range(10_000))
    long_phrase = 'message:"' + " ".join(f"word{i % 50}" for i in range(2_000)) + '"'
    percolator = Percolator({"or": huge_or, "phrase": long_phrase, "deep": "(" * 200 + "a" + ")" * 200,
                             "ok": "message:boom"})
    assert "deep" in percolator.fallback and {"or", "phrase", "ok"} <= set(percolator.keys)
    build = percolator.start()
    handle = build.context({"build_uuid": UUID, "tags": ["console"]})
    text = " ".join(f"word{i % 50}" for i in range(2_000)) + " w9999 boom"
    build.line(handle, 1, text, index_text(text))
    build.line(handle, 2, "not UTF-8", "boom \udcff boom")  # lone surrogates in the tokens: matched all the same
    assert {key: m.hits for key, m in build.results().items()} == {"or": 1, "phrase": 1, "ok": 2}


def test_tokens_are_compared_whole_wherever_they_fall_in_a_long_line(tmp_path):
    # The C matcher hashes a token by its length and first and last eight
    # bytes, and splits lines 64 bytes at a time: identifiers that differ only
    # in the middle must still differ, and a phrase across a block edge match.
    same_ends = ["nova.compute.alpha.manager.run", "nova.compute.gamma.manager.run"]
    texts = [f"{same_ends[1]} failed"]
    for pad in range(40, 72, 3):  # the phrase moves across the first 64-byte edge
        texts.append("x" * pad + " instance failed to spawn " + "y" * (pad % 7))
    texts += ["z" * 70 + " to spawn", "ends with spawn", "spawn"]
    build = _build((CONSOLE, texts))
    answers = _check(tmp_path, {
        "middle": f'message:"{same_ends[0]} failed"',
        "other middle": f'message:"{same_ends[1]} failed"',
        "across the edge": 'message:"instance failed to spawn"',
        "second phrase": 'message:"failed to spawn" AND message:"x"',
        "last word": 'message:spawn AND NOT message:"failed to"',
    }, build)
    assert answers["middle"] is None and answers["other middle"].hits == 1
    assert answers["across the edge"].hits == len(range(40, 72, 3))
    assert answers["second phrase"] is None
    assert answers["last word"].hits == 3


# words of 1, 2, 8 and 17 bytes, two of them sharing their length and first and last eight bytes
RAW_WORDS = ["a", "ab", "abababab", "a" * 8 + "a" + "b" * 8, "a" * 8 + "b" + "b" * 8, "b" * 20]
RAW_TOKENS = st.lists(st.one_of(
    st.sampled_from(RAW_WORDS),
    st.text(alphabet="ab\x01\xe9", min_size=1, max_size=24),
), max_size=30).flatmap(lambda words: st.tuples(
    st.just(words), st.lists(st.sampled_from([" ", "\t", "\n", "\r", "\x0c", "  ", "\x0b"]),
                             min_size=len(words), max_size=len(words))))


@pytest.mark.skipif(NativeMatcher is None, reason="the C extension is not built")
@settings(max_examples=60, deadline=None, derandomize=True)
@given(lines_=st.lists(RAW_TOKENS, min_size=1, max_size=6),
       phrases=st.lists(st.lists(st.sampled_from(RAW_WORDS), min_size=1, max_size=3), min_size=1, max_size=6))
def test_the_c_and_python_matchers_agree_on_any_token_text(lines_, phrases):
    # Whatever the tokens string holds (any ASCII whitespace, control
    # characters, long tokens sharing their ends), both engines read it alike.
    queries = {f"p{i}": f'message:"{" ".join(p)}"' for i, p in enumerate(phrases)}
    queries["and"] = f'message:"{" ".join(phrases[0])}" AND NOT message:"{" ".join(phrases[-1])}"'
    answers = []
    for native in (False, True):
        build = Percolator(queries, native=native).start()
        handle = build.context({"build_uuid": UUID, "tags": ["console"]})
        for n, (words, gaps) in enumerate(lines_):
            text = "".join(gap + word for word, gap in zip(words, gaps))
            build.line(handle, n, text, text)
        answers.append({k: (m.hits, m.newest_micros) for k, m in build.results().items()})
    assert answers[0] == answers[1]


@pytest.mark.skipif(NativeMatcher is None, reason="the C extension is not built")
def test_every_character_splits_words_exactly_where_tantivys_whitespace_tokenizer_does():
    # The C matcher finds whitespace 16 bytes at a time with a few SSE2
    # operations (a range compare for tab .. carriage return, minus vertical
    # tab), and reads a line's last bytes apart: each character below 256, at
    # every offset of a block and of a line's end, splits two words in both
    # engines exactly when it is one of tantivy's five whitespace characters.
    whitespace = {" ", "\t", "\n", "\x0c", "\r"}
    queries = {"phrase": 'message:"foo bar"', "first": "message:foo", "second": "message:bar"}
    pads = [*range(17), 57, 59, 60, 61, 63]  # the character at each of a 16-byte block's offsets, and by 64
    texts = []
    for char in map(chr, range(1, 256)):
        for pad in pads:
            for tail in ("", " z", " zzzzzzzzzz"):
                texts.append(("x" * pad + " " if pad else "") + "foo" + char + "bar" + tail)
    answers = []
    for native in (False, True):
        build = Percolator(queries, native=native).start()
        handle = build.context({"build_uuid": UUID, "tags": ["console"]})
        build.lines(handle, list(range(len(texts))), texts, texts)
        answers.append({k: (m.hits, m.newest_micros) for k, m in build.results().items()})
    assert answers[0] == answers[1]
    split = sum(1 for text in texts if text[text.index("foo") + 3] in whitespace)
    assert split == len(whitespace) * len(pads) * 3
    assert {k: hits for k, (hits, _) in answers[1].items()} == {"phrase": split, "first": split, "second": split}
