"""Lists that agree with ``/api/task/info``: the history's pages with the writer's pending tasks laid over.

The writer commits every 0.5 s; until then a changed task is only in its pending set, where task
lookups already find it. A list read from the history alone would miss it (or show an older
state) for up to a flush. So a list query takes the pending tasks, leaves their committed (stale)
rows out of the SQL, filters the pending ones with the same rules in Python (``matches``), and
merges both in the query's order (``order_key`` mirrors the ORDER BY, NULLs first as in SQLite).

A page at ``offset`` needs the history's rows from ``offset - len(pending matches)`` on: each
pending match ahead of a row moves it one place down. Without filters, in the default order, the
pending tasks already in the history keep their places and only the new ones come first (or last),
so the history's page is read as usual (its deep-offset shortcut included).
"""

from __future__ import annotations

import dataclasses
import heapq
import operator
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeGuard

from celery_monitor.clusters import DEFAULT as DEFAULT_CLUSTER
from celery_monitor.store.base import TaskDict
from celery_monitor.store.query import NEW_SEQ, SORT_KEYS, Cursor, TaskQuery, cursor_of, order_column
from celery_monitor.store.search import matches as search_matches

STREAM_CHUNK = 1000

Key = tuple[Any, ...]


class History(Protocol):
    def snapshot(self) -> Any: ...
    def seqs_of(self, uuids: Any) -> dict[str, int]: ...
    def query_tasks(self, query: TaskQuery, excluding: Any = ()) -> list[TaskDict]: ...
    def count_tasks(self, query: TaskQuery, excluding: Any = (), cap: int | None = None) -> int: ...
    def task_count(self) -> int: ...
    def ordered_seqs(self, query: TaskQuery, excluding: Any = ()) -> list[int]: ...
    def tasks_in_order(self, seqs: Any) -> list[tuple[int, TaskDict]]: ...


def is_plain(query: TaskQuery) -> bool:
    """No filter, no search, the default order: every task, newest first (or oldest)."""
    return not (query.workers or query.names or query.states or query.clusters or query.search
                or query.sort_by in SORT_KEYS
                or query.received_start is not None or query.received_end is not None)


def matches(query: TaskQuery, task: TaskDict) -> bool:
    """Does the task pass the query's filters and search? The same answer as the history's WHERE."""
    for field, wanted in (("worker", query.workers), ("name", query.names), ("state", query.states)):
        if wanted:
            value = task.get(field)
            if not isinstance(value, str) or value.casefold() not in {w.casefold() for w in wanted}:
                return False
    if query.clusters and (task.get("cluster") or DEFAULT_CLUSTER) not in query.clusters:
        return False
    received = task.get("received")
    for bound, inside in ((query.received_start, operator.ge), (query.received_end, operator.le)):
        if bound is not None and not (_is_number(received) and inside(received, bound)):
            return False
    return search_matches(query.search.expression, task)


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def order_key(query: TaskQuery) -> Callable[[TaskDict, int], Key]:
    """The sort key of a (task, seq) in the query's order, ascending (reverse it for descending)."""
    column = order_column(query)

    def key(task: TaskDict, seq: int) -> Key:
        if column is None:
            return (seq,)
        return _value_key(task.get(column), seq)

    return key


def _value_key(value: Any, seq: int) -> Key:
    # SQLite orders NULL first, then numbers, then text.
    if value is None:
        return (0, 0, seq)
    if _is_number(value):
        return (1, value, seq)
    return (2, str(value), seq)


def _past(query: TaskQuery, cursor_key: Key | None) -> Callable[[Key], bool]:
    """Whether a row's key comes after the cursor's in the query's order (every row without a cursor)."""
    if cursor_key is None:
        return lambda key: True
    if query.descending:
        return lambda key: key < cursor_key
    return lambda key: key > cursor_key


