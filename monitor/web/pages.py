"""Server-rendered pages."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


async def index(request: Request) -> Response:
    monitor = request.app.state.monitor
    workers = monitor.live.worker_dicts()
    html = TEMPLATES.get_template("index.html").render(
        prefix=monitor.settings.prefix, workers=workers, tasks=monitor.task_count(),
        status=monitor.status(),
    )
    return HTMLResponse(html)
