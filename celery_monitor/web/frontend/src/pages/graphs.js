// Graphs over time from the server's sampled timeline, extended live by pushed samples; with a
// cluster chosen, both are that cluster's (the server narrows them).
import { config } from "../lib/config.js";
import { $, el, replace } from "../lib/dom.js";
import { TimeChart } from "../lib/charts.js";
import { getJSON } from "../lib/http.js";
import { connectLive } from "../lib/live.js";

const MAX_POINTS = 1800;
const QUANTILES = ["p50", "p95", "p99"];

function column(points, pick) {
  return points.map(pick);
}

export async function graphsPage() {
  const charts = {
    throughput: new TimeChart($("#chart-throughput"), "/s"),
    failures: new TimeChart($("#chart-failures"), ""),
    runtime: new TimeChart($("#chart-runtime"), " s"),
    queues: new TimeChart($("#chart-queues")),
    workers: new TimeChart($("#chart-workers")),
    latency: new TimeChart($("#chart-latency"), " s"),
    oldest: new TimeChart($("#chart-oldest"), " s"),
  };
  const picker = $("#runtime-task");
  let points = [];

  function names(key) {
    const found = new Set();
    for (const point of points) for (const name of Object.keys(point[key] || {})) found.add(name);
    return [...found].sort();
  }

  function draw() {
    const x = column(points, (p) => p.time);
    const throughput = {};
    for (const state of names("rates")) throughput[state] = column(points, (p) => p.rates[state] ?? 0);
    charts.throughput.set(x, throughput);
    charts.failures.set(x, points.length ? { "failure rate": column(points, (p) => p.failure_rate) } : {});
    const taskNames = names("runtimes");
    const chosen = taskNames.includes(picker.value) ? picker.value : taskNames[0];
    replace(picker, taskNames.map((name) => el("option", { selected: name === chosen }, name)));
    const runtime = {};
    if (chosen) {
      QUANTILES.forEach((label, index) => {
        runtime[label] = column(points, (p) => (p.runtimes[chosen] ? p.runtimes[chosen][index] : null));
      });
    }
    charts.runtime.set(x, runtime);
    const queues = {};
    for (const name of names("queues")) queues[name] = column(points, (p) => p.queues[name] ?? null);
    charts.queues.set(x, queues);
    // Queue latency (sent, or the ETA, to started) and the oldest message's age, per queue.
    for (const [key, chart] of [["latency_p95", charts.latency], ["oldest_message_age", charts.oldest]]) {
      const series = {};
      for (const name of names(key)) series[name] = column(points, (p) => (p[key] || {})[name] ?? null);
      chart.set(x, series);
    }
    charts.workers.set(x, points.length ? { online: column(points, (p) => p.online) } : {});
    $("#points-info").textContent = points.length ? `${points.length} samples` : "Collecting the first samples…";
  }

  async function load() {
    points = (await getJSON("/ui/graphs.json", config.cluster ? { cluster: config.cluster } : undefined)).points;
    draw();
  }

  picker.addEventListener("change", draw);
  await load();
  connectLive({
    topics: ["samples"],
    cluster: config.cluster,
    onMessage(message) {
      if (!message.samples.length) return;
      points = points.concat(message.samples).slice(-MAX_POINTS);
      draw();
    },
    onReconnect: load,
  });
}
