"""Schemathesis against the monitor's own OpenAPI description: no request makes the API fail.

A user allowed to control gets every operation's boundary values and wrong methods, then
``CELERY_MONITOR_FUZZ_EXAMPLES`` generated requests (200 by default), valid and invalid. Read-only
identities and anonymous callers get fewer: the gate answers them before any handler runs, except
the reads a read-only identity may make. The answer is never a 500, every status is one the
description names, and every refusal is JSON saying why.
"""

from __future__ import annotations

import faulthandler
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from support.api_checks import CHECKS, changes_are_refused, everything_but_the_probes_is_refused
from support.fuzz_target import BASE_URL, IDENTITIES, FuzzTarget, described_api

EXAMPLES = int(os.environ.get("CELERY_MONITOR_FUZZ_EXAMPLES", "200"))  # raise it for a deeper run
READ_ONLY_EXAMPLES = max(EXAMPLES // 20, 1)  # its reads run the writer's handlers; its changes meet the gate
ANONYMOUS_EXAMPLES = max(EXAMPLES // 40, 1)  # the gate answers before any handler runs
TIMEOUT = 30  # seconds; an answer this late is a hang, reported as such

schema = described_api()
without_boundaries = described_api(coverage=False)


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))


APPLY = "/api/task/apply/{name}"
APPLY_WAIT = 5.0  # seconds: an apply waits as long as asked (300 s by default, up to an hour), the client TIMEOUT


def _longer_than_the_wait(value: Any) -> bool:
    if value is None or (isinstance(value, str) and not value.strip()):
        return True  # no value (a JSON null, an empty string): the default wait
    if isinstance(value, list):  # a repeated query parameter: the API reads one of them
        return any(_longer_than_the_wait(item) for item in value)
    try:
        return float(value) > APPLY_WAIT
    except (TypeError, ValueError, OverflowError):
        return False  # not a number: the API refuses it before waiting, as generated


def bound_the_wait(case: Any) -> None:
    """Ask an apply to wait at most APPLY_WAIT for its result, so that a task sent with a countdown
    (or to a queue no worker reads) is not mistaken for a hang; other values stay as generated."""
    if case.path != APPLY:
        return
    query = dict(case.query or {})
    body = case.body if isinstance(case.body, dict) else None
    if "timeout" in query:
        if _longer_than_the_wait(query["timeout"]):
            query["timeout"] = str(APPLY_WAIT)
    elif body is not None and "timeout" in body:
        if _longer_than_the_wait(body["timeout"]):
            case.body = {**body, "timeout": APPLY_WAIT}
    else:
        query["timeout"] = str(APPLY_WAIT)
    case.query = query


def call(case: Any, target: FuzzTarget, identity: str, *extra_checks: Any) -> None:
    bound_the_wait(case)
    # An answer later than TIMEOUT fails the case; every thread's stack, printed just before, shows
    # where the request waited (an apply bounded to APPLY_WAIT has taken the whole 30 s in CI, 1 run in 10).
    faulthandler.dump_traceback_later(TIMEOUT - 1)
    try:
        case.call_and_validate(session=target.client, base_url=BASE_URL, headers=IDENTITIES[identity],
                               checks=[*CHECKS, *extra_checks], timeout=TIMEOUT)
    finally:
        faulthandler.cancel_dump_traceback_later()


def test_the_fuzzed_description_is_the_one_served_and_names_every_api_route(fuzz_target: FuzzTarget) -> None:
    from celery_monitor.api.routes import ROUTES

    served = fuzz_target.client.get("/api/openapi.json", headers=IDENTITIES["writer"]).json()
    assert served == schema.raw_schema
    for route in ROUTES:
        path = getattr(route, "path", "")
        if path.startswith("/api") and type(route).__name__ == "Route":
            assert path.replace(":text}", "}") in served["paths"], path


@schema.parametrize()
@fuzz(EXAMPLES)
def test_no_request_makes_the_api_fail(case: Any, fuzz_target: FuzzTarget) -> None:
    call(case, fuzz_target, "writer")


@pytest.fixture(scope="module", params=["read-only user", "read-only token"])
def read_only(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@without_boundaries.parametrize()
@fuzz(READ_ONLY_EXAMPLES)
def test_a_read_only_identity_reads_and_is_refused_changes_with_a_reason(case: Any, fuzz_target: FuzzTarget,
                                                                          read_only: str) -> None:
    call(case, fuzz_target, read_only, changes_are_refused)


@without_boundaries.parametrize()
@fuzz(ANONYMOUS_EXAMPLES)
def test_an_anonymous_caller_is_refused_with_a_reason(case: Any, fuzz_target: FuzzTarget) -> None:
    call(case, fuzz_target, "anonymous", everything_but_the_probes_is_refused)
