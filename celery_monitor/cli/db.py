"""``celery-monitor db upgrade``: apply the PostgreSQL history's schema migrations, and nothing else.

The monitor applies them itself when it starts; operators who change schemas in a step of their
own (before a rollout, with a role that may alter tables) run this instead, with the same
``--db`` (or ``CELERY_MONITOR_DB`` / ``FLOWER_DB``, or the ``--conf`` file) as the monitor. It
prints one line (the versions before and after) and exits 0; a problem is one line and exit 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import psycopg

from celery_monitor.cli.config import ConfigError, HelpRequested, load_settings
from celery_monitor.store import dsn, pg_schema
from celery_monitor.store.base import StoreError

USAGE = """usage: celery-monitor db upgrade [--db=postgresql://user:password@host:5432/dbname] [--option=value ...]
  apply the schema migrations the PostgreSQL history lacks (the monitor also applies them at start-up);
  --db as the monitor reads it: command line > config file > CELERY_MONITOR_DB / FLOWER_DB"""


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


def main(args: Sequence[str], prog: str = "celery-monitor") -> int:
    if list(args[:1]) != ["upgrade"]:
        print(USAGE, file=sys.stderr if args[:1] not in (["--help"], ["-h"]) else sys.stdout)
        return 0 if list(args[:1]) in (["--help"], ["-h"]) else 2
    try:
        settings = load_settings(list(args[1:]))
        print(upgrade(settings.db))
    except HelpRequested:
        print(USAGE)
    except (ConfigError, StoreError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0
