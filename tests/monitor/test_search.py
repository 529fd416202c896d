"""Flower's search syntax."""

from __future__ import annotations

from celery_monitor.store.search import kwargs_match, parse_search


def test_bare_and_prefixed_terms() -> None:
    terms = parse_search('foo args:bar kwargs:user=alice result:ok state:FAILURE state:retry name:add worker:w1')
    assert terms.any == ["foo"]
    assert terms.args == ["bar"]
    assert terms.kwargs == [("user", "alice")]
    assert terms.result == ["ok"]
    assert terms.states == ["FAILURE", "RETRY"]
    assert terms.names == ["add"] and terms.workers == ["w1"]


def test_quoted_values_keep_their_spaces() -> None:
    terms = parse_search('args:"hello world" kwargs:msg="a b c" "two words"')
    assert terms.args == ["hello world"]
    assert terms.kwargs == [("msg", "a b c")]
    assert terms.any == ["two words"]


def test_empty_and_odd_input() -> None:
    assert not parse_search("")
    assert not parse_search(None)
    assert not parse_search("   ")
    assert parse_search("args:").args == []
    assert parse_search("unknown:thing").any == ["unknown:thing"]
    assert parse_search('kwargs:novalue').any == ["novalue"]
    assert parse_search('"unterminated').any == ["unterminated"]


def test_kwargs_match_compares_values_not_substrings() -> None:
    kwargs = "{'user': 'alice', 'count': 3, 'flag': True}"
    assert kwargs_match(kwargs, "user", "alice")
    assert kwargs_match(kwargs, "user", "'alice'")
    assert kwargs_match(kwargs, "count", "3")
    assert kwargs_match(kwargs, "flag", "True")
    assert not kwargs_match(kwargs, "user", "ali")
    assert not kwargs_match(kwargs, "missing", "x")
    assert not kwargs_match(None, "user", "alice")
    assert kwargs_match("{'user': 'alice', 'obj': <object at 0x1>}", "user", "alice")
