"""Who may enter through OAuth: ``--auth``, matched against the whole email address.

Flower once matched with an unanchored regular expression, so ``me@example.com.attacker.com``
passed a rule meant for ``me@example.com`` (CVE-2022-30034). Here a rule is either a ``|`` list of
plain addresses (compared exactly, ignoring case) or a regular expression that must match the
entire address. Addresses with control characters, spaces or more than one ``@`` never match.
"""

from __future__ import annotations

import re

_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+")
_SANE_ADDRESS = re.compile(r"[^\s@\x00-\x1f\x7f]+@[^\s@\x00-\x1f\x7f]+")


class EmailPolicy:
    """``allows(email)``: True only for an address the rule names in full."""

    def __init__(self, rule: str) -> None:
        self.rule = rule.strip()
        alternatives = [part.strip() for part in self.rule.split("|")]
        self.addresses: frozenset[str] | None = None
        self.pattern: re.Pattern[str] | None = None
        if self.rule and all(_PLAIN_ADDRESS.fullmatch(part) for part in alternatives):
            self.addresses = frozenset(part.lower() for part in alternatives)
        elif self.rule:
            try:
                self.pattern = re.compile(self.rule, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None

    def __bool__(self) -> bool:
        return bool(self.rule)

    def allows(self, email: str | None) -> bool:
        if not self.rule or not email or not _SANE_ADDRESS.fullmatch(email):
            return False
        if self.addresses is not None:
            return email.lower() in self.addresses
        assert self.pattern is not None
        return self.pattern.fullmatch(email) is not None
