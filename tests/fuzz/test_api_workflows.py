"""Following the description's links: send a task, read its info and result, revoke and re-run it;
from a task to its worker and its name, from the task types to the controls taking a task name.

Each scenario is a chain of calls where a value from one answer feeds the next request; no chain
makes the API fail, and every answer still meets the description.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from support.api_checks import CHECKS
from support.fuzz_target import BASE_URL, IDENTITIES, FuzzTarget, described_api

SCENARIOS = int(os.environ.get("CELERY_MONITOR_FUZZ_SCENARIOS", "60"))
STEPS = 8
TIMEOUT = 30

schema = described_api()


def test_the_description_links_tasks_workers_and_names_across_operations() -> None:
    paths = schema.raw_schema["paths"]

    def links(path: str, method: str) -> dict[str, Any]:
        return dict(paths[path][method]["responses"]["200"].get("links", {}))

    sent = links("/api/task/send-task/{name}", "post")
    assert sent["get-task-info"] == {"operationId": "get:/api/task/info/{task_id}",
                                     "parameters": {"task_id": "$response.body#/task-id"}}
    info = links("/api/task/info/{task_id}", "get")
    assert info["post-worker-shutdown"]["parameters"] == {"name": "$response.body#/worker"}
    assert info["get-workers-by-workername"]["parameters"] == {"query.workername": "$response.body#/worker"}
    assert info["post-task-rate-limit"]["parameters"] == {"name": "$response.body#/name"}
    assert links("/api/task/types", "get")["post-task-timeout"]["parameters"] == {
        "name": "$response.body#/task-types/0"}
    assert not links("/api/tasks", "get")  # keyed by task id: nothing a runtime expression can point at


def test_following_links_never_makes_the_api_fail(fuzz_target: FuzzTarget) -> None:
    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"session": fuzz_target.client, "base_url": BASE_URL, "headers": IDENTITIES["writer"],
                    "timeout": TIMEOUT}

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)

    Workflow.run(settings=settings(max_examples=SCENARIOS, stateful_step_count=STEPS, deadline=None,
                                   suppress_health_check=list(HealthCheck)))
