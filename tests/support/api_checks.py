"""What every API answer must be, as schemathesis checks: never a 500, refusals in JSON with a reason.

Each check takes schemathesis's (context, response, case) and fails with an assertion.
"""

from __future__ import annotations

from typing import Any

from schemathesis.checks import content_type_conformance, response_schema_conformance, status_code_conformance

PUBLIC = ("/healthcheck", "/livez", "/readyz")  # open to anyone, answered outside the API's JSON rules


def no_server_error(ctx: Any, response: Any, case: Any) -> None:
    """A 500 is never an answer (503 and 504 are: the broker or backend is away, no worker replied)."""
    assert response.status_code != 500, f"500 on {case.operation.label}: {response.text[:500]}"


def refusals_say_why(ctx: Any, response: Any, case: Any) -> None:
    """A refusal on /api is JSON: {"error": "the reason"}."""
    if response.status_code < 400 or case.operation.path in PUBLIC:
        return
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.startswith("application/json"), f"{response.status_code} as {content_type!r}"
    reason = response.json().get("error")
    assert isinstance(reason, str) and reason.strip(), f"{response.status_code} without a reason: {response.text}"


def changes_are_refused(ctx: Any, response: Any, case: Any) -> None:
    if case.method.upper() not in ("GET", "HEAD", "OPTIONS") and case.operation.path not in PUBLIC:
        assert response.status_code == 403, f"{case.method} {case.path} answered {response.status_code}"


def everything_but_the_probes_is_refused(ctx: Any, response: Any, case: Any) -> None:
    if case.operation.path not in PUBLIC:
        assert response.status_code == 401, f"{case.method} {case.path} answered {response.status_code}"


CHECKS = [no_server_error, refusals_say_why, status_code_conformance, content_type_conformance,
          response_schema_conformance]
