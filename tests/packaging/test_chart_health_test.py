"""`helm test` finds the chart's monitor where the operator serves it: prefix, port and scheme.

The URL comes from real `helm template` output and is compared with what the operator renders
for the same CeleryMonitor (its probes' path and scheme, its Service's port). Then the test pod's
own script runs here against a real monitor started with the operator's options, serving TLS
under a prefix with a certificate the script cannot verify, as in a cluster.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_cli
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from helm_cli import by_kind, one
from support.kubelet import kubelet_environment
from support.processes import BIN, RedisServer, free_port, wait_for

from celery_monitor_operator import spec_parser
from celery_monitor_operator.renderers import deployment, secret

NAME = "orders"
BROKER = {"url": "redis://redis:6379/0"}
ROUTE = {"enabled": True, "parentRefs": [{"name": "public"}]}

# name -> (celeryMonitor.spec beyond the broker, the URL helm test must check)
CASES: dict[str, tuple[dict[str, Any], str]] = {
    "plain": ({}, "http://orders.celery-monitor-system.svc:5555/readyz"),
    "service port": ({"service": {"port": 80}}, "http://orders.celery-monitor-system.svc:80/readyz"),
    "ingress prefix": ({"ingress": {"enabled": True, "pathPrefix": "/celery/"}},
                       "http://orders.celery-monitor-system.svc:5555/celery/readyz"),
    "route prefix": ({"httpRoute": {**ROUTE, "pathPrefix": "/ops/flower"}},
                     "http://orders.celery-monitor-system.svc:5555/ops/flower/readyz"),
    "prefix of a disabled ingress": ({"ingress": {"enabled": False, "pathPrefix": "/celery"}},
                                     "http://orders.celery-monitor-system.svc:5555/readyz"),
    "certfile option": ({"ingress": {"enabled": True, "pathPrefix": "/celery"},
                         "extraArgs": ["--certfile=/tls/tls.crt", "--keyfile=/tls/tls.key"]},
                        "https://orders.celery-monitor-system.svc:5555/celery/readyz"),
    "certfile option, two words": ({"extraArgs": ["--certfile", "/tls/tls.crt", "--keyfile", "/tls/tls.key"]},
                                   "https://orders.celery-monitor-system.svc:5555/readyz"),
    "empty certfile": ({"extraArgs": ["--certfile="]}, "http://orders.celery-monitor-system.svc:5555/readyz"),
    "certfile variable": ({"extraEnv": [{"name": "FLOWER_CERTFILE", "value": "/tls/tls.crt"}],
                           "service": {"port": 8443}},
                          "https://orders.celery-monitor-system.svc:8443/readyz"),
}


def values_for(extra: dict[str, Any]) -> dict[str, Any]:
    return {"celeryMonitor": {"create": True, "name": NAME, "spec": {"broker": BROKER, **extra}}}


def monitor_check(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (pod,) = [pod for pod in by_kind(objects, "Pod") if pod["metadata"]["name"].endswith("-test-monitor")]
    return pod["spec"]["containers"][0]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {var["name"]: var["value"] for var in container["env"]}


def operator_view(monitor_object: dict[str, Any]) -> str:
    """The URL the operator's own choices imply: its probe's scheme and path, its Service's port."""
    monitor = spec_parser.parse({**monitor_object, "metadata": {**monitor_object["metadata"], "uid": "u"}})
    container = deployment.render_monitor_deployment(monitor, "c")["spec"]["template"]["spec"]["containers"][0]
    probe = container["readinessProbe"]["httpGet"]
    host = f"{monitor.name}.{monitor.namespace}.svc:{monitor.spec.service.port}"
    return f"{probe.get('scheme', 'HTTP').lower()}://{host}{probe['path']}"


@pytest.mark.parametrize("case", CASES)
def test_helm_test_checks_the_monitor_where_the_operator_serves_it(helm: Path, case: str) -> None:
    extra, expected = CASES[case]
    objects = helm_cli.template(helm, values_for(extra))

    url = env_of(monitor_check(objects))["CHECK_URL"]

    assert url == expected
    assert url == operator_view(one(objects, "CeleryMonitor"))


