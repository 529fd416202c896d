"""Validated settings: built once at start-up from every source, then read-only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from celery_monitor.cli.options import DEFAULT_TASKS_COLUMNS


@dataclass(frozen=True)
class Settings:
    address: str = ""
    port: int = 5555
    unix_socket: str = ""
    broker: str = ""
    result_backend: str = ""
    app: str = ""
    broker_api: str = ""
    basic_auth: list[str] = field(default_factory=list)
    unauthenticated_api: bool = False
    auth: str = ""
    auth_provider: str = ""
    oauth2_key: str = ""
    oauth2_secret: str = ""
    oauth2_redirect_uri: str = ""
    cookie_secret: str = ""
    read_only: bool = False
    max_tasks: int = 100_000
    max_workers: int = 5000
    purge_offline_workers: int | None = None
    persistent: bool = True
    db: str = "celery-monitor.db"
    state_save_interval: int = 0
    url_prefix: str = ""
    inspect_timeout: float = 1000.0
    enable_events: bool = True
    xheaders: bool = False
    natural_time: bool = True
    tasks_columns: str = DEFAULT_TASKS_COLUMNS
    auto_refresh: bool = True
    conf: str = "flowerconfig.py"
    certfile: str = ""
    keyfile: str = ""
    ca_certs: str = ""
    debug: bool = False
    logging: str = "info"
    task_runtime_metric_buckets: list[float] = field(default_factory=list)
    format_task: Callable[[Any], Any] | None = None
    celery_settings: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        """The URL prefix as a path: '' or '/name'."""
        stripped = self.url_prefix.strip("/")
        return f"/{stripped}" if stripped else ""

    @property
    def flush_interval(self) -> float:
        return self.state_save_interval / 1000 if self.state_save_interval else 0.5
