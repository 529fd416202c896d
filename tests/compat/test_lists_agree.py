"""Lists and the task page agree at every moment: once /api/task/info has a task's state, /api/tasks
and the tasks page (/ui/tasks.json) list it with that state, under a filter that selects it, even
before the history's next write (every 0.5 s)."""

from __future__ import annotations

from support.processes import wait_for

from compat.conftest import SideBySide

ROUNDS = 25


def test_a_finished_task_is_listed_as_soon_as_its_page_shows_it(side_by_side: SideBySide) -> None:
    monitor = side_by_side.monitor
    for round_ in range(ROUNDS):
        response = monitor.client.post("/api/task/async-apply/tests.add", json={"args": [round_, 1]})
        task_id = response.json()["task-id"]
        wait_for(lambda task_id=task_id: monitor.client.get(f"/api/task/info/{task_id}").json().get("state")
                 == "SUCCESS", 30,
                 interval=0.002, message=f"task {task_id} to succeed")
        # At once, with filters that select it: the newest successful tests.add, found by search too.
        listed = monitor.json("/api/tasks", params={"state": "SUCCESS", "taskname": "tests.add", "limit": "3"})
        assert task_id in listed and listed[task_id]["state"] == "SUCCESS", f"round {round_}: not in /api/tasks"
        found = monitor.json("/api/tasks", params={"search": f"{task_id} state:success", "limit": "5"})
        assert list(found) == [task_id], f"round {round_}: search"
        page = monitor.json("/ui/tasks.json", params={"state": "SUCCESS", "taskname": "tests.add", "limit": "3"})
        assert task_id in [row["uuid"] for row in page["tasks"]], f"round {round_}: not on the tasks page"
        assert page["total"] >= round_ + 1
        everything = monitor.json("/api/tasks", params={"taskname": "tests.add"})  # streamed, no limit
        assert everything[task_id]["state"] == "SUCCESS"
