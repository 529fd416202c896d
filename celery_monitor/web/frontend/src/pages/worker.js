// One worker: tabs over its inspect details, with every control wired to the control API.
import { config, url } from "../lib/config.js";
import { $, $$, el, flash, replace } from "../lib/dom.js";
import { loadavg, natural, number, text } from "../lib/format.js";
import { getJSON, post } from "../lib/http.js";
import { connectLive } from "../lib/live.js";

const name = config.worker;
const enc = encodeURIComponent;

// Each form's data-action -> the control API's path and query parameters (Flower's paths).
const ACTIONS = {
  "pool-grow": (f) => [`/api/worker/pool/grow/${enc(name)}`, { n: f.n }],
  "pool-shrink": (f) => [`/api/worker/pool/shrink/${enc(name)}`, { n: f.n }],
  "pool-autoscale": (f) => [`/api/worker/pool/autoscale/${enc(name)}`, { min: f.min, max: f.max }],
  "pool-restart": () => [`/api/worker/pool/restart/${enc(name)}`, {}],
  shutdown: () => [`/api/worker/shutdown/${enc(name)}`, {}],
  "add-consumer": (f) => [`/api/worker/queue/add-consumer/${enc(name)}`, { queue: f.queue }],
  "cancel-consumer": (f) => [`/api/worker/queue/cancel-consumer/${enc(name)}`, { queue: f.queue }],
  "rate-limit": (f) => [`/api/task/rate-limit/${enc(f.task)}`, { workername: name, ratelimit: f.ratelimit }],
  timeout: (f) => [`/api/task/timeout/${enc(f.task)}`, { workername: name, soft: f.soft, hard: f.hard }],
};

function shown(value) {
  if (Array.isArray(value) && value.every((item) => item === null || typeof item !== "object")) {
    return el("code", {}, JSON.stringify(value));
  }
  if (typeof value === "object" && value !== null) return el("pre", {}, JSON.stringify(value, null, 2));
  return el("code", {}, text(value));
}

function fields(target, data) {
  const entries = Object.entries(data || {}).filter(([, v]) => v !== undefined).sort(([a], [b]) => a.localeCompare(b));
  replace(target, entries.flatMap(([key, value]) => [
    el("dt", {}, key),
    el("dd", { dataset: { field: key } }, shown(value)),
  ]));
  if (!entries.length) replace(target, el("p", { class: "muted" }, "Nothing reported yet"));
}

function taskItem(task) {
  const request = task.request || task;
  const id = request.id || request.uuid || (typeof task === "string" ? task : "");
  const label = [request.name || "", request.args ? text(request.args) : ""].filter(Boolean).join(" ");
  return el("li", {}, id ? el("a", { href: url(`/task/${enc(id)}`) }, id) : "", label ? ` ${label}` : "");
}

function compact(values) {
  const result = {};
  for (const [key, value] of Object.entries(values)) if (value !== "" && value !== undefined) result[key] = value;
  return result;
}

