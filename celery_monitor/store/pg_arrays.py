"""Arrays of task ids and seqs sent to PostgreSQL as one literal.

psycopg dumps a Python list element by element in Python (about 2 µs each): a flush of 2,000 tasks
sends several such lists, and a search's hits can be 20,000 seqs. Wrapped in :class:`Texts` or
:class:`Seqs`, a list goes as one array literal built by ``str.join`` (about a tenth of the time),
typed ``text[]`` or ``bigint[]`` as before, so the queries and their plans do not change.
"""

from __future__ import annotations

import psycopg
from psycopg.adapt import Dumper
from psycopg.postgres import types

_TEXT_ARRAY = types["text"].array_oid
_BIGINT_ARRAY = types["int8"].array_oid


class Texts(list[str]):
    """Text values (without NUL characters, as every text column holds them) for a ``text[]`` parameter."""


class Seqs(list[int]):
    """Integers for a ``bigint[]`` parameter."""


def text_literal(values: list[str]) -> str:
    """``values`` as PostgreSQL's array input reads them: each element quoted, so none is read as
    NULL or loses its spaces; a quote or a backslash inside one is escaped with a backslash."""
    if not values:
        return "{}"
    joined = '","'.join(values)
    if '"' in joined or "\\" in joined:  # rare: escape element by element
        joined = '","'.join(v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return '{"' + joined + '"}'


def seq_literal(values: list[int]) -> str:
    return "{" + ",".join(map(str, map(int, values))) + "}"


class _TextsDumper(Dumper):
    oid = _TEXT_ARRAY

    def dump(self, obj: Texts) -> bytes:
        return text_literal(obj).encode()


class _SeqsDumper(Dumper):
    oid = _BIGINT_ARRAY

    def dump(self, obj: Seqs) -> bytes:
        return seq_literal(obj).encode()


def register(conn: psycopg.Connection[object]) -> None:
    """Let this connection send :class:`Texts` and :class:`Seqs` as literals."""
    conn.adapters.register_dumper(Texts, _TextsDumper)
    conn.adapters.register_dumper(Seqs, _SeqsDumper)
