"""Lucene classic query syntax, read the way Elasticsearch's ``query_string`` reads it.

``luqum`` does the parsing; this module turns its tree into a small,
engine-neutral query model. Two places where luqum and Lucene disagree are
fixed here rather than in each engine:

* Lucene's classic parser has no operator precedence: a run of clauses at one
  level becomes one boolean query where ``AND`` makes both neighbours
  required, ``NOT``/``-`` prohibited, ``+`` required, and the rest optional
  (``a AND b OR c`` is ``+a +b c``). luqum builds a precedence tree, so the
  run is flattened back and Lucene's ``addClause`` rules are replayed.
* luqum's lexer is laxer than Lucene's and does not know ``&& || !``: a pass
  over the text first applies Lucene's lexical rules (``_apply_lucene_lexical_rules``),
  rewriting what luqum would misread and refusing what Lucene refuses.

A purely negative boolean query matches everything but its exclusions, as
Elasticsearch makes it do (``Queries.fixNegativeQueryIfNeeded``): each engine
adds the match-all after dropping the clauses that analyse to nothing, since
a query left with no clause at all matches nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator, Union

from luqum import tree
from luqum.exceptions import ParseError
from luqum.parser import parser

from .analysis import analyze
from .errors import QuerySyntaxError
from .search.schema import STANDARD_FIELDS

DEFAULT_FIELD = "message"
# How deep a query may nest: every group, operator, NOT/+/- and field counts a
# level. Real fingerprints use about ten; the limit keeps every recursive walk
# of the tree (here and in each engine's translation) far from Python's
# recursion limit, so a hostile query is a one-line error, never a crash.
MAX_DEPTH = 64
# Phrase slop beyond this is refused: Lucene reads it as a Java int, and
# tantivy as an unsigned 32-bit one.
MAX_SLOP = 2**31 - 1


@dataclass(frozen=True)
class Term:
    """A bare word: analysed, and each token is searched (default operator OR)."""

    field: str
    text: str


@dataclass(frozen=True)
class Phrase:
    field: str
    text: str
    slop: int = 0


@dataclass(frozen=True)
class Wildcard:
    """``*`` and ``?`` over a single indexed term; the pattern is not analysed."""

    field: str
    pattern: str


@dataclass(frozen=True)
class Regexp:
    """A Lucene regular expression over a single indexed term."""

    field: str
    pattern: str


@dataclass(frozen=True)
class Fuzzy:
    field: str
    text: str
    distance: int | None  # None: Elasticsearch's AUTO


@dataclass(frozen=True)
class Range:
    field: str
    low: str | None  # None: unbounded
    high: str | None
    include_low: bool = True
    include_high: bool = True


@dataclass(frozen=True)
class Exists:
    field: str


@dataclass(frozen=True)
class MatchAll:
    pass


@dataclass(frozen=True)
class Bool:
    must: tuple["Node", ...] = ()
    should: tuple["Node", ...] = ()
    must_not: tuple["Node", ...] = ()


Node = Union[Term, Phrase, Wildcard, Regexp, Fuzzy, Range, Exists, MatchAll, Bool]

_MUST, _SHOULD, _MUST_NOT = "must", "should", "must_not"


def parse(query: str) -> Node:
    """Parse ``query`` into the query model, or raise QuerySyntaxError."""
    if not query or not query.strip():
        raise QuerySyntaxError(query, "the query is empty")
    rewritten = _apply_lucene_lexical_rules(query)
    try:
        luqum_tree = parser.parse(rewritten)
    except ParseError as exc:
        raise QuerySyntaxError(query, f"syntax error: {_one_line(exc)}") from None
    except Exception as exc:  # luqum's lexer raises a few bare errors
        raise QuerySyntaxError(query, f"syntax error: {_one_line(exc)}") from None
    depth = _depth(luqum_tree)
    if depth > MAX_DEPTH:
        raise QuerySyntaxError(query, f"the query nests {depth} levels deep; at most {MAX_DEPTH} are allowed "
                                      "(each group, operator and field is a level)")
    try:
        return _Converter(query).convert(luqum_tree, DEFAULT_FIELD)
    except (ValueError, OverflowError, RecursionError) as exc:  # a value out of every engine's range
        raise QuerySyntaxError(query, f"cannot be read: {_one_line(exc)}") from None


def quote(text: str) -> str:
    """``text`` as a Lucene phrase, for a query built from a value (a build
    uuid, a change number): ``\\`` and ``"`` are escaped, so whatever the value
    holds (it comes from outside) it stays one phrase and cannot break the query."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _depth(root: tree.Item) -> int:
    """The luqum tree's depth, walked without recursion (the tree is hostile)."""
    deepest = 0
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth <= MAX_DEPTH:  # no need to walk further than the limit
            stack.extend((child, depth + 1) for child in node.children)
    return deepest


