"""Checking a password against what the configuration holds: clear text, a bcrypt or an argon2 hash.

Hashes let a Kubernetes secret or a config file hold no usable password. Hash checks are slow on
purpose, so callers run them off the event loop and remember the results (see ``basic``).
"""

from __future__ import annotations

import hmac

BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
ARGON2_PREFIXES = ("$argon2id$", "$argon2i$", "$argon2d$")


class UnusableHash(ValueError):
    """A configured secret that looks like a hash but cannot be read as one."""


def kind_of(secret: str) -> str:
    """'bcrypt', 'argon2' or 'plain': how a configured secret is to be compared."""
    if secret.startswith(BCRYPT_PREFIXES):
        return "bcrypt"
    if secret.startswith(ARGON2_PREFIXES):
        return "argon2"
    return "plain"


def check_configured(secret: str) -> None:
    """Raise UnusableHash when a hash in the configuration is malformed (caught at start-up)."""
    kind = kind_of(secret)
    if kind == "bcrypt":
        parts = secret.split("$")
        if len(parts) != 4 or not parts[2].isdigit() or len(parts[3]) != 53:
            raise UnusableHash("malformed bcrypt hash")
    elif kind == "argon2":
        from argon2 import extract_parameters
        from argon2.exceptions import InvalidHashError

        try:
            extract_parameters(secret)
        except (InvalidHashError, ValueError):
            raise UnusableHash("malformed argon2 hash") from None


def verify(password: bytes, secret: str) -> bool:
    """Whether ``password`` matches the configured ``secret``; never raises on a bad guess."""
    kind = kind_of(secret)
    if kind == "bcrypt":
        import bcrypt

        try:
            return bool(bcrypt.checkpw(password, secret.encode()))
        except ValueError:
            return False
    if kind == "argon2":
        from argon2 import PasswordHasher
        from argon2.exceptions import InvalidHashError, VerificationError

        try:
            return bool(PasswordHasher().verify(secret, password))
        except (VerificationError, InvalidHashError, ValueError):
            return False
    return hmac.compare_digest(password, secret.encode())
