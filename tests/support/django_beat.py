"""django-celery-beat driven through Django itself, in a process of its own (Django is set up once
per process): ``python -m support.django_beat <db> create`` migrates and writes the tests' entries,
``... show <name>`` prints an entry as Django reads it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from support.processes import TESTS_DIR


def run(db: str, *command: str) -> Any:
    """Run a command of this module against ``db``; its JSON answer."""
    env = {**os.environ, "TEST_BEAT_DB": db, "DJANGO_SETTINGS_MODULE": "support.django_beat_settings",
           "PYTHONPATH": str(TESTS_DIR)}
    done = subprocess.run([sys.executable, "-m", "support.django_beat", *command], cwd=TESTS_DIR, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _create() -> dict[str, Any]:
    from datetime import UTC, datetime, timedelta

    from django.core.management import call_command
    from django_celery_beat.models import (
        ClockedSchedule,
        CrontabSchedule,
        IntervalSchedule,
        PeriodicTask,
        SolarSchedule,
    )

    call_command("migrate", verbosity=0)
    every_second = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="dj-tick", task="tests.echo", interval=every_second, args=json.dumps(["b"]),
                                kwargs=json.dumps({"password": "swordfish", "n": 2}))
    weekly = CrontabSchedule.objects.create(minute="30", hour="7", day_of_week="1", day_of_month="*",
                                            month_of_year="*", timezone="Europe/Paris")
    PeriodicTask.objects.create(name="dj-weekly", task="tests.add", crontab=weekly, args=json.dumps([2, 2]),
                                queue="celery")
    # Solar and clocked entries stay disabled: the beat would need ephem for the first, and the second is
    # a one-off in the past; they are here to be listed.
    sunrise = SolarSchedule.objects.create(event="sunrise", latitude="48.85", longitude="2.35")
    PeriodicTask.objects.create(name="dj-sunrise", task="tests.add", solar=sunrise, args="[1, 1]", enabled=False)
    once = ClockedSchedule.objects.create(clocked_time=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC))
    PeriodicTask.objects.create(name="dj-once", task="tests.add", clocked=once, one_off=True, enabled=False,
                                expire_seconds=int(timedelta(hours=1).total_seconds()))
    return {"created": list(PeriodicTask.objects.values_list("name", flat=True))}


def _show(name: str) -> dict[str, Any]:
    from django_celery_beat.models import PeriodicTask, PeriodicTasks

    task = PeriodicTask.objects.get(name=name)
    changed = PeriodicTasks.last_change()
    return {"enabled": task.enabled, "last_run_at": task.last_run_at.timestamp() if task.last_run_at else None,
            "total_run_count": task.total_run_count, "last_change": changed.timestamp() if changed else None}


def main() -> None:
    import django

    django.setup()
    command, *rest = sys.argv[1:]
    answer = _create() if command == "create" else _show(rest[0])
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
