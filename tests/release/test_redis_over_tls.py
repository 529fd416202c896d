"""Redis over TLS (rediss://) with the installed wheel: inspect, send-task and queue lengths work.

kombu's Redis transport imports more than the plain connection does; a broker behind TLS is the
other way users run Redis. The server is a private redis-server with a certificate made here, and
the URL verifies it (ssl_cert_reqs=required) as a careful user would configure it.
"""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from release_kit import InstalledMonitor, Release
from support.processes import free_port, wait_for

pytestmark = [pytest.mark.redis]


@dataclass
class TlsRedis:
    port: int
    ca: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0?ssl_cert_reqs=required&ssl_ca_certs={self.ca}"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, ssl=True, ssl_ca_certs=str(self.ca))


def _certificate(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  False)
                   .sign(key, hashes.SHA256()))
    cert, private = directory / "redis.crt", directory / "redis.key"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return cert, private


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    directory = tmp_path_factory.mktemp("redis-tls")
    cert, key = _certificate(directory)
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--tls-cert-file", str(cert),
         "--tls-key-file", str(key), "--tls-auth-clients", "no", "--save", "", "--appendonly", "no",
         "--dir", str(directory)], stdout=(directory / "redis.log").open("wb"), stderr=subprocess.STDOUT)
    server = TlsRedis(port, cert, process)
    try:
        wait_for(lambda: process.poll() is None and server.client().ping(), 10,
                 message=f"redis-server with TLS on {port} (log: {directory / 'redis.log'})")
    except AssertionError:
        if "TLS" in (directory / "redis.log").read_text():
            pytest.fail("this redis-server has no TLS support: install Debian's redis-server (built with TLS)",
                        pytrace=False)
        raise
    yield server
    process.terminate()
    process.wait(10)


def test_redis_over_tls_inspects_sends_and_measures_queues(release: Release, tls_redis: TlsRedis,
                                                          tmp_path: Path) -> None:
    monitor = InstalledMonitor(release.plain, tls_redis.url, tmp_path).start()
    try:
        inspected = monitor.client.get("/api/workers?refresh=1")  # a broadcast and its reply queue
        assert inspected.status_code == 200, inspected.text
        sent = monitor.client.post("/api/task/send-task/tests.add", json={"args": [1, 2]})
        assert sent.status_code == 200, sent.text
        assert tls_redis.client().llen("celery") == 1  # the message is on the broker, over TLS
        lengths = monitor.client.get("/api/queues/length")
        assert lengths.status_code == 200, lengths.text
        assert {"name": "celery", "messages": 1, "cluster": "default"} in lengths.json()["active_queues"]
    finally:
        monitor.stop()


def test_a_cluster_over_tls_beside_a_plain_one(release: Release, tls_redis: TlsRedis, tmp_path: Path) -> None:
    """Each cluster's connection has its own transport: a rediss:// cluster and a redis:// one, side by side."""
    plain = "redis://127.0.0.1:6379/14"
    spec = f"--clusters=secure={tls_redis.url}, plain={plain}"
    monitor = InstalledMonitor(release.plain, "", tmp_path, (spec,)).start(wait_connected=False)
    try:
        wait_for(lambda: all(c["connected"] for c in monitor.client.get("/api/monitor/status").json()["clusters"]
                             .values()), 30, message="both clusters' streams connected")
        before = tls_redis.client().llen("celery")
        sent = monitor.client.post("/api/task/send-task/tests.add", json={"args": [1, 2], "cluster": "secure"})
        assert sent.status_code == 200, sent.text
        assert tls_redis.client().llen("celery") == before + 1  # on the TLS broker, not on the plain one
        secure = wait_for(lambda: [q for q in monitor.client.get("/api/queues/length?cluster=secure").json()
                                   ["active_queues"] if q["name"] == "celery" and q["messages"] == before + 1], 20,
                          message="the TLS cluster's queue measured over TLS")
        assert secure[0]["cluster"] == "secure"
    finally:
        monitor.stop()
