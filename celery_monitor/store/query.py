"""A task query as the API and the pages ask it: filters, search, order and a page."""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from celery_monitor.store.search import SearchTerms

# Sort keys the store indexes; Flower's four first.
SORT_KEYS: tuple[str, ...] = (
    "name", "state", "received", "started", "runtime", "worker", "timestamp", "succeeded", "failed",
    "sent", "uuid",
)  # fmt: skip
TEXT_KEYS = frozenset({"name", "state", "worker", "uuid"})
# The task table's total of a search or a received range counts the rows it selects (no kept count
# serves them): past this many it stops and says "more than COUNT_CAP" (a common search term's
# 700,000 matches took 29 s to count at a million tasks). Filters by name, state and worker, and the
# whole history, keep exact totals in both stores.
COUNT_CAP = 10_000
NEW_SEQ = 1 << 62  # the place of tasks not in the history yet: after every row it holds


@dataclass(frozen=True, slots=True)
class Cursor:
    """A row's place in a query's order (keyset paging): the order's column (None: the order tasks
    were first seen in), the row's value there, its seq and its uuid. A page ``after`` it starts just
    past that row, however deep, with one index seek; the uuid finds the seq of a row that was not
    in the history yet when the cursor was made (``seq`` None)."""

    column: str | None
    value: float | str | None
    seq: int | None
    uuid: str

    def token(self) -> str:
        """The cursor as an opaque URL-safe text (what the API answers and accepts)."""
        raw = orjson.dumps([self.column, self.value, self.seq, self.uuid])
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def parse(cls, token: str) -> Cursor:
        """The cursor a token stands for; ValueError (one line) for anything else."""
        try:
            column, value, seq, uuid = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError):
            raise ValueError("not a cursor this monitor gave") from None
        if (column is not None and column not in SORT_KEYS) or not isinstance(uuid, str) \
                or not (seq is None or (isinstance(seq, int) and not isinstance(seq, bool))) \
                or not (value is None or isinstance(value, str | int | float)) or isinstance(value, bool):
            raise ValueError("not a cursor this monitor gave")
        return cls(column, value, seq, uuid)


@dataclass(slots=True)
class TaskQuery:
    limit: int | None = None
    offset: int = 0
    sort_by: str | None = None
    descending: bool = True
    workers: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    clusters: list[str] = field(default_factory=list)  # none: every cluster
    received_start: float | None = None
    received_end: float | None = None
    search: SearchTerms = field(default_factory=SearchTerms)
    # Keyset paging: the page starts just past this row (``offset`` then counts from there).
    after: Cursor | None = None


def order_column(query: TaskQuery) -> str | None:
    """The column a query's rows are ordered by (then by seq); None: by seq alone."""
    if query.sort_by in SORT_KEYS:
        return query.sort_by
    if query.received_start is not None or query.received_end is not None:
        return "received"  # a received range is read from its index, in received order
    return None


def total_cap(query: TaskQuery) -> int | None:
    """How far the task table counts this query's total: COUNT_CAP for the totals that read rows
    (a search, a received range, clusters), None (exact) for the others."""
    if (query.search.expression is not None or query.received_start is not None or query.received_end is not None
            or query.clusters):
        return COUNT_CAP
    return None


def cursor_fits(query: TaskQuery, cursor: Cursor) -> str | None:
    """Why ``cursor`` cannot place a page of ``query`` (made for another order, or a value of the
    wrong type for its column); None when it can."""
    column = order_column(query)
    if cursor.column != column:
        return f"it was made for the order by {cursor.column or 'arrival'}, not by {column or 'arrival'}"
    text = column in TEXT_KEYS
    if cursor.value is not None and (isinstance(cursor.value, str) != text or column is None):
        return "its value does not fit its column"
    return None


def cursor_of(query: TaskQuery, task: dict[str, Any], seq: int | None) -> Cursor:
    """The cursor just past ``task`` (whose seq is ``seq``, None if not in the history yet) in the query's order."""
    column = order_column(query)
    value = task.get(column) if column is not None else None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        value = None
    return Cursor(column, value, seq, str(task.get("uuid")))


def after_clauses(column: str | None, cursor: Cursor, seq: int, descending: bool, mark: str
                  ) -> list[tuple[str, list[Any]]]:
    """The rows past the cursor (at ``seq``), as consecutive parts of the order: each a condition an
    index of ``(column NULLS FIRST, seq)`` answers with one seek (a row comparison; NULL is the least
    value, so it ends a descending order and starts an ascending one). ``mark``: the driver's placeholder."""
    less = "<" if descending else ">"
    if column is None:
        return [(f"seq {less} {mark}", [seq])]
    if column == "uuid":  # never NULL, and unique
        return [(f"uuid {less} {mark}", [cursor.value if cursor.value is not None else cursor.uuid])]
    if cursor.value is None:
        nulls = (f"{column} IS NULL AND seq {less} {mark}", [seq])
        return [nulls] if descending else [nulls, (f"{column} IS NOT NULL", [])]
    values = (f"({column}, seq) {less} ({mark}, {mark})", [cursor.value, seq])
    return [values, (f"{column} IS NULL", [])] if descending else [values]


def seqs_past_cursor(query: TaskQuery, cursor: Cursor, mark: str,
                     seqs_of: Callable[[TaskQuery, tuple[str, list[Any]]], list[int]]) -> list[int]:
    """A page past ``cursor`` (keyset paging), the same walk on either store: each part of the order
    past it (:func:`after_clauses`, with the driver's placeholder ``mark``) is read with ``seqs_of(query
    of the part, its clause)``, one seek in the order's index, until the page is full."""
    wanted = None if query.limit is None else query.offset + query.limit
    base = dataclasses.replace(query, after=None, offset=0, limit=wanted)
    seqs: list[int] = []
    for clause in after_clauses(order_column(query), cursor, NEW_SEQ if cursor.seq is None else cursor.seq,
                                query.descending, mark):
        part = base if wanted is None else dataclasses.replace(base, limit=wanted - len(seqs))
        seqs += seqs_of(part, clause)
        if wanted is not None and len(seqs) >= wanted:
            break
    return seqs[query.offset :]