def placed(history: History, query: TaskQuery, new: list[TaskDict]) -> TaskQuery:
    """The query with its cursor's seq found: a cursor made while its task was pending (no seq yet)
    takes the seq the history gave it since, or its place among the pending new tasks."""
    cursor = query.after
    if cursor is None or cursor.seq is not None:
        return query
    seq = history.seqs_of([cursor.uuid]).get(cursor.uuid)
    if seq is None:
        seq = next((NEW_SEQ + i for i, task in enumerate(new) if task.get("uuid") == cursor.uuid), None)
    return dataclasses.replace(query, after=dataclasses.replace(cursor, seq=seq))


def _cursor_key(query: TaskQuery) -> Key | None:
    cursor = query.after
    if cursor is None:
        return None
    seq = NEW_SEQ if cursor.seq is None else cursor.seq
    return (seq,) if cursor.column is None else _value_key(cursor.value, seq)


def cursors(history: History, query: TaskQuery, tasks: list[TaskDict]) -> list[Cursor]:
    """The cursor just past each of these tasks in the query's order (one lookup of their seqs)."""
    seqs = history.seqs_of([task["uuid"] for task in tasks if isinstance(task.get("uuid"), str)])
    return [cursor_of(query, task, seqs.get(task.get("uuid"))) for task in tasks]  # type: ignore[arg-type]


@dataclasses.dataclass
class _Pending:
    """The pending tasks as one query sees them, beside one snapshot of the history."""

    seqs: dict[str, int]  # those the history already holds, with their seq
    new: list[TaskDict]  # those it does not hold yet, in the order it will take them in
    matching: list[tuple[Key, TaskDict]]  # those the query selects, in its order

    @property
    def stale(self) -> list[int]:
        return sorted(self.seqs.values())


def _pending(history: History, query: TaskQuery, pending: dict[str, TaskDict], with_matches: bool) -> _Pending:
    seqs = history.seqs_of(pending)
    key = order_key(query)
    past = _past(query, _cursor_key(query))
    new: list[TaskDict] = []
    matching: list[tuple[Key, TaskDict]] = []
    for uuid, task in pending.items():
        seq = seqs.get(uuid)
        if seq is None:
            seq = NEW_SEQ + len(new)
            new.append(task)
        if with_matches and matches(query, task) and past(row_key := key(task, seq)):
            matching.append((row_key, task))
    matching.sort(key=lambda item: item[0], reverse=query.descending)
    return _Pending(seqs, new, matching)


def page(history: History, query: TaskQuery, pending: dict[str, TaskDict]) -> list[TaskDict]:
    """The query's page, with the pending tasks in their places."""
    if not pending:
        return history.query_tasks(placed(history, query, []))
    plain = is_plain(query) and query.after is None
    with history.snapshot():
        if query.after is not None and query.after.seq is None:
            query = placed(history, query, _pending(history, query, pending, with_matches=False).new)
        over = _pending(history, query, pending, with_matches=not plain)
        if plain:
            return _plain_page(history, query, pending, over)
        if query.after is not None:  # a page past its cursor: the pending matches past it, merged
            window = dataclasses.replace(query, offset=0, limit=None if query.limit is None
                                         else query.offset + query.limit)
            rows = history.tasks_in_order(history.ordered_seqs(window, over.stale))
            key = order_key(query)
            past = list(heapq.merge(((key(task, seq), task) for seq, task in rows), over.matching,
                                    key=lambda item: item[0], reverse=query.descending))
            end = None if query.limit is None else query.offset + query.limit
            return [task for _, task in past[query.offset : end]]
        offset, limit = query.offset, query.limit
        start = max(0, offset - len(over.matching))
        window = dataclasses.replace(query, offset=start, limit=None if limit is None else offset + limit - start)
        rows = history.tasks_in_order(history.ordered_seqs(window, over.stale))
    if start and not rows:
        return []  # the offset is past the end of the list
    key = order_key(query)
    merged = list(heapq.merge(((key(task, seq), task) for seq, task in rows), over.matching,
                              key=lambda item: item[0], reverse=query.descending))
    base = 0
    if start:
        # The pending matches ahead of the window's first row stand before the page anyway.
        first = key(rows[0][1], rows[0][0])
        ahead = sum(1 for k, _ in over.matching if (k > first if query.descending else k < first))
        merged, base = merged[ahead:], start + ahead
    begin = offset - base
    return [task for _, task in merged[begin : None if limit is None else begin + limit]]


