"""HTTP Basic users: clear-text passwords compared in constant time, or bcrypt/argon2 hashes.

A browser sends the same header with every request, and a hash check costs a fraction of a second
of CPU, so a successful check is remembered (keyed by a keyed digest of the header, never the header
itself) and hash checks run in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Iterable

from celery_monitor.auth import passwords

REMEMBERED = 512


def split_pairs(items: Iterable[str]) -> list[str]:
    """Rejoin ``user:secret`` pairs that a comma-separated option cut apart.

    An argon2 hash holds commas (``m=65536,t=3,p=4``); a piece without a colon continues the
    pair before it.
    """
    pairs: list[str] = []
    for item in items:
        if pairs and ":" not in item and passwords.kind_of(pairs[-1].partition(":")[2]) == "argon2":
            pairs[-1] += "," + item
        else:
            pairs.append(item)
    return pairs


def parse_pairs(items: Iterable[str]) -> list[tuple[str, str]]:
    """``user:secret`` pairs as tuples; ValueError with a reason (never the secret) when malformed."""
    users: list[tuple[str, str]] = []
    for pair in split_pairs(items):
        user, sep, secret = pair.partition(":")
        if not sep or not user or not secret:
            raise ValueError("expected user:password pairs separated by commas")
        try:
            passwords.check_configured(secret)
        except passwords.UnusableHash as exc:
            raise ValueError(f"user {user!r}: {exc}") from None
        users.append((user, secret))
    return users


class BasicUsers:
    def __init__(self, pairs: Iterable[str]) -> None:
        self._users = [(user.encode(), secret) for user, secret in parse_pairs(pairs)]
        self._key = secrets.token_bytes(32)
        self._remembered: OrderedDict[bytes, str] = OrderedDict()

    def __bool__(self) -> bool:
        return bool(self._users)

    @staticmethod
    def credentials(header: str | None) -> tuple[bytes, bytes] | None:
        """(user, password) from an ``Authorization: Basic`` header, or None."""
        if not header or header[:6].lower() != "basic ":
            return None
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        user, sep, password = decoded.partition(b":")
        return (user, password) if sep else None

    def check_sync(self, user: bytes, password: bytes) -> str | None:
        """The user name when the password is right; compares with every entry of that name."""
        found = None
        for known_user, secret in self._users:
            # The user name is compared in constant time too, so timing tells nothing about it.
            if hmac.compare_digest(user, known_user) and passwords.verify(password, secret) and found is None:
                found = known_user.decode()
        return found

    async def check(self, header: str | None) -> str | None:
        """The user name for a valid ``Authorization: Basic`` header, else None."""
        creds = self.credentials(header)
        if creds is None or not self._users:
            return None
        digest = hmac.new(self._key, header.encode("latin-1", "replace") if header else b"", hashlib.sha256).digest()
        known = self._remembered.get(digest)
        if known is not None:
            self._remembered.move_to_end(digest)
            return known
        if any(passwords.kind_of(secret) != "plain" for _, secret in self._users):
            user = await asyncio.to_thread(self.check_sync, *creds)
        else:
            user = self.check_sync(*creds)
        if user is not None:
            self._remembered[digest] = user
            while len(self._remembered) > REMEMBERED:
                self._remembered.popitem(last=False)
        return user

    def user_name(self, header: str | None) -> str | None:
        """The user name a header claims (for the log of a failed login), whatever its password."""
        creds = self.credentials(header)
        return creds[0].decode("utf-8", "replace")[:64] if creds else None
