"""`celery-monitor healthcheck`: which process it follows and how it resolves what to probe.

The probes against real monitors (as PID 1, over TLS, on a unix socket) are in test_image_install;
here the parts that decide what to ask, on /proc trees written the way the kernel lays them out.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from support.processes import free_port

from celery_monitor.cli import healthcheck

VENV_BIN = Path(sys.executable).parent


@pytest.mark.parametrize(("argv", "options"), [
    (["/opt/celery-monitor/bin/python", "/opt/celery-monitor/bin/celery-monitor", "--url_prefix=ops"],
     ["--url_prefix=ops"]),
    (["celery-monitor", "--port", "6000"], ["--port", "6000"]),
    (["python3.11", "-u", "-m", "celery_monitor", "--certfile=c.pem"], ["--certfile=c.pem"]),
    (["/venv/bin/python", "/venv/bin/celery", "-A", "monitor", "-b", "redis://r", "monitor", "--port=7000"],
     ["--port=7000"]),
    (["celery", "--app=proj", "monitor"], []),
    (["celery", "-A", "proj", "worker", "monitor"], None),  # a worker whose argument is "monitor"
    (["python", "-m", "http.server"], None),
    (["python", "app.py", "celery-monitor"], None),
    (["/usr/bin/sleep", "100"], None),
    (["celery-monitor", "healthcheck"], None),  # the probe itself is not the monitor
    ([], None),
], ids=["console-script", "bare", "python-m", "celery-subcommand", "celery-no-options", "celery-worker",
        "other-module", "argument-named-like-it", "other", "healthcheck", "empty"])
def test_the_monitor_is_recognised_by_how_it_was_started(argv: list[str], options: list[str] | None) -> None:
    assert healthcheck.monitor_options(argv) == options


def _process(proc: Path, pid: int, argv: list[str], cwd: Path, children: Sequence[int] = ()) -> None:
    folder = proc / str(pid)
    (folder / "task" / str(pid)).mkdir(parents=True)
    (folder / "cmdline").write_bytes(b"".join(arg.encode() + b"\0" for arg in argv))
    (folder / "cwd").symlink_to(cwd)
    (folder / "task" / str(pid) / "children").write_text(" ".join(map(str, children)) + (" " if children else ""))


def test_pid_1_is_followed_with_its_working_directory(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    _process(proc, 1, ["/venv/bin/python", "/venv/bin/celery-monitor", "--conf=hc.py"], tmp_path)
    found = healthcheck.find_running_monitor(proc)
    assert found is not None and (found.pid, found.options, found.cwd) == (1, ["--conf=hc.py"], tmp_path)


def test_the_child_of_a_container_init_is_followed_but_not_of_a_host_init(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    _process(proc, 1, ["/sbin/docker-init", "--", "celery-monitor", "--port=1"], tmp_path, children=[7])
    _process(proc, 7, ["/venv/bin/python", "/venv/bin/celery-monitor", "--port=6001"], tmp_path)
    found = healthcheck.find_running_monitor(proc)
    assert found is not None and (found.pid, found.options) == (7, ["--port=6001"])

    host = tmp_path / "host-proc"
    _process(host, 1, ["/sbin/init", "splash"], tmp_path, children=[7])
    _process(host, 7, ["/venv/bin/python", "/venv/bin/celery-monitor", "--port=6001"], tmp_path)
    assert healthcheck.find_running_monitor(host) is None


def test_settings_come_from_pid_1_its_conf_file_and_the_environment_with_own_options_last(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workdir = tmp_path / "data"
    workdir.mkdir()
    (workdir / "hc.py").write_text('url_prefix = "from-conf"\nport = 7001\n')
    proc = tmp_path / "proc"
    _process(proc, 1, ["celery-monitor", "--conf=hc.py", "--port=7002"], workdir)
    monkeypatch.chdir(tmp_path)  # resolve_settings moves to PID 1's directory; monkeypatch moves back
    environ = {"CELERY_MONITOR_ADDRESS": "::", "FLOWER_UNIX_SOCKET": ""}
    settings = healthcheck.resolve_settings([], environ, proc)
    assert (settings.prefix, settings.port, settings.address) == ("/from-conf", 7002, "::")
    assert healthcheck.probe_url(settings) == "http://[::1]:7002/from-conf/livez"
    assert Path.cwd() == workdir
    own = healthcheck.resolve_settings(["--url_prefix=", "--port=7003", "--address=10.1.2.3"], environ, proc)
    assert healthcheck.probe_url(own) == "http://10.1.2.3:7003/livez"


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_MONITOR_", "FLOWER_"))}
    return subprocess.run([str(VENV_BIN / "celery-monitor"), "healthcheck", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=30)


def test_nothing_listening_is_one_line_and_status_1(tmp_path: Path) -> None:
    port = free_port()
    done = _run(f"--port={port}", "--url_prefix=x", cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(f"unhealthy: http://127.0.0.1:{port}/x/livez: ")
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize("args", [["--port=many"], ["--certfile=/nonexistent.pem", "--keyfile=/nonexistent.pem"],
                                  ["--help"]])
def test_a_bad_setting_is_unhealthy_never_status_2(tmp_path: Path, args: list[str]) -> None:
    """Docker reserves exit status 2: a setting the probe cannot use is "unhealthy" (1), in one line."""
    done = _run(*args, cwd=tmp_path)
    assert done.returncode == 1, done
    assert done.stderr.startswith("unhealthy: cannot resolve the monitor's settings: --")
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_a_monitor_whose_ingestion_stopped_is_unhealthy_with_its_reason(tmp_path: Path) -> None:
    """The probe is /livez: its 503 and the monitor's reason end up in the one line Docker keeps."""
    reason = "ingestion has stopped: the event applier has made no progress for 130s"

    class Refusing(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"error": reason, "live": False}).encode() if self.path == "/ops/livez" else b"{}"
            self.send_response(503 if self.path == "/ops/livez" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        done = _run(f"--port={server.server_address[1]}", "--url_prefix=ops", cwd=tmp_path)
    finally:
        server.shutdown()
    assert done.returncode == 1 and done.stdout == ""
    port = server.server_address[1]
    assert done.stderr.strip() == f"unhealthy: http://127.0.0.1:{port}/ops/livez answered 503: {reason}"
