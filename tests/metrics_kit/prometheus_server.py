"""Debian's Prometheus, run by a test: its own config, storage and loopback port, queried over HTTP."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from support import processes

from . import tools


@dataclass
class PrometheusServer:
    """Scrapes one target every second with basic auth and evaluates one rules file.

    ``jobs``, when given, replace that one job: scrape configs for the same target (each without its
    ``static_configs`` and intervals, which are filled in), such as one per credential to compare.
    """

    workdir: Path
    target: str
    credentials: tuple[str, str]
    rule_file: Path
    port: int = field(default_factory=processes.free_port)
    process: subprocess.Popen[bytes] | None = None
    jobs: list[dict[str, Any]] | None = None
    client: httpx.Client = field(init=False)

    @property
    def log(self) -> Path:
        return self.workdir / "prometheus.log"

    def start(self) -> PrometheusServer:
        username, password = self.credentials
        jobs = self.jobs or [{"job_name": "celery-monitor", "basic_auth": {"username": username, "password": password}}]
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(self.rule_file)],
            "scrape_configs": [
                {**job, "scrape_interval": "1s", "scrape_timeout": "1s", "static_configs": [{"targets": [self.target]}]}
                for job in jobs
            ],
        }  # fmt: skip
        config_file = self.workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        self.process = subprocess.Popen(
            [tools.binary("prometheus"), f"--config.file={config_file}",
             f"--storage.tsdb.path={self.workdir / 'tsdb'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--log.level=warn"],
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=5)
        processes.wait_for(self._ready, 20, message=f"Prometheus on port {self.port} (log: {self.log})")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"Prometheus exited with {self.process.returncode}: {self.log.read_text()}")
        return self.client.get("/-/ready").status_code == 200

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.client.close()

    def api(self, path: str, **params: str) -> Any:
        body = self.client.get(f"/api/v1/{path}", params=params).json()
        assert body["status"] == "success", f"{path} {params}: {body.get('error')}"
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector; a PromQL error fails the test."""
        return list(self.api("query", query=expr)["result"])

    def value(self, expr: str) -> float | None:
        """The single sample's value, or None while the query has no result."""
        result = self.query(expr)
        assert len(result) <= 1, f"{expr} returned {len(result)} series: {result}"
        return float(result[0]["value"][1]) if result else None

    def settled(self, expr: str, expected: float, timeout: float = 15) -> float | None:
        """Wait until a scrape brings `expr` to `expected`; return the value last seen either way."""
        try:
            processes.wait_for(lambda: self.value(expr) == expected, timeout, message=f"{expr} == {expected}")
        except AssertionError:
            pass
        return self.value(expr)
