"""The delivery log and the settings added through the API, on both stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.harness import Harness
from support.notify_receivers import HttpReceiver

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


def test_the_monitor_logs_a_test_message_and_keeps_api_channels_on_either_store(history_db: str,
                                                                                tmp_path: Path) -> None:
    receiver = HttpReceiver().start()
    harness = Harness(tmp_path, db=history_db)
    try:
        notifier = harness.monitor.notifier
        notifier.put_channel("hook", {"kind": "webhook", "url": f"{receiver.url}/hook", "secret": "k"})
        assert notifier.send_test("hook", "admin") == {"channel": "hook", "delivered": True, "error": None}
        [row] = harness.get("/api/notifications/deliveries").json()["deliveries"]
        assert (row["channel"], row["status"], row["outcome"], row["attempts"]) == ("hook", "test", "delivered", 1)
    finally:
        harness.close()
    again = Harness(tmp_path, db=history_db)  # a restart: the channel added through the API is still there
    try:
        assert [c["name"] for c in again.get("/api/notifications").json()["channels"]] == ["hook"]
    finally:
        again.close()
        receiver.stop()
