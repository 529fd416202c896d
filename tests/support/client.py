"""Sending tasks to the test cluster from the test process."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from celery import Celery


@contextmanager
def celery_client(broker: str, backend: str) -> Iterator[Celery]:
    """A Celery app bound to the test broker, for sending tasks by name."""
    app = Celery("test-client", broker=broker, backend=backend, set_as_current=False)
    app.conf.update(task_send_sent_event=True, broker_connection_retry_on_startup=True)
    os.environ.setdefault("TEST_BROKER_URL", broker)
    try:
        yield app
    finally:
        app.close()
