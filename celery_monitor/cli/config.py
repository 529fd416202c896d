"""Reading options from the command line, a config file, the environment and defaults.

Precedence, highest first: command line > config file > environment > defaults. Every value is
parsed and checked here, once; a bad one raises :class:`ConfigError` naming the option.
"""

from __future__ import annotations

import json
import os
import runpy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlparse

from celery_monitor import clusters
from celery_monitor import values as parse
from celery_monitor.auth import checks as auth_checks
from celery_monitor.metrics.cardinality import WORKER_LABEL_MODES
from celery_monitor.notify import model as notify_model
from celery_monitor.settings import BY_NAME, CONFIG_ONLY, TASKS_COLUMNS, Option, Settings

ENV_PREFIXES = ("CELERY_MONITOR_", "FLOWER_")  # first wins
CELERY_ENV = {"broker": "CELERY_BROKER_URL", "result_backend": "CELERY_RESULT_BACKEND"}
SHORT_FLAGS = {"-A": "app", "-b": "broker"}
BROKER_SCHEMES = {"redis", "rediss", "redis+socket", "sentinel", "amqp", "amqps", "pyamqp", "librabbitmq",
                  "memory", "sqs", "qpid", "filesystem", "mongodb", "zookeeper", "confluentkafka"}


class ConfigError(ValueError):
    """A bad option value: the message names the option and what is wrong, on one line."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"--{option}: {message}")
        self.option = option


class HelpRequested(Exception):
    pass


@dataclass(frozen=True)
class CommandLine:
    values: dict[str, str | bool]
    show_help: bool = False
    show_version: bool = False


def _normalise(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def parse_command_line(argv: Sequence[str]) -> CommandLine:
    """Parse ``--name=value``, ``--name value``, bare boolean ``--name`` and ``-A``/``-b``."""
    values: dict[str, str | bool] = {}
    show_help = show_version = False
    i = 0
    args = list(argv)
    while i < len(args):
        arg = args[i]
        i += 1
        if arg in ("-h", "--help"):
            show_help = True
            continue
        if arg == "--version":
            show_version = True
            continue
        if arg in SHORT_FLAGS:
            if i >= len(args):
                raise ConfigError(SHORT_FLAGS[arg], "needs a value")
            values[SHORT_FLAGS[arg]] = args[i]
            i += 1
            continue
        if not arg.startswith("--"):
            raise ConfigError(arg.lstrip("-") or arg, f"unexpected argument {arg!r}")
        name, has_value, value = arg.partition("=")
        name = _normalise(name)
        option = BY_NAME.get(name)
        if option is None:
            raise ConfigError(name, "unknown option (see --help)")
        if has_value:
            values[name] = value
        elif option.kind == "bool":
            word = args[i].lower() if i < len(args) else "-"
            if word in parse.TRUE_WORDS | parse.FALSE_WORDS and not word.startswith("-"):
                values[name] = args[i]
                i += 1
            else:
                values[name] = True
        else:
            if i >= len(args):
                raise ConfigError(name, "needs a value")
            values[name] = args[i]
            i += 1
    return CommandLine(values, show_help, show_version)


def parse_value(option: Option, raw: Any) -> Any:
    """Turn a raw value (a string, or a Python value from the config file) into the option's type."""
    if raw is None:
        return None
    try:
        return _parse(option, raw)
    except parse.BadValue as exc:
        raise ConfigError(option.name, str(exc)) from None


def _parse(option: Option, raw: Any) -> Any:
    kind = option.kind
    if kind == "bool":
        return parse.parse_bool(raw)
    if kind in ("int", "float"):
        value: float = parse.parse_int(raw) if kind == "int" else parse.parse_float(raw)
        parse.check_range(value, option.minimum, option.maximum)
        return value
    if kind == "duration":
        seconds = parse.parse_duration(raw)
        parse.check_range(seconds, option.minimum, option.maximum)
        return seconds
    if kind == "list":
        return parse.parse_list(raw)
    if kind == "floats":
        return parse.parse_floats(raw)
    if not isinstance(raw, str):
        raise parse.BadValue(f"expected a string, got {type(raw).__name__}")
    return raw


