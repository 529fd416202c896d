"""The delivery log and the settings added through the API, on both stores."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from celery_monitor.notify.ledger import Ledger
from celery_monitor.store import target


@pytest.fixture
def history(history_db: str) -> Iterator[str]:
    """The history opened first, as the monitor does (on PostgreSQL its migrations create the tables)."""
    store = target.open_store(history_db)
    yield history_db
    store.close()


def test_the_delivery_log_keeps_each_outcome_newest_first(history: str) -> None:
    ledger = Ledger(history)
    try:
        first = ledger.add("m1", "failures", "hook", "firing", "[ERROR] failures: 3 x t failed")
        second = ledger.add("m2", "failures", "mail", "firing", "[ERROR] failures: 1 x t failed")
        ledger.update(first, "retrying", 1, "HTTP 500")
        ledger.update(first, "delivered", 2, None)
        ledger.update(second, "failed", 5, "SMTP failed (ConnectionRefusedError)")
        rows = ledger.recent(10)
        assert [(r["message_id"], r["outcome"], r["attempts"], r["last_error"]) for r in rows] == [
            ("m2", "failed", 5, "SMTP failed (ConnectionRefusedError)"), ("m1", "delivered", 2, None)]
        assert ledger.count() == 2
        assert [r["message_id"] for r in ledger.recent(1, offset=1)] == ["m1"]
    finally:
        ledger.close()


def test_settings_added_through_the_api_outlive_a_restart(history: str) -> None:
    ledger = Ledger(history)
    ledger.save("channel", "hook", {"kind": "webhook", "url": "http://x/", "secret": "k"})
    ledger.save("channel", "hook", {"kind": "webhook", "url": "http://y/", "secret": "k"})
    ledger.save("rule", "r", {"kind": "task_failed", "channels": ["hook"]})
    ledger.close()
    again = Ledger(history)
    try:
        assert again.settings() == [("channel", "hook", {"kind": "webhook", "url": "http://y/", "secret": "k"}),
                                    ("rule", "r", {"kind": "task_failed", "channels": ["hook"]})]
        again.delete("rule", "r")
        assert [name for _, name, _ in again.settings()] == ["hook"]
    finally:
        again.close()
