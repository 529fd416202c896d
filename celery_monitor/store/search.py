"""The task search syntax, as Flower 2.2 reads it.

A query is terms combined with ``AND`` (also implied between two terms) and ``OR`` (``AND`` binds
tighter), grouped with parentheses. A term is a word or a double-quoted phrase (``\\"`` and ``\\\\``
escape inside one), optionally qualified: ``args:``, ``kwargs:``, ``result:``, ``name:`` and
``worker:`` match a substring of that field, ``state:`` the whole state, ``kwargs:key=value`` one
keyword argument whose value prints as ``value``. A bare term matches a substring of the task id,
name, state, worker, args, kwargs or result. Every comparison ignores case. A term of ASCII
characters only (nearly every search) ignores the case of ASCII letters, as SQLite's LIKE does in C
for every row; a term with other letters compares with Unicode case folding (``Straße`` finds
``STRASSE`` and ``straße``), which costs a check of the rows with letters that fold specially.

Refused with :class:`SearchError` (a 400), as Flower refuses them: ``NOT`` and a leading ``-`` (kept
for negation), empty groups and values, unbalanced parentheses or quotes, and queries past
``MAX_LENGTH`` characters, ``MAX_TOKENS`` tokens or ``MAX_DEPTH`` nested groups. Unlike Flower, a
term shorter than three characters is searched rather than refused.
"""

from __future__ import annotations

import ast
import functools
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Union

MAX_LENGTH = 2048
MAX_TOKENS = 128
MAX_DEPTH = 5
SUBSTRING_FIELDS = ("args", "kwargs", "result", "name", "worker")
FIELDS = frozenset({*SUBSTRING_FIELDS, "state"})
# What a bare term looks in, in this order (the columns of the history).
BARE_COLUMNS = ("uuid", "name", "state", "worker", "args", "kwargs", "result")
# Case folding facts the history's SQL relies on (tests derive both from str.casefold() over all of
# Unicode): the letters beyond ASCII whose folding holds ASCII letters, and the letters folded into
# several (all in the Basic Multilingual Plane).
FOLDS_TO_ASCII = ("\u00df\u0130\u0149\u017f\u01f0\u1e96\u1e97\u1e98\u1e99\u1e9a\u1e9e\u212a"
                  "\ufb00\ufb01\ufb02\ufb03\ufb04\ufb05\ufb06")
FOLDING_PLANE = 0x10000
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


@functools.cache
def fold_expansions() -> frozenset[str]:
    """What casefold() makes of the letters it turns into several (about 70 of them)."""
    return frozenset(f for f in (chr(code).casefold() for code in range(FOLDING_PLANE)) if len(f) > 1)


class SearchError(ValueError):
    """A query the syntax does not allow; the message says what and where."""


@dataclass(frozen=True, slots=True)
class Term:
    """One search term. ``field`` None is a bare term; ``pair`` is set for ``kwargs:key=value``."""

    field: str | None
    value: str
    pair: tuple[str, str] | None = None

    @property
    def folded(self) -> str:
        return self.value.casefold()

    @property
    def plain(self) -> bool:
        """An ASCII term: only ASCII letters' case is ignored (see the module's docstring)."""
        return self.value.isascii()


@dataclass(frozen=True, slots=True)
class All:
    children: tuple[Expression, ...]


@dataclass(frozen=True, slots=True)
class Either:
    children: tuple[Expression, ...]


Expression = Union[Term, All, Either]  # noqa: UP007 (a runtime alias the dataclasses refer to)


