"""The fields and types of Celery's events, as the monitor accepts them.

Anything that can publish on the event exchange can send an event: a worker of another Celery
version, a client in another language, a custom event with a bug. Each known event type is
declared here as a msgspec struct; :mod:`celery_monitor.applier.boundary` converts every event
through its struct in lax mode, so unambiguous values are normalised (``"2"`` becomes ``2.0``) and
anything else (a name that is a number, a timestamp that is a word, a NaN) rejects that one event.
Fields an event carries beyond its struct are ignored for known types and kept as data for custom
task events.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeAlias, TypeVar

import msgspec
from msgspec import UNSET, Meta, UnsetType

# Bounds that no real event comes near; anything past them is a bug or an attack.
MAX_ID = 255  # task ids, parent and root ids
MAX_NAME = 1024  # task names, hostnames, queues, routing keys, software identifiers
MAX_DATE = 64  # eta and expires, ISO 8601 strings
LATEST_TIMESTAMP = 32_503_680_000.0  # the year 3000
MAX_CLOCK = 2**63 - 1
MAX_COUNT = 2**53  # counters that must stay exact as JSON numbers and floats

Id = Annotated[str, Meta(min_length=1, max_length=MAX_ID)]
Name = Annotated[str, Meta(max_length=MAX_NAME)]
Hostname = Annotated[str, Meta(min_length=1, max_length=MAX_NAME)]
DateText = Annotated[str, Meta(max_length=MAX_DATE)]
Timestamp = Annotated[float, Meta(ge=0, le=LATEST_TIMESTAMP)]
Seconds = Annotated[float, Meta(ge=0, le=10 * 365 * 86_400)]
Count = Annotated[int, Meta(ge=0, le=MAX_COUNT)]
Clock = Annotated[int, Meta(ge=0, le=MAX_CLOCK)]
Pid = Annotated[int, Meta(ge=0, le=2**32)]
UtcOffset = Annotated[float, Meta(ge=-24, le=24)]
HeartbeatInterval = Annotated[float, Meta(gt=0, le=86_400)]
Load = Annotated[float, Meta(ge=0, le=1e9)]
# Repr strings of task data; their length is bounded later by cutting, not by rejecting.
Text = str

T = TypeVar("T")
# A field an event may leave out (UNSET) or send as null.
Maybe: TypeAlias = T | UnsetType | None


class EventFields(msgspec.Struct, kw_only=True):
    """Fields every event may carry."""

    type: Annotated[str, Meta(min_length=1, max_length=MAX_NAME)]
    hostname: Maybe[Hostname] = UNSET
    timestamp: Maybe[Timestamp] = UNSET
    utcoffset: Maybe[UtcOffset] = UNSET
    pid: Maybe[Pid] = UNSET
    clock: Maybe[Clock] = UNSET


class TaskEventFields(EventFields):
    """Fields of any task event, Celery's own and custom ones."""

    uuid: Id


class TaskSentFields(TaskEventFields):
    name: Maybe[Name] = UNSET
    # Celery sends reprs; a client that sends the arguments themselves gets them shown as reprs.
    args: Maybe[Text | list[Any]] = UNSET
    kwargs: Maybe[Text | dict[str, Any]] = UNSET
    retries: Maybe[Count] = UNSET
    eta: Maybe[DateText] = UNSET
    expires: Maybe[DateText] = UNSET
    queue: Maybe[Name] = UNSET
    exchange: Maybe[Name] = UNSET
    routing_key: Maybe[Name] = UNSET
    root_id: Maybe[Id] = UNSET
    parent_id: Maybe[Id] = UNSET


class TaskReceivedFields(TaskSentFields):
    pass


class TaskSucceededFields(TaskEventFields):
    result: Maybe[Text] = UNSET
    runtime: Maybe[Seconds] = UNSET


class TaskFailedFields(TaskEventFields):
    exception: Maybe[Text] = UNSET
    traceback: Maybe[Text] = UNSET


class TaskRevokedFields(TaskEventFields):
    terminated: Maybe[bool] = UNSET
    signum: Maybe[Annotated[int, Meta(ge=0, le=255)] | str] = UNSET
    expired: Maybe[bool] = UNSET


class TaskRejectedFields(TaskEventFields):
    requeue: Maybe[bool] = UNSET


class WorkerEventFields(EventFields):
    """worker-online, worker-heartbeat and worker-offline: the hostname is what they are about."""

    hostname: Hostname
    freq: Maybe[HeartbeatInterval] = UNSET
    active: Maybe[Count] = UNSET
    processed: Maybe[Count] = UNSET
    loadavg: Maybe[Annotated[list[Load], Meta(max_length=3)]] = UNSET
    sw_ident: Maybe[Name] = UNSET
    sw_ver: Maybe[Name] = UNSET
    sw_sys: Maybe[Name] = UNSET


class CustomTaskEventFields(TaskSentFields):
    """A task event of the application's own (``self.send_event("task-progress", ...)``): its other
    fields are kept as data, but a field named like one of Celery's must have that field's type."""

    result: Maybe[Text] = UNSET
    runtime: Maybe[Seconds] = UNSET
    exception: Maybe[Text] = UNSET
    traceback: Maybe[Text] = UNSET


TASK_EVENT_FIELDS: dict[str, type[TaskEventFields]] = {
    "task-sent": TaskSentFields,
    "task-received": TaskReceivedFields,
    "task-started": TaskEventFields,
    "task-succeeded": TaskSucceededFields,
    "task-failed": TaskFailedFields,
    "task-retried": TaskFailedFields,
    "task-revoked": TaskRevokedFields,
    "task-rejected": TaskRejectedFields,
}
WORKER_EVENT_TYPES = frozenset({"worker-online", "worker-heartbeat", "worker-offline"})

def fields_of(struct: msgspec.Struct) -> dict[str, Any]:
    """The struct's fields that the event carried (UNSET ones are left out), values normalised."""
    fields: dict[str, Any] = msgspec.to_builtins(struct)
    return fields