def iter_leaves(node: Node) -> Iterator[Node]:
    """Every non-boolean clause, for lint checks."""
    if isinstance(node, Bool):
        for child in (*node.must, *node.should, *node.must_not):
            yield from iter_leaves(child)
    else:
        yield node


def fields_used(node: Node) -> set[str]:
    return {leaf.field for leaf in iter_leaves(node) if hasattr(leaf, "field")}


# -- Lucene's lexical rules where luqum's differ --------------------------------

_BOUNDARY_BEFORE = set(" \t\r\n\u3000()")
_WHITESPACE = set(" \t\r\n\u3000")
# Characters that end a bare word in Lucene's classic lexer (its _TERM_CHAR
# excludes them; "-" and "+" only may not start one).
_SPECIAL = set(' \t\r\n\u3000()"[]{}:^~*?\\/!') | {"+", "-"}
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")


def _apply_lucene_lexical_rules(query: str) -> str:
    """``query`` with Lucene's lexical rules applied where luqum's differ,
    so luqum's tree means what Lucene's would, or QuerySyntaxError where
    Lucene refuses the query:

    * ``&& || !`` become ``AND OR NOT``; a ``!`` inside a word starts a
      negation there, as in Lucene (``a!b`` is ``a NOT b``);
    * ``+ - !`` followed by whitespace are Lucene's "bare operators": a term
      that analyses to nothing, written here as an escaped character;
    * ``\\uXXXX`` is the character it names;
    * ``^`` must be followed by a number, and ``~`` by a number or nothing;
      a phrase's ``~`` with no number or a fraction is Lucene's integer slop;
    * an unescaped ``/`` inside a word (``project:openstack/nova``) starts a
      regular expression in Lucene, which then fails: refused with a hint;
    * ``>``/``<`` ranges must touch their bound (``field:>5``).

    Quoted phrases, regular expressions and ranges are copied as they are.
    """
    out: list[str] = []
    i, n = 0, len(query)
    in_word = False  # the previous character belongs to a bare word
    field_value = False  # in the word after a field's ':'
    while i < n:
        ch = query[i]
        if ch == "\\":
            if i + 1 >= n:
                raise QuerySyntaxError(query, "a query cannot end with a backslash")
            if query[i + 1] == "u":
                code = query[i + 2 : i + 6]
                if not _HEX4.fullmatch(code):
                    raise QuerySyntaxError(query, f"'\\u' must be followed by four hex digits, not {code!r}")
                out.append("\\" + chr(int(code, 16)))
                i += 6
            else:
                out.append(query[i : i + 2])
                i += 2
            in_word = True
            continue
        if ch == '"' or (ch == "/" and not in_word):
            end = _closing(query, i, ch)
            out.append(query[i:end])
            i = end
            in_word = False
            if ch == '"' and i < n and query[i] == "~":
                slop = _NUMBER.match(query, i + 1)
                out.append(f"~{slop.group().split('.')[0] if slop else 0}")
                i = slop.end() if slop else i + 1
                _check_after_modifier(query, i)
            continue
        if ch == "/":
            raise QuerySyntaxError(query, "an unescaped '/' inside a word starts a regular expression in Lucene; "
                                          "quote the value or escape the slash (project:\"openstack/nova\")")
        if ch in "[{" and not in_word:
            end = _closing_range(query, i)
            out.append(query[i:end])
            i = end
            continue
        at_start = not in_word and _at_term_start(query, i)
        if at_start and query.startswith(("&&", "||"), i) and _ends_token(query, i + 2):
            out.append(" AND " if ch == "&" else " OR ")
            i += 2
            continue
        if ch == "!" or (at_start and ch in "+-"):
            if _after_field(query, i):
                raise QuerySyntaxError(query, f"{ch!r} cannot follow a field's ':' (column {i + 1}); Lucene takes it "
                                              "before the field (-field:value) or inside a group (field:(-value))")
            following = query[i + 1] if i + 1 < n else ""
            if not following:
                raise QuerySyntaxError(query, f"operator {ch!r} is missing an operand")
            if following in _WHITESPACE:  # a bare operator: a term of no words
                out.append(f" \\{ch} ")
            elif ch == "!":
                out.append(" NOT ")
            else:
                out.append(ch)
            i += 1
            in_word = False
            continue
        if ch == "^":
            boost = _NUMBER.match(query, i + 1)
            if not boost:
                raise QuerySyntaxError(query, "'^' must be followed by a number (a boost, e.g. ^2)")
            out.append(query[i : boost.end()])
            i = boost.end()
            _check_after_modifier(query, i)
            in_word = False
            continue
        if ch == "~":
            distance = _NUMBER.match(query, i + 1)
            end = distance.end() if distance else i + 1
            out.append(query[i:end])
            i = end
            _check_after_modifier(query, i)
            in_word = False
            continue
        if ch in "<>" and at_start and not (i and query[i - 1] == ":"):
            raise QuerySyntaxError(query, f"a range '{ch}' needs its field written before it (message:{ch}...): "
                                          "Lucene joins it to the words beside it otherwise")
        if ch in "<>" and i and query[i - 1] == ":":
            op_end = i + 2 if query.startswith("=", i + 1) else i + 1
            if op_end >= n or query[op_end] in _WHITESPACE or query[op_end] in "()":
                raise QuerySyntaxError(query, f"'{query[i:op_end]}' must be followed by its bound, e.g. field:{query[i:op_end]}5")
        if ch == ":":
            if field_value:
                raise QuerySyntaxError(query, f"a second ':' in one word (column {i + 1}); escape it (\\:) "
                                              "or quote the value")
            field_value = True
        elif ch in _SPECIAL and ch not in "+-*?":
            field_value = False
        out.append(ch)
        i += 1
        in_word = ch not in _SPECIAL or ch in "+-*?"
    return "".join(out)


