"""A real ``celery beat`` process for the tests, with the scheduler they ask for."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from support.processes import BIN, TESTS_DIR, _stop


@dataclass
class Beat:
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        _stop(self.process, 15)


def start_beat(broker: str, tmp: Path, *extra: str, env: dict[str, str] | None = None,
               app: str = "support.periodic") -> Beat:
    log = tmp / "beat.log"
    environ = {**os.environ, "TEST_BROKER_URL": broker, **(env or {})}
    process = subprocess.Popen(
        [str(BIN / "celery"), "-A", app, "beat", "--loglevel=INFO", "-s", str(tmp / "beat-schedule"), *extra],
        cwd=TESTS_DIR, env=environ, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )
    return Beat(process, log)
