"""Rules applied to what happened: task notices, workers' liveness and queue measurements.

Every match is an *occurrence* of a rule for a *subject* (the task name for task rules, the worker
or the queue for conditions). The first occurrence of a subject opens a group; the group is sent as
one message, with the count, when its window (the rule's ``window``) has passed. A condition
(worker offline, queue length or age) also remembers that it fires; when it clears, its group is
sent at once if still open, then a resolve message follows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from celery_monitor import clusters
from celery_monitor.notify.messages import FIRING, MAX_EXAMPLES, RESOLVED, Link, Links, Message
from celery_monitor.notify.model import Rule
from celery_monitor.notify.notices import TaskNotice
from celery_monitor.states import FAILURE, LOST, SUCCESS
from celery_monitor.store.failures import exception_type

GroupKey = tuple[str, str]  # rule name, subject


@dataclass
class Group:
    rule: Rule
    subject: str
    opened_at: float
    count: int = 0
    last_at: float = 0.0
    details: list[str] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    listed: list[Link] = field(default_factory=list)  # a task rule's: the tasks list its message ends with


def _describe(rule: Rule, notice: TaskNotice) -> str | None:
    """What the task did, if the rule is about it."""
    if rule.kind == "task_failed" and notice.state == FAILURE:
        what = "failed"
    elif rule.kind == "task_lost" and notice.state == LOST:
        what = "was lost"
    elif rule.kind == "retries_exhausted" and notice.state == FAILURE and (notice.retries or 0) >= rule.min_retries:
        what = f"failed after {notice.retries} retries"
    elif (rule.kind == "task_runtime" and notice.state in (SUCCESS, FAILURE) and notice.runtime is not None
          and rule.threshold is not None and notice.runtime > rule.threshold):
        what = f"ran {notice.runtime:.1f} s (over {rule.threshold:g} s)"
    else:
        return None
    if not rule.task_matches(notice.name, notice.exception if notice.state == FAILURE else None):
        return None
    if rule.kind != "task_runtime" and (rule.exceptions or rule.exclude_exceptions) and notice.state != FAILURE:
        return None
    where = f" on {notice.worker}" if notice.worker else ""
    exception = f": {notice.exception}" if notice.exception and notice.state == FAILURE else ""
    return f"{notice.uuid} {what}{where}{exception}"


_SUMMARIES = {
    "task_failed": "{n} failed",
    "task_lost": "{n} lost",
    "retries_exhausted": "{n} failed after retries",
    "task_runtime": "{n} over the runtime threshold",
    "worker_offline": "offline",
    "queue_length": "queue too long",
    "queue_age": "oldest message too old",
    "schedule_missed": "missed its run",
}


# The state the tasks list is filtered on in a task rule's message (runtime: every state).
_LISTED_STATE = {"task_lost": LOST, "task_runtime": ""}


class Evaluator:
    def __init__(self, links: Links) -> None:
        self.links = links
        self.groups: dict[GroupKey, Group] = {}
        self.firing: set[GroupKey] = set()  # conditions that hold (their firing sent or pending)
        self.holding_since: dict[GroupKey, float] = {}  # queue conditions holding, before their duration
        self.seen_online: set[str] = set()  # workers seen online in this run: only they can go offline
        self.outbox: list[Message] = []

    # -- occurrences ---------------------------------------------------------------------------

    def _occur(self, rule: Rule, subject: str, now: float, detail: str, links: list[Link],
               listed: list[Link] | None = None) -> None:
        key = (rule.name, subject)
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Group(rule, subject, now, listed=listed or [])
        group.count += 1
        group.last_at = now
        if len(group.details) < MAX_EXAMPLES:
            group.details.append(detail)
            group.links.extend(links)

    def tasks(self, rules: Iterable[Rule], notices: list[TaskNotice]) -> None:
        task_rules = [r for r in rules if r.enabled and not r.stateful]
        for notice in notices:
            # Tasks of one name in two clusters are two subjects, named as the pages name workers.
            cluster = notice.cluster or clusters.DEFAULT
            subject = clusters.qualified(cluster, notice.name or "(unnamed)")
            for rule in task_rules:
                if not rule.cluster_matches(cluster):
                    continue
                detail = _describe(rule, notice)
                if detail is not None:
                    listed = self.links.tasks(notice.name or "", _LISTED_STATE.get(rule.kind, FAILURE),
                                              None if cluster == clusters.DEFAULT else cluster)
                    self._occur(rule, subject, notice.at, detail, self._task_links(notice), listed)

    def _task_links(self, notice: TaskNotice) -> list[Link]:
        """The task, its failure group when it failed, and its workflow when it is a step of one."""
        links = self.links.task(notice.uuid)
        if notice.state == FAILURE and notice.exception:
            links += self.links.failure_group(notice.name or "", exception_type(notice.exception), notice.cluster)
        if notice.root_id and notice.root_id != notice.uuid:
            links += self.links.workflow(notice.root_id)
        return links

    def workers(self, rules: Iterable[Rule], workers: dict[str, dict[str, Any]], now: float,
                listening_since: float = -math.inf) -> None:
        """Judge the workers' liveness while the event stream is up (the caller's decision), and only
        once it has been up for a whole expiry window of the worker (heartbeats missed during a start
        or a reconnection were not heard, rather than not sent)."""
        online = {name for name, worker in workers.items() if worker.get("status")}
        self.seen_online |= online
        for rule in rules:
            if rule.kind != "worker_offline" or not rule.enabled:
                continue
            for name in sorted(self.seen_online):
                cluster = workers.get(name, {}).get("cluster")
                if not rule.subject_matches(name) or not rule.cluster_matches(cluster):
                    continue
                offline = name not in online
                freq = workers.get(name, {}).get("freq") or 2.0
                if offline and now < listening_since + 2 * float(freq):
                    continue
                self._condition(rule, name, offline, now, f"worker {name} went offline", self.links.worker(name))

    def queues(self, rules: Iterable[Rule], queues: list[dict[str, Any]], now: float) -> None:
        for rule in rules:
            if not rule.kind.startswith("queue_") or not rule.enabled or rule.threshold is None:
                continue
            for queue in queues:
                # A queue of a cluster other than ``default`` is named ``<cluster>:<queue>``, as its
                # workers are; a rule's patterns match that name or the bare queue name.
                bare = str(queue.get("name"))
                cluster = str(queue.get("cluster") or clusters.DEFAULT)
                name = clusters.qualified(cluster, bare)
                if not (rule.subject_matches(name) or rule.subject_matches(bare)) or not rule.cluster_matches(cluster):
                    continue
                if rule.kind == "queue_length":
                    value: float | None = float(queue.get("messages") or 0)
                    unit = "messages"
                else:
                    oldest = queue.get("oldest_message_timestamp")
                    value = now - oldest if isinstance(oldest, (int, float)) else None
                    unit = "s old"
                if value is None:
                    continue  # unknown is not zero: the condition is neither raised nor cleared
                key = (rule.name, name)
                over = value > rule.threshold
                if over:
                    since = self.holding_since.setdefault(key, now)
                    over = now - since >= rule.duration
                else:
                    self.holding_since.pop(key, None)
                where = f"queue {bare}" if cluster == clusters.DEFAULT else f"queue {bare} of cluster {cluster}"
                detail = f"{where}: {value:.0f} {unit} (threshold {rule.threshold:g}, for {rule.duration:g} s)"
                self._condition(rule, name, over, now, detail,
                                self.links.broker(None if cluster == clusters.DEFAULT else cluster))

    def schedules(self, rules: Iterable[Rule], entries: list[dict[str, Any]], now: float) -> None:
        """Beat entries flagged missed (the schedules page's judgement: no run within the interval plus
        the tolerance) fire; the next run arriving clears them. Entries not judged are left alone."""
        for rule in rules:
            if rule.kind != "schedule_missed" or not rule.enabled:
                continue
            for entry in entries:
                name = str(entry.get("name"))
                if not rule.subject_matches(name) or (entry.get("due_at") is None and not entry.get("missed")):
                    continue
                if not rule.cluster_matches(entry.get("cluster")):
                    continue
                # Entries of the same name in two clusters are two subjects, named as the pages name them.
                subject = clusters.qualified(str(entry.get("cluster") or clusters.DEFAULT), name)
                runs = entry.get("missed_runs") or 0
                detail = f"periodic task {subject} ({entry.get('task')}): {runs} run(s) missed"
                self._condition(rule, subject, bool(entry.get("missed")), now, detail, self.links.schedules())

    def _condition(self, rule: Rule, subject: str, holds: bool, now: float, detail: str,
                   links: list[Link]) -> None:
        key = (rule.name, subject)
        if holds and key not in self.firing:
            self.firing.add(key)
            self._occur(rule, subject, now, detail, links)
        elif not holds and key in self.firing:
            self.firing.discard(key)
            group = self.groups.pop(key, None)
            if group is not None:
                self.outbox.append(self._message(group, now))
            resolve = Message(rule.name, rule.kind, rule.severity, RESOLVED, subject,
                              f"{rule.name}: {subject} {_SUMMARIES[rule.kind]} — resolved",
                              links=links, first_at=now, last_at=now)
            self.outbox.append(resolve)

    # -- messages ------------------------------------------------------------------------------

    def _message(self, group: Group, now: float) -> Message:
        rule = group.rule
        if rule.stateful:
            times = f" ({group.count} times)" if group.count > 1 else ""
            summary = f"{rule.name}: {group.subject} {_SUMMARIES[rule.kind]}{times}"
        else:
            tasks = f"{group.count} x {group.subject}"
            summary = f"{rule.name}: " + _SUMMARIES[rule.kind].format(n=tasks)
            if group.count > 1:
                summary += f" within {max(now - group.opened_at, 0):.0f} s"
        details = list(group.details)
        if group.count > len(details):
            details.append(f"... and {group.count - len(details)} more")
        links = [*group.links, *group.listed]
        return Message(rule.name, rule.kind, rule.severity, FIRING, group.subject, summary, group.count, details,
                       links, group.opened_at, group.last_at)

    def due(self, now: float) -> list[Message]:
        """The messages ready to go: closed windows, and the conditions that cleared."""
        ready, self.outbox = self.outbox, []
        for key, group in list(self.groups.items()):
            if now >= group.opened_at + group.rule.window:
                del self.groups[key]
                ready.append(self._message(group, now))
        return ready

    def next_due(self) -> float:
        return min((g.opened_at + g.rule.window for g in self.groups.values()), default=math.inf)

    def forget(self, rule_names: set[str]) -> None:
        """Drop what belongs to rules that were removed or changed."""
        for store in (self.groups, self.holding_since):
            for key in [k for k in store if k[0] not in rule_names]:
                del store[key]
        self.firing = {k for k in self.firing if k[0] in rule_names}
