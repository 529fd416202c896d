"""Server-rendered page shells; the data comes from /ui/*.json and the live WebSocket.

Settings the scripts need travel as data attributes on <body>: the pages carry no inline script,
so a strict Content-Security-Policy can forbid them. Without the built scripts and styles
(a source tree never built) every page is a notice saying so and how to build them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from celery_monitor import clusters
from celery_monitor.auth import proxy
from celery_monitor.http.context import monitor_of
from celery_monitor.http.scope import scope_of
from celery_monitor.settings import TASKS_COLUMNS
from celery_monitor.states import FINISHED_STATES, LOST, MONITOR_REASONS, STATES
from celery_monitor.store.query import SORT_KEYS
from celery_monitor.web.assets import missing_bundle

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)
# What the scripts would otherwise repeat, sent with every page (base.html, data-vocabulary).
# judged_states: the monitor's own states, whose transition carries the reason where an event's names its worker;
# monitor_reasons: every reason the monitor gives (LOST, reconciled from the result backend, seen by inspect).
VOCABULARY = {"states": list(STATES), "finished_states": sorted(FINISHED_STATES), "judged_states": [LOST],
              "monitor_reasons": sorted(MONITOR_REASONS), "sort_keys": list(SORT_KEYS)}


# The pages whose lists the cluster switcher narrows (and the workflow's, which shows its own
# cluster's tasks); the others show every cluster and say so.
CLUSTER_PAGES = frozenset({"workers", "tasks", "audit", "schedules", "failures", "workflow", "broker", "graphs"})


@dataclass
class ClusterChoice:
    """The cluster switcher of a page: the clusters watched, the one chosen in the address
    (``?cluster=``, so a view can be shared), and the query that carries it across links."""

    watched: list[str]
    chosen: list[str] = field(default_factory=list)
    error: str = ""
    scoped: bool = False  # an identity that sees the watched clusters alone (--cluster_access)

    @property
    def value(self) -> str:
        return ",".join(self.chosen)

    @property
    def shown(self) -> bool:
        """One cluster needs no switcher, unless the address names one (a way back to all)."""
        return len(self.watched) > 1 or bool(self.chosen)

    @property
    def options(self) -> list[str]:
        # A valid name the monitor no longer watches keeps its history: choosing it still filters.
        return [*self.watched, *([self.value] if self.chosen and self.value not in self.watched else [])]

    @property
    def keep(self) -> str:
        return f"?{urlencode({'cluster': self.value})}" if self.chosen else ""

    def includes(self, cluster: str) -> bool:
        return (not self.chosen or cluster in self.chosen) and (not self.scoped or cluster in self.watched)


def cluster_choice(request: Request) -> ClusterChoice:
    watched = list(monitor_of(request).cluster_names)
    scope = scope_of(request)  # an identity scoped to some clusters is offered those alone
    choice = ClusterChoice(watched if scope is None else scope.readable_of(watched), scoped=scope is not None)
    names = [n.strip() for raw in request.query_params.getlist("cluster") for n in raw.split(",") if n.strip()]
    for name in names:
        try:
            clusters.check_name(name)
        except clusters.BadClusters as exc:
            choice.error = f"Invalid 'cluster' in the address: {exc}. Showing every cluster."
            return choice
    choice.chosen = names
    return choice


def tasks_columns(setting: str, several_clusters: bool = False) -> list[str]:
    if setting.strip() == "all":
        columns = list(TASKS_COLUMNS)
    else:
        columns = [c.strip() for c in setting.split(",") if c.strip() in TASKS_COLUMNS] or ["name", "uuid", "state"]
    # Watching several clusters, a task's cluster matters as much as its name: shown first.
    return ["cluster", *columns] if several_clusters else columns


def render(request: Request, template: str, page: str, title: str, **context: Any) -> Response:
    monitor = monitor_of(request)
    settings = monitor.settings
    missing = missing_bundle()
    if missing:
        # 503: this installation cannot serve its pages until the bundle is built; the API still works.
        notice = TEMPLATES.get_template("unbuilt.html").render(prefix=settings.prefix, missing=missing)
        return HTMLResponse(notice, status_code=503)
    state = request.scope.get("state", {})
    if request.scope.get(proxy.PROXIED) and state.get("user"):
        # Without --public_url, notifications link to the address a signed-in user reached through the proxy.
        monitor.notifier.links.learn(f"{request.url.scheme}://{request.url.netloc}{settings.prefix}")
    # Controls show only to those who may use them: never on a read-only instance or to a read-only user.
    read_only = settings.read_only or state.get("role") == "read-only"
    choice = context.pop("choice", None) or cluster_choice(request)
    html = TEMPLATES.get_template(template).render(
        prefix=settings.prefix, page=page, title=title, settings=settings, read_only=read_only,
        columns=tasks_columns(settings.tasks_columns, len(choice.watched) > 1), user=state.get("user"),
        auth_kind=state.get("auth"), vocabulary=VOCABULARY, clusters=choice, cluster_page=page in CLUSTER_PAGES,
        **context,
    )
    return HTMLResponse(html)


async def workers(request: Request) -> Response:
    return render(request, "workers.html", "workers", "Workers")


async def worker(request: Request) -> Response:
    name = request.path_params["name"]
    return render(request, "worker.html", "worker", name, worker=name)


async def tasks(request: Request) -> Response:
    monitor = monitor_of(request)
    choice = cluster_choice(request)
    workers = [name for name in sorted(monitor.live.worker_names()) if choice.includes(monitor.cluster_of(name))]
    # The task names of the clusters shown: the chosen ones, within a scoped identity's.
    names = monitor.task_names([name for name in choice.watched if choice.includes(name)])
    return render(request, "tasks.html", "tasks", "Tasks", states=STATES, task_names=names,
                  worker_names=workers, choice=choice)


async def task(request: Request) -> Response:
    task_id = request.path_params["task_id"]
    return render(request, "task.html", "task", task_id, task_id=task_id)


async def workflow(request: Request) -> Response:
    """A workflow's graph, from /api/workflow/<root_id>, kept live by the task pushes."""
    root_id = request.path_params["root_id"]
    return render(request, "workflow.html", "workflow", f"Workflow {root_id}", root_id=root_id)


async def broker(request: Request) -> Response:
    return render(request, "broker.html", "broker", "Broker")


async def graphs(request: Request) -> Response:
    """Graphs over time: throughput, failures, runtimes, queues and workers."""
    return render(request, "graphs.html", "graphs", "Graphs")


async def old_graphs(request: Request) -> Response:
    """/monitor, the graphs' first address: kept for bookmarks ("monitor" now names only the product)."""
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(f"{monitor_of(request).settings.prefix}/graphs{query}", status_code=301)


async def failures(request: Request) -> Response:
    """Failure groups: which errors are new, which are growing, and their tasks."""
    return render(request, "failures.html", "failures", "Failures")


async def audit(request: Request) -> Response:
    """The audit trail; read-only identities see it too (it holds no secret the other pages do not)."""
    return render(request, "audit.html", "audit", "Audit")


async def schedules(request: Request) -> Response:
    """Periodic tasks; their controls only for those who may use them."""
    return render(request, "schedules.html", "schedules", "Periodic tasks")


async def notifications(request: Request) -> Response:
    """Rules, channels and the delivery log; admins also get a test button per channel."""
    return render(request, "notifications.html", "notifications", "Notifications")
