"""``celery-monitor db``: the history's maintenance commands.

``db upgrade`` applies the PostgreSQL history's schema migrations, and nothing else. The monitor
applies them itself when it starts; operators who change schemas in a step of their own (before a
rollout, with a role that may alter tables) run this instead, with the same ``--db`` (or
``CELERY_MONITOR_DB`` / ``FLOWER_DB``, or the ``--conf`` file) as the monitor.

``db copy --from=<history> --to=<history>`` moves a history between stores (a SQLite file to
PostgreSQL, or back) while no monitor uses either.

Each prints one line and exits 0; a problem is one line and exit 2.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import psycopg

from celery_monitor.cli.config import ConfigError, HelpRequested, load_settings
from celery_monitor.store import dsn, pg_schema
from celery_monitor.store.base import Store, StoreError
from celery_monitor.store.copy import CopyReport, copy_history
from celery_monitor.store.target import open_store

USAGE = """usage: celery-monitor db upgrade [--db=postgresql://user:password@host:5432/dbname] [--option=value ...]
  apply the schema migrations the PostgreSQL history lacks (the monitor also applies them at start-up);
  --db as the monitor reads it: command line > config file > CELERY_MONITOR_DB / FLOWER_DB
       celery-monitor db copy --from=celery-monitor.db --to=postgresql://user:password@host:5432/dbname
  copy a whole history (tasks, workers, audit trail, counters) into an empty one; stop the monitor first"""


def upgrade(db: str) -> str:
    """Apply the missing migrations to the database ``db`` names; the line to print."""
    if not dsn.is_postgres(db):
        raise StoreError(f"{db!r} is not a postgresql:// URL: a SQLite history needs no separate upgrade "
                         "(the monitor brings its file up to date when it opens it)")
    try:
        with psycopg.connect(db, autocommit=True, connect_timeout=10) as conn:
            before, after = pg_schema.upgrade(conn)
    except psycopg.Error as exc:
        raise StoreError(f"{dsn.shown(db)}: {dsn.scrub(str(exc), db)}") from None
    if before == after:
        return f"{dsn.shown(db)}: schema already at version {after}"
    return f"{dsn.shown(db)}: schema upgraded from version {before} to {after}"


class UsageError(ValueError):
    """A ``db copy`` command line that does not say what to copy where: one line."""


def copy_arguments(args: Sequence[str]) -> tuple[str, str]:
    """``--from`` and ``--to`` of ``db copy`` (``--from=x`` or ``--from x``); UsageError otherwise."""
    given: dict[str, str] = {}
    rest = list(args)
    while rest:
        word = rest.pop(0)
        name, equals, value = word.partition("=")
        if name not in ("--from", "--to"):
            raise UsageError(f"db copy takes --from and --to, not {word.split('=')[0]!r}")
        if not equals:
            if not rest:
                raise UsageError(f"{name} needs a value")
            value = rest.pop(0)
        if not value:
            raise UsageError(f"{name} needs a value")
        given[name] = value
    missing = [name for name in ("--from", "--to") if name not in given]
    if missing:
        raise UsageError(f"db copy needs {' and '.join(missing)}")
    return given["--from"], given["--to"]


def copy(source_db: str, target_db: str) -> str:
    """Copy the history at ``source_db`` into the empty one at ``target_db``; the line to print."""
    if source_db == target_db:
        raise StoreError("--from and --to name the same history")
    if not dsn.is_postgres(source_db) and not os.path.isfile(source_db):
        raise StoreError(f"--from: {source_db} is not a file (a SQLite history) or a postgresql:// URL")
    source = _open("--from", source_db)
    try:
        target = _open("--to", target_db)
        try:
            report = copy_history(source, target, progress=_show_progress)
        finally:
            target.close()
    finally:
        source.close()
    return f"copied {_counted(report)} from {dsn.shown(source_db)} to {dsn.shown(target_db)}"


def _open(option: str, db: str) -> Store:
    try:
        return open_store(db)
    except StoreError as exc:
        raise StoreError(f"{option}: {exc}") from None


def _show_progress(done: int, total: int) -> None:
    if sys.stderr.isatty():
        print(f"\r{done:,} of {total:,} tasks", end="" if done < total else "\n", file=sys.stderr, flush=True)


def _counted(report: CopyReport) -> str:
    def count(n: int, one: str, many: str) -> str:
        return f"{n:,} {one if n == 1 else many}"

    return (f"{count(report.tasks, 'task', 'tasks')}, {count(report.failures, 'failure', 'failures')}, "
            f"{count(report.workers, 'worker', 'workers')} and "
            f"{count(report.audit_entries, 'audit entry', 'audit entries')}")


def main(args: Sequence[str], prog: str = "celery-monitor") -> int:
    command = list(args[:1])
    if command not in (["upgrade"], ["copy"]):
        print(USAGE, file=sys.stderr if command not in (["--help"], ["-h"]) else sys.stdout)
        return 0 if command in (["--help"], ["-h"]) else 2
    try:
        if command == ["copy"]:
            if list(args[1:2]) in (["--help"], ["-h"]):
                raise HelpRequested
            print(copy(*copy_arguments(args[1:])))
            return 0
        settings = load_settings(list(args[1:]))
        print(upgrade(settings.db))
    except HelpRequested:
        print(USAGE)
    except (ConfigError, StoreError, UsageError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0
