// Task detail: every field, the state timeline, family links, and revoke/terminate/re-run.
import { config, url } from "../lib/config.js";
import { $, badge, el, flash, replace } from "../lib/dom.js";
import { absolute, duration, text, when } from "../lib/format.js";
import { getJSON, post } from "../lib/http.js";
import { connectLive } from "../lib/live.js";

const TIMES = new Set(["received", "sent", "started", "succeeded", "failed", "retried", "revoked", "rejected",
  "timestamp"]);
const SKIP = new Set(["transitions", "children", "custom"]);

function taskLink(uuid) {
  return el("a", { href: url(`/task/${encodeURIComponent(uuid)}`) }, uuid);
}

function value(key, task) {
  const raw = task[key];
  if (raw === null || raw === undefined || raw === "") return el("span", { class: "muted" }, "—");
  if (key === "root_id" || key === "parent_id") return taskLink(raw);
  if (key === "worker") return el("a", { href: url(`/worker/${encodeURIComponent(raw)}`) }, raw);
  if (key === "state") return badge(raw);
  if (key === "runtime") return duration(raw);
  if (TIMES.has(key)) return el("time", { title: absolute(raw) }, `${absolute(raw)} (${when(raw)})`);
  if (key === "traceback") return el("pre", {}, raw);
  return el("code", {}, text(raw));
}

export async function taskPage() {
  const taskId = config.task;

  let shownTransitions = -1;
  let checkedState = null; // the state whose re-run was last checked

  // Pushes and the first fetch may cross: never replace a task by an older copy of itself.
  function render(task) {
    const transitions = (task.transitions || []).length;
    if (transitions < shownTransitions) return;
    shownTransitions = transitions;
    $("#task-name").textContent = task.name || task.uuid;
    replace($("#task-state"), badge(task.state));
    // Its workflow: the tasks of its root (a task that started others is a root too).
    const root = task.root_id || ((task.children || []).length ? task.uuid : null);
    const workflow = $("#workflow-link");
    if (workflow && root) {
      workflow.href = url(`/workflow/${encodeURIComponent(root)}`);
      workflow.hidden = false;
    }
    // A task's cluster says something only when the monitor watches several.
    const keys = Object.keys(task).filter((k) => !SKIP.has(k) && (k !== "cluster" || config.severalClusters));
    const fields = keys.flatMap((key) => [el("dt", {}, key), el("dd", { dataset: { field: key } }, value(key, task))]);
    if (task.children && task.children.length) {
      fields.push(el("dt", {}, "children"),
        el("dd", { dataset: { field: "children" } }, el("ul", { class: "plain" },
          task.children.map((child) => el("li", {}, taskLink(child))))));
    }
    if (task.custom && Object.keys(task.custom).length) {
      fields.push(el("dt", {}, "custom events"),
        el("dd", { dataset: { field: "custom" } }, el("pre", {}, JSON.stringify(task.custom, null, 2))));
    }
    replace($("#task-fields"), fields);
    // A state the monitor judged (LOST) or learnt elsewhere (the result backend, inspect) has no event:
    // its transition says why instead of which worker.
    replace($("#timeline"), (task.transitions || []).map(([state, at, why]) => el("li", {},
      badge(state), " ", el("time", { title: absolute(at) }, absolute(at)),
      why && (config.judgedStates.includes(state) || config.monitorReasons.includes(why))
        ? el("span", { class: "muted reason" }, ` (${why})`) : null)));
    if (!transitions) replace($("#timeline"), el("li", { class: "muted" }, "No transitions recorded"));
    const finished = config.finishedStates.includes(task.state);
    for (const id of ["revoke", "terminate"]) if ($(`#${id}`)) $(`#${id}`).disabled = finished;
    if ($("#rerun")) {
      $("#rerun").disabled = !finished || !task.name || $("#rerun").dataset.blocked === "true";
      if (finished && task.name && checkedState !== task.state) {
        checkedState = task.state;
        checkRerun().catch((error) => showRerun(false, error.message));
      }
    }
  }

  // Re-run sends only arguments the monitor holds exactly: ask first, and say why not on the button.
  function showRerun(possible, reason, source) {
    const button = $("#rerun");
    if (!button) return;
    button.dataset.blocked = possible ? "" : "true";
    button.disabled = !possible;
    button.title = possible ? `Sends its arguments from ${source === "result-backend" ? "the result backend"
      : "its message in the queue"}` : reason;
    const note = $("#rerun-reason");
    note.hidden = possible;
    note.textContent = possible ? "" : `Re-run unavailable. ${reason}`;
  }

  async function checkRerun() {
    const answer = await getJSON(`/api/task/rerun/${encodeURIComponent(taskId)}`);
    showRerun(answer.rerunnable, answer.reason, answer["args-from"]);
  }

  async function load() {
    const data = await getJSON(`/ui/task/${encodeURIComponent(taskId)}.json`);
    render(data.task);
  }

  async function control(button, action) {
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
    button.disabled = true;
    try {
      const reply = await action();
      if (!(reply && reply.linked)) flash((reply && reply.message) || "Done", "ok");
    } catch (error) {
      flash(error.message, "error");
    } finally {
      button.disabled = button.dataset.blocked === "true";
    }
  }

  if (!config.readOnly && $("#revoke")) {
    const path = `/api/task/revoke/${encodeURIComponent(taskId)}`;
    $("#revoke").addEventListener("click", (e) => control(e.currentTarget, () => post(path)));
    $("#terminate").addEventListener("click",
      (e) => control(e.currentTarget, () => post(path, { terminate: "true" })));
    $("#rerun").addEventListener("click", (e) => control(e.currentTarget, async () => {
      let reply;
      try {
        reply = await post(`/api/task/rerun/${encodeURIComponent(taskId)}`);
      } catch (error) {
        if (error.status === 409) showRerun(false, error.message.replace(/^409: /, ""));
        throw error;
      }
      flash("Sent again as ", "ok");
      $("#flash").append(taskLink(reply["task-id"]));
      return { message: null, linked: true };
    }));
  }

  connectLive({
    topics: ["tasks"],
    task: taskId,
    onMessage(message) {
      const mine = message.tasks.filter((t) => t.uuid === taskId).pop();
      if (mine) render(mine);
    },
    onReconnect: load,
  });
  await load();
}
