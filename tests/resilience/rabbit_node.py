"""A private RabbitMQ node: its own name, ports, database and logs, so a test may stop and start it
without touching the machine's shared broker (and the other tests using it).

``rabbitmq-server`` and ``rabbitmqctl`` drop to the ``rabbitmq`` user, so the node's directory
belongs to that user, and lies outside pytest's temporary directories (only root may enter those);
``rabbitmqctl`` reaches the node with the machine's Erlang cookie, as it reaches the shared one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support.processes import free_port


def _ctl(node: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["rabbitmqctl", "-n", node, *args], capture_output=True, text=True, timeout=timeout)


@dataclass
class RabbitNode:
    port: int = field(default_factory=free_port)
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="cmon-rabbit-")))

    @property
    def name(self) -> str:
        return f"cmon-resilience-{self.port}@localhost"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @property
    def env(self) -> dict[str, str]:
        base = self.directory
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "node.pid"),
            # Not the machine's configuration: it names the shared node's listener and plugins.
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        }

    def start(self) -> RabbitNode:
        """Start the node (the first time: create its files) and wait until it accepts clients."""
        if shutil.which("rabbitmq-server") is None:
            pytest.fail("rabbitmq-server is missing: scripts/bootstrap installs it", pytrace=False)
        if not (self.directory / "rabbitmq.conf").exists():
            (self.directory / "rabbitmq.conf").write_text("")
            (self.directory / "enabled_plugins").write_text("[].\n")
            shutil.chown(self.directory, "rabbitmq", "rabbitmq")
            for child in self.directory.iterdir():
                shutil.chown(child, "rabbitmq", "rabbitmq")
        subprocess.run(["rabbitmq-server", "-detached"], env=self.env, capture_output=True, timeout=60, check=True)
        done = _ctl(self.name, "wait", str(self.directory / "node.pid"), "--timeout", "60", timeout=90)
        if done.returncode != 0:
            log = "\n".join(p.read_text()[-2000:] for p in (self.directory / "log").glob("*.log"))
            pytest.fail(f"the private RabbitMQ node did not start: {done.stdout}{done.stderr}\n{log}", pytrace=False)
        return self

    def stop_app(self) -> None:
        """Stop the broker (every connection closed, transient queues gone), keeping the Erlang node."""
        _ctl(self.name, "stop_app").check_returncode()

    def start_app(self) -> None:
        _ctl(self.name, "start_app").check_returncode()
        _ctl(self.name, "await_startup", "--timeout", "60").check_returncode()

    def stop(self) -> None:
        _ctl(self.name, "stop", str(self.directory / "node.pid"), timeout=90)
        shutil.rmtree(self.directory, ignore_errors=True)
