"""Flower 2.2 itself, started from its own virtual environment (scripts/setup.d/45-flower).

It is the reference the compatibility tests compare the monitor with; nothing of it is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.processes import REPO, TESTS_DIR, _stop, free_port, wait_for

FLOWER_VENV = REPO / ".tools" / "flower"
FLOWER_CELERY = FLOWER_VENV / "bin" / "celery"
FLOWER_PYTHON = FLOWER_VENV / "bin" / "python"


def require_flower() -> None:
    if not FLOWER_CELERY.exists():
        pytest.fail(f"Flower is not installed in {FLOWER_VENV}: run scripts/setup.d/45-flower (or scripts/bootstrap)")


@dataclass
class FlowerProcess:
    broker: str
    backend: str
    log: Path
    auth: tuple[str, str]
    extra: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FlowerProcess:
        require_flower()
        env = {**os.environ, "TEST_BROKER_URL": self.broker, "TEST_RESULT_BACKEND": self.backend}
        env.pop("FLOWER_UNAUTHENTICATED_API", None)
        self.process = subprocess.Popen(
            [str(FLOWER_CELERY), "-A", "support.tasks", f"--broker={self.broker}", f"--result-backend={self.backend}",
             "flower", f"--port={self.port}", "--address=127.0.0.1", f"--basic_auth={self.auth[0]}:{self.auth[1]}",
             "--inspect_timeout=1000", "--persistent=False", *self.extra],
            cwd=TESTS_DIR, env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=self.url, auth=self.auth, timeout=20)
        wait_for(self._up, 30, message=f"Flower on port {self.port} (log: {self.log})")
        return self

    def _up(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"Flower exited: {self.log.read_text()[-2000:]}")
        return self.client.get("/healthcheck").status_code == 200

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
        self.client.close()


def flower_options() -> dict[str, dict[str, Any]]:
    """Every option Flower 2.2's command line takes (its own and Tornado's), with its type name."""
    require_flower()
    script = (
        "import json, flower.options, tornado.options as t\n"
        "print(json.dumps({o.name: {'type': o.type.__name__, 'multiple': o.multiple}"
        " for o in t.options._options.values()}))"
    )
    out = subprocess.run([str(FLOWER_PYTHON), "-c", script], check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out))
