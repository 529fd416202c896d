// Broker: every queue's counts and their lengths over time; the tasks waiting in a queue, and
// revoking those that match a filter (a dry-run count first, then the revoke).
import { $, el, flash, replace } from "../lib/dom.js";
import { TimeChart } from "../lib/charts.js";
import { natural, number, text } from "../lib/format.js";
import { config, url } from "../lib/config.js";
import { getJSON, post } from "../lib/http.js";
import { connectLive } from "../lib/live.js";

const QUEUE_PAGE = 50;

export function queueSeries(history) {
  const names = new Set();
  for (const [, lengths] of history) for (const name of Object.keys(lengths)) names.add(name);
  const series = {};
  for (const name of names) series[name] = history.map(([, lengths]) => lengths[name] ?? null);
  return { x: history.map(([at]) => at), series };
}

function queuePanel() {
  const panel = $("#queue-panel");
  const body = $("#queue-tasks tbody");
  const form = $("#queue-revoke");
  const state = { queue: null, offset: 0, total: 0, counted: null };

  function taskRow(task) {
    return el("tr", { dataset: { uuid: task.uuid } },
      el("td", { class: "num" }, number(task.position + 1)),
      el("td", {}, text(task.name)),
      el("td", { dataset: { column: "uuid" } }, el("a", { href: url(`/task/${encodeURIComponent(task.uuid)}`) },
        task.uuid)),
      el("td", { title: text(task.args) }, text(task.args)),
      el("td", { title: text(task.kwargs) }, text(task.kwargs)),
      el("td", {}, text(task.eta)));
  }

  async function load() {
    $("#queue-name").textContent = state.queue;
    replace(body, el("tr", {}, el("td", { colspan: 6, class: "muted" }, "Reading the queue…")));
    let page;
    try {
      page = await getJSON(`/api/queues/${encodeURIComponent(state.queue)}/tasks`,
        { offset: state.offset, limit: QUEUE_PAGE });
    } catch (error) {
      replace(body, el("tr", {}, el("td", { colspan: 6, class: "error" }, error.message)));
      return;
    }
    state.total = page.total;
    $("#queue-total").textContent = `${number(page.total)} message(s)`;
    const notes = [page.note, page.other_messages ? `${page.other_messages} message(s) here are not Celery tasks.`
      : null].filter(Boolean);
    $("#queue-note").textContent = notes.join(" ");
    replace(body, page.tasks.length ? page.tasks.map(taskRow)
      : el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No task waiting")));
    if (form) {
      const names = [...new Set(page.tasks.map((task) => task.name).filter(Boolean))].sort();
      replace($("#queue-task-names"), names.map((name) => el("option", { value: name })));
    }
    const first = page.total ? state.offset + 1 : 0;
    $("#queue-page-info").textContent = `${number(first)}–${number(state.offset + page.tasks.length + page.other_messages)}`
      + ` of ${number(page.total)}`;
    $("#queue-prev").disabled = state.offset === 0;
    $("#queue-next").disabled = state.offset + QUEUE_PAGE >= page.total;
  }

  function filter() {
    const params = { queue: state.queue };
    for (const name of ["taskname", "search"]) {
      const value = form.elements[name].value.trim();
      if (value) params[name] = value;
    }
    return params;
  }

  function forgetCount() {
    state.counted = null;
    $("#queue-revoke-run").disabled = true;
    $("#queue-revoke-run").textContent = "Revoke";
    $("#queue-revoke-result").textContent = "";
  }

  function open(queue) {
    state.queue = queue;
    state.offset = 0;
    panel.hidden = false;
    if (form) forgetCount();
    const address = new URL(location.href);
    address.searchParams.set("queue", queue);
    history.replaceState(null, "", address);
    return load();
  }

  $("#queue-refresh").addEventListener("click", () => load());
  $("#queue-close").addEventListener("click", () => {
    panel.hidden = true;
    history.replaceState(null, "", location.pathname);
  });
  $("#queue-prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - QUEUE_PAGE); load(); });
  $("#queue-next").addEventListener("click", () => { state.offset += QUEUE_PAGE; load(); });

  if (form && !config.readOnly) {
    form.addEventListener("input", forgetCount);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      forgetCount();
      const params = filter();
      try {
        const dry = await post("/api/tasks/revoke", { ...params, dry_run: "true" });
        state.counted = { params, count: dry.count };
        $("#queue-revoke-result").textContent = [dry.message, ...dry.warnings].join(". ");
        $("#queue-revoke-run").textContent = `Revoke ${number(dry.count)}`;
        $("#queue-revoke-run").disabled = dry.count === 0;
      } catch (error) {
        $("#queue-revoke-result").textContent = error.message;
      }
    });
    $("#queue-revoke-run").addEventListener("click", async (event) => {
      const counted = state.counted;
      if (!counted) return;
      if (!window.confirm(`Revoke ${counted.count} task(s) waiting in ${counted.params.queue}?`)) return;
      event.currentTarget.disabled = true;
      try {
        const done = await post("/api/tasks/revoke", counted.params);
        $("#queue-revoke-result").textContent = [done.message, ...done.warnings].join(". ");
        flash(done.message, "ok");
      } catch (error) {
        $("#queue-revoke-result").textContent = error.message;
        flash(error.message, "error");
      }
      state.counted = null;
      $("#queue-revoke-run").textContent = "Revoke";
    });
  }
  return { open };
}

export async function brokerPage() {
  const chart = new TimeChart($("#chart-broker"));
  const panel = queuePanel();

  async function load() {
    const data = await getJSON("/ui/broker.json");
    $("#broker-url").textContent = data.broker || "";
    $("#polled-at").textContent = data.error
      ? `Last poll failed: ${data.error}`
      : data.polled_at ? `Polled ${natural(data.polled_at)}` : "Not polled yet";
    const body = $("#broker-queues tbody");
    replace(body, data.queues.map((q) => el("tr", { dataset: { queue: q.name } },
      el("td", {}, q.name),
      el("td", { class: "num" }, number(q.messages)),
      el("td", { class: "num" }, number(q.ready)),
      el("td", { class: "num" }, number(q.unacked)),
      el("td", { class: "num" }, number(q.consumers)),
      el("td", {}, el("button", { type: "button", class: "small", dataset: { show: q.name } }, "Tasks")),
    )));
    if (!data.queues.length) replace(body, el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No queues")));
    const { x, series } = queueSeries(data.history);
    chart.set(x, series);
  }

  $("#broker-queues").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-show]");
    if (button) panel.open(button.dataset.show);
  });
  await load();
  const asked = new URLSearchParams(location.search).get("queue");
  if (asked) panel.open(asked);
  // The monitor polls the broker in the background; each pushed graph sample says a poll is fresh.
  connectLive({ topics: ["samples"], onMessage: () => load().catch(() => {}), onReconnect: load });
  if (!config.autoRefresh) setInterval(() => load().catch(() => {}), 5000);
}
