"""The command line as a user meets it: Flower's option names, sources in order, one-line errors."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest
from support.processes import BIN, TESTS_DIR, free_port, new_monitor

from celery_monitor.cli.config import ConfigError, load_settings


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([str(BIN / "celery-monitor"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=30, env={**os.environ, **(env or {})})


@pytest.mark.parametrize(("args", "needle"), [
    (["--no_such_option=1"], "--no_such_option: unknown option"),
    (["--port=eighty"], "--port: 'eighty' is not an integer"),
    (["--port=70000"], "--port: 70000 is above the maximum 65535"),
    (["--conf=/nonexistent/flowerconfig.py"], "--conf: config file '/nonexistent/flowerconfig.py' does not exist"),
    (["--broker=redis://localhost:notaport/0"], "--broker: malformed URL: the port is not a number"),
    (["--broker=nonsense"], "--broker: malformed URL"),
    (["--broker=gopher://host/"], "--broker: unsupported broker scheme 'gopher'"),
    (["--persistent=maybe"], "--persistent: 'maybe' is not a boolean"),
    (["--tasks_columns=name,colour"], "--tasks_columns: unknown column 'colour'"),
    (["--basic_auth=nopassword"], "--basic_auth: expected user:password pairs"),
    (["--max_tasks=0"], "--max_tasks: 0 is below the minimum 1"),
    (["--max_task_age=7y"], "--max_task_age: '7y' is not a duration (e.g. 7d, 12h, 30m, 45s or seconds)"),
    (["--max_task_age=0s"], "--max_task_age: 0 is below the minimum 1"),
    (["--certfile=/nonexistent.pem", "--keyfile=/nonexistent.key"],
     "--certfile: file '/nonexistent.pem' does not exist"),
    (["--event_spool", "--redact=kwargs.password"], "--event_spool: keeps raw task arguments on disk"),
    (["--clusters=Prod=redis://r:6379/0"], "--clusters: cluster name 'Prod' must be 1-40 lowercase letters"),
    (["--clusters=prod"], "--clusters: cluster 'prod': expected NAME=BROKER_URL"),
    (["--clusters=a=redis://r/0,a=redis://r/1"], "--clusters: cluster 'a' is named twice"),
    (["--clusters=a=redis://r/0 colour=blue"], "--clusters: cluster 'a': unexpected 'colour'"),
    (["--clusters=a=gopher://r/0"], "--clusters: cluster 'a': unsupported broker scheme 'gopher'"),
    (["--clusters=a=redis://r/0 broker_api=ftp://x"], "--clusters: cluster 'a': broker_api is not an http(s)"),
    (["--clusters=a=redis://r/0", "--broker=redis://r/1"], "--clusters: give each cluster its own broker"),
    (["--clusters=a=redis://r/0", "--beat_db=/x.db"], "--clusters: give each cluster its own beat_db in --clusters"),
    (["--clusters=a=redis://r/0", "--event_spool"], "--event_spool: spools the stream of a monitor given one"),
    (["--cluster_access=alice=prod:admin"], "--cluster_access: 'alice': the right is 'read' or 'control', not 'admin'"),
    (["--cluster_access=alice"], "--cluster_access: expected SUBJECT=CLUSTER:RIGHT, got 'alice'"),
    (["--cluster_access=alice=Prod:read"], "--cluster_access: 'alice': cluster name 'Prod' must be"),
])
def test_bad_values_end_in_one_line_and_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("celery-monitor: error: ")
    assert needle in lines[0]
    assert "Traceback" not in result.stderr


def test_broken_config_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "flowerconfig.py").write_text("port = (\n")
    result = run_cli(cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--conf: cannot load 'flowerconfig.py': SyntaxError" in result.stderr


def test_a_database_that_is_not_ours_is_refused(tmp_path: Path) -> None:
    (tmp_path / "flower").write_bytes(b"this is not sqlite" * 100)
    other = sqlite3.connect(tmp_path / "app.db")
    other.execute("CREATE TABLE users (name TEXT)")
    other.close()
    for name in ("flower", "app.db"):
        result = run_cli(f"--db={name}", f"--port={free_port()}", cwd=tmp_path)
        assert result.returncode == 2
        assert result.stderr.startswith(f"celery-monitor: error: --db: {name} is not a Celery Monitor history")
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    # Nothing of ours was added to the other application's database.
    tables = sqlite3.connect(tmp_path / "app.db").execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == [("users",)]


def test_help_lists_flower_options(tmp_path: Path) -> None:
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    for name in ("address", "port", "unix_socket", "broker_api", "basic_auth", "max_tasks", "max_workers",
                 "purge_offline_workers", "persistent", "db", "state_save_interval", "url_prefix",
                 "inspect_timeout", "enable_events", "xheaders", "natural_time", "tasks_columns", "auto_refresh",
                 "conf", "certfile", "keyfile", "ca_certs", "cookie_secret", "debug"):
        assert f"--{name}" in result.stdout


def test_precedence_command_line_over_file_over_environment(tmp_path: Path) -> None:
    conf = tmp_path / "monitor.conf.py"
    conf.write_text("port = 6000\nmax_tasks = 700\nurl_prefix = 'from-file'\nbroker_url = 'redis://file:6379/0'\n")
    environ = {"CELERY_MONITOR_PORT": "7000", "CELERY_MONITOR_MAX_TASKS": "800", "FLOWER_MAX_WORKERS": "9",
               "CELERY_MONITOR_DEBUG": "true", "CELERY_MONITOR_CONF": str(conf), "FLOWER_PORT": "7500"}
    settings = load_settings(["--port=8000"], environ)
    assert settings.port == 8000 and settings.sources["port"] == "command line"
    assert settings.max_tasks == 700 and settings.sources["max_tasks"] == "config file"
    assert settings.max_workers == 9 and settings.sources["max_workers"] == "environment"
    assert settings.debug is True
    assert settings.url_prefix == "from-file" and settings.prefix == "/from-file"
    assert settings.broker == "redis://file:6379/0"
    assert settings.inspect_timeout == 1000.0 and settings.sources["inspect_timeout"] == "default"


def test_ours_beats_flower_in_the_environment_and_celery_broker_url_is_read() -> None:
    with pytest.raises(ConfigError, match=r"--conf: config file '/nope\.py' does not exist"):
        load_settings([], {"FLOWER_CONF": "/nope.py"})
    settings = load_settings([], {"FLOWER_PORT": "1", "CELERY_MONITOR_PORT": "2",
                                  "CELERY_BROKER_URL": "amqp://guest@localhost//"})
    assert settings.port == 2
    assert settings.broker == "amqp://guest@localhost//"


def test_max_task_age_takes_a_duration_from_every_source(tmp_path: Path) -> None:
    assert load_settings([], {}).max_task_age is None
    conf = tmp_path / "flowerconfig.py"
    conf.write_text("max_task_age = 600\n")
    assert load_settings([f"--conf={conf}"], {}).max_task_age == 600
    conf.write_text("max_task_age = '2w'\n")
    assert load_settings([f"--conf={conf}"], {}).max_task_age == 14 * 86_400
    assert load_settings(["--max_task_age=7d"], {}).max_task_age == 7 * 86_400
    assert load_settings(["--max_task_age", "3600"], {}).max_task_age == 3600
    assert load_settings([], {"CELERY_MONITOR_MAX_TASK_AGE": "30m"}).max_task_age == 1800
    assert load_settings(["--max_task_age=1.5h"], {}).max_task_age == 5400


def test_clusters_from_every_source_in_one_syntax(tmp_path: Path) -> None:
    from celery_monitor.clusters import ClusterSpec, parse_clusters

    entries = ("prod=redis://r:6379/0 result_backend=redis://r:6379/1 redbeat_url=redis://r:6379/2, "
               "staging=amqp://u:p@mq:5672/staging broker_api=http://u:p@mq:15672/api/ "
               "beat_db=postgresql://u:p@db/beat\n")
    expected = [ClusterSpec("prod", "redis://r:6379/0", result_backend="redis://r:6379/1",
                            redbeat_url="redis://r:6379/2"),
                ClusterSpec("staging", "amqp://u:p@mq:5672/staging", broker_api="http://u:p@mq:15672/api/",
                            beat_db="postgresql://u:p@db/beat")]
    assert parse_clusters(load_settings([f"--clusters={entries}"], {}).clusters) == expected
    assert parse_clusters(load_settings([], {"CELERY_MONITOR_CLUSTERS": entries}).clusters) == expected
    conf = tmp_path / "flowerconfig.py"
    conf.write_text("clusters = {'prod': {'broker': 'redis://r:6379/0', 'result_backend': 'redis://r:6379/1',\n"
                    "                     'redbeat_url': 'redis://r:6379/2'},\n"
                    "            'staging': {'broker': 'amqp://u:p@mq:5672/staging',\n"
                    "                        'broker_api': 'http://u:p@mq:15672/api/',\n"
                    "                        'beat_db': 'postgresql://u:p@db/beat'}}\n")
    assert parse_clusters(load_settings([f"--conf={conf}"], {}).clusters) == expected
    conf.write_text("clusters = ['prod=redis://r:6379/0 result_backend=redis://r:6379/1 redbeat_url=redis://r:6379/2',\n"
                    "            'staging=amqp://u:p@mq:5672/staging broker_api=http://u:p@mq:15672/api/ "
                    "beat_db=postgresql://u:p@db/beat']\n")
    assert parse_clusters(load_settings([f"--conf={conf}"], {}).clusters) == expected
    conf.write_text("clusters = {'prod': {'brokr': 'redis://r:6379/0'}}\n")
    with pytest.raises(ConfigError, match="--clusters: cluster 'prod': expected a broker URL or a dict"):
        load_settings([f"--conf={conf}"], {})
    # The passwords stay out of a repr (settings and specs end up in logs).
    assert "u:p" not in repr(load_settings([f"--clusters={entries}"], {}))
    assert "u:p" not in repr(expected)


def test_flower_spellings_are_accepted() -> None:
    settings = load_settings(["--unix-socket", "/tmp/x.sock", "--auto_refresh=False", "--persistent", "false",
                              "--xheaders", "-b", "redis://127.0.0.1:6379/2", "--basic_auth=a:b,c:d:e",
                              "--task_runtime_metric_buckets=1,0.5,5"], {})
    assert settings.unix_socket == "/tmp/x.sock"
    assert settings.auto_refresh is False and settings.persistent is False and settings.xheaders is True
    assert settings.broker == "redis://127.0.0.1:6379/2"
    assert settings.basic_auth == ["a:b", "c:d:e"]
    assert settings.task_runtime_metric_buckets == [0.5, 1.0, 5.0]


def test_celery_subcommand_uses_the_apps_broker(tmp_path: Path, redis_server: object) -> None:
    import os

    env = {**os.environ, "TEST_BROKER_URL": redis_server.url}  # type: ignore[attr-defined]
    bad = subprocess.run([str(BIN / "celery"), "-A", "support.tasks", "monitor", "--port=abc"], cwd=TESTS_DIR,
                         capture_output=True, text=True, timeout=30, env=env)
    assert bad.returncode == 2 and bad.stderr.strip() == "celery-monitor: error: --port: 'abc' is not an integer"

    port = free_port()
    process = subprocess.Popen([str(BIN / "celery"), "-A", "support.tasks", "monitor", f"--port={port}",
                                "--address=127.0.0.1", f"--db={tmp_path / 'm.db'}", "--unauthenticated_api"],
                               cwd=TESTS_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        monitor = new_monitor("unused", tmp_path)
        monitor.port = port
        import httpx
        from support.processes import wait_for

        status = wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/api/monitor/status").json(), 20,
                          message="the celery monitor sub-command serving")
        assert status["receiver"]["transport"] == "redis"
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/api/monitor/status").json()["receiver"]["connected"],
                 20, message="connected to the app's broker")
    finally:
        process.terminate()
        process.wait(10)


def test_option_reference_is_up_to_date() -> None:
    from celery_monitor.cli.reference import render

    assert (TESTS_DIR.parent / "docs" / "options.md").read_text() == render(), \
        "docs/options.md is stale: run .venv/bin/celery-monitor-docs > docs/options.md"


def test_api_reference_is_up_to_date() -> None:
    from celery_monitor.api.reference import render

    assert (TESTS_DIR.parent / "docs" / "api.md").read_text() == render(), \
        "docs/api.md is stale: run .venv/bin/celery-monitor-docs api > docs/api.md"
