"""What the API fuzzer found, each pinned by the request that showed it.

- A search the syntax refuses (an unterminated quote, an unbalanced group) answered 500 on every
  way in that filters tasks, while the search parser was reworked: it is a 400 saying why.
- The OpenAPI description's operations shared their response tables with each other and with every
  later description: schemathesis, inferring links on one operation, wrote them into all of them
  and into the next description built (whose reference then named operations that do not exist).
- A time of ``nan`` or ``inf`` (received_start, received_end, since, until) was taken as a bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.harness import Harness

from celery_monitor.api.openapi import describe
from celery_monitor.api.routes import ROUTES

REFUSED_SEARCHES = ['"', "(a", "a)", "NOT a", "state:"]


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    made = Harness(tmp_path)
    made.run_task("tests.add", "w@h")
    yield made
    made.close()


def post(harness: Harness, path: str) -> httpx.Response:
    async def request() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=harness.app), base_url="http://m") as client:
            return await client.post(path)

    return asyncio.run(request())


@pytest.mark.parametrize("search", REFUSED_SEARCHES)
def test_a_search_the_syntax_refuses_is_a_400_saying_why_wherever_tasks_are_filtered(harness: Harness,
                                                                                      search: str) -> None:
    query = httpx.QueryParams(search=search)
    answers = {
        "list": harness.get(f"/api/tasks?{query}"),
        "page data": harness.get(f"/ui/tasks.json?{query}"),
        "bulk revoke, dry run": post(harness, f"/api/tasks/revoke?dry_run=true&{query}"),
    }
    for way, response in answers.items():
        assert response.status_code == 400, f"{way}: {response.status_code} {response.text}"
        assert "search" in response.json()["error"].lower(), f"{way}: {response.text}"


def test_each_description_and_each_of_its_operations_has_answers_of_its_own() -> None:
    first = describe(ROUTES)
    tasks, workers = first["paths"]["/api/tasks"]["get"], first["paths"]["/api/workers"]["get"]
    tasks["responses"]["200"]["links"] = {"added": {"operationId": "get:/nowhere"}}
    tasks["responses"]["400"]["description"] = "changed by a reader"

    assert "links" not in workers["responses"]["200"]
    assert workers["responses"]["400"]["description"] != "changed by a reader"
    second = describe(ROUTES)
    assert "links" not in second["paths"]["/api/tasks"]["get"]["responses"]["200"]
    assert second["paths"]["/api/tasks"]["get"]["responses"]["400"]["description"] != "changed by a reader"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_time_that_is_not_finite_is_a_400(harness: Harness, value: str) -> None:
    for path in (f"/api/tasks?received_start={value}", f"/api/tasks?received_end={value}",
                 f"/api/audit?since={value}", f"/api/audit?until={value}"):
        response = harness.get(path)
        assert response.status_code == 400, f"{path}: {response.status_code} {response.text}"
        assert "not a date" in response.json()["error"]
