"""Basic users with clear, bcrypt and argon2 secrets; API tokens stored as digests."""

from __future__ import annotations

import asyncio
import base64

import bcrypt
import pytest
from argon2 import PasswordHasher
from support.auth_stack import token_entry

from celery_monitor.auth import basic, tokens


def header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def check(users: basic.BasicUsers, user: str, password: str) -> str | None:
    return asyncio.run(users.check(header(user, password)))


def test_clear_text_password() -> None:
    users = basic.BasicUsers(["alice:s3cret", "bob:other:with:colons"])
    assert check(users, "alice", "s3cret") == "alice"
    assert check(users, "bob", "other:with:colons") == "bob"
    assert check(users, "alice", "S3cret") is None
    assert check(users, "alice", "s3cret ") is None
    assert check(users, "carol", "s3cret") is None


def test_bcrypt_hash_in_place_of_a_password() -> None:
    hashed = bcrypt.hashpw(b"correct horse", bcrypt.gensalt(rounds=4)).decode()
    users = basic.BasicUsers([f"ops:{hashed}"])
    assert check(users, "ops", "correct horse") == "ops"
    assert check(users, "ops", "wrong horse") is None
    assert check(users, "ops", hashed) is None, "the hash itself is not a password"


def test_argon2_hash_survives_the_comma_separated_option() -> None:
    hashed = PasswordHasher(time_cost=1, memory_cost=1024).hash("battery staple")
    assert "," in hashed
    option_value = f"ops:{hashed},viewer:plain"
    users = basic.BasicUsers(option_value.split(","))
    assert check(users, "ops", "battery staple") == "ops"
    assert check(users, "viewer", "plain") == "viewer"
    assert check(users, "ops", "battery") is None


def test_malformed_headers_are_refused() -> None:
    users = basic.BasicUsers(["alice:pw"])
    for bad in (None, "", "Basic", "Basic !!!", "Basic " + base64.b64encode(b"alicepw").decode(), "Bearer x"):
        assert asyncio.run(users.check(bad)) is None


@pytest.mark.parametrize("pairs, reason", [
    (["alice"], "user:password"),
    ([":pw"], "user:password"),
    (["alice:$2b$12$short"], "bcrypt"),
    (["alice:$argon2id$nonsense"], "argon2"),
])
def test_bad_pairs_are_rejected_without_echoing_the_secret(pairs: list[str], reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as caught:
        basic.parse_pairs(pairs)
    assert "short" not in str(caught.value) and "nonsense" not in str(caught.value)


def test_api_tokens_by_digest_and_scope() -> None:
    known = tokens.ApiTokens([token_entry("prometheus", "read-only", "tok-read"),
                              token_entry("ci", "full", "tok-full")])
    found = known.check("tok-read")
    assert found is not None and (found.name, found.scope) == ("prometheus", "read-only")
    found = known.check("tok-full")
    assert found is not None and found.scope == "full"
    assert known.check("tok-reaD") is None
    assert known.check("") is None
    assert tokens.ApiTokens.bearer("Bearer  abc ") == "abc"
    assert tokens.ApiTokens.bearer("Basic abc") is None


@pytest.mark.parametrize("entry", ["ci:admin:sha256:" + "0" * 64, "ci:full:sha256:1234", "ci:full:md5:" + "0" * 64,
                                   ":full:sha256:" + "0" * 64, "ci:full"])
def test_bad_token_entries(entry: str) -> None:
    with pytest.raises(ValueError, match="name:scope:sha256"):
        tokens.parse_tokens([entry])


def test_token_maker_prints_a_working_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert tokens.main(["grafana", "read-only"]) == 0
    out = capsys.readouterr().out
    token = out.split("stored): ")[1].split()[0]
    entry = out.split("entry: ")[1].strip()
    found = tokens.ApiTokens([entry]).check(token)
    assert found is not None and found.name == "grafana" and found.scope == "read-only"
    assert tokens.main([]) == 2
