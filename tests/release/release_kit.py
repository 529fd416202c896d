"""Helpers of the release tests: a clean copy of the checkout, commands run as a user would run them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from support.processes import free_port, wait_for

REPO = Path(__file__).resolve().parents[2]
BASE_PYTHON = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
DEV_PIP = [sys.executable, "-m", "pip"]
BUNDLE = ("app.js", "app.css", "app.js.map", "app.css.map", "THIRD-PARTY-LICENSES.txt")


def user_environment() -> dict[str, str]:
    """This machine's environment without what would make an install see the development tree."""
    dropped = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PIP_REQUIRE_VIRTUALENV")
    env = {k: v for k, v in os.environ.items()
           if k not in dropped and not k.startswith(("CELERY_MONITOR_", "FLOWER_"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def copy_clean_checkout(destination: Path) -> Path:
    """The files ``git ls-files -co --exclude-standard`` lists: a fresh clone plus work not yet committed."""
    listed = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout
    for raw in listed.split(b"\0"):
        relative = raw.decode()
        source = REPO / relative
        if not relative or not source.is_file():
            continue  # tracked but deleted in the working tree
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    assert (destination / "pyproject.toml").is_file()
    assert not (destination / "monitor" / "web" / "static" / "dist").exists(), "the checkout must not hold a bundle"
    return destination


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env or user_environment(), capture_output=True, text=True,
                          timeout=timeout)


def succeed(done: subprocess.CompletedProcess[str], what: str) -> subprocess.CompletedProcess[str]:
    if done.returncode != 0:
        pytest.fail(f"{what} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}",
                    pytrace=False)
    return done


def wheel_names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


@dataclass(frozen=True)
class Venv:
    path: Path

    def bin(self, name: str) -> Path:
        return self.path / "bin" / name

    @property
    def pip(self) -> list[str]:
        """This machine's pip, working on this venv."""
        return [*DEV_PIP, "--python", str(self.bin("python"))]

    def run(self, *command: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run([str(self.bin(command[0])), *command[1:]], cwd=cwd, timeout=timeout)


@dataclass(frozen=True)
class Release:
    checkout: Path
    wheel: Path
    plain: Venv  # the wheel with no extras
    operator: Venv  # the wheel with [operator]
    scratch: Path




AUTH = ("admin", "s3cret")


@dataclass
class InstalledMonitor:
    """The installed console script, started as the README says: ``celery-monitor --broker=... --basic_auth=...``
    (no ``--broker`` when ``broker`` is empty: ``extra`` gives ``--clusters`` instead)."""

    venv: Venv
    broker: str
    directory: Path
    extra: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    client: httpx.Client = field(init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.directory / f"monitor-{self.port}.log"

    def start(self, wait_connected: bool = True) -> InstalledMonitor:
        command = [str(self.venv.bin("celery-monitor")), *([f"--broker={self.broker}"] if self.broker else []),
                   f"--basic_auth={AUTH[0]}:{AUTH[1]}", f"--port={self.port}", "--address=127.0.0.1",
                   f"--db={self.directory / f'monitor-{self.port}.db'}", *self.extra]
        self.process = subprocess.Popen(command, cwd=self.directory, env=user_environment(),
                                        stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=self.url, auth=AUTH, timeout=15)
        wait_for(self._healthy, 30, message=f"the installed monitor on {self.port} (log: {self.log})")
        if wait_connected:
            wait_for(lambda: self.client.get("/api/monitor/status").json()["receiver"]["connected"], 30,
                     message="the installed monitor's event receiver to connect")
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the monitor exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
        return self.client.get("/healthcheck").status_code == 200

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.client.close()
