"""A private nginx for the proxy tests (the site is the test's own, written as a user would), and a
self-signed certificate for the ones that terminate TLS."""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from support.processes import wait_for

NGINX = "/usr/sbin/nginx"

# The WebSocket upgrade passed on only when asked for, as nginx's documentation writes it.
UPGRADE_MAP = """
map $http_upgrade $connection_upgrade {
    default upgrade;
    ''      close;
}
"""

# A location passing everything to the monitor as a TLS-terminating proxy does (an Ingress controller
# too): the WebSocket upgrade, `Host $host`, `X-Forwarded-Proto $scheme`, the client's address.
LOCATION = """
    location {path} {{
        proxy_pass http://127.0.0.1:{upstream};
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;{extra}
        proxy_read_timeout 1h;
    }}
"""

SERVER = """
server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
{locations}
}}
"""

# `Host $host` drops a non-default port: a server on another port than 443 also says which one
# the browser used (``extra=PORT_HEADER`` in its locations).
PORT_HEADER = "\n        proxy_set_header X-Forwarded-Port $server_port;"

# Only what a private, unprivileged-paths instance needs around the site. Started by root, nginx
# would run its workers as nobody, who cannot enter the test's private folders (a UNIX socket there).
MAIN = """
{user}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/site.conf;
}}
"""


@dataclass
class Nginx:
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, site: str, ready_url: str, verify: bool = True) -> Nginx:
        """Run nginx with ``site`` (server blocks) until ``ready_url`` answers through it."""
        if not Path(NGINX).exists():
            pytest.fail(f"{NGINX} is missing: run ./scripts/bootstrap (scripts/setup.d/10-frontend installs it)")
        (self.directory / "site.conf").write_text(UPGRADE_MAP + site)
        user = "user root;" if os.geteuid() == 0 else ""
        (self.directory / "nginx.conf").write_text(MAIN.format(tmp=self.directory, user=user))
        command = [NGINX, "-p", str(self.directory), "-e", str(self.directory / "error.log"),
                   "-c", str(self.directory / "nginx.conf")]
        check = subprocess.run([*command, "-t"], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        self.process = subprocess.Popen([*command, "-g", "daemon off;"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: httpx.get(ready_url, verify=verify).status_code == 200, 15,
                 message=f"nginx proxying {ready_url} (log: {self.directory / 'error.log'})")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def self_signed(directory: Path, *names: str) -> tuple[Path, Path]:
    """A self-signed certificate for these host names and IP addresses; (certificate, key) files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    alternatives: list[x509.GeneralName] = []
    for name in names:
        try:
            alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternatives.append(x509.DNSName(name))
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(hours=2))
                   .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
                   .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "proxy.pem", directory / "proxy.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file
