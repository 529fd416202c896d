// Broker: every queue's counts and their lengths over time; the tasks waiting in a queue, and
// revoking those that match a filter (a dry-run count first, then the revoke). Watching several
// clusters, each queue says its cluster (a name may repeat across them) and is read on its broker;
// the cluster switcher narrows the table.
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
  const state = { queue: null, cluster: "", offset: 0, total: 0, counted: null };
  const where = () => (state.cluster ? { cluster: state.cluster } : {});

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
    $("#queue-name").textContent = config.severalClusters && state.cluster
      ? `${state.queue} (${state.cluster})` : state.queue;
    replace(body, el("tr", {}, el("td", { colspan: 6, class: "muted" }, "Reading the queue…")));
    let page;
    try {
      page = await getJSON(`/api/queues/${encodeURIComponent(state.queue)}/tasks`,
        { ...where(), offset: state.offset, limit: QUEUE_PAGE });
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
    const params = { queue: state.queue, ...where() };
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

  function open(queue, cluster) {
    state.queue = queue;
    state.cluster = cluster || "";
    state.offset = 0;
    panel.hidden = false;
    if (form) forgetCount();
    const address = new URL(location.href);
    address.searchParams.set("queue", queue);
    if (state.cluster && config.severalClusters) address.searchParams.set("queue_cluster", state.cluster);
    else address.searchParams.delete("queue_cluster");
    history.replaceState(null, "", address);
    return load();
  }

  $("#queue-refresh").addEventListener("click", () => load());
  $("#queue-close").addEventListener("click", () => {
    panel.hidden = true;
    const address = new URL(location.href);
    for (const name of ["queue", "queue_cluster"]) address.searchParams.delete(name);
    history.replaceState(null, "", address);
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
      const of = config.severalClusters && counted.params.cluster ? ` of cluster ${counted.params.cluster}` : "";
      if (!window.confirm(`Revoke ${counted.count} task(s) waiting in ${counted.params.queue}${of}?`)) return;
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
    const data = await getJSON("/ui/broker.json", config.cluster ? { cluster: config.cluster } : undefined);
    $("#broker-url").textContent = data.broker || "";
    $("#polled-at").textContent = data.error
      ? `Last poll failed: ${data.error}`
      : data.polled_at ? `Polled ${natural(data.polled_at)}` : "Not polled yet";
    const body = $("#broker-queues tbody");
    const columns = config.severalClusters ? 7 : 6;
    const queues = [...data.queues].sort((a, b) => a.cluster.localeCompare(b.cluster) || a.name.localeCompare(b.name));
    replace(body, queues.map((q) => el("tr", { dataset: { queue: q.name, cluster: q.cluster } },
      config.severalClusters && el("td", { dataset: { key: "cluster" }, title: data.brokers[q.cluster] || "" }, q.cluster),
      el("td", {}, q.name),
      el("td", { class: "num" }, number(q.messages)),
      el("td", { class: "num" }, number(q.ready)),
      el("td", { class: "num" }, number(q.unacked)),
      el("td", { class: "num" }, number(q.consumers)),
      el("td", {}, el("button", { type: "button", class: "small", dataset: { show: q.name, cluster: q.cluster } },
        "Tasks")),
    )));
    // A cluster whose broker did not answer: its queues are not shown, and the row says why.
    for (const [cluster, error] of Object.entries(data.errors || {})) {
      if (!config.severalClusters) continue;
      body.append(el("tr", { dataset: { unavailable: cluster } },
        el("td", { dataset: { key: "cluster" } }, cluster),
        el("td", { colspan: columns - 1, class: "error" }, `Broker unavailable: ${error}`)));
    }
    if (!body.children.length) replace(body, el("tr", {}, el("td", { colspan: columns, class: "muted" }, "No queues")));
    const { x, series } = queueSeries(data.history);
    chart.set(x, series);
  }

  $("#broker-queues").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-show]");
    if (button) panel.open(button.dataset.show, button.dataset.cluster);
  });
  await load();
  const address = new URLSearchParams(location.search);
  const asked = address.get("queue");
  // With several clusters the address says the queue's cluster (else the one chosen in the switcher).
  if (asked) panel.open(asked, address.get("queue_cluster") || (config.severalClusters ? config.cluster.split(",")[0] : ""));
  // The monitor polls the brokers in the background; each pushed graph sample says a poll is fresh.
  // Samples span every cluster, so an identity scoped to some is sent none: it reads on a timer.
  let sampled = 0;
  connectLive({
    topics: ["samples"],
    onMessage: () => { sampled = Date.now(); load().catch(() => {}); },
    onReconnect: load,
  });
  setInterval(() => {
    if (!config.autoRefresh || Date.now() - sampled > 6000) load().catch(() => {});
  }, 5000);
}
