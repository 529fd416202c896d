// Workers: one row per worker with totals; rows change as heartbeats and task events arrive.
import { config, pageUrl } from "../lib/config.js";
import { $, $$, el, replace } from "../lib/dom.js";
import { loadavg, number } from "../lib/format.js";
import { getJSON } from "../lib/http.js";
import { connectLive } from "../lib/live.js";

const COUNTS = ["active", "processed", "succeeded", "failed", "retried"];

export async function workersPage() {
  const rows = new Map();
  const body = $("#workers tbody");
  const filter = $("#worker-filter");

  function render() {
    const needle = filter.value.trim().toLowerCase();
    const shown = [...rows.values()]
      .filter((w) => !config.cluster || config.cluster.split(",").includes(w.cluster))
      .filter((w) => !needle || w.hostname.toLowerCase().includes(needle))
      .sort((a, b) => a.hostname.localeCompare(b.hostname));
    replace(body, shown.map((w) => el("tr", { dataset: { worker: w.hostname } },
      el("td", {}, el("a", { href: pageUrl(`/worker/${encodeURIComponent(w.hostname)}`) }, w.hostname)),
      config.severalClusters && el("td", { dataset: { key: "cluster" } }, w.cluster),
      el("td", {}, el("span", { class: `badge ${w.status ? "online" : "offline"}` }, w.status ? "online" : "offline")),
      COUNTS.map((key) => el("td", { class: "num", dataset: { key } }, number(w[key]))),
      el("td", {}, loadavg(w.loadavg)),
    )));
    if (!shown.length) replace(body, el("tr", {}, el("td", { colspan: config.severalClusters ? 9 : 8, class: "muted" }, "No workers")));
    const totals = { online: 0, offline: 0 };
    for (const key of COUNTS) totals[key] = 0;
    for (const w of shown) {
      totals[w.status ? "online" : "offline"] += 1;
      for (const key of COUNTS) totals[key] += w[key] || 0;
    }
    for (const node of $$("[data-total]")) node.textContent = number(totals[node.dataset.total]);
  }

  async function load() {
    const data = await getJSON("/ui/workers.json", config.cluster ? { cluster: config.cluster } : undefined);
    rows.clear();
    for (const w of data.workers) rows.set(w.hostname, w);
    render();
  }

  filter.addEventListener("input", render);
  await load();
  connectLive({
    topics: ["workers"],
    cluster: config.cluster,
    onMessage(message) {
      for (const w of message.workers) rows.set(w.hostname, w);
      if (message.workers.length) render();
    },
    onReconnect: load,
  });
  // Heartbeats stop when a worker dies: re-read now and then so it turns offline without an event.
  setInterval(() => load().catch(() => {}), 10000);
}
