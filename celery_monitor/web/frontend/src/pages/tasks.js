// Tasks: a server-side paged table (filters, search, sort), updated live as tasks change.
import { config, pageUrl } from "../lib/config.js";
import { $, $$, badge, el, replace } from "../lib/dom.js";
import { absolute, duration, number, text, when } from "../lib/format.js";
import { getJSON } from "../lib/http.js";
import { connectLive } from "../lib/live.js";

const SORTABLE = new Set(config.sortKeys);
const TIMES = new Set(["received", "started", "succeeded", "failed", "revoked", "sent", "timestamp", "retried"]);
const COLUMNS_KEY = "celery-monitor-task-columns";
const FILTERS = ["search", "state", "taskname", "workername", "received_start", "received_end"];
// The store flushes twice a second: a refetch sooner than that after a push could miss the new task.
const REFETCH_AFTER = 700;
const PUSHED_KEPT = 5000;

// The history only grows: of two copies of a task, the one with more transitions is the newer.
function newer(fetched, pushed) {
  if (!pushed) return fetched;
  return (pushed.transitions || []).length > (fetched.transitions || []).length ? pushed : fetched;
}

export function cell(column, task) {
  const value = task[column];
  if (column === "uuid") return el("a", { href: pageUrl(`/task/${encodeURIComponent(value)}`) }, value);
  if (column === "state") return badge(value);
  if (column === "cluster") return value || "default";
  if (column === "worker" && value) return el("a", { href: pageUrl(`/worker/${encodeURIComponent(value)}`) }, value);
  if (column === "runtime") return duration(value);
  if (TIMES.has(column)) return el("time", { title: absolute(value) }, when(value));
  return text(value);
}

function savedColumns() {
  try {
    const saved = JSON.parse(localStorage.getItem(COLUMNS_KEY) || "null");
    if (Array.isArray(saved) && saved.length === config.columns.length
        && saved.every((c) => config.columns.includes(c))) return saved;
  } catch { /* a broken saved order falls back to the configured one */ }
  return [...config.columns];
}

