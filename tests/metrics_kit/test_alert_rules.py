"""The alert rules file: valid for Prometheus, unit-tested per alert, built on exported metrics only."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from . import contract, promql_names, tools

REQUIRED_ALERTS = {
    "CeleryWorkerDown",
    "CeleryTaskHighFailureRate",
    "CeleryQueueBacklogGrowing",
    "CeleryMonitorNotReceivingEvents",
    "CeleryTaskRuntimeP95High",
}
SEVERITIES = {"critical", "warning", "info"}
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


def load(path: Any) -> Any:
    return yaml.safe_load(path.read_text())


def alerting_rules() -> Iterator[dict[str, Any]]:
    for group in load(tools.RULES)["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                yield rule


ALERTS = list(alerting_rules())
ALERT_IDS = [rule["alert"] for rule in ALERTS]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def test_promtool_accepts_the_rules_file() -> None:
    result = run(tools.binary("promtool"), "check", "rules", str(tools.RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = run(tools.binary("promtool"), "test", "rules", str(tools.RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_requested_alerts_are_there_and_names_are_unique() -> None:
    assert set(ALERT_IDS) >= REQUIRED_ALERTS
    assert len(ALERT_IDS) == len(set(ALERT_IDS))


def test_groups_have_unique_names_and_rules() -> None:
    groups = load(tools.RULES)["groups"]
    names = [group["name"] for group in groups]
    assert len(names) == len(set(names))
    assert all(group["rules"] for group in groups)


@pytest.mark.parametrize("rule", ALERTS, ids=ALERT_IDS)
def test_every_alert_carries_severity_summary_description_and_a_wait(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert len(annotations["description"].strip()) > len(annotations["summary"].strip())
    assert DURATION.match(str(rule["for"])), f"{rule['alert']} needs a `for:` so one bad scrape does not page"


@pytest.mark.parametrize("rule", ALERTS, ids=ALERT_IDS)
def test_every_alert_uses_only_exported_metrics(rule: dict[str, Any]) -> None:
    names = promql_names.metric_names(rule["expr"])
    assert names, f"{rule['alert']} selects no metric"
    unknown = {name for name in names if contract.family_of(name) is None}
    assert not unknown, f"{rule['alert']} uses metrics the monitor does not export: {sorted(unknown)}"


@pytest.mark.parametrize("rule", ALERTS, ids=ALERT_IDS)
def test_every_alert_has_a_firing_and_a_quiet_unit_test(rule: dict[str, Any]) -> None:
    fires = quiet = 0
    for case in load(tools.RULE_TESTS)["tests"]:
        for check in case.get("alert_rule_test", []):
            if check["alertname"] == rule["alert"]:
                if check.get("exp_alerts"):
                    fires += 1
                else:
                    quiet += 1
    assert fires, f"no unit test where {rule['alert']} fires"
    assert quiet, f"no unit test where {rule['alert']} stays quiet"


def test_unit_tests_load_the_shipped_rules_file() -> None:
    assert load(tools.RULE_TESTS)["rule_files"] == [tools.RULES.name]


def test_promtool_unit_tests_catch_a_broken_rule(tmp_path: Any) -> None:
    """A rule that fires too eagerly must fail its unit test, or the unit tests prove nothing."""
    shipped = "expr: flower_worker_online == 0"
    broken = tools.RULES.read_text().replace(shipped, "expr: flower_worker_online < 2")
    assert broken != tools.RULES.read_text()
    (tmp_path / tools.RULES.name).write_text(broken)
    (tmp_path / tools.RULE_TESTS.name).write_text(tools.RULE_TESTS.read_text())
    result = run(tools.binary("promtool"), "test", "rules", str(tmp_path / tools.RULE_TESTS.name))
    assert result.returncode != 0
    assert "CeleryWorkerDown" in result.stdout + result.stderr
