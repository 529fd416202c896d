"""The kit ships inside the package, where the operator and users load it from."""

from __future__ import annotations

import importlib.resources
import json

import yaml


def test_kit_files_load_from_the_installed_package() -> None:
    kit = importlib.resources.files("celery_monitor.metrics.kit")
    rules = yaml.safe_load(kit.joinpath("alert-rules.yaml").read_text())
    board = json.loads(kit.joinpath("grafana-dashboard.json").read_text())
    assert [group["name"] for group in rules["groups"]]
    assert board["uid"] == "celery-monitor"
