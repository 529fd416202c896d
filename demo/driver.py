"""Sends a steady, realistic mix of tasks to the demo workers until stopped."""

from __future__ import annotations

import random
import time
from datetime import date

import tasks
from celery import chain


def main() -> None:
    customer = 1000
    while True:
        customer += 1
        amount = random.randint(100, 50_000)
        chain(tasks.charge_card.s(customer, amount),
              tasks.send_receipt.si(customer, f"customer{customer}@example.com")).apply_async()
        for n in range(random.randint(1, 4)):
            tasks.thumbnail.delay(f"/uploads/{customer}/{n}.png", random.choice([64, 128, 256]))
        if random.random() < 0.1:
            tasks.build_report.apply_async((date.today().isoformat(), random.randint(10, 10_000)), countdown=5)
        time.sleep(random.uniform(0.2, 0.8))


if __name__ == "__main__":
    main()
