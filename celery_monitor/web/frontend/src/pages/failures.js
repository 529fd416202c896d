// Failures: groups by cluster, task name and exception type with their trend; a group's tasks, its
// latest traceback, and (for those who may) a re-run or revoke of the whole group after a dry-run count.
// The cluster switcher narrows the groups (?cluster=); an open group is named in the address by its
// name, exception and cluster (group_cluster), so it can be shared.
import { config, url } from "../lib/config.js";
import { $, el, flash, replace } from "../lib/dom.js";
import { absolute, number, when } from "../lib/format.js";
import { getJSON, post } from "../lib/http.js";
import { connectLive } from "../lib/live.js";

const PAGE = 50;
// The history flushes twice a second: groups are fetched again this long after a failure is pushed.
const REFETCH_AFTER = 1000;

function bars(counts) {
  const top = Math.max(1, ...counts);
  // Heights set through the CSSOM: the Content-Security-Policy refuses style attributes.
  return el("span", { class: "trend", title: counts.join(" · ") }, counts.map((count) => {
    const bar = el("span", {});
    bar.style.height = `${Math.round((count / top) * 100)}%`;
    return bar;
  }));
}

// The parameters naming a group's cluster, when known (else the server takes every cluster).
function inCluster(cluster) {
  return cluster ? { cluster } : {};
}

function time(seconds) {
  return el("time", { title: absolute(seconds) }, when(seconds));
}