def _check_after_modifier(query: str, i: int) -> None:
    """After ``^N`` or ``~N`` Lucene's lexer wants whitespace, an operator or the end."""
    if i < len(query) and query[i] not in _WHITESPACE and query[i] not in "()^~":
        raise QuerySyntaxError(query, f"unexpected {query[i]!r} after a boost or fuzziness (column {i + 1})")


def _after_field(query: str, i: int) -> bool:
    """Whether the last thing before ``i`` (spaces aside) is a field's unescaped ':'."""
    j = i - 1
    while j >= 0 and query[j] in _WHITESPACE:
        j -= 1
    if j < 0 or query[j] != ":":
        return False
    backslashes = 0
    while j - 1 - backslashes >= 0 and query[j - 1 - backslashes] == "\\":
        backslashes += 1
    return backslashes % 2 == 0


def _at_term_start(query: str, i: int) -> bool:
    return i == 0 or query[i - 1] in _BOUNDARY_BEFORE or query[i - 1] == ":"


def _ends_token(query: str, i: int) -> bool:
    return i >= len(query) or query[i] in _BOUNDARY_BEFORE


def _closing(query: str, start: int, quote: str) -> int:
    """Index just past the matching closing quote (or the end)."""
    i = start + 1
    while i < len(query):
        if query[i] == "\\":
            i += 2
            continue
        if query[i] == quote:
            return i + 1
        i += 1
    return len(query)


def _closing_range(query: str, start: int) -> int:
    """Index just past a range's closing bracket (or the end)."""
    i = start + 1
    while i < len(query):
        if query[i] == "\\":
            i += 2
            continue
        if query[i] == '"':
            i = _closing(query, i, '"')
            continue
        if query[i] in "]}":
            return i + 1
        i += 1
    return len(query)


