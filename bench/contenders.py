"""The consumers under test, each a real process: our monitor, Flower 2.2 and the bare ceiling.

Each tells how many task events it has ingested (``flower_events_total`` summed; the ceiling's
counter file), its resident memory, and (the monitors) a task's state.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from brokers import free_port, wait_until

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENV_BIN = Path(sys.executable).parent
FLOWER_VENV = REPO / ".tools" / "flower-2.2"


def _stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()


def process_tree(pid: int) -> list[int]:
    """The process and its descendants alive now (our monitor reads Redis in a child process)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents.setdefault(int(_stat(int(entry))[1]), []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(parents.get(current, []))
    return tree


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and its children (from /proc, so no extra dependency)."""
    total = 0
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process and its children, alive or ended (a fair yardstick
    on a machine others share)."""
    fields = _stat(pid)
    ticks = sum(int(x) for x in fields[11:15])  # its own, and its ended children's
    for member in process_tree(pid)[1:]:
        try:
            ticks += sum(int(x) for x in _stat(member)[11:13])
        except OSError:
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


class Contender:
    label = "?"
    has_api = True

    def __init__(self, broker: str, workdir: Path) -> None:
        self.broker = broker
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)
        self.log = self.workdir / f"{self.label}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def start(self, timeout: float = 120) -> float:
        """Start the process; returns the seconds until it answers."""
        started = time.monotonic()
        self.process = subprocess.Popen(self.command(), cwd=self.workdir, env=self.environment(),
                                        stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        wait_until(self.ready, timeout, f"{self.label} to answer (log: {self.log})", 0.02)
        return time.monotonic() - started

    def ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise SystemExit(f"{self.label} exited with {self.process.returncode}; see {self.log}")
        return self.client.get("/healthcheck").status_code == 200

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def rss(self) -> int:
        assert self.process is not None
        return rss_bytes(self.process.pid)

    def cpu(self) -> float:
        assert self.process is not None
        return cpu_seconds(self.process.pid)

    def task_events(self) -> int:
        """Task events ingested so far: the sum of ``flower_events_total``."""
        total = 0.0
        for line in self.client.get("/metrics").text.splitlines():
            if line.startswith("flower_events_total{"):
                total += float(line.rsplit(" ", 1)[1])
        return int(total)

    def task_state(self, uuid: str) -> str | None:
        response = self.client.get(f"/api/task/info/{uuid}")
        if response.status_code != 200:
            return None
        return response.json().get("state")  # type: ignore[no-any-return]

    def close(self) -> None:
        self.stop()
        self.client.close()


class OurMonitor(Contender):
    label = "celery-monitor"

    def __init__(self, broker: str, workdir: Path, max_tasks: int, db: Path | str | None = None,
                 extra: list[str] | None = None) -> None:
        super().__init__(broker, workdir)
        self.max_tasks = max_tasks
        self.db = db or workdir / "monitor.db"  # a file, or a postgresql:// URL
        self.extra = extra or []

    def command(self) -> list[str]:
        return [str(VENV_BIN / "celery-monitor"), f"--broker={self.broker}", f"--port={self.port}",
                "--address=127.0.0.1", "--unauthenticated_api", f"--db={self.db}", f"--max_tasks={self.max_tasks}",
                "--logging=warning", "--event_spool", *self.extra]  # the reader process and its spool, on Redis


class Flower(Contender):
    label = "flower-2.2"

    def __init__(self, broker: str, workdir: Path, max_tasks: int) -> None:
        super().__init__(broker, workdir)
        self.max_tasks = max_tasks

    def command(self) -> list[str]:
        return [str(FLOWER_VENV / "bin" / "celery"), f"--broker={self.broker}", "flower", f"--port={self.port}",
                "--address=127.0.0.1", f"--max_tasks={self.max_tasks}", "--persistent=True",
                f"--db={self.workdir / 'flower.db'}", "--logging=warning"]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["FLOWER_UNAUTHENTICATED_API"] = "true"
        env.pop("VIRTUAL_ENV", None)
        return env


class Ceiling(Contender):
    """The bare reader (bench/ceiling.py): no HTTP API, counters in a file."""

    label = "bare ceiling"
    has_api = False

    def __init__(self, redis_port: int, workdir: Path) -> None:
        super().__init__(f"redis://127.0.0.1:{redis_port}/0", workdir)
        self.redis_port = redis_port
        self.counters = workdir / "ceiling.counters"

    def command(self) -> list[str]:
        return [sys.executable, str(BENCH / "ceiling.py"), str(self.redis_port), str(self.counters)]

    def ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise SystemExit(f"the ceiling reader exited with {self.process.returncode}; see {self.log}")
        return self.counters.exists()

    def task_events(self) -> int:
        return int(self.counters.read_text().split()[0])

    def task_state(self, uuid: str) -> str | None:
        return None


class AmqpCeiling(Ceiling):
    """The bare AMQP consumer (bench/ceiling_amqp.py) on a RabbitMQ virtual host."""

    def __init__(self, vhost: str, workdir: Path) -> None:
        Contender.__init__(self, f"amqp://guest:guest@127.0.0.1:5672/{vhost}", workdir)
        self.vhost = vhost
        self.counters = workdir / "ceiling.counters"

    def command(self) -> list[str]:
        return [sys.executable, str(BENCH / "ceiling_amqp.py"), self.vhost, str(self.counters)]


def ensure_flower() -> None:
    """Flower 2.2 in a virtual environment of its own (created once, under .tools/)."""
    marker = FLOWER_VENV / ".installed"
    if marker.exists():
        return
    if not (FLOWER_VENV / "bin" / "pip").exists():
        subprocess.run([sys.executable, "-m", "venv", str(FLOWER_VENV)], check=True)
    # kombu's Redis transport imports packaging and redis, which Flower's requirements leave out.
    subprocess.run([str(FLOWER_VENV / "bin" / "pip"), "install", "-q", "flower==2.2.*", "redis>=5", "packaging"],
                   check=True)
    marker.touch()