export async function tasksPage() {
  const form = $("#task-filters");
  const table = $("#tasks");
  const body = $("tbody", table);
  let columns = savedColumns();
  const query = new URLSearchParams(location.search);
  // A page beside the one shown is asked by cursor (after= / before=: one index seek however deep);
  // offset only says where it is, and starts the table when no cursor does.
  const state = {
    offset: Number(query.get("offset") || 0),
    limit: Number(query.get("limit") || $("#page-size").value),
    sort_by: query.get("sort_by") || "-received",
    after: query.get("after") || null,
    before: query.get("before") || null,
  };
  for (const name of FILTERS) if (query.get(name)) form.elements[name].value = query.get(name);
  $("#page-size").value = String(state.limit);
  let rows = new Map();
  let total = 0;
  let exact = true;
  let cursors = { next: null, prev: null };
  let loading = null;
  let pendingReload = null;
  const pushed = new Map();

  function params() {
    const result = { limit: state.limit, sort_by: state.sort_by };
    if (state.after) result.after = state.after;
    else if (state.before) result.before = state.before;
    else result.offset = state.offset;
    if (config.cluster) result.cluster = config.cluster;
    for (const name of FILTERS) {
      const value = form.elements[name].value.trim();
      if (value) result[name] = value;
    }
    return result;
  }

  function renderHead() {
    const head = $("thead tr", table);
    replace(head, columns.map((column) => {
      const sorted = state.sort_by.replace(/^-/, "") === column;
      return el("th", {
        draggable: "true", dataset: { column }, class: SORTABLE.has(column) ? "sortable" : "",
        "aria-sort": sorted ? (state.sort_by.startsWith("-") ? "descending" : "ascending") : false,
        title: "Drag to reorder" + (SORTABLE.has(column) ? "; click to sort" : ""),
      }, column);
    }));
  }

  function row(task) {
    return el("tr", { dataset: { uuid: task.uuid, state: task.state || "" } },
      columns.map((column) => el("td", { dataset: { column } }, cell(column, task))));
  }

  function renderBody() {
    if (!rows.size) {
      replace(body, el("tr", {}, el("td", { colspan: columns.length, class: "muted" }, "No tasks match")));
    } else {
      replace(body, [...rows.values()].map(row));
    }
    // A search's total is counted up to a bound: past it, "10,000+".
    const shown = `${number(total)}${exact ? "" : "+"}`;
    $("#task-total").textContent = shown;
    const first = rows.size ? state.offset + 1 : 0;
    $("#page-info").textContent = `${number(first)}–${number(state.offset + rows.size)} of ${shown}`;
    $("#prev").disabled = state.offset === 0;
    $("#next").disabled = !cursors.next || (exact && state.offset + rows.size >= total);
  }

  // Back to the first page (a new filter, order or page size).
  function restart() {
    state.offset = 0;
    state.after = state.before = null;
  }

  async function load() {
    const current = params();
    history.replaceState(null, "", `?${new URLSearchParams({ ...current, offset: state.offset })}`);
    const data = await getJSON("/ui/tasks.json", current);
    rows = new Map(data.tasks.map((task) => [task.uuid, newer(task, pushed.get(task.uuid))]));
    total = data.total;
    exact = data.total_exact !== false;
    cursors = { next: data.next, prev: data.prev };
    if (current.before && !data.prev) state.offset = 0; // nothing before it: this is the first page
    renderBody();
  }

  function reload() {
    loading = (loading || Promise.resolve()).then(load).catch((error) => {
      replace(body, el("tr", {}, el("td", { colspan: columns.length, class: "error" }, error.message)));
    });
    return loading;
  }

  // New tasks: fetch the page again (once per burst), so filters and order stay the server's.
  function scheduleReload() {
    if (pendingReload) return;
    pendingReload = setTimeout(() => { pendingReload = null; reload(); }, REFETCH_AFTER);
  }

  function remember(task) {
    pushed.delete(task.uuid);
    pushed.set(task.uuid, task);
    if (pushed.size > PUSHED_KEPT) pushed.delete(pushed.keys().next().value);
  }

  form.addEventListener("submit", (event) => { event.preventDefault(); restart(); reload(); });
  for (const name of ["state", "taskname", "workername"]) {
    form.elements[name].addEventListener("change", () => { restart(); reload(); });
  }
  let typing = null;
  form.elements.search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { restart(); reload(); }, 300);
  });
  $("#prev").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - state.limit);
    if (state.offset === 0 || !cursors.prev) restart();
    else [state.before, state.after] = [cursors.prev, null];
    reload();
  });
  $("#next").addEventListener("click", () => {
    state.offset += state.limit;
    [state.after, state.before] = [cursors.next, null];
    reload();
  });
  $("#page-size").addEventListener("change", (event) => {
    state.limit = Number(event.target.value); restart(); reload();
  });

  const head = $("thead", table);
  head.addEventListener("click", (event) => {
    const th = event.target.closest("th");
    if (!th || !SORTABLE.has(th.dataset.column)) return;
    const column = th.dataset.column;
    state.sort_by = state.sort_by === `-${column}` ? column : `-${column}`;
    restart();
    renderHead();
    reload();
  });
  let dragged = null;
  head.addEventListener("dragstart", (event) => {
    dragged = event.target.closest("th")?.dataset.column;
    event.dataTransfer.setData("text/plain", dragged || "");
  });
  head.addEventListener("dragover", (event) => event.preventDefault());
  head.addEventListener("drop", (event) => {
    event.preventDefault();
    const target = event.target.closest("th")?.dataset.column;
    if (!dragged || !target || dragged === target) return;
    const movingRight = columns.indexOf(dragged) < columns.indexOf(target);
    columns = columns.filter((c) => c !== dragged);
    columns.splice(columns.indexOf(target) + (movingRight ? 1 : 0), 0, dragged);
    localStorage.setItem(COLUMNS_KEY, JSON.stringify(columns));
    renderHead();
    renderBody();
  });

  renderHead();
  // Listen before the first fetch, so a change made while it runs is not missed.
  connectLive({
    topics: ["tasks"],
    cluster: config.cluster,
    onMessage(message) {
      let unseen = false;
      for (const task of message.tasks) {
        remember(task);
        const shown = $(`tr[data-uuid="${CSS.escape(task.uuid)}"]`, body);
        if (shown) {
          const latest = newer(rows.get(task.uuid), task);
          rows.set(task.uuid, latest);
          shown.replaceWith(row(latest));
        } else {
          unseen = true;
        }
      }
      if (unseen && state.offset === 0) scheduleReload();
    },
    onReconnect: reload,
  });
  await reload();

  // Natural times age: refresh their wording without refetching.
  setInterval(() => {
    for (const node of $$("td time", body)) {
      const uuid = node.closest("tr").dataset.uuid;
      const column = node.closest("td").dataset.column;
      const task = rows.get(uuid);
      if (task) node.textContent = when(task[column]);
    }
  }, 10000);
}