@dataclass(slots=True)
class SearchTerms:
    """A parsed query: ``expression`` is None when there is nothing to search for."""

    expression: Expression | None = None

    def __bool__(self) -> bool:
        return self.expression is not None

    def terms(self) -> Iterator[Term]:
        """Every term, wherever it stands."""
        stack = [self.expression] if self.expression is not None else []
        while stack:
            node = stack.pop()
            if isinstance(node, Term):
                yield node
            else:
                stack.extend(reversed(node.children))

    # The terms of each kind, for callers that only ask whether a query has any (not how they combine).
    @property
    def any(self) -> list[str]:
        return [t.value for t in self.terms() if t.field is None]

    @property
    def args(self) -> list[str]:
        return [t.value for t in self.terms() if t.field == "args"]

    @property
    def kwargs(self) -> list[tuple[str, str]]:
        return [t.pair for t in self.terms() if t.pair is not None]

    @property
    def result(self) -> list[str]:
        return [t.value for t in self.terms() if t.field == "result"]

    @property
    def states(self) -> list[str]:
        return [t.value for t in self.terms() if t.field == "state"]

    @property
    def names(self) -> list[str]:
        return [t.value for t in self.terms() if t.field == "name"]

    @property
    def workers(self) -> list[str]:
        return [t.value for t in self.terms() if t.field == "worker"]


# -- reading a query ---------------------------------------------------------------------------

@dataclass(slots=True)
class _Token:
    kind: str  # "term", "and", "or", "(", ")", "end"
    text: str
    at: int
    quoted: bool = False


def _read_word(text: str, start: int) -> tuple[str, bool, int]:
    """The word starting at ``start`` (quotes removed, escapes resolved), whether it had quotes, its end."""
    chars: list[str] = []
    quoted = inside = False
    i = start
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
            chars.append(text[i + 1])
            i += 2
            continue
        if char == '"':
            quoted, inside = True, not inside
            i += 1
            continue
        if not inside and (char.isspace() or char in "()"):
            break
        chars.append(char)
        i += 1
    if inside:
        raise SearchError(f"Unterminated quoted phrase at position {start}")
    return "".join(chars), quoted, i


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        if text[i] in "()":
            tokens.append(_Token(text[i], text[i], i))
            i += 1
        else:
            word, quoted, end = _read_word(text, i)
            if not word:
                raise SearchError(f"Empty search term at position {i}")
            if not quoted and word in ("AND", "OR"):
                tokens.append(_Token(word.lower(), word, i))
            elif not quoted and word == "NOT":
                raise SearchError(f"NOT is not supported (position {i})")
            else:
                tokens.append(_Token("term", word, i, quoted))
            i = end
        if len(tokens) > MAX_TOKENS:
            raise SearchError(f"The query has more than {MAX_TOKENS} terms and operators")
    tokens.append(_Token("end", "", len(text)))
    return tokens


def _term(token: _Token) -> Term:
    prefix, colon, rest = token.text.partition(":")
    qualifier = prefix.casefold() if colon else None
    if qualifier not in FIELDS:
        if token.text.startswith("-"):
            raise SearchError(f"Negation with '-' is not supported (position {token.at})")
        return Term(None, token.text)
    if not rest:
        raise SearchError(f"'{prefix}:' needs a value (position {token.at})")
    if qualifier == "kwargs" and "=" in rest:
        key, _, value = rest.partition("=")
        return Term("kwargs", rest, (key.strip(), value.strip()))
    return Term(qualifier, rest)


def _combine(kind: type[All] | type[Either], children: list[Expression]) -> Expression:
    flat: list[Expression] = []
    for child in children:
        for node in child.children if isinstance(child, kind) else (child,):
            if node not in flat:
                flat.append(node)
    return flat[0] if len(flat) == 1 else kind(tuple(flat))


