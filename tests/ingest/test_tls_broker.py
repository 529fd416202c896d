"""Redis over TLS: the event reader, the workers and the queue lengths all speak rediss://."""

from __future__ import annotations

import subprocess
from pathlib import Path

from support.client import celery_client
from support.processes import free_port, new_monitor, start_worker, wait_for


def test_events_over_tls(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                               "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file",
                               str(cert), "--tls-auth-clients", "no", "--save", "", "--dir", str(tmp_path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    broker = f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={cert}"
    monitor = worker = None
    try:
        monitor = new_monitor(broker, tmp_path).start()
        assert monitor.json("/api/monitor/status")["receiver"]["transport"] == "redis"
        worker = start_worker(broker, "tls", tmp_path, backend=broker.replace("/0?", "/1?"))
        with celery_client(broker, broker.replace("/0?", "/1?")) as app:
            result = app.send_task("tests.add", args=(20, 22))
            assert result.get(timeout=30) == 42
        info = wait_for(lambda: (i := monitor.json(f"/api/task/info/{result.id}"))["state"] == "SUCCESS" and i,
                        15, message="the task's events over TLS")
        assert info["worker"] == worker.hostname
        queues = monitor.json("/api/queues/length")["active_queues"]
        assert {"name": "celery", "messages": 0, "cluster": "default"} in queues
    finally:
        if worker:
            worker.stop()
        if monitor:
            monitor.stop()
        server.terminate()
        server.wait(10)
