"""The image's build, replayed here: the Dockerfile's own steps build a venv that really works.

The web and build stages run instruction by instruction (dockerfile_model.replay) from a build
context filtered by .dockerignore, into a clean virtualenv; then the runtime stage's
environment, working directory and HEALTHCHECK are used as the image would use them.
"""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dockerfile_model
import pytest
from support.paths import path_without_node
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
    # The python base image has no Node.js: the wheel must be built from the web stage's bundle.
    no_node = {"PATH": path_without_node(scratch / "path-without-node")}
    roots: dict[str, dockerfile_model.StageRoot] = {}
    for stage in STAGES[:-1]:  # the runtime stage only copies the venv and adds a user
        assert stage.name, "every build stage is named"
        roots[stage.name] = dockerfile_model.StageRoot(scratch / f"stage-{stage.name}")
        host_env = REPLAY_ENV if stage.base.startswith("node:") else {**REPLAY_ENV, **no_node}
        dockerfile_model.replay(stage, context, roots[stage.name], roots, shims, log, host_env)
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
    assert {"app.js.map", "app.css.map", "THIRD-PARTY-LICENSES.txt"} <= set(shipped)
    for name in shipped:
        assert (shipped_dir / name).read_bytes() == (built / name).read_bytes(), name


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


@dataclass
class Container:
    """A monitor started the way the image starts it: as PID 1 of its own process namespace.

    ``unshare`` gives it a PID namespace (with its own /proc), and the HEALTHCHECK is run inside
    that namespace with ``nsenter``, as ``docker exec`` runs it: so the healthcheck sees the
    monitor at /proc/1 exactly as in a container. The network is the host's (loopback).
    """

    process: subprocess.Popen[bytes]  # unshare
    pid: int  # the monitor, as this machine numbers it
    env: dict[str, str]
    cwd: Path

    def healthcheck(self) -> subprocess.CompletedProcess[str]:
        """The Dockerfile's HEALTHCHECK command exactly as written, inside the container's namespaces."""
        command = dockerfile_model.healthcheck_command(STAGES[-1])
        return subprocess.run(["nsenter", f"--target={self.pid}", "--pid", "--mount", *command], cwd=self.cwd,
                              env=self.env, capture_output=True, text=True, timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()  # unshare --kill-child takes the monitor with it
            self.process.wait(5)


def _namespace_tools() -> None:
    for tool in ("unshare", "nsenter"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} (util-linux) is needed to run the monitor as PID 1: apt-get install util-linux",
                        pytrace=False)


def _child_pid(parent: int) -> int | None:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return int(children[0]) if children else None


def _start_container(image: BuiltImage, env: dict[str, str], *options: str) -> Container:
    """`docker run image *options`: the entrypoint celery-monitor with the options after the image name."""
    _namespace_tools()
    log = (image.data / "monitor.log").open("ab")
    process = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "celery-monitor",
                                *options], cwd=image.data, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        pid = wait_for(lambda: _child_pid(process.pid), 10, message="the monitor forked by unshare")
    except AssertionError:
        process.kill()
        if process.wait(5) != 0 and "Operation not permitted" in (image.data / "monitor.log").read_text():
            pytest.fail("unshare --pid needs root (CAP_SYS_ADMIN): run the suite as root", pytrace=False)
        raise
    return Container(process, pid, env, image.data)


def _healthy(container: Container) -> subprocess.CompletedProcess[str]:
    if container.process.poll() is not None:
        raise AssertionError(f"the monitor exited: {(container.cwd / 'monitor.log').read_text()[-2000:]}")
    done = container.healthcheck()
    return done if done.returncode == 0 else None  # type: ignore[return-value]


def _check_until_healthy(container: Container) -> str:
    """The healthcheck's line once it passes; it must have failed before the monitor listened, never crashed."""
    done = wait_for(lambda: _healthy(container), 30, interval=0.2,
                    message=f"the HEALTHCHECK to pass (log: {container.cwd / 'monitor.log'})")
    assert len(done.stdout.strip().splitlines()) == 1 and not done.stderr, (done.stdout, done.stderr)
    return done.stdout.strip()


def _assert_unhealthy(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert len((done.stdout + done.stderr).strip().splitlines()) == 1, (done.stdout, done.stderr)
    assert done.stderr.startswith("unhealthy: ")


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for a public name only, as a real one would be: a verifying probe of 127.0.0.1 would fail."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "monitor.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName("monitor.example.com")]), False)
                   .sign(key, hashes.SHA256()))
    cert, private = directory / "tls.crt", directory / "tls.key"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return cert, private


@pytest.mark.parametrize("prefix", ["", "flower"])
def test_healthcheck_follows_the_environment(image: BuiltImage, monitor_env: dict[str, str], prefix: str) -> None:
    """`docker run -e CELERY_MONITOR_URL_PREFIX=flower image`: failing before it listens, passing while it does."""
    env = {**monitor_env, "CELERY_MONITOR_URL_PREFIX": prefix}
    _assert_unhealthy(_healthcheck_outside(env, image))  # nothing listens yet
    container = _start_container(image, env)
    try:
        line = _check_until_healthy(container)
        assert line == f"healthy: http://127.0.0.1:{env['CELERY_MONITOR_PORT']}{'/' + prefix if prefix else ''}" \
                       "/livez answered 200"
        # The default --db is relative: the history lands in the WORKDIR (the /data volume).
        wait_for(lambda: (image.data / "celery-monitor.db").exists(), 10, message="celery-monitor.db in /data")
    finally:
        container.stop()
    _assert_unhealthy(_healthcheck_outside(env, image))


def _healthcheck_outside(env: dict[str, str], image: BuiltImage) -> subprocess.CompletedProcess[str]:
    """The HEALTHCHECK once the container is gone: nothing at PID 1 to follow, nothing listening."""
    command = dockerfile_model.healthcheck_command(STAGES[-1])
    return subprocess.run(command, cwd=image.data, env=env, capture_output=True, text=True, timeout=10)


def test_healthcheck_follows_the_options_of_pid_1_over_tls(image: BuiltImage, monitor_env: dict[str, str],
                                                           tmp_path: Path) -> None:
    """`docker run image --url_prefix=ops --certfile=... --keyfile=...`: no variable says so, PID 1's options do."""
    cert, key = _self_signed(tmp_path)
    port = free_port()
    env = {k: v for k, v in monitor_env.items() if k != "CELERY_MONITOR_PORT"}
    container = _start_container(image, env, f"--port={port}", "--url_prefix=/ops/", f"--certfile={cert}",
                                 f"--keyfile={key}")
    try:
        line = _check_until_healthy(container)
        assert line == f"healthy: https://127.0.0.1:{port}/ops/livez answered 200"
    finally:
        container.stop()
    _assert_unhealthy(_healthcheck_outside({**env, "CELERY_MONITOR_PORT": str(port)}, image))


def test_healthcheck_follows_a_unix_socket_set_in_a_relative_conf_file(image: BuiltImage,
                                                                      monitor_env: dict[str, str]) -> None:
    """`docker run image --conf=hc.py` with the socket and prefix in that file, relative to the WORKDIR."""
    (image.data / "hc_conf.py").write_text('unix_socket = "monitor.sock"\nurl_prefix = "sock"\n')
    container = _start_container(image, monitor_env, "--conf=hc_conf.py")
    try:
        line = _check_until_healthy(container)
        assert line == "healthy: http://localhost/sock/livez on monitor.sock answered 200"
    finally:
        container.stop()
        (image.data / "hc_conf.py").unlink()
