"""--auth decides who may enter through OAuth: the whole address must match (CVE-2022-30034)."""

from __future__ import annotations

import pytest

from celery_monitor.auth.allow import EmailPolicy

BYPASSES = [
    "me@example.com.attacker.com",      # the CVE: an unanchored match on a longer domain
    "me@example.com@attacker.com",
    "me@example.com\n",                  # "$" would match before a trailing newline
    "me@example.com\nother@attacker.com",
    "me@example.com\x00.attacker.com",
    "xme@example.com",
    "me@example.comm",
    "me@example.com ",
    " me@example.com",
    "me@exampleXcom",                    # an unescaped dot in a plain list must not be a wildcard
    "me@example.com|x",
    "me@\u0435xample.com",               # a Cyrillic letter that looks like "e"
    "",
]


@pytest.mark.parametrize("rule", ["me@example.com", "me@example.com|you@example.org", r"me@example\.com",
                                  r"me@example.com", "^me@example\\.com$"])
@pytest.mark.parametrize("email", BYPASSES)
def test_single_address_rules_resist_bypasses(rule: str, email: str) -> None:
    assert not EmailPolicy(rule).allows(email)


@pytest.mark.parametrize("rule", ["me@example.com", "me@example.com|you@example.org", r"me@example\.com"])
def test_the_named_address_enters_in_any_case(rule: str) -> None:
    policy = EmailPolicy(rule)
    assert policy.allows("me@example.com")
    assert policy.allows("ME@Example.COM")


def test_domain_regex_is_matched_in_full() -> None:
    policy = EmailPolicy(r".*@example\.com")
    assert policy.allows("anyone@example.com")
    for email in ("anyone@example.com.attacker.com", "anyone@example.com@attacker.com", "anyone@attacker.com",
                  "anyone@sub.example.com.evil", "anyone@example.com\n"):
        assert not policy.allows(email), email


def test_alternation_regex_cannot_be_escaped_by_the_other_branch() -> None:
    # Without a whole match, "a@x\.com|.*@y\.com" as a prefix match would let a@x.com.evil in.
    policy = EmailPolicy(r"a@x\.com|.*@y\.com")
    assert policy.allows("a@x.com") and policy.allows("b@y.com")
    assert not policy.allows("a@x.com.evil.org")
    assert not policy.allows("b@y.com.evil.org")


def test_empty_rule_lets_nobody_in_and_a_bad_rule_is_an_error() -> None:
    assert not EmailPolicy("").allows("me@example.com")
    with pytest.raises(ValueError, match="regular expression"):
        EmailPolicy("me@(example.com")