# -- luqum tree -> query model ------------------------------------------------

_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.S)


def _unescape(text: str) -> str:
    """Lucene's discardEscapeChar: ``\\x`` is ``x``, ``\\uXXXX`` the character it names."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1)[1:], 16)) if len(m.group(1)) == 5 else m.group(1), text)


def _fuzzy_distance(node: tree.Fuzzy) -> int | None:
    """Elasticsearch's reading of ``~N``: a bare ``~`` is AUTO (None), else
    the whole part of N, at most 2 (``~0.5`` is 0: the exact term)."""
    if getattr(node, "_implicit_degree", False):
        return None
    return min(int(float(str(node.degree))), 2)


class _Converter:
    def __init__(self, query: str) -> None:
        self.query = query

    def error(self, detail: str) -> QuerySyntaxError:
        return QuerySyntaxError(self.query, detail)

    def convert(self, node: tree.Item, fieldname: str) -> Node:
        converted = self._convert(node, fieldname)
        self._check_empty_on_extra_field(converted)
        return converted

    def _convert(self, node: tree.Item, fieldname: str) -> Node:
        if isinstance(node, (tree.AndOperation, tree.OrOperation, tree.UnknownOperation)):
            return self._boolean(node, fieldname)
        if isinstance(node, (tree.Group, tree.FieldGroup)):
            return self.convert(node.expr, fieldname)
        if isinstance(node, (tree.Not, tree.Prohibit, tree.Plus)):
            self._single_modifier(node)
            if isinstance(node, tree.Plus):
                return self.convert(node.a, fieldname)
            return Bool(must_not=(self.convert(node.a, fieldname),))
        if isinstance(node, tree.Boost):
            return self.convert(node.expr, fieldname)  # scoring only
        if isinstance(node, tree.SearchField):
            return self._search_field(node)
        if isinstance(node, tree.Proximity):
            if not isinstance(node.term, tree.Phrase):
                raise self.error("'~N' after a word is fuzziness; use it after a phrase for slop")
            slop = 0 if getattr(node, "_implicit_degree", False) else int(float(str(node.degree)))
            if not 0 <= slop <= MAX_SLOP:
                raise self.error(f"phrase slop ~{node.degree} is out of range (0 to {MAX_SLOP})")
            return Phrase(fieldname, _unescape(node.term.value[1:-1]), slop)
        if isinstance(node, tree.Fuzzy):
            if not isinstance(node.term, tree.Word):
                raise self.error("fuzziness '~' applies to a single word")
            return Fuzzy(fieldname, _unescape(node.term.value), _fuzzy_distance(node))
        if isinstance(node, tree.Phrase):
            return Phrase(fieldname, _unescape(node.value[1:-1]))
        if isinstance(node, tree.Regex):
            return Regexp(fieldname, node.value[1:-1])
        if isinstance(node, (tree.Range, tree.From, tree.To)):
            return self._range(node, fieldname)
        if isinstance(node, tree.Word):
            return self._word(node, fieldname)
        raise self.error(f"unsupported query element {type(node).__name__}: {node}")

    def _word(self, node: tree.Word, fieldname: str) -> Node:
        if node.value == "*":
            return MatchAll() if fieldname == "*" else Exists(fieldname)
        if node.value in ("AND", "OR", "NOT", "&&", "||"):  # lower-case and/or/not are words, as in Lucene
            raise self.error(f"operator {node.value!r} is missing an operand")
        if node.has_wildcard():
            return Wildcard(fieldname, node.value)
        return Term(fieldname, _unescape(node.value))

    def _check_empty_on_extra_field(self, node: Node) -> None:
        """Refuse words of no token on a field outside the standard ones.

        Elasticsearch drops such a clause on a mapped field but answers it
        with match-none on a field its mapping does not know (no document has
        it), so ``NOT unknown:½`` is everything there. Whether an extra field
        is mapped depends on every document ever indexed, which neither the
        query model nor the percolator (one line at a time) can know."""
        if (isinstance(node, (Term, Phrase)) and node.field not in STANDARD_FIELDS
                and node.field != "@timestamp" and not analyze(node.text)):
            raise self.error(f"{node.field}:{node.text!r} has no words to search, on a field outside the standard "
                             "ones: Elasticsearch drops it if some document has the field and matches nothing "
                             "if none has; search words, or a standard field")

    def _single_modifier(self, node: tree.Item) -> None:
        """Lucene takes one of ``+ - NOT`` before a clause: ``NOT NOT a`` and ``--a`` do not parse."""
        if isinstance(node.a, (tree.Not, tree.Prohibit, tree.Plus)):
            raise self.error(f"'{node}' stacks two of + - NOT; Lucene allows one before a clause")

    def _search_field(self, node: tree.SearchField) -> Node:
        name = _unescape(node.name)
        if name == "_exists_":
            if not isinstance(node.expr, tree.Word):
                raise self.error("_exists_ takes a field name")
            return Exists(_unescape(node.expr.value))
        if isinstance(node.expr, tree.SearchField):
            raise self.error(f"field {name!r} cannot contain another field")
        return self.convert(node.expr, name)

    def _range(self, node: tree.Item, fieldname: str) -> Node:
        def bound(item: tree.Item) -> str | None:
            text = _unescape(item.value if isinstance(item, tree.Word) else str(item).strip('"'))
            return None if text == "*" else text

        if isinstance(node, tree.Range):
            return Range(fieldname, bound(node.low), bound(node.high), node.include_low, node.include_high)
        if isinstance(node, tree.From):
            return Range(fieldname, bound(node.a), None, include_low=node.include)
        return Range(fieldname, None, bound(node.a), include_high=node.include)

    def _boolean(self, node: tree.Item, fieldname: str) -> Node:
        clauses: list[tuple[str, Node]] = []
        for conj, operand in _flatten(node):
            mods = None
            inner = operand
            if isinstance(operand, (tree.Not, tree.Prohibit)):
                mods, inner = "not", operand.a
            elif isinstance(operand, tree.Plus):
                mods, inner = "req", operand.a
            # Lucene's QueryParserBase.addClause, default operator OR.
            if clauses and conj == "AND":
                occur, query = clauses[-1]
                if occur != _MUST_NOT:
                    clauses[-1] = (_MUST, query)
            if mods:
                self._single_modifier(operand)
            converted = self.convert(inner, fieldname)
            if _analyses_to_nothing(converted):
                continue  # Lucene drops it, after its AND made the clause before required
            if mods == "not":
                occur = _MUST_NOT
            elif mods == "req" or conj == "AND":
                occur = _MUST
            else:
                occur = _SHOULD
            clauses.append((occur, converted))
        must = tuple(q for o, q in clauses if o == _MUST)
        should = tuple(q for o, q in clauses if o == _SHOULD)
        must_not = tuple(q for o, q in clauses if o == _MUST_NOT)
        return Bool(must=must, should=should, must_not=must_not)


def _analyses_to_nothing(node: Node) -> bool:
    """A clause Lucene's parser drops: words that analyse to no token (on a
    text field; a date is never empty), or a group of such clauses. The
    clause's conjunction still counts: in ``a OR !!! AND b`` the AND makes
    ``a`` required, as Lucene's addClause does. (A field no document has is
    a clause matching nothing in Elasticsearch even then; the query model
    cannot know which fields documents have: such a clause on a field outside
    the standard ones is refused, see ``_check_empty_on_extra_field``.)"""
    if isinstance(node, (Term, Phrase)):
        return node.field != "@timestamp" and not analyze(node.text)
    if isinstance(node, Bool):
        return not (node.must or node.should or node.must_not)
    return False


def _flatten(node: tree.Item, conj: str | None = None) -> Iterator[tuple[str | None, tree.Item]]:
    """The clauses of one parenthesis level in written order, each with the
    conjunction written before it (None for none)."""
    if isinstance(node, (tree.AndOperation, tree.OrOperation, tree.UnknownOperation)):
        op = {tree.AndOperation: "AND", tree.OrOperation: "OR"}.get(type(node))
        for index, child in enumerate(node.children):
            yield from _flatten(child, conj if index == 0 else op)
    else:
        yield conj, node

