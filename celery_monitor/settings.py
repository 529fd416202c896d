"""Validated settings, built once at start-up from every source, then read-only; and every option.

The one table of options is :class:`Settings` itself: each option is a field with its type, its
default, its help and its checks (:func:`option`). :data:`OPTIONS` is read from the fields, and
drives the command line, the environment (``CELERY_MONITOR_<NAME>`` and, for migration,
``FLOWER_<NAME>``), the config file and the docs (``celery_monitor/cli``). The names are Flower's,
and so are the defaults unless ours say otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeAlias

Kind = Literal["str", "int", "float", "bool", "list", "floats", "duration"]
Duration: TypeAlias = float  # seconds, written as 7d, 12h, 30m, 45s or a number of seconds (values.parse_duration)
# What each field type is read as: the kind of an option follows from its type.
KINDS: dict[str, Kind] = {
    "str": "str", "int": "int", "int | None": "int", "float": "float", "bool": "bool",
    "list[str]": "list", "list[float]": "floats", "Duration | None": "duration",
}  # fmt: skip

TASKS_COLUMNS = (
    "name", "uuid", "state", "args", "kwargs", "result", "received", "started", "runtime", "worker",
    "retries", "revoked", "exception", "expires", "eta",
)  # fmt: skip
DEFAULT_TASKS_COLUMNS = "name,uuid,state,args,kwargs,result,received,started,runtime,worker"


@dataclass(frozen=True, slots=True)
class Option:
    name: str
    kind: Kind
    default: Any
    help: str
    secret: bool = False
    minimum: float | None = None
    maximum: float | None = None


def about(help: str, *, secret: bool = False, minimum: float | None = None,
          maximum: float | None = None) -> dict[str, Any]:
    """The metadata that makes a settings field an option: its help, secrecy and range."""
    return {"option": {"help": help, "secret": secret, "minimum": minimum, "maximum": maximum}}


def option(default: Any, help: str, *, secret: bool = False, minimum: float | None = None,
           maximum: float | None = None) -> Any:
    """A settings field that is also an option; a list option is ``field(default_factory=..., metadata=about(...))``."""
    return field(default=default, metadata=about(help, secret=secret, minimum=minimum, maximum=maximum))


@dataclass(frozen=True)
class Settings:
    address: str = option("", "address to listen on ('' = every interface)")
    port: int = option(5555, "port to listen on", minimum=0, maximum=65535)
    unix_socket: str = option("", "listen on this UNIX socket instead of a TCP port")
    broker: str = option("", "broker URL (default: the Celery app's, else redis://127.0.0.1:6379/0)", secret=True)
    result_backend: str = option("", "result backend URL (for task results and aborts)", secret=True)
    clusters: list[str] = field(default_factory=list, metadata=about(
        "several Celery clusters in one monitor, each NAME=BROKER_URL [result_backend=URL] [broker_api=URL] "
        "[beat_db=URL] [redbeat_url=URL], comma-separated (instead of --broker, --result_backend, --broker_api, "
        "--beat_db and --redbeat_url, which watch one cluster named default)", secret=True))
    app: str = option("", "Celery application to load, module[:attribute]")
    broker_api: str = option("", "RabbitMQ management API URL, e.g. http://user:pass@host:15672/api/", secret=True)
    queues: list[str] = field(default_factory=list, metadata=about(
        "queues always measured, even with no worker consuming them (what an autoscaler scales up from zero on)"))
    basic_auth: list[str] = field(default_factory=list, metadata=about(
        "HTTP Basic users, user:password[,user:password...]", secret=True))
    unauthenticated_api: bool = option(False, "allow the HTTP API without authentication")
    auth: str = option("", "regular expression of emails allowed in through OAuth (whole match)")
    auth_provider: str = option("", "OAuth 2 / OpenID Connect provider")
    oauth2_key: str = option("", "OAuth 2 client id")
    oauth2_secret: str = option("", "OAuth 2 client secret", secret=True)
    oauth2_redirect_uri: str = option("", "OAuth 2 redirect URI")
    cookie_secret: str = option("", "secret for signing session cookies", secret=True)
    oauth2_discovery_url: str = option("", "OpenID Connect discovery URL (--auth_provider=oidc)")
    oauth2_okta_base_url: str = option("", "Okta authorization server URL (--auth_provider=okta)")
    github_oauth_domain: str = option("github.com", "GitHub (Enterprise) host for --auth_provider=github")
    gitlab_oauth_domain: str = option("gitlab.com", "GitLab host for --auth_provider=gitlab")
    gitlab_auth_allowed_groups: list[str] = field(default_factory=list, metadata=about(
        "GitLab groups whose members may sign in"))
    gitlab_min_access_level: int = option(20, "minimum GitLab access level in those groups", minimum=0)
    api_tokens: list[str] = field(default_factory=list, metadata=about(
        "API tokens, name:scope:sha256:<hex>[,...] (scope read-only or full)", secret=True))
    read_only_users: list[str] = field(default_factory=list, metadata=about(
        "users or emails who may look but not control"))
    cluster_access: list[str] = field(default_factory=list, metadata=about(
        "access scoped per cluster, SUBJECT=CLUSTER:RIGHT[,...]: SUBJECT a user, an email, token:NAME or group:NAME "
        "(an OpenID Connect groups claim), CLUSTER "
        "a name or *, RIGHT read or control; a subject named here sees only the clusters named for it"))
    metrics_auth: str = option("none", "credentials /metrics needs: none, basic, token or any")
    session_max_age: int = option(43_200, "seconds a sign-in lasts", minimum=60)
    replicas: int = option(1, "monitor processes behind one URL (more than 1 needs --cookie_secret)", minimum=1)
    redact: list[str] = field(default_factory=list, metadata=about(
        "task data hidden before it is stored or shown, e.g. kwargs.password,args.2"))
    read_only: bool = option(False, "refuse every control action")
    max_tasks: int = option(100_000, "tasks kept in the history", minimum=1)
    max_failed_tasks: int | None = option(
        None, "failed tasks kept for the failures page and the task pages, counted apart from --max_tasks "
        "(default: --max_tasks), so failures can be kept longer than successes", minimum=1)
    max_task_age: Duration | None = option(  # noqa: RUF009 (a float: ruff does not see through the alias)
        None, "tasks first seen longer ago than this are deleted, oldest first, e.g. 7d, 12h, 30m or seconds "
        "(failures too; default: kept whatever their age)", minimum=1)
    max_workers: int = option(5000, "workers kept", minimum=1)
    event_text_limit: int = option(
        65_536, "characters kept of a task's args, kwargs, result, exception and traceback (the rest is cut, "
        "with a marker)", minimum=256, maximum=16_777_216)
    purge_offline_workers: int | None = option(None, "seconds after which offline workers are forgotten", minimum=1)
    event_spool: bool = option(
        False, "on Redis, read events in a process of its own that spools them on disk beside the history, so a "
        "burst waits there and a kill -9 replays it (raw task arguments stay on disk until the history has them: "
        "not with --redact or format_task)")
    event_buffer_mb: int = option(
        64, "megabytes of read events held in memory ahead of the applier (with --event_spool the rest waits in "
        "the spool on disk)", minimum=1)
    persistent: bool = option(True, "keep the history on disk (False: memory only)")
    db: str = option("celery-monitor.db", "history database: a file (SQLite), or postgresql://user:password@host:5432/"
                     "dbname (PostgreSQL; the password is never shown)", secret=True)
    standby: bool = option(
        True, "with a PostgreSQL --db another monitor already ingests into: stand by, serving every page from "
        "the shared history, and take over when it stops (False: stop with one line)")
    state_save_interval: int = option(0, "milliseconds between history writes (0: 500)", minimum=0)
    url_prefix: str = option("", "serve under this path prefix")
    public_url: str = option(
        "", "the monitor's address as its users reach it (with --url_prefix, if any), for the links in notifications, "
        "e.g. https://monitor.example.com/celery (default: as a trusted proxy forwards it, with --xheaders)")
    inspect_timeout: float = option(1000.0, "milliseconds to wait for workers' inspect replies", minimum=1)
    enable_events: bool = option(True, "periodically ask workers to send events")
    beat_db: str = option("", "django-celery-beat's database, to list and control its periodic tasks: a SQLite "
                          "file (or sqlite:///path) or postgresql://user:password@host/dbname", secret=True)
    redbeat_url: str = option("", "Redis URL of RedBeat's schedule, to list and control its entries (default: the "
                              "app's redbeat_redis_url)", secret=True)
    redbeat_key_prefix: str = option("", "RedBeat's key prefix (default: the app's redbeat_key_prefix, else "
                                     "redbeat:)")
    schedule_tolerance: float = option(
        60.0, "seconds a periodic task's run may be late before the entry is flagged as missed", minimum=0)
    xheaders: bool = option(
        False, "behind a proxy: take the browser's scheme, host and address from X-Forwarded-* / Forwarded "
        "headers sent by --trusted_proxies")
    trusted_proxies: list[str] = field(default_factory=lambda: ["127.0.0.1", "::1"], metadata=about(
        "proxies whose forwarding headers --xheaders believes: IP addresses and CIDR networks, or * for any"))
    natural_time: bool = option(True, "show times relative to now")
    tasks_columns: str = option(DEFAULT_TASKS_COLUMNS, "columns of the tasks page ('all' for every one)")
    auto_refresh: bool = option(True, "push live updates to open pages")
    conf: str = option("flowerconfig.py", "Python configuration file")
    certfile: str = option("", "TLS certificate file")
    keyfile: str = option("", "TLS key file")
    ca_certs: str = option("", "CA certificates; when set, clients must present a certificate")
    debug: bool = option(False, "debug logging")
    logging: str = option("info", "log level (debug, info, warning, error)")
    task_runtime_metric_buckets: list[float] = field(default_factory=list, metadata=about(
        "buckets of flower_task_runtime_seconds"))
    metrics_worker_label: str = option(
        "full", "worker label on /metrics: full (name@host), name (drop the host part) or host (keep only it)")
    metrics_max_task_names: int | None = option(
        None, "distinct task names on /metrics; the rest are folded into task=\"other\" (default: no cap)",
        minimum=1)
    # Not options: a function and the notifications only the config file can set, the Celery settings found there, and
    # where each option's value came from.
    format_task: Callable[[Any], Any] | None = None
    notifications: dict[str, Any] | None = None  # channels and rules (docs/notifications.md)
    celery_settings: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        """Secret options masked, so a repr in a log line or a traceback gives nothing away."""
        def shown(name: str, value: Any) -> str:
            found = BY_NAME.get(name)
            return "'***'" if found is not None and found.secret and value else repr(value)

        return f"Settings({', '.join(f'{f.name}={shown(f.name, getattr(self, f.name))}' for f in fields(self))})"

    @property
    def prefix(self) -> str:
        """The URL prefix as a path: '' or '/name'."""
        stripped = self.url_prefix.strip("/")
        return f"/{stripped}" if stripped else ""

    @property
    def flush_interval(self) -> float:
        return self.state_save_interval / 1000 if self.state_save_interval else 0.5


def _default(f: Any) -> Any:
    return f.default_factory() if callable(f.default_factory) else f.default


OPTIONS: tuple[Option, ...] = tuple(
    # str(): the annotations are strings here (``from __future__ import annotations``), the kinds' names.
    Option(f.name, KINDS[str(f.type)], _default(f), **f.metadata["option"]) for f in fields(Settings) if f.metadata
)
BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}

# Options only the config file can set (they are Python objects, not strings).
CONFIG_ONLY = frozenset({"format_task", "notifications"})
