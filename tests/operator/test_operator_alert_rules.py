"""The PrometheusRule of each monitor judges that monitor alone, checked with the real promtool.

Two monitors in one namespace, one of them down: the rules of the dead one fire its absence alert
(naming it), those of the live one stay quiet, and the rules as the kit ships them (unscoped)
miss the dead monitor, which is why the operator scopes them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cmon_helpers import make_monitor
from metrics_kit import promql_names, tools

from celery_monitor_operator import alert_rules
from celery_monitor_operator.renderers import prometheusrule

NAMESPACE = "shop"
LIVE, DEAD = "orders", "billing"


def rendered_groups(name: str) -> list[dict[str, Any]]:
    monitor = make_monitor({"broker": {"url": "redis://r/0"}, "prometheusRule": {"enabled": True}},
                           name=name, namespace=NAMESPACE)
    return list(prometheusrule.render_prometheus_rule(monitor, alert_rules.load_groups())["spec"]["groups"])


def absence_rule() -> dict[str, Any]:
    (rule,) = [rule for group in alert_rules.load_groups() for rule in group["rules"]
               if rule.get("alert") == "CeleryMonitorMetricsAbsent"]
    return dict(rule)


def absence_case(rule_files: list[str]) -> dict[str, Any]:
    """Only the live monitor is scraped: ``orders`` reports for 20 minutes, ``billing`` never does."""
    series = f'celery_monitor_receiver_connected{{namespace="{NAMESPACE}",job="{LIVE}",instance="10.0.0.1:5555"}}'
    return {
        "rule_files": rule_files,
        "evaluation_interval": "1m",
        "tests": [{
            "name": "one dead monitor is reported while another one is up",
            "interval": "1m",
            "input_series": [{"series": series, "values": "1x20"}],
            "alert_rule_test": [{
                "eval_time": "15m",
                "alertname": "CeleryMonitorMetricsAbsent",
                "exp_alerts": [{"exp_labels": {"severity": "warning", "namespace": NAMESPACE, "job": DEAD},
                                "exp_annotations": absence_rule()["annotations"]}],
            }],
        }],
    }


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tools.binary("promtool"), *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, check=False)


def write_rules(path: Path, groups: list[dict[str, Any]]) -> str:
    # Rule groups are named per file; two monitors' files loaded together need distinct group names.
    path.write_text(yaml.safe_dump({"groups": [{**group, "name": f"{path.stem}-{group['name']}"}
                                               for group in groups]}))
    return path.name


def test_with_two_monitors_the_dead_one_fires_its_absence_alert(tmp_path: Path) -> None:
    files = [write_rules(tmp_path / f"{name}.yaml", rendered_groups(name)) for name in (LIVE, DEAD)]
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(absence_case(files)))

    checked = promtool("check", "rules", *files, cwd=tmp_path)
    result = promtool("test", "rules", "test.yaml", cwd=tmp_path)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_unscoped_rules_would_miss_it(tmp_path: Path) -> None:
    files = [write_rules(tmp_path / f"{name}.yaml", list(alert_rules.load_groups())) for name in (LIVE, DEAD)]
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(absence_case(files)))

    result = promtool("test", "rules", "test.yaml", cwd=tmp_path)

    assert result.returncode != 0
    assert "CeleryMonitorMetricsAbsent" in result.stdout + result.stderr


@pytest.mark.parametrize("name", [LIVE, DEAD])
def test_every_selector_of_every_rule_is_scoped_to_its_monitor(name: str) -> None:
    shipped = [rule for group in alert_rules.load_groups() for rule in group["rules"]]
    scoped = [rule for group in rendered_groups(name) for rule in group["rules"]]
    matchers = f'{{namespace="{NAMESPACE}",job="{name}"'

    for before, after in zip(shipped, scoped, strict=True):
        names = promql_names.metric_names(before["expr"])
        # Every metric the rules use is one of the monitor's own, so none escapes the scoping ...
        assert names and all(metric.startswith(prometheusrule.METRIC_PREFIXES) for metric in names), names
        # ... and each of its selectors carries the matchers.
        for metric in names:
            assert after["expr"].count(metric) == after["expr"].count(metric + matchers), after["expr"]
        assert {key: value for key, value in after.items() if key != "expr"} == {
            key: value for key, value in before.items() if key != "expr"}
