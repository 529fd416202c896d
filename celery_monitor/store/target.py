"""The store ``--db`` names: SQLite for a file path (or None: in memory), PostgreSQL for a postgresql:// URL."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, cast

from celery_monitor.store import dsn
from celery_monitor.store.base import Store

if TYPE_CHECKING:
    from celery_monitor.store.postgres import PostgresStore


def open_store(db: str | None, standby: bool = False) -> Store:
    """The history ``db`` names (None: SQLite in memory). Raises StoreError with a line to show.

    ``standby``: a PostgreSQL history another monitor leads is opened to stand by, not refused.
    """
    if db is not None and dsn.is_postgres(db):
        from celery_monitor.store.postgres import PostgresStore

        return PostgresStore(db, standby=standby)
    from celery_monitor.store.sqlite import SQLiteStore

    return SQLiteStore(db)


def postgres_of(store: Store) -> PostgresStore | None:
    """``store`` as a PostgreSQL history, or None. A SQLite monitor never imports psycopg (12 MB
    resident): no PostgresStore exists unless its module was loaded."""
    module = sys.modules.get("celery_monitor.store.postgres")
    if module is None or not isinstance(store, module.PostgresStore):
        return None
    return cast("PostgresStore", store)
