"""Notifications over HTTP: the rules, the channels (secrets masked), the delivery log, changes and a test.

Everyone who may read the monitor sees the rules, the channels and the log; admins change the
rules and channels added through the API (those of the config file are changed in the file) and
send test messages. Every change and test is audited, with the channel's secrets masked in the
trail as everywhere else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from celery_monitor.api.control_common import body_of, require_writable
from celery_monitor.http.context import monitor_of, user_of
from celery_monitor.http.errors import ApiError, json_response
from celery_monitor.http.params import get_int
from celery_monitor.notify import secrets
from celery_monitor.notify.model import SECRET_FIELDS, BadConfig, FromConfigFile

KINDS = {"channels": "channel", "rules": "rule"}


def _masked_body(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """A channel's body as the audit trail keeps it: its secrets masked."""
    if kind != "channel":
        return body
    shown = dict(body)
    for key in SECRET_FIELDS.get(str(body.get("kind")), ()):
        if isinstance(shown.get(key), str):
            shown[key] = secrets.masked(shown[key])
    return shown


async def _audited(request: Request, action: str, target: str, params: dict[str, Any],
                   change: Callable[[], Awaitable[dict[str, Any]]]) -> Response:
    monitor = monitor_of(request)
    status = 200
    try:
        require_writable(request)
        body = await change()
    except ApiError as exc:
        status, body = exc.status, {"error": exc.reason}
    await monitor.control.run(monitor.audit.record, user_of(request), action, target, params, status, body)
    return json_response(body, status)


def _kind(request: Request) -> str:
    kind = KINDS.get(request.path_params["kind"])
    if kind is None:
        raise ApiError(404, "Unknown collection: use channels or rules")
    return kind


async def overview(request: Request) -> Response:
    """The notification channels (secrets masked), the rules, and the deliveries waiting or dropped."""
    return json_response(monitor_of(request).notifier.as_dict())


async def deliveries(request: Request) -> Response:
    """The delivery log, newest first: each message on each channel, its outcome, attempts and last error."""
    monitor = monitor_of(request)
    limit = get_int(request, "limit", 100, minimum=1, maximum=1000) or 100
    offset = get_int(request, "offset", 0, minimum=0) or 0
    rows = await monitor.control.run(monitor.notifier.ledger.recent, limit, offset)
    total = await monitor.control.run(monitor.notifier.ledger.count)
    return json_response({"total": total, "limit": limit, "offset": offset, "deliveries": rows})


async def put(request: Request) -> Response:
    """Add or replace a channel or a rule (`kind`: channels or rules) from a JSON object; admins only, audited."""
    kind = _kind(request)
    name = request.path_params["name"]
    try:
        body, _ = await body_of(request)
    except ApiError as exc:
        return json_response({"error": exc.reason}, exc.status)
    monitor = monitor_of(request)

    async def change() -> dict[str, Any]:
        notifier = monitor.notifier
        try:
            if kind == "channel":
                channel = await monitor.control.run(notifier.put_channel, name, body)
                return {"channel": channel.shown()}
            rule = await monitor.control.run(notifier.put_rule, name, body)
            return {"rule": rule.shown()}
        except FromConfigFile as exc:
            raise ApiError(409, str(exc)) from None
        except BadConfig as exc:
            raise ApiError(400, str(exc)) from None

    return await _audited(request, f"notify.{kind}.put", name, _masked_body(kind, body), change)


async def delete(request: Request) -> Response:
    """Remove a channel or a rule added through the API; admins only, audited."""
    kind = _kind(request)
    name = request.path_params["name"]
    monitor = monitor_of(request)

    async def change() -> dict[str, Any]:
        try:
            known = await monitor.control.run(monitor.notifier.delete, kind, name)
        except BadConfig as exc:
            raise ApiError(409, str(exc)) from None
        if not known:
            raise ApiError(404, f"No {kind} named {name!r}")
        return {"deleted": name}

    return await _audited(request, f"notify.{kind}.delete", name, {}, change)


async def send_test(request: Request) -> Response:
    """Send one test message on the channel now, without retries; the answer says how it went. Audited."""
    name = request.path_params["name"]
    monitor = monitor_of(request)
    user = user_of(request)

    async def change() -> dict[str, Any]:
        try:
            return await monitor.control.run(monitor.notifier.send_test, name, user)
        except KeyError:
            raise ApiError(404, f"No channel named {name!r}") from None

    return await _audited(request, "notify.test", name, {}, change)
