"""Validated settings: built once at start-up from every source, then read-only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
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
    oauth2_discovery_url: str = ""
    oauth2_okta_base_url: str = ""
    github_oauth_domain: str = "github.com"
    gitlab_oauth_domain: str = "gitlab.com"
    gitlab_auth_allowed_groups: list[str] = field(default_factory=list)
    gitlab_min_access_level: int = 20
    api_tokens: list[str] = field(default_factory=list)
    read_only_users: list[str] = field(default_factory=list)
    metrics_auth: str = "none"
    session_max_age: int = 43_200
    replicas: int = 1
    redact: list[str] = field(default_factory=list)
    read_only: bool = False
    max_tasks: int = 100_000
    max_workers: int = 5000
    event_text_limit: int = 65_536
    purge_offline_workers: int | None = None
    persistent: bool = True
    db: str = "celery-monitor.db"
    state_save_interval: int = 0
    url_prefix: str = ""
    inspect_timeout: float = 1000.0
    enable_events: bool = True
    xheaders: bool = False
    trusted_proxies: list[str] = field(default_factory=lambda: ["127.0.0.1", "::1"])
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
    metrics_worker_label: str = "full"
    metrics_max_task_names: int | None = None
    format_task: Callable[[Any], Any] | None = None
    celery_settings: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        """Secret options masked, so a repr in a log line or a traceback gives nothing away."""
        from celery_monitor.cli.options import BY_NAME

        def shown(name: str, value: Any) -> str:
            option = BY_NAME.get(name)
            return "'***'" if option is not None and option.secret and value else repr(value)

        return f"Settings({', '.join(f'{f.name}={shown(f.name, getattr(self, f.name))}' for f in fields(self))})"

    @property
    def prefix(self) -> str:
        """The URL prefix as a path: '' or '/name'."""
        stripped = self.url_prefix.strip("/")
        return f"/{stripped}" if stripped else ""

    @property
    def flush_interval(self) -> float:
        return self.state_save_interval / 1000 if self.state_save_interval else 0.5
