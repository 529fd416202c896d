"""GET /metrics in Prometheus's text format."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response


async def metrics(request: Request) -> Response:
    collector = request.app.state.metrics
    body = await run_in_threadpool(collector.render)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