export async function workerPage() {
  let inspected = {};

  function renderWorker(row) {
    const status = $("#worker-status");
    status.textContent = row && row.status ? "online" : "offline";
    status.className = `badge ${row && row.status ? "online" : "offline"}`;
    for (const node of $$("[data-stat]")) {
      const key = node.dataset.stat;
      const value = row ? row[key] : null;
      node.textContent = key === "loadavg" ? loadavg(value) : key === "last_heartbeat" ? natural(value) : number(value);
    }
  }

  function renderInspect(details) {
    inspected = details || {};
    const stats = inspected.stats || {};
    $("#inspected-at").textContent = inspected.timestamp ? `Inspected ${natural(inspected.timestamp)}` : "Not inspected yet";
    const pool = stats.pool || {};
    fields($("#pool-info"), {
      implementation: pool.implementation, "max-concurrency": pool["max-concurrency"],
      processes: pool.processes, "max-tasks-per-child": pool["max-tasks-per-child"],
      "put-guarded-by-semaphore": pool["put-guarded-by-semaphore"], timeouts: pool.timeouts,
      writes: pool.writes, prefetch_count: stats.prefetch_count,
    });
    const queues = inspected.active_queues || [];
    replace($("#queues tbody"), queues.map((q) => el("tr", { dataset: { queue: q.name } },
      el("td", {}, q.name),
      el("td", {}, (q.exchange && q.exchange.name) || ""),
      el("td", {}, q.routing_key || ""),
      el("td", {}, config.readOnly ? "" : el("button", {
        type: "button", class: "small", dataset: { queue: q.name },
        onclick: (e) => run(e.currentTarget, "cancel-consumer", { queue: q.name }),
      }, "Cancel consumer")),
    )));
    for (const kind of ["active", "scheduled", "reserved", "revoked", "registered"]) {
      const items = inspected[kind] || [];
      $(`[data-count="${kind}"]`).textContent = `(${items.length})`;
      replace($(`[data-list="${kind}"]`), items.map((item) => (kind === "registered" || kind === "revoked"
        ? el("li", {}, kind === "revoked" ? el("a", { href: url(`/task/${enc(item)}`) }, item) : item)
        : taskItem(item))));
    }
    if ($("#registered-names")) {
      replace($("#registered-names"), (inspected.registered || []).map((task) => el("option", { value: task })));
    }
    fields($("#config"), inspected.conf);
    fields($("#system"), { ...(stats.rusage || {}), pid: stats.pid, clock: stats.clock, uptime: stats.uptime,
      broker: stats.broker ? `${stats.broker.transport}://${stats.broker.hostname}:${stats.broker.port}` : "" });
  }

  // "tests.add [rate_limit=10/m time_limit=None]" -> name and settings.
  function parseRegistered(entry) {
    const [taskName, ...rest] = String(entry).split(" ");
    const settings = {};
    for (const part of rest.join(" ").replace(/^\[|\]$/g, "").split(/\s+/)) {
      const [key, value] = part.split("=");
      if (value !== undefined) settings[key] = value === "None" ? "" : value;
    }
    return { taskName, settings };
  }

  async function loadLimits() {
    const body = $("#limits tbody");
    replace(body, el("tr", {}, el("td", { colspan: 4, class: "muted" }, "Asking the worker…")));
    try {
      const data = await getJSON(`/ui/worker/${enc(name)}/limits.json`);
      const limits = data.registered.map(parseRegistered);
      replace(body, limits.map(({ taskName, settings }) => el("tr", { dataset: { task: taskName } },
        el("td", {}, taskName), el("td", { dataset: { limit: "rate_limit" } }, settings.rate_limit || "—"),
        el("td", { dataset: { limit: "soft_time_limit" } }, settings.soft_time_limit || "—"),
        el("td", { dataset: { limit: "time_limit" } }, settings.time_limit || "—"))));
      if (!limits.length) replace(body, el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No reply")));
    } catch (error) {
      replace(body, el("tr", {}, el("td", { colspan: 4, class: "error" }, error.message)));
    }
  }

  async function load(refresh = false) {
    const data = await getJSON(`/ui/worker/${enc(name)}.json`, refresh ? { refresh: "1" } : undefined);
    renderWorker(data.worker);
    renderInspect(data.inspect);
  }

  async function run(button, action, values) {
    const form = button.closest("form");
    if (form && form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    const [path, params] = ACTIONS[action](values);
    button.disabled = true;
    try {
      const reply = await post(path, compact(params));
      flash((reply && reply.message) || "Done", "ok");
      await load(true);
      if (action === "rate-limit" || action === "timeout") await loadLimits();
    } catch (error) {
      flash(error.message, "error");
    } finally {
      button.disabled = false;
    }
  }

  for (const form of $$("form.control")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const values = Object.fromEntries(new FormData(form).entries());
      run(form.querySelector("button[type=submit]"), form.dataset.action, values);
    });
  }
  for (const tab of $$("[data-tab]")) {
    tab.addEventListener("click", () => {
      for (const other of $$("[data-tab]")) other.setAttribute("aria-selected", String(other === tab));
      for (const panel of $$("[data-panel]")) panel.hidden = panel.dataset.panel !== tab.dataset.tab;
      if (tab.dataset.tab === "limits") loadLimits();
    });
  }
  $("#refresh").addEventListener("click", () => load(true).catch((error) => flash(error.message, "error")));

  await load();
  if (!inspected.timestamp) await load(true);
  connectLive({
    topics: ["workers"],
    onMessage(message) {
      const mine = message.workers.find((w) => w.hostname === name);
      if (mine) renderWorker(mine);
    },
    onReconnect: () => load(),
  });
}
