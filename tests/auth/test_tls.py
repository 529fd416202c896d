"""Serving over TLS: --certfile/--keyfile, client certificates with --ca_certs, HSTS and Secure cookies."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from support.auth_stack import PROBE
from support.processes import BIN, RedisServer, free_port, wait_for

pytestmark = pytest.mark.timeout(60)


def issue(directory: Path, name: str, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
          server: bool = False) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A key and certificate (a CA when ``ca`` is None), written as <name>.pem and <name>.key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(hours=1)))
    if ca is None:
        builder = builder.issuer_name(subject).add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        signer = key
    else:
        builder = builder.issuer_name(ca[0].subject)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), False)
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        signer = ca[1]
    certificate = builder.sign(signer, hashes.SHA256())
    (directory / f"{name}.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return certificate, key


@pytest.fixture
def tls_monitor(redis_server: RedisServer, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The monitor serving HTTPS with a certificate of our own CA, asking clients for theirs."""
    ca = issue(tmp_path, "ca", None)
    issue(tmp_path, "server", ca, server=True)
    issue(tmp_path, "client", ca)
    port = free_port()
    log = tmp_path / "monitor.log"
    process = subprocess.Popen(
        [str(BIN / "celery-monitor"), f"--port={port}", "--address=127.0.0.1",
         f"--broker=redis://127.0.0.1:{redis_server.port}/15", f"--db={tmp_path / 'monitor.db'}",
         f"--basic_auth={PROBE[0]}:{PROBE[1]}", f"--certfile={tmp_path / 'server.pem'}",
         f"--keyfile={tmp_path / 'server.key'}", f"--ca_certs={tmp_path / 'ca.pem'}"],
        cwd=tmp_path, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        yield f"https://127.0.0.1:{port}", tmp_path
    finally:
        process.terminate()
        process.wait(10)


def test_tls_with_client_certificates(tls_monitor: tuple[str, Path]) -> None:
    base, certs = tls_monitor
    trusted = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    with_client_cert = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    with_client_cert.load_cert_chain(str(certs / "client.pem"), str(certs / "client.key"))
    with httpx.Client(base_url=base, verify=with_client_cert, auth=PROBE, timeout=5) as client:
        response = wait_for(lambda: client.get("/api/me"), 20, message="the monitor over TLS")
        assert response.status_code == 200 and response.json()["user"] == PROBE[0]
        assert response.headers["strict-transport-security"].startswith("max-age=")
    with httpx.Client(base_url=base, verify=trusted, timeout=5) as client, pytest.raises(httpx.HTTPError):
        client.get("/healthcheck")  # no client certificate: the handshake fails
    with httpx.Client(base_url=base.replace("https", "http"), timeout=5) as client, pytest.raises(httpx.HTTPError):
        client.get("/healthcheck")  # plain HTTP on the TLS port
