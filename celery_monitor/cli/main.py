"""``celery-monitor``: parse options, build the monitor, serve it. Errors end in one line, exit 2."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from celery import Celery

from celery_monitor import __version__
from celery_monitor.cli.config import ConfigError, HelpRequested, load_settings
from celery_monitor.settings import OPTIONS, Settings

PROG = "celery-monitor"


def usage() -> str:
    lines = [f"usage: {PROG} [--option=value ...]", "",
             "Options (also CELERY_MONITOR_<OPTION> or FLOWER_<OPTION> in the environment,",
             "or <option> = value in the --conf file; command line > config file > environment):", ""]
    for option in OPTIONS:
        shown = ",".join(option.default) if isinstance(option.default, list) else option.default
        default = "" if option.default in ("", None, []) else f" (default: {shown})"
        lines.append(f"  --{option.name:<28} {option.help}{default}")
    lines += ["", "  -A, --app                     Celery application (module[:attribute])",
              "  -b, --broker                  broker URL",
              "", f"{PROG} healthcheck [--option=value ...]",
              "  ask the running monitor's /livez, its settings resolved as above (and, in a container,",
              "  from the options of the monitor running as PID 1); exit status 0 (healthy) or 1",
              "", f"{PROG} db upgrade [--db=postgresql://user:password@host:5432/dbname]",
              "  apply the PostgreSQL history's schema migrations (the monitor also applies them at start-up)",
              f"{PROG} db copy --from=celery-monitor.db --to=postgresql://user:password@host:5432/dbname",
              "  copy a whole history into an empty one (a SQLite file to PostgreSQL, or back); stop the monitor first"]
    return "\n".join(lines)


def fail(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(2)


def configure_logging(settings: Settings) -> None:
    level = "DEBUG" if settings.debug else settings.logging.upper().replace("WARN", "WARNING")
    level = level.replace("WARNINGING", "WARNING")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not settings.debug:
        # httpx logs every request at INFO, and the broker API is asked on every poll and every queue
        # page: a log line each time. Its failures reach our own log lines anyway.
        logging.getLogger("httpx").setLevel(logging.WARNING)


def run(settings: Settings, app: Celery | None = None) -> None:
    from celery_monitor.app import create_app
    from celery_monitor.celery_app import build_app
    from celery_monitor.receiver.spool import SpoolError
    from celery_monitor.server import serve
    from celery_monitor.service import Monitor
    from celery_monitor.store.base import StoreError

    configure_logging(settings)
    try:
        celery_app = build_app(settings, app)
    except Exception as exc:  # the user's -A module failed to import
        fail(f"--app: cannot load {settings.app!r}: {type(exc).__name__}: {exc}")
    try:
        monitor = Monitor(settings, celery_app)
    except (StoreError, SpoolError) as exc:
        fail(f"--db: {exc}")
    logging.getLogger(__name__).info("Celery Monitor %s on %s", __version__,
                                     settings.unix_socket or f"{settings.address or '0.0.0.0'}:{settings.port}")
    serve(create_app(monitor), settings)


def main(argv: Sequence[str] | None = None, app: Celery | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["healthcheck"] and app is None:
        from celery_monitor.cli import healthcheck

        sys.exit(healthcheck.main(args[1:]))
    if args[:1] == ["db"] and app is None:
        from celery_monitor.cli import db

        sys.exit(db.main(args[1:]))
    try:
        settings = load_settings(args)
    except HelpRequested as request:
        print(__version__ if str(request) == "version" else usage())
        sys.exit(0)
    except ConfigError as exc:
        fail(str(exc))
    run(settings, app)