export async function failuresPage() {
  const body = $("#failure-groups tbody");
  const panel = $("#group-panel");
  const query = new URLSearchParams(location.search);
  // Only one cluster chosen: a group named without its cluster is that cluster's.
  const single = config.cluster && !config.cluster.includes(",") ? config.cluster : null;
  const state = { window: query.get("window") || "3600", name: query.get("name"), exception: query.get("exception"),
    cluster: query.get("group_cluster") || single, offset: 0, total: 0 };
  $("#failures-window").value = state.window;

  function chosen(group) {
    return state.name === group.name && state.exception === group.exception_type
      && (!state.cluster || state.cluster === group.cluster);
  }

  function groupRow(group) {
    const trend = group.trend;
    return el("tr", {
      dataset: { name: group.name, exception: group.exception_type, cluster: group.cluster },
      "aria-selected": chosen(group) ? "true" : "false",
      onclick: () => openGroup(group.name, group.exception_type, group.cluster),
    },
    el("td", { dataset: { column: "name" } }, group.name || "(unnamed)"),
    config.severalClusters && el("td", { dataset: { column: "cluster" } }, group.cluster),
    el("td", { dataset: { column: "exception" } }, group.exception_type || "(no exception type)"),
    el("td", { class: "num", dataset: { column: "count" } }, number(group.count)),
    el("td", {}, time(group.first_seen)),
    el("td", {}, time(group.last_seen)),
    el("td", {}, bars(trend.counts)),
    el("td", { dataset: { column: "status" } }, el("span", { class: `badge trend-${trend.status}` }, trend.status)));
  }

  async function loadGroups() {
    const data = await getJSON("/ui/failures.json", { window: state.window, ...inCluster(config.cluster) });
    $("#failures-total").textContent = number(data.total);
    if (!data.groups.length) {
      replace(body, el("tr", {}, el("td", { colspan: config.severalClusters ? 8 : 7, class: "muted" }, "No failures")));
    } else {
      replace(body, data.groups.map(groupRow));
    }
    const open = data.groups.find(chosen);
    if (open) showSample(open);
  }

  function showSample(group) {
    const sample = group.sample || {};
    $("#group-sample").textContent = sample.traceback || sample.exception || "(no traceback)";
  }

  function taskRow(task) {
    return el("tr", { dataset: { uuid: task.uuid } },
      el("td", {}, el("a", { href: url(`/task/${encodeURIComponent(task.uuid)}`) }, task.uuid)),
      el("td", {}, task.failed ? time(task.failed) : ""),
      el("td", {}, task.worker || ""),
      el("td", {}, el("code", {}, task.exception || "")),
      el("td", {}, el("code", {}, task.args || "")),
      el("td", {}, el("code", {}, task.kwargs || "")));
  }

  async function loadTasks() {
    const data = await getJSON("/ui/failures/tasks.json",
      { name: state.name, exception: state.exception, ...inCluster(state.cluster), offset: state.offset, limit: PAGE });
    state.total = data.total;
    $("#group-total").textContent = number(data.total);
    replace($("#group-tasks tbody"), data.tasks.map(taskRow));
    const first = data.total ? state.offset + 1 : 0;
    $("#group-page-info").textContent = `${number(first)}–${number(state.offset + data.tasks.length)} of ${number(data.total)}`;
    $("#group-prev").disabled = state.offset === 0;
    $("#group-next").disabled = state.offset + data.tasks.length >= data.total;
  }

  function address() {
    const params = { window: state.window, ...inCluster(config.cluster) };
    if (state.name !== null && state.name !== undefined) {
      Object.assign(params, { name: state.name, exception: state.exception });
      if (state.cluster) params.group_cluster = state.cluster;
    }
    history.replaceState(null, "", `?${new URLSearchParams(params)}`);
  }

  async function openGroup(name, exception, cluster) {
    Object.assign(state, { name, exception, cluster: cluster || null, offset: 0 });
    address();
    panel.hidden = false;
    $("#group-name").textContent = name || "(unnamed)";
    if ($("#group-cluster")) $("#group-cluster").textContent = state.cluster ? ` · ${state.cluster}` : "";
    $("#group-exception").textContent = exception || "(no exception type)";
    if ($("#group-action-result")) $("#group-action-result").textContent = "";
    for (const row of body.querySelectorAll("tr[data-name]")) {
      const same = row.dataset.name === name && row.dataset.exception === exception
        && (!state.cluster || row.dataset.cluster === state.cluster);
      row.setAttribute("aria-selected", same ? "true" : "false");
    }
    await Promise.all([loadTasks(), loadGroups()]);
  }

  async function act(action) {
    const params = { name: state.name, exception: state.exception, ...inCluster(state.cluster) };
    const result = $("#group-action-result");
    try {
      const dry = await post(`/api/failures/${action}`, { ...params, dry_run: "true" });
      result.textContent = [dry.message, ...(dry.warnings || [])].join(". ");
      if (!dry.count) return;
      const verb = action === "rerun" ? "Re-run" : "Revoke";
      const where = state.cluster && config.severalClusters ? ` in ${state.cluster}` : "";
      if (!window.confirm(`${verb} ${dry.count} task(s) of ${state.name} · ${state.exception}${where}?`)) return;
      const done = await post(`/api/failures/${action}`, params);
      result.textContent = [done.message, ...(done.warnings || [])].join(". ");
      flash(done.message, "ok");
    } catch (error) {
      result.textContent = error.message;
      flash(error.message, "error");
    }
  }

  $("#failures-window").addEventListener("change", (event) => { state.window = event.target.value; address(); loadGroups(); });
  $("#group-close").addEventListener("click", () => {
    panel.hidden = true;
    state.name = null;
    state.exception = null;
    state.cluster = single;
    address();
  });
  $("#group-prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); loadTasks(); });
  $("#group-next").addEventListener("click", () => { state.offset += PAGE; loadTasks(); });
  if (!config.readOnly) {
    for (const button of [$("#group-rerun"), $("#group-revoke")]) {
      if (button) button.addEventListener("click", () => act(button.dataset.action));
    }
  }

  // Live: a pushed failure (or a task leaving FAILURE) refetches the groups, and the open group's page.
  let pending = null;
  function refetchSoon(groupToo) {
    if (pending) return;
    pending = setTimeout(() => {
      pending = null;
      const reads = [loadGroups()];
      if (groupToo && !panel.hidden) reads.push(loadTasks());
      Promise.all(reads).catch((error) => flash(error.message, "error"));
    }, REFETCH_AFTER);
  }
  // The server sends the chosen cluster's tasks alone.
  connectLive({
    topics: ["tasks"],
    cluster: config.cluster,
    onMessage(message) {
      const failures = (message.tasks || []).filter((task) => task.state === "FAILURE");
      if (failures.length) {
        refetchSoon(failures.some((task) => task.name === state.name
          && (!state.cluster || (task.cluster || "default") === state.cluster)));
      }
    },
    onReconnect: () => refetchSoon(true),
  });
  if (state.name !== null && state.exception !== null) {
    await openGroup(state.name, state.exception, state.cluster);
  } else {
    await loadGroups();
  }
}