def read_environment(environ: Mapping[str, str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in BY_NAME:
        for prefix in ENV_PREFIXES:
            key = prefix + name.upper()
            if key in environ:
                found[name] = environ[key]
                break
        else:
            if name in CELERY_ENV and CELERY_ENV[name] in environ:
                found[name] = environ[CELERY_ENV[name]]
    return found


def read_config_file(path: str, required: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the Python config file; return (our options, Celery settings) found in it."""
    if not os.path.exists(path):
        if required:
            raise ConfigError("conf", f"config file {path!r} does not exist")
        return {}, {}
    try:
        namespace = runpy.run_path(path)
    except Exception as exc:  # the file is user code: any error is a config error
        raise ConfigError("conf", f"cannot load {path!r}: {type(exc).__name__}: {exc}") from None
    options: dict[str, Any] = {}
    celery_settings: dict[str, Any] = {}
    from celery.app.defaults import flatten, NAMESPACES  # noqa: I001 — only needed here

    # Celery's stubs type flatten() as yielding strings; it yields (dotted key, Option) pairs.
    celery_keys = {key for key, _ in cast("Iterable[tuple[str, Any]]", flatten(NAMESPACES))}
    for key, value in namespace.items():
        if key.startswith("_"):
            continue
        if key == "clusters":
            try:
                options[key] = clusters.entries_from_config(value)
            except clusters.BadClusters as exc:
                raise ConfigError("clusters", str(exc)) from None
        elif key in BY_NAME or key in CONFIG_ONLY:
            options[key] = value
        elif key == "broker_url":
            options.setdefault("broker", value)
        elif key in celery_keys:
            celery_settings[key] = value
    return options, celery_settings


def notifications_from(environ: Mapping[str, str]) -> Any:
    """``CELERY_MONITOR_NOTIFICATIONS``: the config file's ``notifications`` as JSON, for a monitor
    without a config file (a CeleryMonitor's ``extraEnv``); the config file's wins."""
    raw = environ.get("CELERY_MONITOR_NOTIFICATIONS")
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ConfigError("notifications", f"CELERY_MONITOR_NOTIFICATIONS is not JSON: {exc}") from None


def check_broker_url(url: str) -> None:
    if not url:
        return
    _scheme, sep, _ = url.partition("://")
    if not sep:
        raise ConfigError("broker", "malformed URL: expected scheme://host[:port]/...")
    for part in url.split(";"):
        parsed = urlparse(part.strip())
        base_scheme = parsed.scheme.split("+")[0] if parsed.scheme != "redis+socket" else parsed.scheme
        if base_scheme not in BROKER_SCHEMES and parsed.scheme not in BROKER_SCHEMES:
            raise ConfigError("broker", f"unsupported broker scheme {parsed.scheme!r}")
        try:
            parsed.port  # noqa: B018 — raises on a bad port
        except ValueError:
            raise ConfigError("broker", "malformed URL: the port is not a number in 0-65535") from None
        if parsed.scheme in ("redis", "rediss"):
            db = parsed.path.lstrip("/")
            if db and not db.isdigit():
                raise ConfigError("broker", f"malformed URL: redis database {db!r} is not a number")


def check_consistency(values: dict[str, Any], files: bool = True) -> None:
    """Raise ConfigError for the first option that is wrong given the others; ``files=False`` leaves
    out whether the certificate files exist (the operator checks options for a pod elsewhere)."""
    try:
        auth_checks.check(values)
    except auth_checks.BadOption as exc:
        raise ConfigError(exc.option, str(exc)) from None
    columns = values.get("tasks_columns") or ""
    if columns != "all":
        unknown = [c for c in (p.strip() for p in columns.split(",")) if c and c not in TASKS_COLUMNS]
        if unknown:
            raise ConfigError("tasks_columns", f"unknown column {unknown[0]!r} (known: {', '.join(TASKS_COLUMNS)})")
    if bool(values.get("certfile")) != bool(values.get("keyfile")):
        raise ConfigError("certfile", "--certfile and --keyfile must be given together")
    for name in ("certfile", "keyfile", "ca_certs"):
        path = values.get(name)
        if files and path and not os.path.isfile(path):
            raise ConfigError(name, f"file {path!r} does not exist")
    if values.get("broker_api"):
        parsed = urlparse(values["broker_api"])
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError("broker_api", "expected an http(s):// URL of the RabbitMQ management API")
    if values.get("metrics_worker_label", "full") not in WORKER_LABEL_MODES:
        raise ConfigError("metrics_worker_label", f"unknown mode {values['metrics_worker_label']!r} "
                          f"(use {', '.join(WORKER_LABEL_MODES)})")
    if values.get("logging", "info").lower() not in ("debug", "info", "warning", "warn", "error", "critical"):
        raise ConfigError("logging", f"unknown level {values['logging']!r}")
    if values.get("format_task") is not None and not callable(values["format_task"]):
        raise ConfigError("format_task", "must be a function defined in the config file")
    if values.get("event_spool") and (values.get("redact") or values.get("format_task") is not None):
        # The spool holds what the broker carried, before any rule: redaction would not hold on disk.
        raise ConfigError("event_spool", "keeps raw task arguments on disk until the history has them, so it "
                          "cannot be combined with --redact or format_task")
    public_url = values.get("public_url") or ""
    if public_url and (urlparse(public_url).scheme not in ("http", "https") or not urlparse(public_url).hostname):
        raise ConfigError("public_url", "expected an http(s):// URL, e.g. https://monitor.example.com")
    try:
        notify_model.parse_config(values.get("notifications"))
    except notify_model.BadConfig as exc:
        raise ConfigError("notifications", str(exc)) from None
    check_broker_url(values.get("broker") or "")
    check_clusters(values)


def check_clusters(values: dict[str, Any]) -> None:
    """``--clusters``: each entry usable, and not together with the single cluster's options."""
    entries = values.get("clusters") or []
    if not entries:
        return
    try:
        specs = clusters.parse_clusters(entries)
    except clusters.BadClusters as exc:
        raise ConfigError("clusters", str(exc)) from None
    for single in ("broker", "result_backend", "broker_api", "beat_db", "redbeat_url"):
        if values.get(single):
            raise ConfigError("clusters", f"give each cluster its own {single} in --clusters instead of --{single}")
    if values.get("event_spool"):
        raise ConfigError("event_spool", "spools the stream of a monitor given one --broker: not with --clusters")
    for spec in specs:
        try:
            check_broker_url(spec.broker)
        except ConfigError as exc:
            raise ConfigError("clusters", f"cluster {spec.name!r}: {str(exc).partition(': ')[2]}") from None
        parsed = urlparse(spec.broker_api)
        if spec.broker_api and (parsed.scheme not in ("http", "https") or not parsed.hostname):
            raise ConfigError("clusters", f"cluster {spec.name!r}: broker_api is not an http(s):// URL")


def check_options(argv: Sequence[str], environ: Mapping[str, str]) -> None:
    """Check a command line and environment as the monitor would start with them, without a config
    file or the files they name (for a monitor that runs elsewhere); raises ConfigError."""
    values, _ = _layered((("environment", read_environment(environ)),
                          ("command line", parse_command_line(argv).values)))
    check_consistency(values, files=False)


def _layered(layers: Sequence[tuple[str, Mapping[str, Any]]]) -> tuple[dict[str, Any], dict[str, str]]:
    """Every option's value, each later layer over the earlier ones and all over the defaults, and
    where each value came from."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, option in BY_NAME.items():
        values[name] = option.default
        sources[name] = "default"
        for source, layer in layers:
            if name in layer:
                values[name] = parse_value(option, layer[name])
                sources[name] = source
    return values, sources


def load_settings(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from every source; raises ConfigError or HelpRequested."""
    environ = os.environ if environ is None else environ
    command_line = parse_command_line(argv)
    if command_line.show_help or command_line.show_version:
        raise HelpRequested("version" if command_line.show_version else "help")
    env_values = read_environment(environ)

    conf_path = command_line.values.get("conf") or env_values.get("conf")
    file_values, celery_settings = read_config_file(
        str(conf_path or BY_NAME["conf"].default), required=conf_path is not None
    )

    values, sources = _layered((("environment", env_values), ("config file", file_values),
                                ("command line", command_line.values)))
    if "format_task" in file_values:
        values["format_task"] = file_values["format_task"]
    values["notifications"] = file_values.get("notifications", notifications_from(environ))
    check_consistency(values)
    return Settings(**values, celery_settings=celery_settings, sources=sources)
