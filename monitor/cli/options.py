"""Every option the monitor takes, with Flower's names, types and (where ours differ) defaults.

One table drives the command line, the environment (``CELERY_MONITOR_<NAME>`` and, for
migration, ``FLOWER_<NAME>``), the config file and the docs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["str", "int", "float", "bool", "list", "floats"]

DEFAULT_TASKS_COLUMNS = "name,uuid,state,args,kwargs,result,received,started,runtime,worker"
TASKS_COLUMNS = (
    "name", "uuid", "state", "args", "kwargs", "result", "received", "started", "runtime", "worker",
    "retries", "revoked", "exception", "expires", "eta",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Option:
    name: str
    kind: Kind
    default: Any
    help: str
    secret: bool = False
    minimum: float | None = None
    maximum: float | None = None


OPTIONS: tuple[Option, ...] = (
    Option("address", "str", "", "address to listen on ('' = every interface)"),
    Option("port", "int", 5555, "port to listen on", minimum=0, maximum=65535),
    Option("unix_socket", "str", "", "listen on this UNIX socket instead of a TCP port"),
    Option("broker", "str", "", "broker URL (default: the Celery app's, else redis://127.0.0.1:6379/0)",
           secret=True),
    Option("result_backend", "str", "", "result backend URL (for task results and aborts)", secret=True),
    Option("app", "str", "", "Celery application to load, module[:attribute]"),
    Option("broker_api", "str", "", "RabbitMQ management API URL, e.g. http://user:pass@host:15672/api/",
           secret=True),
    Option("basic_auth", "list", [], "HTTP Basic users, user:password[,user:password...]", secret=True),
    Option("unauthenticated_api", "bool", False, "allow the HTTP API without authentication"),
    Option("auth", "str", "", "regular expression of emails allowed in through OAuth (whole match)"),
    Option("auth_provider", "str", "", "OAuth 2 / OpenID Connect provider"),
    Option("oauth2_key", "str", "", "OAuth 2 client id"),
    Option("oauth2_secret", "str", "", "OAuth 2 client secret", secret=True),
    Option("oauth2_redirect_uri", "str", "", "OAuth 2 redirect URI"),
    Option("cookie_secret", "str", "", "secret for signing session cookies", secret=True),
    Option("read_only", "bool", False, "refuse every control action"),
    Option("max_tasks", "int", 100_000, "tasks kept in the history", minimum=1),
    Option("max_workers", "int", 5000, "workers kept", minimum=1),
    Option("purge_offline_workers", "int", None, "seconds after which offline workers are forgotten",
           minimum=1),
    Option("persistent", "bool", True, "keep the history on disk (False: memory only)"),
    Option("db", "str", "celery-monitor.db", "history database file"),
    Option("state_save_interval", "int", 0, "milliseconds between history writes (0: 500)", minimum=0),
    Option("url_prefix", "str", "", "serve under this path prefix"),
    Option("inspect_timeout", "float", 1000.0, "milliseconds to wait for workers' inspect replies",
           minimum=1),
    Option("enable_events", "bool", True, "periodically ask workers to send events"),
    Option("xheaders", "bool", False, "trust X-Forwarded-*/X-Real-Ip headers from a proxy"),
    Option("natural_time", "bool", True, "show times relative to now"),
    Option("tasks_columns", "str", DEFAULT_TASKS_COLUMNS, "columns of the tasks page ('all' for every one)"),
    Option("auto_refresh", "bool", True, "push live updates to open pages"),
    Option("conf", "str", "flowerconfig.py", "Python configuration file"),
    Option("certfile", "str", "", "TLS certificate file"),
    Option("keyfile", "str", "", "TLS key file"),
    Option("ca_certs", "str", "", "CA certificates; when set, clients must present a certificate"),
    Option("debug", "bool", False, "debug logging"),
    Option("logging", "str", "info", "log level (debug, info, warning, error)"),
    Option("task_runtime_metric_buckets", "floats", [], "buckets of flower_task_runtime_seconds"),
)

BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}

# Options only the config file can set (they are Python objects, not strings).
CONFIG_ONLY = frozenset({"format_task"})
