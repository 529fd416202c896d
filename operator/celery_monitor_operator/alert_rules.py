"""The monitor's alert rules file, read from the installed monitor package.

The operator ships in the same image as the monitor, so the rules a PrometheusRule carries
are always those of the monitor version it deploys.
"""

from __future__ import annotations

import functools
import importlib.resources
from typing import Any

import yaml

RULES_PACKAGE = "celery_monitor.metrics.kit"
RULES_FILE = "alert-rules.yaml"


class AlertRulesError(Exception):
    pass


@functools.cache
def load_groups() -> tuple[dict[str, Any], ...]:
    """The ``groups`` of the rules file; raises :class:`AlertRulesError` when it is missing or malformed."""
    try:
        text = importlib.resources.files(RULES_PACKAGE).joinpath(RULES_FILE).read_text(encoding="utf-8")
        document = yaml.safe_load(text)
    except (ModuleNotFoundError, FileNotFoundError, yaml.YAMLError) as error:
        raise AlertRulesError(f"cannot read {RULES_PACKAGE}/{RULES_FILE}: {error}") from None
    groups = document.get("groups") if isinstance(document, dict) else None
    if not isinstance(groups, list) or not groups:
        raise AlertRulesError(f"{RULES_PACKAGE}/{RULES_FILE} has no rule groups")
    return tuple(groups)
