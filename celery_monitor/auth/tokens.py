"""Long-lived API tokens for scripts and Prometheus, configured as SHA-256 digests with a scope.

``--api_tokens name:scope:sha256:<hex>[,...]`` where scope is ``read-only`` or ``full``. Tokens are
random and long, so a fast digest is enough (unlike passwords); the configuration holds no usable
secret. ``python -m celery_monitor.auth.tokens NAME [SCOPE]`` makes a token and its entry.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sys
from collections.abc import Iterable
from dataclasses import dataclass

SCOPES = ("read-only", "full")
PREFIX = "cmon_"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class ApiToken:
    name: str
    scope: str
    digest: bytes


def digest_of(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def parse_tokens(items: Iterable[str]) -> list[ApiToken]:
    """Parse ``name:scope:sha256:<hex>`` entries; ValueError with a reason when malformed."""
    tokens: list[ApiToken] = []
    for item in items:
        name, _, rest = item.partition(":")
        scope, _, digest = rest.partition(":")
        if not name or scope not in SCOPES or not _DIGEST.fullmatch(digest.lower()):
            raise ValueError(f"expected name:scope:sha256:<64 hex digits> with scope one of {', '.join(SCOPES)}"
                             f" (entry {name or '?'!r})")
        tokens.append(ApiToken(name, scope, bytes.fromhex(digest[7:])))
    return tokens


class ApiTokens:
    def __init__(self, items: Iterable[str]) -> None:
        self._tokens = parse_tokens(items)

    def __bool__(self) -> bool:
        return bool(self._tokens)

    @staticmethod
    def bearer(header: str | None) -> str | None:
        if not header or header[:7].lower() != "bearer ":
            return None
        return header[7:].strip() or None

    def check(self, token: str) -> ApiToken | None:
        """The configured token this one hashes to, compared in constant time against every entry."""
        digest = hashlib.sha256(token.encode("utf-8", "replace")).digest()
        found = None
        for known in self._tokens:
            if hmac.compare_digest(digest, known.digest) and found is None:
                found = known
        return found


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def main(argv: list[str]) -> int:
    if not argv or len(argv) > 2 or (len(argv) == 2 and argv[1] not in SCOPES):
        print(f"usage: python -m celery_monitor.auth.tokens NAME [{'|'.join(SCOPES)}]", file=sys.stderr)
        return 2
    token = new_token()
    scope = argv[1] if len(argv) == 2 else "read-only"
    print(f"token (give it to the client, it is not stored): {token}")
    print(f"--api_tokens entry: {argv[0]}:{scope}:{digest_of(token)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
