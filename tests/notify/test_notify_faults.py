"""Faults around a delivery: a delivery log that cannot be written does not stop the message."""

from __future__ import annotations

import time
from pathlib import Path

from support.harness import Harness
from support.notify_receivers import HttpReceiver

from celery_monitor.notify.messages import FIRING, Message


def test_a_message_is_delivered_when_the_delivery_log_cannot_be_written(tmp_path: Path) -> None:
    receiver = HttpReceiver().start()
    conf = tmp_path / "conf.py"
    conf.write_text("notifications = " + repr({
        "channels": {"hook": {"kind": "webhook", "url": f"{receiver.url}/hook", "secret": "k"}},
        "rules": {"failed": {"kind": "task_failed", "channels": ["hook"]}}}) + "\n")
    harness = Harness(tmp_path, f"--conf={conf}")
    try:
        notifier = harness.monitor.notifier
        notifier.ledger.close()  # every write now fails
        notifier.enqueue(Message("failed", "task_failed", "error", FIRING, "app.t", "failed: 1 x app.t failed"))
        notifier.deliver_due(time.time())
        [request] = receiver.at("/hook")
        assert request.json()["subject"] == "app.t"
        assert notifier.counts() == [(("webhook", "delivered"), 1)]
    finally:
        receiver.stop()
        harness.monitor.store.close()
