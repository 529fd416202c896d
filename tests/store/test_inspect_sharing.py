"""The inspect cache a leader saves for its standbys: what it exports comes back whole through JSON,
and a damaged or foreign saved value changes nothing."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from celery import Celery

from celery_monitor.inspector.inspector import Inspector


def inspector() -> Inspector:
    return Inspector(Celery(broker="redis://127.0.0.1:9/0"), timeout=1.0)


def test_an_export_comes_back_whole_through_json() -> None:
    leader = inspector()
    leader.cache = {"w1@host": {"stats": {"pid": 7}, "registered": ["tests.add"], "timestamp": 1.5}}
    leader.answered_at = {"w1@host": {"stats": 1.5, "registered": 1.5}}
    leader.missed = {"w1@host": 2}
    standby = inspector()
    assert standby.adopt(orjson.loads(orjson.dumps(leader.export())))
    assert standby.details() == leader.details()
    assert standby.freshness(now=3.0) == leader.freshness(now=3.0)
    assert standby.version == 1


@pytest.mark.parametrize("saved", [
    None, "text", [], {"cache": {}}, {"cache": [], "answered_at": {}, "missed": {}},
    {"cache": {"w": "not a dict"}, "answered_at": {}, "missed": {}},
    {"cache": {}, "answered_at": {}, "missed": {"w": "many"}},
])
def test_a_damaged_saved_cache_changes_nothing(saved: Any) -> None:
    standby = inspector()
    standby.cache = {"w@host": {"stats": {}}}
    assert not standby.adopt(saved)
    assert standby.details() == {"w@host": {"stats": {}}} and standby.version == 0
