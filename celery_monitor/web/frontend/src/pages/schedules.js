// Periodic tasks: every beat entry with its schedule in words, next and last run, and missed runs.
// Entries come from the server every few seconds; controls only where the server rendered their column.
// With several clusters, the entries of the cluster chosen in the header (the server narrows them).
import { config, url } from "../lib/config.js";
import { $, badge, el, flash, replace } from "../lib/dom.js";
import { absolute, text, when } from "../lib/format.js";
import { getJSON, post } from "../lib/http.js";
import { connectLive } from "../lib/live.js";

const REFRESH_MS = 3000;
const SOURCES = { app: "app", django: "django-celery-beat", redbeat: "RedBeat" };

function time(seconds) {
  if (seconds === null || seconds === undefined) return "";
  return el("time", { title: absolute(seconds) }, when(seconds));
}

function lastRun(entry) {
  const run = entry.last_run;
  if (!run) return el("span", { class: "muted" }, "none seen");
  return [time(run.time), " ", el("a", { href: url(`/task/${encodeURIComponent(run.uuid)}`), title: run.uuid },
    badge(run.state))];
}

function status(entry) {
  if (!entry.enabled) return el("span", { class: "badge state-revoked" }, "disabled");
  if (entry.missed) {
    return el("span", { class: "badge state-failure", title: `${entry.missed_runs} run(s) not arrived` },
      `missed ×${entry.missed_runs}`);
  }
  return el("span", { class: "badge state-success" }, "on time");
}

export async function schedulesPage() {
  const body = $("#schedules tbody");
  const controls = !config.readOnly;
  const columns = (controls ? 8 : 7) + (config.severalClusters ? 1 : 0);
  const query = config.cluster ? { cluster: config.cluster } : undefined;

  async function act(action, entry) {
    if (action === "run" && !window.confirm(`Send ${entry.task} now?`)) return;
    try {
      const answer = await post(`/api/schedule/${action}/${encodeURIComponent(entry.key)}`);
      flash(answer.message || `${action}: done`);
    } catch (error) {
      flash(`Could not ${action} ${entry.key}: ${error.message}`, "error");
    }
    await load();
  }

  function actions(entry) {
    const buttons = [];
    if (entry.toggleable) {
      const next = entry.enabled ? "disable" : "enable";
      buttons.push(el("button", { type: "button", class: "small", dataset: { action: next },
        onclick: () => act(next, entry) }, entry.enabled ? "Disable" : "Enable"));
    }
    buttons.push(el("button", { type: "button", class: "small", dataset: { action: "run" },
      onclick: () => act("run", entry) }, "Run now"));
    return buttons;
  }

  function row(entry) {
    const schedule = entry.schedule;
    return el("tr", { dataset: { key: entry.key, enabled: String(entry.enabled), missed: String(entry.missed) } },
      el("td", { dataset: { column: "name" } }, entry.name, " ",
        el("span", { class: "muted" }, `(${SOURCES[entry.source] || entry.source})`)),
      config.severalClusters && el("td", { dataset: { column: "cluster" } }, entry.cluster),
      el("td", { dataset: { column: "task" } }, entry.task,
        entry.queue ? el("span", { class: "muted" }, ` → ${entry.queue}`) : null),
      el("td", { dataset: { column: "schedule" }, title: schedule.cron || schedule.kind }, schedule.words),
      el("td", { dataset: { column: "arguments" } }, el("code", {}, `${text(entry.args)} ${text(entry.kwargs)}`)),
      el("td", { dataset: { column: "next" } }, entry.enabled ? time(entry.next_run) : ""),
      el("td", { dataset: { column: "last" } }, lastRun(entry)),
      el("td", { dataset: { column: "status" } }, status(entry)),
      controls ? el("td", { dataset: { column: "actions" } }, actions(entry)) : null);
  }

  async function load() {
    let data;
    try {
      data = await getJSON("/ui/schedules.json", query);
    } catch (error) {
      replace(body, el("tr", {}, el("td", { colspan: columns, class: "error" }, error.message)));
      return;
    }
    $("#schedules-total").textContent = String(data.entries.length);
    $("#schedules-tolerance").textContent = `${data.tolerance} s`;
    const problems = Object.entries(data.sources).filter(([, source]) => source.error)
      .map(([name, source]) => `${SOURCES[name]}: ${source.error}`);
    $("#schedules-sources").textContent = problems.join(" · ");
    if (!data.entries.length) {
      replace(body, el("tr", {}, el("td", { colspan: columns, class: "muted" }, "No beat entries found")));
    } else {
      replace(body, data.entries.map(row));
    }
  }

  await load();
  // A run shows as soon as its task is pushed; the timer judges runs that did not come (missed).
  let pending = null;
  const soon = () => {
    if (!pending) pending = setTimeout(() => { pending = null; load().catch(() => {}); }, 300);
  };
  connectLive({ topics: ["tasks"], cluster: config.cluster,
                onMessage: (message) => { if ((message.tasks || []).length) soon(); }, onReconnect: soon });
  setInterval(load, REFRESH_MS);
}