class _Parser:
    """Recursive descent: either := all ("OR" all)* ; all := primary (["AND"] primary)* ;
    primary := term | "(" either ")"."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.i = 0

    @property
    def current(self) -> _Token:
        return self.tokens[self.i]

    def parse(self) -> Expression | None:
        if self.current.kind == "end":
            return None
        expression = self.either(0)
        if self.current.kind != "end":
            raise SearchError(f"Unexpected {self.current.text!r} at position {self.current.at}")
        return expression

    def _operand_follows(self, operator: _Token) -> None:
        if self.current.kind not in ("term", "("):
            raise SearchError(f"{operator.text} must be followed by a search term (position {operator.at})")

    def either(self, depth: int) -> Expression:
        children = [self.all(depth)]
        while self.current.kind == "or":
            operator = self.tokens[self.i]
            self.i += 1
            self._operand_follows(operator)
            children.append(self.all(depth))
        return _combine(Either, children)

    def all(self, depth: int) -> Expression:
        children = [self.primary(depth)]
        while self.current.kind in ("and", "term", "("):
            if self.current.kind == "and":
                operator = self.tokens[self.i]
                self.i += 1
                self._operand_follows(operator)
            children.append(self.primary(depth))
        return _combine(All, children)

    def primary(self, depth: int) -> Expression:
        token = self.current
        if token.kind == "(":
            if depth >= MAX_DEPTH:
                raise SearchError(f"Groups nest deeper than {MAX_DEPTH} levels (position {token.at})")
            self.i += 1
            if self.current.kind == ")":
                raise SearchError(f"Empty group at position {token.at}")
            inner = self.either(depth + 1)
            if self.current.kind != ")":
                raise SearchError(f"Missing closing parenthesis for position {token.at}")
            self.i += 1
            return inner
        if token.kind != "term":
            raise SearchError(f"Expected a search term at position {token.at}, found {token.text!r}")
        self.i += 1
        return _term(token)


def parse_search(text: str | None) -> SearchTerms:
    """The query in ``text``; an empty one searches for nothing. Raises :class:`SearchError`."""
    query = (text or "").strip()
    if len(query) > MAX_LENGTH:
        raise SearchError(f"The query is longer than {MAX_LENGTH} characters")
    return SearchTerms(_Parser(_tokens(query)).parse())


# -- matching a task (the same answers as the history's SQL) ------------------------------------

def like_pattern(value: str) -> str:
    """The SQL LIKE pattern (escape character ``\\``) that finds ``value`` anywhere in a text: the
    SQL stores narrow their rows down with it before the exact check."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def contains(text: Any, folded: str, plain: bool = False) -> bool:
    """Is ``folded`` (a case-folded term) in ``text``, ignoring case? ``plain``: of ASCII letters only."""
    if not isinstance(text, str):
        return False
    return folded in (text.translate(_ASCII_LOWER) if plain else text.casefold())


def kwargs_match(kwargs_repr: str | None, key: str, expected: str) -> bool:
    """Does the task's kwargs (a repr string) hold ``key`` with a value that prints as ``expected``?

    Keys and values compare ignoring case; the value may be written as ``str()`` or ``repr()``
    prints it (``count=3``, ``user=alice``, ``user='alice'``).
    """
    if not kwargs_repr:
        return False
    key, expected = key.casefold(), expected.casefold()
    try:
        kwargs = ast.literal_eval(kwargs_repr)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        kwargs = None
    if isinstance(kwargs, dict):
        return any(str(k).casefold() == key and expected in (str(v).casefold(), repr(v).casefold())
                   for k, v in kwargs.items())
    # Not a literal (an object's repr inside): look for the pair as text.
    text = kwargs_repr.casefold()
    return f"'{key}': {expected}" in text or f"'{key}': '{expected}'" in text


def term_matches(term: Term, task: Mapping[str, Any]) -> bool:
    if term.pair is not None:
        return kwargs_match(task.get("kwargs"), *term.pair)
    folded, plain = term.folded, term.plain
    if term.field == "state":
        state = task.get("state")
        return isinstance(state, str) and state.casefold() == folded
    if term.field is not None:
        return contains(task.get(term.field), folded, plain)
    return any(contains(task.get(column), folded, plain) for column in BARE_COLUMNS)


def matches(expression: Expression | None, task: Mapping[str, Any]) -> bool:
    """Does the task (a dict of the history) satisfy the expression? None matches everything."""
    if expression is None:
        return True
    if isinstance(expression, Term):
        return term_matches(expression, task)
    if isinstance(expression, All):
        return all(matches(child, task) for child in expression.children)
    return any(matches(child, task) for child in expression.children)

