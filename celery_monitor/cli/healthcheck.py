"""``celery-monitor healthcheck``: is the monitor of this container (or this machine) answering?

Made for the image's HEALTHCHECK, which runs beside the monitor with the container's environment
but none of the options given to ``docker run image --url_prefix=ops``. So the settings are
resolved as the monitor resolves its own: the environment (``CELERY_MONITOR_*``, ``FLOWER_*``),
the ``--conf`` file and, when PID 1 (or a child of an init such as ``docker run --init``) is the
monitor, the options it was started with, read from /proc (relative paths from its working
directory). Options given to the healthcheck itself come last and win.

It then asks ``<prefix>/livez`` on loopback (or the unix socket) over http, or https with
``--certfile``: the liveness probe, which turns 503 when ingestion has stopped (not Flower's
``/healthcheck``, which answers ``OK`` as long as the server does). Exit 0 when it answered 200,
else 1 — also for a bad setting, since Docker keeps exit status 2 reserved — with one line either
way, the reason included (Docker keeps that output for ``inspect``).
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from celery_monitor.cli.config import ConfigError, HelpRequested, load_settings
from celery_monitor.settings import Settings

PROBE_TIMEOUT = 4.0  # seconds: inside the image's HEALTHCHECK --timeout=5s
PROBE_PATH = "/livez"
PROC = Path("/proc")
# What a container runs as PID 1 to start the real command (docker run --init, Kubernetes' shared
# process namespace...): the monitor is then one of its children.
CONTAINER_INITS = {"docker-init", "tini", "tini-static", "dumb-init", "catatonit", "pause"}
# celery's own options that take a value, before the `monitor` sub-command.
CELERY_VALUE_OPTIONS = {"-A", "--app", "-b", "--broker", "--result-backend", "--loader", "--config", "--workdir"}


@dataclass(frozen=True)
class RunningMonitor:
    """A monitor process found in /proc: the options it was started with, and its working directory."""

    pid: int
    options: list[str]
    cwd: Path | None


def monitor_options(argv: Sequence[str]) -> list[str] | None:
    """The monitor options of a process's command line, None when it is not a Celery Monitor.

    Recognised: ``celery-monitor ...`` (also as ``python /venv/bin/celery-monitor ...``, which is
    how the kernel runs a console script), ``python -m celery_monitor ...`` and
    ``celery [celery options] monitor ...``.
    """
    for index, arg in enumerate(argv[:2]):
        name = os.path.basename(arg)
        if name == "celery-monitor":
            rest = list(argv[index + 1:])
            return None if rest[:1] == ["healthcheck"] else rest
        if name == "celery":
            return _after_celery_monitor(argv[index + 1:])
    if argv and os.path.basename(argv[0]).startswith("python"):
        for index, arg in enumerate(argv[1:], start=1):
            if arg == "-m":
                return list(argv[index + 2:]) if argv[index + 1:index + 2] == ["celery_monitor"] else None
            if not arg.startswith("-"):
                return None
    return None


def _after_celery_monitor(args: Sequence[str]) -> list[str] | None:
    skip_value = False
    for index, arg in enumerate(args):
        if skip_value:
            skip_value = False
        elif arg in CELERY_VALUE_OPTIONS:
            skip_value = True
        elif arg == "monitor":
            return list(args[index + 1:])
        elif not arg.startswith("-"):
            return None  # another celery sub-command
    return None


def _read_process(pid: int, proc: Path) -> RunningMonitor | None:
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    options = monitor_options([part.decode(errors="surrogateescape") for part in raw.split(b"\0") if part])
    if options is None:
        return None
    try:
        cwd: Path | None = Path(os.readlink(proc / str(pid) / "cwd"))
    except OSError:
        cwd = None
    return RunningMonitor(pid, options, cwd)


def find_running_monitor(proc: Path = PROC) -> RunningMonitor | None:
    """PID 1 when it is the monitor, else a child of a container's init as PID 1, else None.

    Only a container's init: on a host, PID 1's children are every daemon, and which monitor
    to probe is then for the healthcheck's own options to say.
    """
    found = _read_process(1, proc)
    if found is not None:
        return found
    try:
        init = (proc / "1" / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        children = (proc / "1" / "task" / "1" / "children").read_text().split()
    except OSError:
        return None
    if os.path.basename(init) not in CONTAINER_INITS:
        return None
    for child in children:
        found = _read_process(int(child), proc)
        if found is not None:
            return found
    return None


def resolve_settings(argv: Sequence[str], environ: Mapping[str, str] | None = None,
                     proc: Path = PROC) -> Settings:
    """The settings of the monitor to probe; raises ConfigError."""
    running = find_running_monitor(proc)
    options: list[str] = []
    if running is not None:
        options = running.options
        if running.cwd is not None and running.cwd.is_dir():
            os.chdir(running.cwd)  # its --conf, --certfile... may be relative to where it runs
    try:
        return load_settings([*options, *argv], environ)
    except HelpRequested:
        raise ConfigError("healthcheck", "takes the monitor's options only (--help and --version are not probes)") \
            from None


def _host(address: str) -> str:
    """Where to reach a server bound to ``address`` from this machine: loopback for a wildcard."""
    if address in ("", "0.0.0.0"):
        return "127.0.0.1"
    if address == "::":
        return "[::1]"
    try:
        return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    except ValueError:
        return address  # a host name


def probe_url(settings: Settings) -> str:
    scheme = "https" if settings.certfile else "http"
    authority = "localhost" if settings.unix_socket else f"{_host(settings.address)}:{settings.port}"
    return f"{scheme}://{authority}{settings.prefix}{PROBE_PATH}"


def _tls_context(settings: Settings) -> ssl.SSLContext:
    # The certificate is not verified: the probe talks to this very process over loopback or its
    # socket, where the certificate's name (the public host name) never matches and a private CA
    # is often not installed; it checks liveness, and sends nothing secret.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if settings.ca_certs:
        # The monitor asks every client for a certificate: offer its own, which its CA list
        # accepts when the same CA issued it (otherwise probe with an HTTP check from outside).
        context.load_cert_chain(settings.certfile, settings.keyfile)
    return context


def probe(settings: Settings, timeout: float = PROBE_TIMEOUT) -> tuple[bool, str]:
    """(healthy, one line saying what was asked and what answered)."""
    url = probe_url(settings)
    where = f"{url} on {settings.unix_socket}" if settings.unix_socket else url
    verify: ssl.SSLContext | bool = _tls_context(settings) if settings.certfile else True
    transport = httpx.HTTPTransport(uds=settings.unix_socket or None, verify=verify)
    try:
        with httpx.Client(transport=transport, timeout=timeout, verify=verify) as client:
            response = client.get(url)
    except (httpx.HTTPError, OSError, ssl.SSLError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return False, f"unhealthy: {where}: {reason}"
    if response.status_code != 200:
        return False, f"unhealthy: {where} answered {response.status_code}{_reason(response)}"
    return True, f"healthy: {where} answered 200"


def _reason(response: httpx.Response) -> str:
    """The monitor's own words for a refusal (``{"error": ...}``), on the same line."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    return f": {' '.join(str(error).split())[:300]}" if error else ""


def main(argv: Sequence[str]) -> int:
    try:
        settings = resolve_settings(argv)
    except ConfigError as exc:
        print(f"unhealthy: cannot resolve the monitor's settings: {exc}", file=sys.stderr)
        return 1
    healthy, line = probe(settings)
    print(line, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
