"""A monitor running in the test process, on a real broker, with every background loop started.

For faults nothing outside can cause (a bug raising in a loop, a thread that dies, a call that never
returns), the test injects them into the real objects and watches the real endpoints and metrics,
read through the ASGI app as a client would.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from support.harness import Harness


class Running(Harness):
    def __init__(self, tmp_path: Path, broker: str, *args: str) -> None:
        super().__init__(tmp_path, "--inspect_timeout=300", *args, broker=broker, db=tmp_path / "history.db")
        self.timeline = self.app.state.timeline
        self.started = False

    def start(self) -> Running:
        self.monitor.start()
        self.timeline.start()
        self.started = True
        return self

    def close(self) -> None:
        if self.started:
            self.timeline.stop()
            self.monitor.stop()
        else:
            super().close()

    def live(self) -> httpx.Response:
        return self.get("/livez")

    def errors(self, loop: str) -> float:
        return self.values("celery_monitor_background_errors", "celery_monitor_background_errors_total",
                           loop=loop).get((loop,), 0.0)


def fail_once(owner: Any, attribute: str, error: BaseException | None = None) -> list[Any]:
    """Make ``owner.attribute`` raise on its first call only; returns the list of calls made so far."""
    calls: list[Any] = []
    original: Callable[..., Any] = getattr(owner, attribute)

    def failing_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        if len(calls) == 1:
            raise error if error is not None else RuntimeError(f"injected fault in {attribute}")
        return original(*args, **kwargs)

    setattr(owner, attribute, failing_once)
    return calls
