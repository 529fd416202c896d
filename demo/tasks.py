"""A small Celery app whose workers give the demo something real to show."""

from __future__ import annotations

import os
import random
import time

from celery import Celery

app = Celery("demo", broker=os.environ.get("DEMO_BROKER_URL", "redis://127.0.0.1:6379/2"),
             backend=os.environ.get("DEMO_RESULT_BACKEND", "redis://127.0.0.1:6379/3"))
app.conf.update(worker_send_task_events=True, task_send_sent_event=True, result_expires=3600,
                broker_connection_retry_on_startup=True, worker_pool_restarts=True)


@app.task(name="billing.charge_card")
def charge_card(customer_id: int, amount_cents: int) -> dict[str, object]:
    time.sleep(random.uniform(0.05, 0.4))
    if random.random() < 0.08:
        raise RuntimeError(f"card declined for customer {customer_id}")
    return {"customer_id": customer_id, "charged": amount_cents}


@app.task(name="email.send_receipt", bind=True, max_retries=3)
def send_receipt(self, customer_id: int, address: str) -> str:  # type: ignore[no-untyped-def]
    if random.random() < 0.15:
        raise self.retry(exc=ConnectionError("smtp timeout"), countdown=1)
    time.sleep(random.uniform(0.02, 0.1))
    return f"sent to {address}"


@app.task(name="reports.build")
def build_report(day: str, rows: int) -> int:
    time.sleep(random.uniform(1.0, 4.0))
    return rows


@app.task(name="images.thumbnail")
def thumbnail(path: str, size: int = 128) -> str:
    time.sleep(random.uniform(0.01, 0.05))
    return f"{path}@{size}"
