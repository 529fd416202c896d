"""kopf's record of the last handled spec keeps possible credentials only as digests."""

from __future__ import annotations

import json

from celery_monitor_operator import diffbase


def test_possible_credentials_are_digested_and_the_rest_kept() -> None:
    spec = {"broker": {"url": "redis://:pw@r/0", "managementApi": {"url": "http://u:pw@mq/api/"}},
            "resultBackend": {"secretKeyRef": {"name": "rb"}},
            "extraArgs": ["--basic_auth=ops:pw"], "extraEnv": [{"name": "TOKEN", "value": "pw"},
                                                                {"name": "FROM", "valueFrom": {"x": 1}}],
            "replicas": 2}

    redacted = diffbase.redact_spec(spec)

    assert "pw" not in json.dumps(redacted)
    assert redacted["replicas"] == 2 and redacted["resultBackend"] == spec["resultBackend"]
    assert redacted["extraEnv"][0]["name"] == "TOKEN" and redacted["extraEnv"][1] == spec["extraEnv"][1]
    assert redacted["broker"]["url"].startswith(diffbase.REDACTED_PREFIX)
    assert spec["broker"]["url"] == "redis://:pw@r/0"  # the resource's own spec is not touched


def test_a_changed_value_digests_differently_and_an_unchanged_one_the_same() -> None:
    first = diffbase.redact_spec({"extraArgs": ["--basic_auth=ops:one"]})

    assert diffbase.redact_spec({"extraArgs": ["--basic_auth=ops:one"]}) == first
    assert diffbase.redact_spec({"extraArgs": ["--basic_auth=ops:two"]}) != first


def test_the_inline_urls_of_every_cluster_are_digested_and_their_names_kept() -> None:
    spec = {"clusters": [
        {"name": "orders", "broker": {"url": "redis://:pw@r/0", "managementApi": {"url": "http://u:pw@mq/api/"}},
         "resultBackend": {"url": "redis://:pw@r/1"}},
        {"name": "billing", "broker": {"secretKeyRef": {"name": "billing-mq"}}},
    ]}

    redacted = diffbase.redact_spec(spec)

    assert "pw" not in json.dumps(redacted)
    assert [cluster["name"] for cluster in redacted["clusters"]] == ["orders", "billing"]
    assert redacted["clusters"][1] == spec["clusters"][1]
    assert redacted["clusters"][0]["resultBackend"]["url"].startswith(diffbase.REDACTED_PREFIX)
