"""Notifications end to end: real workers on Redis, the real monitor, a local HTTP receiver and SMTP server.

One monitor with channels of every kind (Slack and PagerDuty pointed at the local receiver) and
rules from its config file; secrets come from the environment, a file and the file itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.client import celery_client
from support.notify_receivers import HttpReceiver, SmtpServer
from support.processes import MonitorProcess, OwnBrokers, Worker, new_monitor, start_worker, wait_for

from celery_monitor.notify import signing

ADMIN = ("admin", "adm1n-pass")
VIEWER = ("viewer", "v1ewer-pass")
SLACK_PATH = "/slack/T000/B000/slack-path-SECRET-111"
HOOK_KEY = "hmac-key-SECRET-222"
PD_KEY = "pd-routing-SECRET-333"
SMTP_PASSWORD = "smtp-pass-SECRET-444"
FLAKY_KEY = "flaky-key-SECRET-555"
API_KEY = "api-added-SECRET-666"
SECRETS = (SLACK_PATH, HOOK_KEY, PD_KEY, SMTP_PASSWORD, FLAKY_KEY, API_KEY)
PUBLIC_URL = "https://monitor.example.com/celery"
WINDOW = 6.0


@dataclass
class Setup:
    monitor: MonitorProcess
    http: HttpReceiver
    smtp: SmtpServer
    broker: str
    backend: str
    tmp: Path
    spare: Worker


def config_file(tmp: Path, http: HttpReceiver, smtp: SmtpServer) -> Path:
    key_file = tmp / "hook-key"
    key_file.write_text(HOOK_KEY + "\n")
    channels = {
        "slack": {"kind": "slack", "url": "env:TEST_SLACK_URL"},
        "hook": {"kind": "webhook", "url": f"{http.url}/hook", "secret": f"file:{key_file}"},
        "pd": {"kind": "pagerduty", "routing_key": PD_KEY, "url": f"{http.url}/pd"},
        "mail": {"kind": "email", "host": "localhost", "port": smtp.port, "username": "monitor",
                 "password": SMTP_PASSWORD, "sender": "monitor@example.com", "to": ["oncall@example.com"],
                 "ca_certs": str(smtp.cert)},
        "flaky": {"kind": "webhook", "url": f"{http.url}/flaky", "secret": FLAKY_KEY},
    }
    rules = {
        "failures": {"kind": "task_failed", "tasks": ["tests.fail"], "exceptions": ["boom"],
                     "exclude_exceptions": ["ignored"], "window": WINDOW, "severity": "critical",
                     "channels": ["slack", "hook", "pd", "mail"]},
        "flaky-failures": {"kind": "task_failed", "tasks": ["tests.fail"], "exceptions": ["flaky-delivery"],
                           "window": 0, "channels": ["flaky"]},
        "gone": {"kind": "worker_offline", "workers": ["w-notify-b@*"], "window": 1, "channels": ["hook", "pd"]},
        "exhausted": {"kind": "retries_exhausted", "min_retries": 2, "window": 0, "channels": ["hook"]},
        "backlog": {"kind": "queue_length", "queues": ["notify-q"], "threshold": 3, "window": 0, "channels": ["hook"]},
    }
    path = tmp / "notify-config.py"
    path.write_text(f"notifications = {{'channels': {channels!r}, 'rules': {rules!r}}}\n")
    return path


@pytest.fixture(scope="module")
def setup(own_brokers: OwnBrokers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("notify")
    http = HttpReceiver().start()
    smtp = SmtpServer(tmp, "monitor", SMTP_PASSWORD).start()
    broker = own_brokers.broker_url("redis", "notify")
    backend = own_brokers.backend_url("notify")
    monitor = new_monitor(broker, tmp, f"--conf={config_file(tmp, http, smtp)}", f"--public_url={PUBLIC_URL}",
                          f"--basic_auth={ADMIN[0]}:{ADMIN[1]},{VIEWER[0]}:{VIEWER[1]}",
                          f"--read_only_users={VIEWER[0]}", auth=ADMIN,
                          env={"TEST_SLACK_URL": f"{http.url}{SLACK_PATH}"}).start()
    worker = start_worker(broker, "w-notify-a", tmp, backend=backend)
    spare = start_worker(broker, "w-notify-b", tmp, backend=backend)
    for hostname in (worker.hostname, spare.hostname):
        wait_for(lambda h=hostname: monitor.json("/api/workers?status=true").get(h), 30,  # type: ignore[misc]
                 message=f"worker {hostname} online in the monitor")
    setup = Setup(monitor, http, smtp, broker, backend, tmp, spare)
    yield setup
    for running in (worker, setup.spare):
        running.stop()
    monitor.stop()
    smtp.stop()
    http.stop()


def send(setup: Setup, name: str, *args: Any) -> list[str]:
    with celery_client(setup.broker, setup.backend) as client:
        return [client.send_task(name, list(args)).id]


def settled(setup: Setup, task_ids: list[str], state: str = "FAILURE") -> None:
    wait_for(lambda: all(setup.monitor.get(f"/api/task/info/{t}").json().get("state") == state for t in task_ids),
             60, message=f"{len(task_ids)} tasks {state}")


def deliveries(setup: Setup, rule: str) -> list[dict[str, Any]]:
    rows = setup.monitor.json("/api/notifications/deliveries?limit=1000")["deliveries"]
    return [row for row in rows if row["rule"] == rule]


def signed(request: Any, key: str) -> bool:
    headers = {k.lower(): v for k, v in request.headers.items()}
    return signing.verify(key, headers[signing.TIMESTAMP_HEADER.lower()], headers[signing.SIGNATURE_HEADER.lower()],
                          request.body, time.time())


def of_rule(requests: list[Any], rule: str) -> list[Any]:
    found = []
    for request in requests:
        body = request.json()
        if body.get("rule") == rule or body.get("payload", {}).get("group") == rule or (
                rule in body.get("dedup_key", "").split("/")):
            found.append(request)
    return found


def test_a_burst_of_failures_is_one_message_per_channel_with_a_count(setup: Setup) -> None:
    ids: list[str] = []
    for number in range(8):
        ids += send(setup, "tests.fail", f"boom {number}")
    ids += send(setup, "tests.fail", "boom but ignored")  # excluded by its exception
    ids += send(setup, "tests.fail", "other trouble")  # not matched by the exception pattern
    settled(setup, ids)
    wait_for(lambda: len(deliveries(setup, "failures")) == 4
             and all(row["outcome"] == "delivered" for row in deliveries(setup, "failures")),
             WINDOW + 30, message="the grouped message delivered on the four channels")

    [hook] = of_rule(setup.http.at("/hook"), "failures")
    assert signed(hook, HOOK_KEY)
    body = hook.json()
    # Every matching failure is in this one message: no second one can follow for this burst.
    assert (body["count"], body["status"], body["severity"], body["subject"]) == (8, "firing", "critical", "tests.fail")
    assert body["summary"].startswith("failures: 8 x tests.fail failed")
    links = [link["url"] for link in body["links"]]
    task_links = [link for link in links if "/task/" in link]
    assert len(task_links) == 5 and all(link.removeprefix(f"{PUBLIC_URL}/task/") in ids[:8] for link in task_links)
    assert f"{PUBLIC_URL}/tasks?taskname=tests.fail&state=FAILURE" in links
    assert not any(ids[8] in text or ids[9] in text for text in body["details"])

    [slack] = setup.http.at(SLACK_PATH)
    assert "[CRITICAL] failures: 8 x tests.fail failed" in slack.json()["text"]
    [pd] = of_rule(setup.http.at("/pd"), "failures")
    event = pd.json()
    assert (event["routing_key"], event["event_action"], event["payload"]["severity"]) == (PD_KEY, "trigger",
                                                                                           "critical")
    assert event["dedup_key"] == "celery-monitor/failures/tests.fail"
    [mail] = [m for m in setup.smtp.messages if "failures" in str(m["Subject"])]
    assert "8 x tests.fail failed" in str(mail["Subject"])
    assert task_links[0] in mail.get_payload(decode=True).decode()
    assert all(setup.smtp.tls_used)


def test_a_worker_offline_is_told_and_its_return_resolves_it(setup: Setup) -> None:
    hostname = setup.spare.hostname
    setup.spare.stop()
    wait_for(lambda: any(r.json()["status"] == "firing" for r in of_rule(setup.http.at("/hook"), "gone")), 60,
             message="the offline message")
    setup.spare = start_worker(setup.broker, "w-notify-b", setup.tmp, backend=setup.backend)
    wait_for(lambda: any(r.json()["status"] == "resolved" for r in of_rule(setup.http.at("/hook"), "gone")), 60,
             message="the resolve message")
    statuses = [r.json()["status"] for r in of_rule(setup.http.at("/hook"), "gone")]
    assert statuses == ["firing", "resolved"]
    assert all(signed(r, HOOK_KEY) for r in of_rule(setup.http.at("/hook"), "gone"))
    wait_for(lambda: len(of_rule(setup.http.at("/pd"), "gone")) == 2, 30, message="PagerDuty trigger and resolve")
    trigger, resolve = (r.json() for r in of_rule(setup.http.at("/pd"), "gone"))
    assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    assert trigger["dedup_key"] == resolve["dedup_key"] == f"celery-monitor/gone/{hostname}"


def test_a_refused_delivery_is_retried_with_a_backoff_and_logged(setup: Setup) -> None:
    setup.http.scripts["/flaky"] = [500]
    failed_before = setup.monitor.metric("celery_monitor_notifications_total", kind="webhook", outcome="failed")
    settled(setup, send(setup, "tests.fail", "flaky-delivery"))
    wait_for(lambda: [r["outcome"] for r in deliveries(setup, "flaky-failures")] == ["delivered"], 30,
             message="the retried delivery")
    [row] = deliveries(setup, "flaky-failures")
    assert (row["attempts"], row["last_error"]) == (2, None)
    first, second = setup.http.at("/flaky")
    assert second.at - first.at >= 0.9  # the first backoff is a second
    assert signed(first, FLAKY_KEY) and signed(second, FLAKY_KEY)
    assert setup.monitor.metric("celery_monitor_notifications_total", kind="webhook",
                                outcome="failed") == failed_before + 1


def test_a_task_failing_after_its_retries_is_told(setup: Setup) -> None:
    settled(setup, send(setup, "tests.flaky", 5))
    wait_for(lambda: of_rule(setup.http.at("/hook"), "exhausted"), 30, message="the retries-exhausted message")
    [message] = of_rule(setup.http.at("/hook"), "exhausted")
    assert "failed after 2 retries" in message.json()["details"][0]


def test_a_queue_over_its_threshold_is_told_and_resolved_when_it_drains(setup: Setup) -> None:
    worker = start_worker(setup.broker, "w-notify-q", setup.tmp, "-Q", "notify-q", backend=setup.backend)
    try:
        wait_for(lambda: "notify-q" in {q["name"] for q in setup.monitor.json("/api/queues/length")["active_queues"]},
                 30, message="the queue known to the monitor")
        # Two processes holding each task half a second, ten prefetched: the queue stays over the
        # threshold for about nine seconds, longer than the queue poller's five.
        with celery_client(setup.broker, setup.backend) as client:
            for _ in range(48):
                client.send_task("tests.hold", [0.5], queue="notify-q")
        wait_for(lambda: of_rule(setup.http.at("/hook"), "backlog"), 30, message="the queue-length message")
        wait_for(lambda: len(of_rule(setup.http.at("/hook"), "backlog")) == 2, 60, message="its resolve message")
        firing, resolved = (r.json() for r in of_rule(setup.http.at("/hook"), "backlog"))
        assert (firing["status"], firing["subject"], resolved["status"]) == ("firing", "notify-q", "resolved")
        assert "queue notify-q:" in firing["details"][0] and "threshold 3" in firing["details"][0]
        assert f"{PUBLIC_URL}/broker" in [link["url"] for link in firing["links"]]
    finally:
        worker.stop()


def test_send_test_delivers_on_each_channel_and_is_audited(setup: Setup) -> None:
    for name in ("hook", "slack", "pd", "mail"):
        response = setup.monitor.client.post(f"/api/notifications/channels/{name}/test")
        assert response.status_code == 200, response.text
        assert response.json() == {"channel": name, "delivered": True, "error": None}
    assert any(r.json()["status"] == "test" and signed(r, HOOK_KEY) for r in setup.http.at("/hook"))
    assert any("Test notification" in str(m["Subject"]) for m in setup.smtp.messages)
    audit = setup.monitor.json("/api/audit?action=notify.test")["entries"]
    assert {entry["target"] for entry in audit} >= {"hook", "slack", "pd", "mail"}
    assert setup.monitor.client.post("/api/notifications/channels/nowhere/test").status_code == 404


def test_secrets_are_masked_in_answers_and_absent_from_logs(setup: Setup) -> None:
    client = setup.monitor.client
    put = client.put("/api/notifications/channels/added", json={"kind": "webhook", "url": f"{setup.http.url}/added",
                                                                "secret": API_KEY})
    assert put.status_code == 200, put.text
    assert put.json()["channel"]["secret"] == "***"
    rule = client.put("/api/notifications/rules/added-rule", json={"kind": "task_lost", "channels": ["added"]})
    assert rule.status_code == 200, rule.text
    assert client.put("/api/notifications/rules/bad", json={"kind": "task_lost", "channels": ["nope"]}
                      ).status_code == 400
    assert client.put("/api/notifications/channels/hook", json={"kind": "slack", "url": "https://x"}
                      ).status_code == 409  # from the config file: changed there
    overview = client.get("/api/notifications")
    shown = {c["name"]: c for c in overview.json()["channels"]}
    assert shown["slack"]["url"] == "env:TEST_SLACK_URL"
    assert shown["pd"]["routing_key"] == "***"
    assert shown["mail"]["password"] == "***"
    assert shown["flaky"]["secret"] == "***"
    assert shown["hook"]["secret"].startswith("file:")
    assert "added-rule" in {r["name"] for r in overview.json()["rules"]}
    viewer = httpx.get(f"{setup.monitor.url}/api/notifications", auth=VIEWER)
    assert viewer.status_code == 200
    refused = httpx.put(f"{setup.monitor.url}/api/notifications/rules/x", auth=VIEWER,
                        json={"kind": "task_lost", "channels": ["hook"]})
    assert refused.status_code == 403
    audit = client.get("/api/audit?action=notify.channel.put").text
    page = client.get("/ui/notifications.json").text
    for secret in SECRETS:
        for text in (overview.text, viewer.text, audit, page, put.text):
            assert secret not in text
    assert client.delete("/api/notifications/rules/added-rule").status_code == 200
    assert client.delete("/api/notifications/channels/added").status_code == 200
    log = setup.monitor.log.read_text()
    for secret in SECRETS:
        assert secret not in log
