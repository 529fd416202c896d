"""The image's build, replayed here: the Dockerfile's own steps build a venv that really works.

The web and build stages run instruction by instruction (dockerfile_model.replay) from a build
context filtered by .dockerignore, into a clean virtualenv; then the runtime stage's
environment, working directory and HEALTHCHECK are used as the image would use them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dockerfile_model
import pytest
from support.processes import RedisServer, free_port, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
STAGES = dockerfile_model.parse((REPO_ROOT / "Dockerfile").read_text())
# The one liberty taken with the Dockerfile's steps: pip skips compiling bytecode (a third of
# the install's time on this machine), and the processes started later may write it instead
# (the image has it from the install). What gets installed and run is the same.
REPLAY_ENV = {"PIP_COMPILE": "0"}
NOT_REPLAYED = {"PYTHONDONTWRITEBYTECODE"}
VERSION = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]


@dataclass
class BuiltImage:
    venv: Path
    env: dict[str, str]  # the runtime stage's environment, paths re-rooted
    data: Path  # the runtime WORKDIR, where the monitor keeps its database
    log: Path

    def run(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(command), cwd=self.data, env=self.env, capture_output=True, text=True,
                              timeout=timeout)


def _python_shim(directory: Path) -> Path:
    """`python` for the RUN lines: this machine's interpreter itself, never a virtualenv's."""
    directory.mkdir()
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    (directory / "python").symlink_to(base)
    return directory


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    scratch = tmp_path_factory.mktemp("image")
    log = scratch / "build.log"
    context = scratch / "context"
    ignore = dockerfile_model.DockerIgnore((REPO_ROOT / ".dockerignore").read_text())
    for relative in ignore.context_files(REPO_ROOT):
        (context / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / relative, context / relative)
    shims = _python_shim(scratch / "shims")
    roots: dict[str, dockerfile_model.StageRoot] = {}
    for stage in STAGES[:-1]:  # the runtime stage only copies the venv and adds a user
        assert stage.name, "every build stage is named"
        roots[stage.name] = dockerfile_model.StageRoot(scratch / f"stage-{stage.name}")
        dockerfile_model.replay(stage, context, roots[stage.name], roots, shims, log, REPLAY_ENV)
    build = roots["build"]

    env = {k: v for k, v in os.environ.items() if dockerfile_model.PASSED_THROUGH.match(k)}
    runtime = STAGES[-1]
    for instruction in runtime.all("ENV"):
        for key, value in dockerfile_model.env_assignments(instruction):
            if key not in NOT_REPLAYED:
                env[key] = dockerfile_model.expand(dockerfile_model.reroot(value, build), env)
    workdir = runtime.last("WORKDIR")
    assert workdir is not None
    data = scratch / "runtime" / workdir.value.lstrip("/")
    data.mkdir(parents=True)
    return BuiltImage(venv=Path(env["VIRTUAL_ENV"]), env=env, data=data, log=log)


def test_console_scripts_start_and_tell_their_version(image: BuiltImage) -> None:
    assert shutil.which("celery-monitor", path=image.env["PATH"]) == str(image.venv / "bin" / "celery-monitor")
    version = image.run("celery-monitor", "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip().endswith(VERSION)
    commands = (["celery-monitor", "--help"], ["celery-monitor-operator", "--help"], ["celery", "monitor", "--help"])
    for command in commands:
        done = image.run(*command)
        assert done.returncode == 0, f"{command}: {done.stderr}"
        assert "--" in done.stdout


def test_bad_option_is_one_line_and_status_2(image: BuiltImage) -> None:
    done = image.run("celery-monitor", "--max_tasks=many")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_operator_runs_from_the_image(image: BuiltImage) -> None:
    done = image.run("python", "-c", "import celery_monitor_operator.renderers.crd as c; print(c.render_crd()['kind'])")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "CustomResourceDefinition"


def test_venv_ships_the_package_data(image: BuiltImage) -> None:
    site = image.venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    shipped = [
        "celery_monitor/py.typed",
        "celery_monitor/metrics/kit/alert-rules.yaml",
        "celery_monitor/metrics/kit/grafana-dashboard.json",
    ]
    for source in (REPO_ROOT / "monitor" / "web" / "templates").rglob("*"):
        if source.is_file():
            shipped.append("celery_monitor/" + source.relative_to(REPO_ROOT / "monitor").as_posix())
    missing = [path for path in shipped if not (site / path).is_file()]
    assert not missing, f"not in the installed package (pyproject package-data?): {missing}"


def test_web_assets_built_by_the_web_stage_are_shipped(image: BuiltImage) -> None:
    site = image.venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    built = image.log.parent / "stage-web" / "src" / "monitor" / "web" / "static" / "dist"
    expected = sorted(p.relative_to(built).as_posix() for p in built.rglob("*") if p.is_file())
    assert {"app.js", "app.css"} <= set(expected), f"the web stage built {expected}"
    shipped_dir = site / "celery_monitor" / "web" / "static" / "dist"
    shipped = sorted(p.relative_to(shipped_dir).as_posix() for p in shipped_dir.rglob("*") if p.is_file())
    assert shipped == expected


def test_build_tools_are_not_left_in_the_venv(image: BuiltImage) -> None:
    assert not (image.venv / "bin" / "pip").exists()
    assert image.run("python", "-c", "import pip").returncode != 0
    assert image.run("python", "-c", "import setuptools").returncode != 0


@pytest.fixture
def monitor_env(image: BuiltImage, redis_server: RedisServer) -> Iterator[dict[str, str]]:
    """Environment of a running monitor configured the image's way: variables only."""
    env = {**image.env, "CELERY_MONITOR_PORT": str(free_port()), "CELERY_MONITOR_ADDRESS": "127.0.0.1",
           "CELERY_MONITOR_BROKER": redis_server.url}
    yield env


def _healthcheck(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the Dockerfile's HEALTHCHECK command exactly as written, in the container's environment."""
    command = dockerfile_model.healthcheck_command(STAGES[-1])
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=10)


def _start(env: dict[str, str], image: BuiltImage) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["celery-monitor"], cwd=image.data, env=env, stdout=(image.data / "monitor.log").open("ab"),
                            stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@pytest.mark.parametrize("prefix", ["", "flower"])
def test_healthcheck_tells_a_running_monitor_from_a_missing_one(image: BuiltImage, monitor_env: dict[str, str],
                                                               prefix: str) -> None:
    env = {**monitor_env, "CELERY_MONITOR_URL_PREFIX": prefix}
    assert _healthcheck(env, image.data).returncode != 0  # nothing listens yet
    process = _start(env, image)
    try:
        wait_for(lambda: process.poll() is None and _healthcheck(env, image.data).returncode == 0, 30,
                 interval=0.2, message=f"the HEALTHCHECK to pass (log: {image.data / 'monitor.log'})")
        # The default --db is relative: the history lands in the WORKDIR (the /data volume).
        wait_for(lambda: (image.data / "celery-monitor.db").exists(), 10, message="celery-monitor.db in /data")
    finally:
        _stop(process)
    assert _healthcheck(env, image.data).returncode != 0
