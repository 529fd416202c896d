"""Celery's task states as the monitor reads them: the names, which ones end a task, their order.

The one place that knows them: the applier, the counters, the controls, the history's search index
and the pages (which receive them as data) all take them from here. The names and the precedence
are Celery's own (:mod:`celery.states`); what the monitor adds is which event stands for which
state and which states end a task.
"""

from __future__ import annotations

from celery import states as celery_states

PENDING: str = celery_states.PENDING
RECEIVED: str = celery_states.RECEIVED
STARTED: str = celery_states.STARTED
SUCCESS: str = celery_states.SUCCESS
FAILURE: str = celery_states.FAILURE
RETRY: str = celery_states.RETRY
REVOKED: str = celery_states.REVOKED
REJECTED: str = celery_states.REJECTED
# The monitor's own state, which no event stands for: a task RECEIVED or STARTED on a worker that went
# offline by the heartbeat rule, or came back as a new process. Its transition names the reason.
LOST = "LOST"
LOST_WORKER_OFFLINE = "worker offline"
LOST_WORKER_RESTARTED = "worker restarted"
# Transitions the monitor makes from what it learnt elsewhere than in an event: a final state read
# from the result backend (an event missed), a task found in a worker's inspect reply (late start).
RECONCILED = "reconciled from the result backend"
INSPECTED = "seen in the worker's inspect reply"
# Where an event's transition names the worker that sent it, the monitor's own transitions say why.
MONITOR_REASONS: frozenset[str] = frozenset({LOST_WORKER_OFFLINE, LOST_WORKER_RESTARTED, RECONCILED, INSPECTED})

# Every state a task can be in, in the order a task meets them (the pages list them so), LOST last.
STATES: tuple[str, ...] = (PENDING, RECEIVED, STARTED, SUCCESS, FAILURE, RETRY, REVOKED, REJECTED, LOST)

# The states a task is in while a worker holds it: those a worker's loss turns into LOST.
HELD_STATES: tuple[str, ...] = (RECEIVED, STARTED)

EVENT_STATES: dict[str, str] = {
    "task-sent": PENDING,
    "task-received": RECEIVED,
    "task-started": STARTED,
    "task-succeeded": SUCCESS,
    "task-failed": FAILURE,
    "task-retried": RETRY,
    "task-revoked": REVOKED,
    "task-rejected": REJECTED,
}

# A task in one of these is done: nothing runs it any more, so revoking it does nothing.
FINISHED_STATES: frozenset[str] = frozenset({SUCCESS, FAILURE, REVOKED, REJECTED})
UNFINISHED_STATES: tuple[str, ...] = tuple(state for state in STATES if state not in FINISHED_STATES)

# The states an attempt ends in (a retry ends one attempt, not the task): counted per outcome.
OUTCOME_STATES: frozenset[str] = FINISHED_STATES | {RETRY}

# States whose result is an exception (a failure, a retry's reason, a revoke or a rejection).
EXCEPTION_RESULT_STATES: frozenset[str] = frozenset({FAILURE, RETRY, REVOKED, REJECTED})

# The states a task may have left without the monitor seeing the event that ended it: the ones
# reconciliation asks the result backend about.
UNSETTLED_STATES: tuple[str, ...] = (PENDING, RECEIVED, STARTED, RETRY, LOST)

# States in which the result backend holds a result (Celery's "ready" states: a rejection stores none).
RESULT_READY_STATES: frozenset[str] = frozenset(celery_states.READY_STATES)

# Precedence: a task's state is only replaced by one of lower or equal rank (further along), except
# that a retry restarts the cycle. Celery's order, in which a custom state (None) sits between the
# finished states and the running ones. LOST ranks below every one of them: any event the task
# gets after it (a redelivery with acks_late, a late final event) says more and takes over.
RANK: dict[str | None, int] = {state: index for index, state in enumerate(celery_states.PRECEDENCE)}
RANK[LOST] = len(RANK)
CUSTOM_RANK: int = RANK[None]