def _plain_page(history: History, query: TaskQuery, pending: dict[str, TaskDict], over: _Pending) -> list[TaskDict]:
    """Every task in seq order: the pending ones in the history keep their places, the new ones
    come first (newest first) or last."""
    offset, limit = query.offset, query.limit
    new = over.new[::-1] if query.descending else over.new
    head: list[TaskDict] = []
    if query.descending:
        head = new[offset : None if limit is None else offset + limit]
        offset = max(0, offset - len(new))
        limit = None if limit is None else limit - len(head)
    rows: list[TaskDict] = []
    if limit is None or limit > 0:
        rows = history.query_tasks(dataclasses.replace(query, offset=offset, limit=limit))
        rows = [pending.get(task["uuid"], task) for task in rows]
    if not query.descending and (limit is None or len(rows) < limit):
        skip = max(0, offset - history.task_count())
        rows += new[skip : None if limit is None else skip + limit - len(rows)]
    return head + rows


def count(history: History, query: TaskQuery, pending: dict[str, TaskDict], cap: int | None = None) -> int:
    """How many tasks the query selects (its cursor and page aside), the pending ones counted once, in
    their newest version; with ``cap``, ``cap + 1`` when more than ``cap``."""
    query = dataclasses.replace(query, after=None)
    if not pending:
        return history.count_tasks(query, cap=cap)
    with history.snapshot():
        if is_plain(query):
            over = _pending(history, query, pending, with_matches=False)
            total = history.task_count() + len(over.new)
        else:
            over = _pending(history, query, pending, with_matches=True)
            total = history.count_tasks(query, over.stale, cap) + len(over.matching)
    return total if cap is None else min(total, cap + 1)


class TaskStream:
    """Every task a query selects (no page), read a chunk at a time: memory stays bounded whatever
    the history's size.

    The order is fixed at the start (one snapshot: the seqs, and the pending tasks laid over them);
    the rows are read a chunk at a time afterwards, each in its newest committed version, so a
    task is listed once even if it changes meanwhile; one trimmed meanwhile is left out.
    """

    def __init__(self, history: History, query: TaskQuery, pending: dict[str, TaskDict],
                 chunk: int = STREAM_CHUNK) -> None:
        self.history = history
        self.query = dataclasses.replace(query, offset=0, limit=None)
        self.chunk = chunk
        self.key = order_key(query)
        with history.snapshot():
            if query.after is not None and query.after.seq is None:
                self.query = placed(history, self.query, _pending(history, query, pending, with_matches=False).new)
            over = _pending(history, self.query, pending, with_matches=True)
            self.seqs = history.ordered_seqs(self.query, over.stale)
        self.matching = over.matching
        self.skip = query.offset
        self._at = 0

    def next_chunk(self) -> list[TaskDict] | None:
        """The next tasks in order; None once all were given (past the offset)."""
        if self._at >= len(self.seqs) and not self.matching:
            return None
        rows = self.history.tasks_in_order(self.seqs[self._at : self._at + self.chunk])
        self._at += self.chunk
        out: list[TaskDict] = []
        for seq, task in rows:
            row_key = self.key(task, seq)
            while self.matching and ((self.matching[0][0] > row_key) if self.query.descending
                                     else (self.matching[0][0] < row_key)):
                out.append(self.matching.pop(0)[1])
            out.append(task)
        if self._at >= len(self.seqs):
            out.extend(task for _, task in self.matching)
            self.matching = []
        if self.skip:
            dropped, self.skip = min(self.skip, len(out)), max(0, self.skip - len(out))
            out = out[dropped:]
        return out

    def __iter__(self) -> Iterator[list[TaskDict]]:
        while (chunk := self.next_chunk()) is not None:
            yield chunk
