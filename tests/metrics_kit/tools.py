"""Locate the Prometheus binaries the kit's tests run, with a clear message when they are missing."""

from __future__ import annotations

import pathlib
import shutil

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
KIT = REPO / "celery_monitor" / "metrics" / "kit"
RULES = KIT / "alert-rules.yaml"
RULE_TESTS = KIT / "alert-rules.test.yaml"
DASHBOARD = KIT / "grafana-dashboard.json"


def binary(name: str) -> str:
    """Path of a Prometheus tool on PATH or in the repo's .tools/; fails the test if absent."""
    found = shutil.which(name) or shutil.which(name, path=str(REPO / ".tools" / "bin"))
    if found is None:
        pytest.fail(
            f"{name} not found on PATH or in .tools/bin: run ./scripts/bootstrap "
            "(scripts/setup.d/30-prometheus installs Debian's prometheus package)",
            pytrace=False,
        )
    return found
