"""Why the history could not be written, in words that name the disk's state.

SQLite says "database or disk is full" or "disk I/O error"; the second covers a read-only file
system as well as a failing disk. The file system itself tells them apart: after a failed write,
a small file is written beside the history, and the error that gives (no space left, read-only
file system, permission denied) is what the operator reads in ``/api/monitor/status`` and the log.
It runs only after a failure, at most once per attempt to write.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import sys
import tempfile

from celery_monitor.store import dsn

# Errors that come from the storage (disk full, read-only, I/O, locked), not from what was being
# written: retrying the same write later may succeed.
_LOCAL_FAULTS: tuple[type[BaseException], ...] = (sqlite3.OperationalError, OSError)
PROBE_BYTES = 64 * 1024


def storage_faults() -> tuple[type[BaseException], ...]:
    """The storage faults, with PostgreSQL's OperationalError (a lost connection, a server shutting
    down, a full disk on the server) once a PostgreSQL history loaded psycopg: a SQLite monitor
    never imports it (12 MB resident)."""
    psycopg = sys.modules.get("psycopg")
    return _LOCAL_FAULTS if psycopg is None else (*_LOCAL_FAULTS, psycopg.OperationalError)
_WORDS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "no permission to write there",
    errno.EPERM: "no permission to write there",
    errno.EIO: "the disk fails (I/O error)",
}


def _probe(directory: str) -> OSError | None:
    """The error writing a small file in ``directory`` gives, or None when that works."""
    try:
        with tempfile.TemporaryFile(dir=directory, prefix=".celery-monitor-probe-") as probe:
            probe.write(b"\0" * PROBE_BYTES)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        return exc
    return None


def explain(exc: BaseException, path: str | None) -> str:
    """One line: what went wrong writing the history at ``path`` (None: in memory)."""
    detail = " ".join(str(exc).split()) or type(exc).__name__
    if path is not None and dsn.is_postgres(path):
        return f"cannot write the history at {dsn.shown(path)}: {dsn.scrub(detail, path)}"
    if path is None:
        return f"cannot write the in-memory history: {detail}"
    problem = _probe(os.path.dirname(os.path.abspath(path)))
    if problem is None:
        return f"cannot write the history at {path}: {detail}"
    words = _WORDS.get(problem.errno or 0, problem.strerror or type(problem).__name__)
    return f"cannot write the history at {path}: {words} ({detail})"
