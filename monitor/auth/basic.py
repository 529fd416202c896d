"""HTTP Basic credentials, compared in constant time."""

from __future__ import annotations

import base64
import binascii
import hmac


class BasicUsers:
    def __init__(self, pairs: list[str]) -> None:
        self._users: list[tuple[bytes, bytes]] = []
        for pair in pairs:
            user, _, password = pair.partition(":")
            self._users.append((user.encode(), password.encode()))

    def __bool__(self) -> bool:
        return bool(self._users)

    def check(self, header: str | None) -> str | None:
        """Return the user name for a valid ``Authorization: Basic`` header, else None."""
        if not header or header[:6].lower() != "basic ":
            return None
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        user, sep, password = decoded.partition(b":")
        if not sep:
            return None
        found = None
        # Compare against every entry so timing tells nothing about which part matched.
        for known_user, known_password in self._users:
            user_ok = hmac.compare_digest(user, known_user)
            password_ok = hmac.compare_digest(password, known_password)
            if user_ok and password_ok and found is None:
                found = known_user.decode()
        return found
