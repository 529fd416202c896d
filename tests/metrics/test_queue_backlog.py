"""Which queue a reserved task counts on, from what workers answer to inspect (the real brokers and
workers are in tests/api/test_queue_backlog.py)."""

from __future__ import annotations

from typing import Any

from celery_monitor.broker import backlog


def consumed(name: str, exchange: str = "", routing_key: str | None = None) -> dict[str, Any]:
    """One entry of ``inspect active_queues``, as a worker answers it."""
    return {"name": name, "exchange": {"name": exchange or name, "type": "direct"},
            "routing_key": name if routing_key is None else routing_key}


def reserved(exchange: str, routing_key: str) -> dict[str, Any]:
    """One entry of ``inspect reserved``."""
    return {"id": "t", "name": "tests.add", "delivery_info": {"exchange": exchange, "routing_key": routing_key,
                                                              "priority": 0, "redelivered": False}}


def test_a_reserved_task_counts_on_the_queue_bound_to_its_exchange_and_routing_key() -> None:
    details = {
        "a@pod-1": {"active_queues": [consumed("celery"), consumed("reports", "media", "pdf.render")],
                    "reserved": [reserved("celery", "celery"), reserved("media", "pdf.render"),
                                 reserved("media", "pdf.render"), reserved("", "celery")]},
        # Same routing key, another exchange: another queue.
        "b@pod-2": {"active_queues": [consumed("thumbs", "media", "celery")],
                    "reserved": [reserved("media", "celery")]},
        # A topic binding: the one queue bound to the exchange.
        "c@pod-3": {"active_queues": [consumed("celery"), consumed("events", "audit", "audit.*")],
                    "reserved": [reserved("audit", "audit.login")]},
    }

    assert backlog.reserved_per_queue(details, ["a@pod-1", "b@pod-2", "c@pod-3"]) == {
        "celery": 2, "reports": 2, "thumbs": 1, "events": 1}


def test_offline_workers_and_requests_no_consumed_queue_explains_count_nowhere() -> None:
    details = {
        "gone@pod-1": {"active_queues": [consumed("celery")], "reserved": [reserved("celery", "celery")]},
        "odd@pod-2": {"active_queues": [consumed("celery")],
                      "reserved": [reserved("elsewhere", "nowhere"), reserved("", "pdf.render"),
                                   {"id": "no delivery info"}, "junk"]},
        # Two queues on one exchange, a key neither is bound with: which one cannot be told.
        "two@pod-5": {"active_queues": [consumed("x", "media", "x"), consumed("y", "media", "y")],
                      "reserved": [reserved("media", "z")]},
        "silent@pod-3": {},
    }

    assert backlog.reserved_per_queue(details, ["odd@pod-2", "silent@pod-3", "unknown@pod-4", "two@pod-5"]) == {}


def test_a_workers_reserved_tasks_count_on_its_own_clusters_queues() -> None:
    """The same queue name in two clusters: each cluster's workers reserve from their own."""
    details = {"prod:w@pod-1": {"active_queues": [consumed("celery")],
                                "reserved": [reserved("celery", "celery"), reserved("celery", "celery")]},
               "staging:w@pod-1": {"active_queues": [consumed("celery")], "reserved": [reserved("celery", "celery")]},
               "staging:gone@pod-2": {"active_queues": [consumed("celery")],
                                      "reserved": [reserved("celery", "celery")]}}  # offline: not counted

    online = {"prod:w@pod-1": "prod", "staging:w@pod-1": "staging"}
    assert backlog.reserved_by_cluster(details, online) == {"prod": {"celery": 2}, "staging": {"celery": 1}}


def test_the_backlog_is_what_waits_plus_what_is_reserved() -> None:
    queues = [{"name": "celery", "messages": 7},  # Redis: a length, priority lists summed
              {"name": "mq", "messages": 9, "ready": 4, "unacked": 5}]  # RabbitMQ: unacked is not waiting

    assert backlog.backlogs(queues, {"mq": 3, "other": 1}) == {
        "celery": {"waiting": 7, "reserved": 0, "backlog": 7},
        "mq": {"waiting": 4, "reserved": 3, "backlog": 7},
    }