def self_signed(directory: Path, host: str) -> tuple[Path, Path]:
    """A certificate for the in-cluster name: nothing here can verify it, as in the test pod."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(hours=1))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), False)
                   .sign(key, hashes.SHA256()))
    cert, key_file = directory / "tls.crt", directory / "tls.key"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert, key_file


def run_check(container: dict[str, Any], url: str, attempts: int = 1) -> subprocess.CompletedProcess[str]:
    """The test pod's script, as the pod runs it, with the in-cluster URL swapped for ``url``."""
    assert container["command"][:2] == ["python", "-c"]
    env = {**os.environ, **env_of(container), "CHECK_URL": url, "CHECK_ATTEMPTS": str(attempts)}
    return subprocess.run([sys.executable, "-c", container["command"][2]], env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def tls_monitor(helm: Path, redis_server: RedisServer, tmp_path: Path) -> Iterator[tuple[dict[str, Any], str]]:
    """The chart's test pod and a real monitor run with the operator's options: TLS, under /celery."""
    cert, key = self_signed(tmp_path, f"{NAME}.{helm_cli.NAMESPACE}.svc")
    extra = {"broker": {"url": f"redis://127.0.0.1:{redis_server.port}/15"},
             "ingress": {"enabled": True, "host": "celery.example.com", "pathPrefix": "/celery"},
             "extraArgs": [f"--certfile={cert}", f"--keyfile={key}"]}
    objects = helm_cli.template(helm, values_for(extra))
    monitor_object = one(objects, "CeleryMonitor")
    monitor = spec_parser.parse({**monitor_object, "metadata": {**monitor_object["metadata"], "uid": "u"}})
    login = secret.basic_auth_secret_name(monitor)
    metrics = secret.render_metrics_secret(monitor)["metadata"]["name"]
    environment = kubelet_environment(monitor, {
        f"{login}/{secret.USERNAME_KEY}": "admin", f"{login}/{secret.PASSWORD_KEY}": "a-long-password",
        f"{login}/{secret.COOKIE_SECRET_KEY}": "c" * 64,
        f"{metrics}/{secret.METRICS_ENTRY_KEY}": secret.metrics_token_entry("cmon_a-long-token")})
    port = free_port()
    # The operator's options first; the host-specific ones after them win, as repeated options do.
    args = [*deployment.monitor_args(monitor), f"--port={port}", "--address=127.0.0.1",
            f"--db={tmp_path / 'monitor.db'}"]
    log = tmp_path / "monitor.log"
    with log.open("wb") as output:
        process = subprocess.Popen([str(BIN / "celery-monitor"), *args], cwd=tmp_path,
                                   env={**os.environ, **environment}, stdout=output, stderr=subprocess.STDOUT)
    try:
        container = monitor_check(objects)
        in_cluster = env_of(container)["CHECK_URL"]
        local = in_cluster.replace(f"{NAME}.{helm_cli.NAMESPACE}.svc:5555", f"127.0.0.1:{port}")
        assert local != in_cluster
        wait_for(lambda: process.poll() is not None or run_check(container, local).returncode == 0, 30,
                 message=f"the monitor over TLS (log: {log})")
        assert process.poll() is None, log.read_text()[-2000:]
        yield container, local
    finally:
        process.terminate()
        process.wait(10)


def test_the_test_pod_reaches_a_monitor_serving_tls_under_its_prefix(tls_monitor: tuple[dict[str, Any], str]) -> None:
    container, url = tls_monitor

    done = run_check(container, url)

    assert url.startswith("https://127.0.0.1:") and url.endswith("/celery/readyz")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == f"{url} 200"


@pytest.mark.parametrize("wrong", ["plain http", "no prefix"])
def test_the_test_pod_fails_where_the_monitor_is_not(tls_monitor: tuple[dict[str, Any], str], wrong: str) -> None:
    container, url = tls_monitor
    elsewhere = url.replace("https://", "http://") if wrong == "plain http" else url.replace("/celery/", "/")

    done = run_check(container, elsewhere)

    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.startswith(elsewhere)
