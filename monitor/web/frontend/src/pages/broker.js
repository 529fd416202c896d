// Broker: every queue's counts, and their lengths over time.
import { $, el, replace } from "../lib/dom.js";
import { TimeChart } from "../lib/charts.js";
import { natural, number } from "../lib/format.js";
import { config } from "../lib/config.js";
import { getJSON } from "../lib/http.js";
import { connectLive } from "../lib/live.js";

export function queueSeries(history) {
  const names = new Set();
  for (const [, lengths] of history) for (const name of Object.keys(lengths)) names.add(name);
  const series = {};
  for (const name of names) series[name] = history.map(([, lengths]) => lengths[name] ?? null);
  return { x: history.map(([at]) => at), series };
}

export async function brokerPage() {
  const chart = new TimeChart($("#chart-broker"));

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
    )));
    if (!data.queues.length) replace(body, el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No queues")));
    const { x, series } = queueSeries(data.history);
    chart.set(x, series);
  }

  await load();
  // The monitor polls the broker in the background; each pushed graph sample says a poll is fresh.
  connectLive({ topics: ["samples"], onMessage: () => load().catch(() => {}), onReconnect: load });
  if (!config.autoRefresh) setInterval(() => load().catch(() => {}), 5000);
}
