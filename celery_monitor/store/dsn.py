"""What ``--db`` names, and how to show it: a file path is SQLite, a URL postgresql:// PostgreSQL.

A PostgreSQL URL may carry a password. It reaches the driver and nothing else: every message, log
line and status field shows :func:`shown`, the URL with its password masked.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

SCHEMES = ("postgresql://", "postgres://")
MASK = "****"
# password=... in a URL's query or in a key/value connection string.
_PASSWORD_PARAMETER = re.compile(r"(password=)([^&\s]*)", re.IGNORECASE)


def is_postgres(db: str | None) -> bool:
    return db is not None and db.lower().startswith(SCHEMES)


def shown(db: str | None) -> str | None:
    """``db`` as messages may show it: a PostgreSQL URL's password replaced by ``****``."""
    if db is None or not is_postgres(db):
        return db
    try:
        parts = urlsplit(db)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hosts = netloc.rpartition("@")
            user, colon, _password = userinfo.partition(":")
            netloc = f"{user}{':' + MASK if colon else ''}@{hosts}"
        masked = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    except ValueError:  # not even a URL: show the scheme alone
        return db.split("://", 1)[0] + "://" + MASK
    return _PASSWORD_PARAMETER.sub(lambda m: m.group(1) + MASK, masked)


def password_of(db: str) -> str | None:
    """The password a PostgreSQL URL holds (to scrub it from a driver's message), if any."""
    try:
        password = urlsplit(db).password
    except ValueError:
        password = None
    found = _PASSWORD_PARAMETER.search(db)
    return password or (found.group(2) if found else None)


def scrub(message: str, db: str) -> str:
    """A driver's message on one line, with the URL and its password shown masked."""
    line = " ".join(message.split())
    for secret in filter(None, (db, password_of(db))):
        line = line.replace(secret, shown(db) or MASK if secret == db else MASK)
    return line
