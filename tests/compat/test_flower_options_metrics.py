"""Every Flower 2.2 option name and environment form, and its /metrics families, taken by the monitor."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families
from support.processes import wait_for

from celery_monitor.cli.config import read_environment
from celery_monitor.settings import BY_NAME, CONFIG_ONLY
from compat.conftest import SideBySide
from compat.flower import flower_options

# Options of Flower's command line the monitor does not take, on purpose (docs/migrating.md says why).
NOT_TAKEN = {
    "help": "--help is the monitor's own (click), not an option value",
    "log_file_prefix": "the monitor logs to stderr, for the service manager or the container runtime",
    "log_file_max_size": "as log_file_prefix", "log_file_num_backups": "as log_file_prefix",
    "log_rotate_when": "as log_file_prefix", "log_rotate_interval": "as log_file_prefix",
    "log_rotate_mode": "as log_file_prefix", "log_to_stderr": "always: the monitor logs to stderr",
}


def test_every_flower_option_and_environment_form() -> None:
    theirs = flower_options()
    assert {"port", "basic_auth", "broker_api", "max_tasks", "url_prefix"} <= set(theirs)
    missing = sorted(name for name in theirs if name not in BY_NAME and name not in CONFIG_ONLY
                     and name not in NOT_TAKEN)
    assert not missing, f"Flower options the monitor does not take: {missing}"
    for name in theirs:
        if name in BY_NAME:
            assert name in read_environment({f"FLOWER_{name.upper()}": "1"}), f"FLOWER_{name.upper()}"
            assert name in read_environment({f"CELERY_MONITOR_{name.upper()}": "1"})
    assert set(NOT_TAKEN) <= set(theirs), "an option listed as not taken is no longer Flower's"


def families(text: str) -> dict[str, tuple[str, set[str]]]:
    found = {}
    for family in text_string_to_metric_families(text):
        labels = {key for sample in family.samples for key in sample.labels if key not in ("le", "quantile")}
        found[family.name] = (family.type, labels)
    return found


def test_same_metric_names_types_and_labels(side_by_side: SideBySide) -> None:
    response = side_by_side.monitor.client.post("/api/task/async-apply/tests.add", json={"args": [2, 2]})
    task_id = response.json()["task-id"]
    flower = side_by_side.flower.client
    wait_for(lambda: flower.get(f"/api/task/info/{task_id}").json().get("state") == "SUCCESS", 30,
             message="the task in Flower")
    wait_for(lambda: "flower_task_runtime_seconds_bucket" in httpx.get(f"{side_by_side.monitor.url}/metrics").text,
             30, message="the runtime histogram in the monitor")
    theirs = families(flower.get("/metrics").text)
    ours = families(httpx.get(f"{side_by_side.monitor.url}/metrics").text)
    # prometheus-client's *_created series (when each series began) are not exported: docs/migrating.md.
    flower_families = {name: kind for name, kind in theirs.items()
                       if name.startswith("flower_") and not name.endswith("_created")}
    assert {"flower_events", "flower_task_runtime_seconds", "flower_worker_online"} <= set(flower_families)
    for name, (kind, labels) in flower_families.items():
        assert name in ours, f"{name} missing"
        our_kind, our_labels = ours[name]
        assert our_kind == kind, f"{name}: {kind} in Flower, {our_kind} here"
        if labels and our_labels:
            # Flower 2.2 watches one broker and has no cluster label; every family here of tasks and
            # workers adds one, ``cluster`` (``default`` with one broker: docs/migrating.md). A query on
            # Flower's labels still selects the same series; only the extra label differs.
            assert our_labels - labels == {"cluster"}, f"{name}: labels {labels} in Flower, {our_labels} here"
            assert labels <= our_labels, f"{name}: labels {labels} in Flower, {our_labels} here"
