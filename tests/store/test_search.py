"""The task search syntax Flower 2.2 reads: terms, AND/OR, groups, qualifiers, case folding."""

from __future__ import annotations

import sys

import pytest

from celery_monitor.store.search import (
    FOLDS_TO_ASCII,
    All,
    Either,
    SearchError,
    Term,
    fold_expansions,
    kwargs_match,
    matches,
    parse_search,
)

TASK = {"uuid": "5f0c9a1e-0000-4000-8000-00000000abcd", "name": "billing.Charge", "state": "FAILURE",
        "worker": "celery@Worker-7", "args": "('Straße', 42)", "kwargs": "{'user': 'Alice', 'count': 3}",
        "result": "ValueError('card declined')"}


def found(text: str) -> bool:
    return matches(parse_search(text).expression, TASK)


def test_terms_qualifiers_and_groups() -> None:
    expression = parse_search('foo args:bar kwargs:user=alice OR (result:ok state:FAILURE) Name:"a b"').expression
    assert expression == Either((
        All((Term(None, "foo"), Term("args", "bar"), Term("kwargs", "user=alice", ("user", "alice")))),
        All((Term("result", "ok"), Term("state", "FAILURE"), Term("name", "a b"))),
    ))
    terms = parse_search("name:add worker:w1 kwargs:tenant unknown:thing")
    assert terms.names == ["add"] and terms.workers == ["w1"]
    assert [t.field for t in terms.terms()] == ["name", "worker", "kwargs", None]
    assert terms.any == ["unknown:thing"]


def test_quotes_and_escapes() -> None:
    terms = parse_search(r'args:"hello world" "say \"hi\"" kwargs:msg="a b c"')
    assert terms.args == ["hello world"]
    assert terms.any == ['say "hi"']
    assert terms.kwargs == [("msg", "a b c")]
    assert parse_search('"AND"').any == ["AND"]  # quoted, an operator is a plain word


def test_empty_queries_search_for_nothing() -> None:
    assert not parse_search("")
    assert not parse_search(None)
    assert not parse_search("   ")


@pytest.mark.parametrize("text", [
    '"unterminated', "(foo", "foo)", "()", "foo OR", "AND foo", "foo AND AND bar", "NOT foo", "-foo", "args:",
    "x" * 2049, " ".join(["t"] * 129), "((((((deep))))))",
])
def test_refused_like_flower(text: str) -> None:
    with pytest.raises(SearchError):
        parse_search(text)


def test_bare_term_matches_id_name_state_worker_args_kwargs_result() -> None:
    for term in ("5f0c9a1e", "billing", "failure", "worker-7", "straße", "alice", "declined"):
        assert found(term), term
    assert not found("nowhere")


def test_and_is_implied_or_is_written_and_binds_looser() -> None:
    assert found("billing declined")
    assert not found("billing nowhere")
    assert found("billing AND declined")
    assert found("nowhere OR declined")
    assert not found("nowhere OR (billing nowhere)")
    assert found("nowhere billing OR declined")  # (nowhere AND billing) OR declined


def test_case_is_folded_everywhere() -> None:
    assert found("BILLING.charge") and found("Name:billing") and found("WORKER:WORKER-7")
    assert found("state:failure") and found("STATE:Failure")
    assert not found("state:fail")  # state compares whole values
    assert found("STRAßE") and found("straße")  # a term with other letters: Unicode case folding
    assert not found("strasse")  # an ASCII term ignores the case of ASCII letters only, as SQLite's LIKE
    assert found("kwargs:USER=alice") and found("kwargs:count=3") and found("kwargs:user='ALICE'")
    assert not found("kwargs:user=ali")


def test_qualified_terms_look_in_their_field_only() -> None:
    assert found("args:42") and not found("result:42")
    assert found("result:declined") and not found("args:declined")
    assert found("kwargs:count") and not found("kwargs:billing")


def test_kwargs_match_compares_values_not_substrings() -> None:
    kwargs = "{'user': 'alice', 'count': 3, 'flag': True}"
    assert kwargs_match(kwargs, "user", "alice")
    assert kwargs_match(kwargs, "user", "'alice'")
    assert kwargs_match(kwargs, "count", "3")
    assert kwargs_match(kwargs, "flag", "true")
    assert not kwargs_match(kwargs, "user", "ali")
    assert not kwargs_match(kwargs, "missing", "x")
    assert not kwargs_match(None, "user", "alice")
    assert kwargs_match("{'user': 'alice', 'obj': <object at 0x1>}", "user", "alice")


def test_case_folding_facts_hold_for_all_of_unicode() -> None:
    letters = [chr(code) for code in range(sys.maxunicode + 1)]
    assert set(FOLDS_TO_ASCII) == {c for c in letters if not c.isascii() and any(f.isascii() for f in c.casefold())}
    assert fold_expansions() == {c.casefold() for c in letters if len(c.casefold()) > 1}
