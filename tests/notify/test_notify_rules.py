"""Rules and channels as written in the config file: checked once, bad ones named in one line."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from support.processes import BIN

from celery_monitor.notify import secrets, signing
from celery_monitor.notify.evaluate import Evaluator
from celery_monitor.notify.messages import FIRING, RESOLVED, Links
from celery_monitor.notify.model import BadConfig, parse_config
from celery_monitor.notify.notices import TaskNotice

CHANNELS = {"hook": {"kind": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "k"}}


def failed(name: str, exception: str, retries: int = 0, at: float = 1000.0) -> TaskNotice:
    return TaskNotice(f"id-{name}-{at}", name, "FAILURE", exception, None, retries, "w@h", at)


@pytest.mark.parametrize(("config", "needle"), [
    ({"rules": {"r": {"kind": "task_failed", "channels": ["nowhere"]}}}, "no channel named 'nowhere'"),
    ({"channels": {"c": {"kind": "carrier-pigeon"}}}, "kind must be one of"),
    ({"channels": {"c": {"kind": "webhook", "url": "ftp://x"}}}, "secret: expected a non-empty string"),
    ({"channels": {"c": {"kind": "webhook", "url": "ftp://x", "secret": "s"}}}, "expected an http(s):// URL"),
    ({"channels": CHANNELS, "rules": {"r": {"kind": "queue_length", "channels": ["hook"]}}}, "threshold"),
    ({"channels": CHANNELS, "rules": {"r": {"kind": "task_failed", "channels": ["hook"], "exceptions": ["("]}}},
     "bad regular expression"),
    ({"channels": CHANNELS, "rules": {"r": {"kind": "task_failed", "channels": ["hook"], "colour": "red"}}},
     "unknown field 'colour'"),
    ({"channels": CHANNELS, "rules": {"r": {"kind": "task_failed", "channels": ["hook"], "severity": "meh"}}},
     "severity"),
    ({"channels": CHANNELS, "rules": {"r": {"kind": "task_failed", "channels": ["hook"], "clusters": ["Prod"]}}},
     "rule 'r'.clusters: cluster name 'Prod' must be"),
    ("not a dict", "expected a dict"),
])
def test_bad_configuration_is_named(config: Any, needle: str) -> None:
    with pytest.raises(BadConfig, match=None) as raised:
        parse_config(config)
    assert needle in str(raised.value)


def test_a_bad_config_file_stops_the_monitor_in_one_line(tmp_path: Path) -> None:
    conf = tmp_path / "conf.py"
    conf.write_text("notifications = {'rules': {'r': {'kind': 'task_failed', 'channels': ['nowhere']}}}\n")
    done = subprocess.run([str(BIN / "celery-monitor"), f"--conf={conf}", "--broker=redis://127.0.0.1:9/0"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "no channel named 'nowhere'" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_task_rules_include_and_exclude_by_name_and_exception() -> None:
    config = parse_config({"channels": CHANNELS, "rules": {"r": {
        "kind": "task_failed", "channels": ["hook"], "window": 10, "tasks": ["app.*"], "exclude_tasks": ["app.noisy"],
        "exceptions": ["Timeout|Connection"], "exclude_exceptions": ["expected"]}}})
    evaluator = Evaluator(Links("https://mon.example.com/celery"))
    evaluator.tasks(config.rules.values(), [
        failed("app.fetch", "ConnectionError('down')"), failed("app.fetch", "TimeoutError()", at=1001.0),
        failed("app.fetch", "ValueError('x')"), failed("app.noisy", "TimeoutError()"),
        failed("other.fetch", "TimeoutError()"), failed("app.fetch", "TimeoutError('expected')"),
    ])
    assert evaluator.due(1005.0) == []  # the window is still open
    [message] = evaluator.due(1010.0)
    assert (message.status, message.count, message.subject) == (FIRING, 2, "app.fetch")
    assert "2 x app.fetch failed" in message.summary
    assert message.links[0].url == "https://mon.example.com/celery/task/id-app.fetch-1000.0"
    assert message.links[-1].url == "https://mon.example.com/celery/tasks?taskname=app.fetch&state=FAILURE"


def test_retries_exhausted_means_a_failure_after_at_least_min_retries() -> None:
    config = parse_config({"channels": CHANNELS, "rules": {"r": {
        "kind": "retries_exhausted", "channels": ["hook"], "window": 0, "min_retries": 2}}})
    evaluator = Evaluator(Links(""))
    evaluator.tasks(config.rules.values(), [failed("t", "E", retries=1), failed("t", "E", retries=3)])
    [message] = evaluator.due(2000.0)
    assert message.count == 1
    assert "failed after 3 retries" in message.details[0]
    assert message.links == []  # no --public_url: no links


def test_a_worker_offline_fires_once_and_resolves_when_back() -> None:
    config = parse_config({"channels": CHANNELS, "rules": {"off": {
        "kind": "worker_offline", "channels": ["hook"], "window": 5, "workers": ["w*"]}}})
    rules = list(config.rules.values())
    evaluator = Evaluator(Links(""))
    evaluator.workers(rules, {"w1@h": {"status": True}, "x@h": {"status": True}}, 100.0)
    evaluator.workers(rules, {"w1@h": {"status": False}, "x@h": {"status": False}}, 101.0)
    evaluator.workers(rules, {"w1@h": {"status": False}, "x@h": {"status": False}}, 102.0)
    [firing] = evaluator.due(106.0)
    assert (firing.status, firing.subject, firing.count) == (FIRING, "w1@h", 1)
    evaluator.workers(rules, {"w1@h": {"status": True}}, 107.0)
    [resolved] = evaluator.due(107.0)
    assert (resolved.status, resolved.dedup_key) == (RESOLVED, firing.dedup_key)


def test_a_queue_condition_must_hold_for_its_duration() -> None:
    config = parse_config({"channels": CHANNELS, "rules": {"long": {
        "kind": "queue_length", "channels": ["hook"], "window": 0, "threshold": 10, "duration": 30}}})
    rules = list(config.rules.values())
    evaluator = Evaluator(Links(""))
    evaluator.queues(rules, [{"name": "celery", "messages": 50}], 0.0)
    evaluator.queues(rules, [{"name": "celery", "messages": 50}], 20.0)
    assert evaluator.due(20.0) == []
    evaluator.queues(rules, [{"name": "celery", "messages": 50}], 31.0)
    assert [m.status for m in evaluator.due(31.0)] == [FIRING]
    evaluator.queues(rules, [{"name": "celery", "messages": 3}], 40.0)
    assert [m.status for m in evaluator.due(40.0)] == [RESOLVED]


def test_a_queue_of_one_name_in_two_clusters_is_two_subjects_named_by_their_cluster() -> None:
    config = parse_config({"channels": CHANNELS, "rules": {
        "long": {"kind": "queue_length", "channels": ["hook"], "window": 0, "threshold": 10, "queues": ["celery"]},
        "prod-only": {"kind": "queue_length", "channels": ["hook"], "window": 0, "threshold": 10,
                      "queues": ["prod:*"]}}})
    rules = list(config.rules.values())
    evaluator = Evaluator(Links("https://cm.example.com"))
    queues = [{"cluster": "prod", "name": "celery", "messages": 50}, {"cluster": "staging", "name": "celery",
                                                                       "messages": 3}]
    evaluator.queues(rules, queues, 0.0)
    fired = {(m.rule, m.subject): m for m in evaluator.due(0.0)}
    assert set(fired) == {("long", "prod:celery"), ("prod-only", "prod:celery")}
    message = fired[("long", "prod:celery")]
    assert message.details == ["queue celery of cluster prod: 50 messages (threshold 10, for 0 s)"]
    assert [link.url for link in message.links] == ["https://cm.example.com/broker?cluster=prod"]
    # staging's queue of that name is another subject: its growth fires apart, prod's stays firing.
    evaluator.queues(rules, [queues[0], {**queues[1], "messages": 40}], 1.0)
    assert [(m.rule, m.subject, m.status) for m in evaluator.due(1.0)] == [("long", "staging:celery", FIRING)]


def test_a_rule_given_clusters_watches_theirs_alone_and_names_each_subject_by_its_cluster() -> None:
    config = parse_config({"channels": CHANNELS, "rules": {
        "prod-failures": {"kind": "task_failed", "channels": ["hook"], "window": 0, "clusters": ["prod"]},
        "any-failures": {"kind": "task_failed", "channels": ["hook"], "window": 0},
        "prod-workers": {"kind": "worker_offline", "channels": ["hook"], "window": 0, "clusters": ["prod"]},
        "default-queues": {"kind": "queue_length", "channels": ["hook"], "window": 0, "threshold": 1,
                           "clusters": ["default"]}}})
    rules = list(config.rules.values())
    assert config.rules["prod-failures"].shown()["clusters"] == ["prod"]
    evaluator = Evaluator(Links("https://cm.example.com"))
    evaluator.tasks(rules, [TaskNotice("p1", "billing.charge", "FAILURE", "E()", None, 0, "prod:w@h", 1.0,
                                       cluster="prod"),
                            TaskNotice("s1", "billing.charge", "FAILURE", "E()", None, 0, "staging:w@h", 1.0,
                                       cluster="staging"),
                            failed("billing.charge", "E()", at=1.0)])
    evaluator.workers(rules, {"prod:w@h": {"status": True, "cluster": "prod"},
                              "staging:w@h": {"status": True, "cluster": "staging"}}, 1.0)
    evaluator.workers(rules, {"prod:w@h": {"status": False, "cluster": "prod"},
                              "staging:w@h": {"status": False, "cluster": "staging"}}, 2.0)
    evaluator.queues(rules, [{"name": "celery", "messages": 5}, {"cluster": "prod", "name": "celery", "messages": 5}],
                     2.0)
    fired = {(m.rule, m.subject): m for m in evaluator.due(3.0)}
    assert set(fired) == {("prod-failures", "prod:billing.charge"), ("any-failures", "prod:billing.charge"),
                          ("any-failures", "staging:billing.charge"), ("any-failures", "billing.charge"),
                          ("prod-workers", "prod:w@h"), ("default-queues", "celery")}
    # The message's list of tasks is the cluster's: the name alone would match the other clusters' tasks too.
    listed = fired[("prod-failures", "prod:billing.charge")].links[-1].url
    assert listed == "https://cm.example.com/tasks?taskname=billing.charge&state=FAILURE&cluster=prod"
    assert fired[("any-failures", "billing.charge")].links[-1].url.endswith("taskname=billing.charge&state=FAILURE")


def test_a_missed_periodic_task_fires_and_resolves_when_its_run_arrives() -> None:
    config = parse_config({"channels": CHANNELS, "rules": {"beat": {
        "kind": "schedule_missed", "channels": ["hook"], "window": 0, "entries": ["nightly-*"]}}})
    rules = list(config.rules.values())
    evaluator = Evaluator(Links("https://cm.example.com"))
    entries = [{"name": "nightly-report", "task": "app.report", "due_at": 90.0, "missed": True, "missed_runs": 2},
               {"name": "hourly", "task": "app.sync", "due_at": 90.0, "missed": True, "missed_runs": 1},
               {"name": "nightly-off", "task": "app.x", "due_at": None, "missed": False}]
    evaluator.schedules(rules, entries, 100.0)
    [firing] = evaluator.due(100.0)
    assert (firing.status, firing.subject, firing.kind) == (FIRING, "nightly-report", "schedule_missed")
    assert firing.details == ["periodic task nightly-report (app.report): 2 run(s) missed"]
    assert [link.url for link in firing.links] == ["https://cm.example.com/schedules"]
    evaluator.schedules(rules, entries, 101.0)
    assert evaluator.due(101.0) == []  # fires once while it lasts
    evaluator.schedules(rules, [{**entries[0], "missed": False, "missed_runs": 0}], 102.0)
    [resolved] = evaluator.due(102.0)
    assert (resolved.status, resolved.dedup_key) == (RESOLVED, firing.dedup_key)


def test_a_failed_tasks_message_links_its_failure_group_and_its_workflow() -> None:
    config = parse_config({"channels": CHANNELS, "rules": {"f": {"kind": "task_failed", "channels": ["hook"],
                                                                 "window": 0}}})
    evaluator = Evaluator(Links("https://cm.example.com/"))
    step = TaskNotice("step-2", "app.charge", "FAILURE", "KeyError('card')", None, 0, "w@h", 5.0, "root-1")
    alone = TaskNotice("alone", "app.charge", "FAILURE", "ValueError('x')", None, 0, "w@h", 5.0, "alone")
    evaluator.tasks(list(config.rules.values()), [step, alone])
    [message] = evaluator.due(5.0)
    urls = [link.url for link in message.links]
    assert urls[:4] == ["https://cm.example.com/task/step-2",
                        "https://cm.example.com/failures?name=app.charge&exception=KeyError",
                        "https://cm.example.com/workflow/root-1",
                        "https://cm.example.com/task/alone"]
    assert "https://cm.example.com/failures?name=app.charge&exception=ValueError" in urls
    assert not any("/workflow/alone" in url for url in urls)  # a task that is its own root is no workflow


def test_a_failed_tasks_message_names_the_cluster_of_its_failure_group() -> None:
    config = parse_config({"channels": CHANNELS, "rules": {"f": {"kind": "task_failed", "channels": ["hook"],
                                                                 "window": 0}}})
    evaluator = Evaluator(Links("https://cm.example.com/"))
    prod = TaskNotice("p-1", "app.charge", "FAILURE", "KeyError('card')", None, 0, "prod:w@h", 5.0, "p-1",
                      cluster="prod")
    evaluator.tasks(list(config.rules.values()), [prod])
    [message] = evaluator.due(5.0)
    assert "https://cm.example.com/failures?name=app.charge&exception=KeyError&group_cluster=prod" in [
        link.url for link in message.links]


def test_secrets_come_from_the_environment_or_a_file_and_are_masked(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_KEY", "from-env")
    (tmp_path / "key").write_text("from-file\n")
    assert secrets.resolve("env:HOOK_KEY") == "from-env"
    assert secrets.resolve(f"file:{tmp_path / 'key'}") == "from-file"
    with pytest.raises(secrets.SecretError, match="'MISSING' is not set"):
        secrets.resolve("env:MISSING")
    assert secrets.masked("https://hooks.slack.com/services/T0/B0/XYZ") == "https://hooks.slack.com/***"
    assert secrets.masked("https://user:pw@example.com/x") == "https://example.com/***"
    assert secrets.masked("plain-key") == "***"
    assert secrets.masked("env:HOOK_KEY") == "env:HOOK_KEY"


def test_a_webhook_signature_verifies_and_refuses_tampering_and_stale_timestamps() -> None:
    now = int(time.time())
    body = b'{"a": 1}'
    header = signing.signature("key", now, body)
    assert signing.verify("key", str(now), header, body, now)
    assert not signing.verify("key", str(now), header, b'{"a": 2}', now)
    assert not signing.verify("other", str(now), header, body, now)
    assert not signing.verify("key", str(now), header, body, now + 301)
    assert not signing.verify("key", "soon", header, body, now)


def test_notifications_come_from_the_environment_as_json_without_a_config_file(tmp_path: Path) -> None:
    from celery_monitor.cli.config import ConfigError, load_settings

    conf = tmp_path / "none.py"
    conf.write_text("")
    raw = '{"channels": {"hook": {"kind": "webhook", "url": "env:HOOK_URL", "secret": "env:KEY"}}}'
    settings = load_settings([f"--conf={conf}"], environ={"CELERY_MONITOR_NOTIFICATIONS": raw})
    assert parse_config(settings.notifications).channels["hook"].options["url"] == "env:HOOK_URL"
    with pytest.raises(ConfigError, match="CELERY_MONITOR_NOTIFICATIONS is not JSON"):
        load_settings([f"--conf={conf}"], environ={"CELERY_MONITOR_NOTIFICATIONS": "{nope"})


def test_runtime_and_lost_rules_describe_what_happened() -> None:
    config = parse_config({"channels": CHANNELS, "rules": {
        "slow": {"kind": "task_runtime", "channels": ["hook"], "window": 0, "threshold": 30},
        "lost": {"kind": "task_lost", "channels": ["hook"], "window": 0}}})
    evaluator = Evaluator(Links("https://m.example"))
    evaluator.tasks(config.rules.values(), [
        TaskNotice("fast", "app.report", "SUCCESS", None, 3.0, 0, "w@h", 1.0),
        TaskNotice("slow", "app.report", "SUCCESS", None, 45.5, 0, "w@h", 1.0),
        TaskNotice("gone", "app.report", "LOST", None, None, 0, "w@h", 1.0),
    ])
    slow, lost = sorted(evaluator.due(2.0), key=lambda m: m.rule, reverse=True)
    assert (slow.rule, slow.count, slow.details) == ("slow", 1, ["slow ran 45.5 s (over 30 s) on w@h"])
    assert (lost.rule, lost.count, lost.details) == ("lost", 1, ["gone was lost on w@h"])
    assert lost.links[-1].url == "https://m.example/tasks?taskname=app.report&state=LOST"
    assert slow.links[-1].url == "https://m.example/tasks?taskname=app.report"


def test_a_worker_is_not_judged_offline_before_the_stream_was_up_for_its_expiry_window() -> None:
    config = parse_config({"channels": CHANNELS, "rules": {"off": {
        "kind": "worker_offline", "channels": ["hook"], "window": 0}}})
    rules = list(config.rules.values())
    evaluator = Evaluator(Links(""))
    evaluator.workers(rules, {"w@h": {"status": True, "freq": 5.0}}, 100.0, listening_since=99.0)
    evaluator.workers(rules, {"w@h": {"status": False, "freq": 5.0}}, 105.0, listening_since=99.0)
    assert evaluator.due(105.0) == []  # reconnected 6 s ago: its heartbeats may just have been missed
    evaluator.workers(rules, {"w@h": {"status": False, "freq": 5.0}}, 110.0, listening_since=99.0)
    assert [m.status for m in evaluator.due(110.0)] == [FIRING]


def test_slack_gets_task_text_escaped() -> None:
    from celery_monitor.notify.channels import slack_text
    from celery_monitor.notify.messages import Message

    message = Message("r", "task_failed", "error", FIRING, "app.t", "r: 1 x app.t failed",
                      details=["id failed: ValueError('<!channel> & <https://evil.example|click>')"])
    text = slack_text(message)
    assert "<" not in text and ">" not in text
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in text
