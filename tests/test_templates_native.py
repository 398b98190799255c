"""The C masking (``_templates.mask_tokens``) and its Python twin
(``templates._mask_tokens``) give the same template for every token string:
a stored template set is the same whichever of them computed it."""

import re

import pytest
from hypothesis import given, settings, strategies as st

from elastic_recheck import templates
from elastic_recheck.analysis import index_text

native = pytest.importorskip("elastic_recheck._templates")

# Tokens shaped like the ones that decide a mask: digits, short and long hex
# runs (id groups), consonant runs, tempfile names, long undotted tokens,
# dotted and snake_case names, and plain words.
_TOKEN = st.one_of(
    st.text("abcdef0123456789", min_size=1, max_size=14),
    st.text("bcdfghjklmnpqrstvwxyz_", min_size=1, max_size=14),
    st.text("abcdefghijklmnopqrstuvwxyz0123456789_", min_size=8, max_size=8).map(lambda t: "tmp" + t),
    st.text("abcdefghijklmnopqrstuvwxyz0123456789_.:',;", min_size=1, max_size=40),
    st.sampled_from(["error", "failed", "nova.compute.manager", "req", "ab", "tmp", "<*>", ""]),
)


@settings(max_examples=800, deadline=None, derandomize=True)
@given(st.lists(_TOKEN, max_size=80).map(" ".join))
def test_native_masking_gives_the_python_template(tokens):
    assert native.mask_tokens(tokens) == templates._mask_tokens(tokens)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=200))
def test_native_masking_of_any_ascii_line_gives_the_python_template(line):
    tokens = index_text(templates.line_body(line))
    assert native.mask_tokens(tokens) == templates._mask_tokens(tokens)


_STAMP = st.sampled_from(["2026-12-01 13:31:13", "2026-12-01T13:31:13.859739", "2026-12-01 13:31:1", ""])
_PREFIX_PART = st.sampled_from([" | ", "|", " \x1c|", " | controller | ", " | ubuntu-noble-ovh.1@x:y |",
                                " |" + "n" * 64 + "|", " |" + "n" * 65 + "|", " 1234 ERROR nova.compute.manager ",
                                " 12 AUDIT a.b [req-1 x] ",
                                " 12 INFO a [" + "x" * 300 + "] ", " 12 INFO a [" + "x" * 301 + "] ", " 12 INFO a [x]y",
                                " 12 WARN a ", " 12 TRACE a_b.c ", " ", "| |", ".5 | x"])


@settings(max_examples=600, deadline=None, derandomize=True)
@given(_STAMP, st.lists(_PREFIX_PART, max_size=3).map("".join),
       st.text(st.characters(min_codepoint=9, max_codepoint=126), max_size=30))
def test_native_line_body_cuts_the_prefixes_the_regexes_cut(stamp, prefix, rest):
    line = stamp + prefix + rest
    assert native.line_bodies([line], templates.line_body) == [templates.line_body(line)]


@settings(max_examples=500, deadline=None, derandomize=True)
@given(st.one_of(st.text(max_size=400), st.text("ab <*>", min_size=120, max_size=520)))
def test_the_native_key_is_hashlib_s_blake2b(text):
    # Lengths around BLAKE2b's 128-byte blocks (127, 128, 129, 256...) come
    # from the second strategy; stored sets made by either must agree.
    assert native.text_key(text) == templates._blake2b_key(text)


@pytest.mark.parametrize("length", [0, 1, 127, 128, 129, 255, 256, 257, 1000])
def test_the_native_key_agrees_at_block_edges(length):
    assert native.text_key("x" * length) == templates._blake2b_key("x" * length)
    assert native.text_key("\udcff" + "é" * length) == templates._blake2b_key("\udcff" + "é" * length)


def test_a_build_s_lines_are_keyed_in_one_call_as_their_templates_are():
    lines = ["2026-12-01 13:31:13.859739 | controller | Port 3099fdf5-abcd-254a is down",
             "2026-12-01 13:31:13.859 1234 ERROR nova.compute.manager [req-1a2b tempest-1] Instance failed",
             "Échec de 3 volumes à 10:00", "", "2026-12-01 13:31:13 | Build FAILURE", "word " * 300]
    assert templates.template_keys(lines) == [templates.template_of(line).key for line in lines]
    assert templates.template_keys(lines) == [templates._blake2b_key(templates.template_text(line)) for line in lines]
    with pytest.raises(TypeError):
        native.key_array(["é"], ["é"], lambda message: 1)


@settings(max_examples=800, deadline=None, derandomize=True)
@given(_STAMP, st.lists(_PREFIX_PART, max_size=3).map("".join),
       st.text(st.characters(min_codepoint=9, max_codepoint=126), max_size=60),
       st.sampled_from(["", "_", "__x", "x" * 300, "_" * 300 + "y", "a.b:c 1,2;3 it's", "\x1c", "é"]))
def test_the_writer_s_tokens_give_each_line_the_key_of_its_template(stamp, prefix, rest, tail):
    # The writer hands over each line's tokens (analysed once, for the index);
    # the body's tokens are cut from them, not analysed again: the keys must be
    # those of the line's template all the same, whatever the prefix.
    lines = [stamp + prefix + rest, stamp + prefix + tail + rest, stamp + prefix + rest + tail]
    tokens = [index_text(line) for line in lines]
    assert templates.template_keys(lines, tokens) == [templates._blake2b_key(templates.template_text(line))
                                                      for line in lines]


