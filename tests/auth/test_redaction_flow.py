"""--redact and format_task hide secrets before the monitor stores, shows or streams anything."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.auth_stack import PROBE
from support.client import celery_client
from support.processes import RedisServer, new_monitor, start_worker, wait_for
from websockets.sync.client import connect

pytestmark = pytest.mark.timeout(90)

SECRETS = ("hunter2-secret", "pw-secret", "4111-1111")
CONFIG = '''
def format_task(task):
    # Card numbers are cut to their last digits wherever they appear in the arguments.
    if task.kwargs:
        task.kwargs = task.kwargs.replace("4111-1111", "****-1111")
    return task
'''
REDACT = "--redact=kwargs.password,args.1,result.args.1,result.kwargs.password,result.kwargs.card"


def listen(url: str, headers: dict[str, str], received: list[str], stop: threading.Event) -> None:
    with connect(url, additional_headers=headers, open_timeout=10) as socket:
        while not stop.is_set():
            try:
                received.append(str(socket.recv(timeout=0.2)))
            except TimeoutError:
                continue


@pytest.fixture(scope="module")
def redacted_task(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    tmp: Path = tmp_path_factory.mktemp("redact")
    (tmp / "monitorconfig.py").write_text(CONFIG)
    broker = f"redis://127.0.0.1:{redis_server.port}/12"
    backend = f"redis://127.0.0.1:{redis_server.port}/13"
    monitor = new_monitor(broker, tmp, f"--result_backend={backend}", REDACT, f"--conf={tmp / 'monitorconfig.py'}",
                          auth=PROBE).start()
    worker = start_worker(broker, "w-redact", tmp, backend=backend)
    auth = {"Authorization": "Basic " + base64.b64encode(":".join(PROBE).encode()).decode()}
    ws_base = monitor.url.replace("http://", "ws://")
    streamed: list[str] = []
    stop = threading.Event()
    listeners = [threading.Thread(target=listen, args=(url, auth, streamed, stop), daemon=True)
                 for url in (f"{ws_base}/api/task/events/task-received/", f"{ws_base}/api/ws?topics=tasks")]
    for listener in listeners:
        listener.start()
    wait_for(lambda: monitor.json("/api/monitor/status"), 10)
    with celery_client(broker, backend) as app:
        task_id = app.send_task("tests.echo", args=["user", "hunter2-secret"],
                                kwargs={"password": "pw-secret", "card": "4111-1111", "note": "kept"}).id
    wait_for(lambda: monitor.json(f"/api/task/info/{task_id}").get("state") == "SUCCESS", 30,
             message="the task to succeed in the monitor")
    wait_for(lambda: any(task_id in message for message in streamed), 10, message="the task on the WebSockets")
    wait_for(lambda: task_id.encode() in b"".join(p.read_bytes() for p in tmp.glob("monitor.db*")), 10,
             message="the task written to the history database")
    stop.set()
    for listener in listeners:
        listener.join(5)
    yield {"monitor": monitor, "id": task_id, "streamed": streamed, "tmp": tmp}
    worker.stop()
    monitor.stop()


def test_api_shows_the_task_with_secrets_hidden(redacted_task: dict[str, object]) -> None:
    monitor, task_id = redacted_task["monitor"], redacted_task["id"]
    info = monitor.json(f"/api/task/info/{task_id}")  # type: ignore[attr-defined]
    assert info["args"] == "['user', '[redacted]']"
    assert info["kwargs"] == "{'password': '[redacted]', 'card': '****-1111', 'note': 'kept'}"
    assert "'note': 'kept'" in info["result"] and "'user'" in info["result"]
    listed = monitor.get("/api/tasks").text  # type: ignore[attr-defined]
    page_data = monitor.get(f"/ui/task/{task_id}.json").text  # type: ignore[attr-defined]
    for text in (str(info), listed, page_data):
        assert task_id in text
        assert not [s for s in SECRETS if s in text]


def test_nothing_secret_is_stored_streamed_or_logged(redacted_task: dict[str, object]) -> None:
    tmp: Path = redacted_task["tmp"]  # type: ignore[assignment]
    stored = b"".join(path.read_bytes() for path in tmp.glob("monitor.db*"))
    assert not [s for s in SECRETS if s.encode() in stored]
    streamed = "".join(redacted_task["streamed"])  # type: ignore[arg-type]
    assert redacted_task["id"] in streamed  # type: ignore[operator]
    assert not [s for s in SECRETS if s in streamed]
    log = (tmp / "monitor.log").read_text()
    assert not [s for s in SECRETS if s in log]
