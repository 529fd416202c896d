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
    Option("oauth2_discovery_url", "str", "", "OpenID Connect discovery URL (--auth_provider=oidc)"),
    Option("oauth2_okta_base_url", "str", "", "Okta authorization server URL (--auth_provider=okta)"),
    Option("github_oauth_domain", "str", "github.com", "GitHub (Enterprise) host for --auth_provider=github"),
    Option("gitlab_oauth_domain", "str", "gitlab.com", "GitLab host for --auth_provider=gitlab"),
    Option("gitlab_auth_allowed_groups", "list", [], "GitLab groups whose members may sign in"),
    Option("gitlab_min_access_level", "int", 20, "minimum GitLab access level in those groups", minimum=0),
    Option("api_tokens", "list", [], "API tokens, name:scope:sha256:<hex>[,...] (scope read-only or full)",
           secret=True),
    Option("read_only_users", "list", [], "users or emails who may look but not control"),
    Option("metrics_auth", "str", "none", "credentials /metrics needs: none, basic, token or any"),
    Option("session_max_age", "int", 43_200, "seconds a sign-in lasts", minimum=60),
    Option("replicas", "int", 1, "monitor processes behind one URL (more than 1 needs --cookie_secret)",
           minimum=1),
    Option("redact", "list", [], "task data hidden before it is stored or shown, e.g. kwargs.password,args.2"),
    Option("read_only", "bool", False, "refuse every control action"),
    Option("max_tasks", "int", 100_000, "tasks kept in the history", minimum=1),
    Option("max_workers", "int", 5000, "workers kept", minimum=1),
    Option("event_text_limit", "int", 65_536,
           "characters kept of a task's args, kwargs, result, exception and traceback (the rest is cut, "
           "with a marker)", minimum=256, maximum=16_777_216),
    Option("purge_offline_workers", "int", None, "seconds after which offline workers are forgotten",
           minimum=1),
    Option("persistent", "bool", True, "keep the history on disk (False: memory only)"),
    Option("db", "str", "celery-monitor.db", "history database file"),
    Option("state_save_interval", "int", 0, "milliseconds between history writes (0: 500)", minimum=0),
    Option("url_prefix", "str", "", "serve under this path prefix"),
    Option("inspect_timeout", "float", 1000.0, "milliseconds to wait for workers' inspect replies",
           minimum=1),
    Option("enable_events", "bool", True, "periodically ask workers to send events"),
    Option("xheaders", "bool", False,
           "behind a proxy: take the browser's scheme, host and address from X-Forwarded-* / Forwarded "
           "headers sent by --trusted_proxies"),
    Option("trusted_proxies", "list", ["127.0.0.1", "::1"],
           "proxies whose forwarding headers --xheaders believes: IP addresses and CIDR networks, or * for any"),
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
    Option("metrics_worker_label", "str", "full",
           "worker label on /metrics: full (name@host), name (drop the host part) or host (keep only it)"),
    Option("metrics_max_task_names", "int", None,
           "distinct task names on /metrics; the rest are folded into task=\"other\" (default: no cap)",
           minimum=1),
)

BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}

# Options only the config file can set (they are Python objects, not strings).
CONFIG_ONLY = frozenset({"format_task"})