def test_keys_made_in_the_writer_s_keying_thread_are_the_same_set():
    from concurrent.futures import ThreadPoolExecutor

    lines = [f"2026-12-01 13:31:{n % 60:02d} | volume {n} attached to node{n % 7} after retry {n % 3}"
             for n in range(2_000)] + ["Échec de 3 volumes"] * 70
    inline = templates.WrittenTemplates()
    with ThreadPoolExecutor(1) as keying:
        threaded = templates.WrittenTemplates(keying)
        for start in range(0, len(lines), 100):
            inline.add(lines[start:start + 100])
            threaded.add(lines[start:start + 100])
        assert threaded.packed() == inline.packed() == templates.unique_keys(templates.template_key_array(lines))
    assert threaded.complete and len(threaded.keys()) == len({templates.template_text(line) for line in lines})


def test_the_writer_s_tokens_and_lines_must_pair_up():
    with pytest.raises(ValueError):
        native.key_array(["a", "b"], ["a"], templates.template_text)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(["2026-12-01 13:31:13 | Volume 1 attached", "Volume 22 attached", "Build FAILURE",
                                 "Échec de 3 volumes", "x" * 300, "", "tmpab12cd34 gone", "é" * 5]), max_size=40))
def test_a_build_s_keys_kept_packed_are_its_templates_keys(lines):
    # The writer keeps a build's keys packed (no int a line) and makes them
    # distinct when the build is stored: the same set as one key a line.
    tokens = [index_text(line) for line in lines]
    one_by_one = [templates._blake2b_key(templates.template_text(line)) for line in lines]
    packed = templates.template_key_array(lines, tokens)
    assert list(templates._unpack(packed)) == one_by_one == templates.template_keys(lines, tokens)
    assert list(templates._unpack(templates.unique_keys(packed + packed))) == sorted(set(one_by_one))
    written = templates.WrittenTemplates()
    for start in range(0, len(lines), 7):
        written.add(lines[start:start + 7], tokens[start:start + 7])
    assert written.complete and written.keys() == set(one_by_one)


def test_without_the_extension_lines_get_the_same_keys(monkeypatch):
    lines = ["2026-12-01 13:31:13 | Volume 1 attached", "Échec de 3 volumes à 10:00", "Build FAILURE"]
    built = templates.template_keys(lines)
    assert templates.template_keys(lines, [index_text(line) for line in lines]) == built
    packed = templates.template_key_array(lines)
    monkeypatch.setattr(templates, "_native", None)
    assert templates.template_keys(lines) == built
    assert templates.template_keys(lines, [index_text(line) for line in lines]) == built
    assert templates.template_key_array(lines) == packed
    assert templates.unique_keys(packed + packed) == templates.array.array("Q", sorted(set(built))).tobytes()


def test_a_build_s_lines_are_templated_in_one_call_as_one_by_one():
    lines = ["2026-12-01 13:31:13.859739 | controller | Port 3099fdf5-abcd-254a is down",
             "2026-12-01 13:31:13.859 1234 ERROR nova.compute.manager [req-1a2b tempest-1] Instance failed",
             "Échec de 3 volumes à 10:00", "", "2026-12-01 13:31:13 | Build FAILURE"]
    assert templates.template_texts(lines) == [templates.template_text(line) for line in lines]
    assert native.masks(["a 1 b", "é 1"], templates._mask_tokens) == ["a <*> b", "é <*>"]


def test_native_masking_on_log_lines():
    lines = [
        "2026-12-01 13:31:13.859739 | controller | Port 3099fdf5-abcd-254a-e901-e35cd47d380d is down on tap3099fdf5-ab",
        "2026-12-01 13:31:13.859 1234 ERROR nova.compute.manager [req-1a2b tempest-1] Instance failed to spawn",
        "Creating /opt/stack/data/tmp/tmpkqjzxabc for the cache",
        "a " * 100 + "1 2 3",  # cut at the token limit
        " ".join(["x1", "word"] * 40),
    ]
    for line in lines:
        tokens = index_text(templates.line_body(line))
        assert native.mask_tokens(tokens) == templates._mask_tokens(tokens), line
    assert templates.template_text(lines[3]).count(" ") == templates.MAX_TEMPLATE_TOKENS - 1


def test_the_token_limit_is_the_same_in_c_and_python():
    source = (templates.__file__.rsplit("/", 1)[0]) + "/_templates.c"
    limit = re.search(r"#define MAX_TEMPLATE_TOKENS (\d+)", open(source).read())
    assert limit and int(limit.group(1)) == templates.MAX_TEMPLATE_TOKENS


def test_non_ascii_tokens_are_masked_by_the_python_twin():
    assert templates.template_text("Échec de 3 volumes à 10:00") == templates._mask_tokens(
        index_text("Échec de 3 volumes à 10:00"))
    with pytest.raises(TypeError):
        native.mask_tokens("échec 3")


def test_the_writer_keeps_a_build_s_templates_up_to_a_bound():
    kept = templates.WrittenTemplates()
    kept.add(["2026-12-01 13:31:13 | Volume 1 attached", "2026-12-01 13:31:14 | Volume 2 attached", "Build FAILURE"])
    kept.count("job-output.txt", 3)
    assert kept.complete and kept.keys() == {templates.template_of("Volume 1 attached").key,
                                             templates.template_of("Build FAILURE").key}
    assert kept.largest_file == 3
    noise = templates.WrittenTemplates()
    syllables = ["go", "ki", "lu", "mo", "nu", "ri", "so", "tu"]  # no digit, no hex: each word its own template
    words = ["".join(syllables[(n >> (3 * k)) & 7] for k in range(7))
             for n in range(templates.MAX_WRITTEN_TEMPLATES + 1)]
    for start in range(0, len(words), 50_000):
        noise.add(words[start:start + 50_000])
    assert not noise.complete and not noise.keys()
