// Audit trail: who did what to which target, filtered and paged on the server, new entries pushed live.
// With several clusters it follows the header's cluster switch: the server filters the entries and
// the pushes by the cluster each action reached (an action on every cluster shows under all only).
import { config, url } from "../lib/config.js";
import { $, $$, el, replace } from "../lib/dom.js";
import { absolute, number, when } from "../lib/format.js";
import { getJSON } from "../lib/http.js";
import { connectLive } from "../lib/live.js";

const FILTERS = ["user", "action", "target", "since", "until"];
const TIMES = new Set(["since", "until"]);
const COLUMNS = config.severalClusters ? 8 : 7;

// A datetime-local value is the browser's local time: the server gets seconds since the epoch.
function epoch(value) {
  const at = new Date(value).getTime();
  return Number.isNaN(at) ? "" : String(at / 1000);
}

function compact(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "object" && !Object.keys(value).length) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function outcome(entry) {
  const result = entry.result || {};
  return compact(result.error || result.message || result);
}

// Where a target lives in the pages, if it has a page.
function targetPage(entry) {
  if (!entry.target) return null;
  if (entry.action.startsWith("worker.")) return url(`/worker/${encodeURIComponent(entry.target)}`);
  if (entry.action.startsWith("schedule.")) return url("/schedules");
  if (["task.revoke", "task.abort", "task.rerun"].includes(entry.action)) {
    return url(`/task/${encodeURIComponent(entry.target)}`);
  }
  if (entry.action.startsWith("failures.")) {
    // The target is the query string: the group's name and exception open it on the failures page.
    const given = new URLSearchParams(entry.target);
    return url(`/failures?${new URLSearchParams({ name: given.get("name") || "", exception: given.get("exception") || "" })}`);
  }
  return null;
}

export async function auditPage() {
  const form = $("#audit-filters");
  const body = $("#audit tbody");
  const query = new URLSearchParams(location.search);
  const state = { offset: Number(query.get("offset") || 0), limit: Number(query.get("limit") || 50) };
  $("#page-size").value = String(state.limit);
  const wanted = {};
  for (const name of FILTERS) wanted[name] = query.get(name) || "";
  let entries = [];
  let total = 0;
  let facets = { user: [], action: [] };
  let pushedDuringLoad = null; // entries pushed while a fetch runs: it may have been answered without them

  function filters() {
    const result = {};
    for (const name of FILTERS) {
      const value = form.elements[name].value.trim();
      if (value) result[name] = value;
    }
    return result;
  }

  function accepts(entry) {
    const chosen = filters();
    if (chosen.user && entry.user !== chosen.user) return false;
    if (chosen.action && entry.action !== chosen.action) return false;
    if (chosen.target && entry.target !== chosen.target) return false;
    if (chosen.since && entry.time < Number(epoch(chosen.since))) return false;
    if (chosen.until && entry.time > Number(epoch(chosen.until))) return false;
    return true;
  }

  function filterLink(name, value) {
    const kept = config.cluster ? { cluster: config.cluster } : {};
    const params = new URLSearchParams({ ...kept, ...filters(), [name]: value });
    return el("a", { href: `?${params}`, title: `Only ${name} ${value}`, dataset: { filter: name } }, value);
  }

  function row(entry) {
    const page = targetPage(entry);
    return el("tr", { dataset: { id: entry.id, action: entry.action, ok: entry.ok ? "true" : "false" } },
      el("td", {}, el("time", { title: absolute(entry.time) }, when(entry.time))),
      config.severalClusters && el("td", { dataset: { column: "cluster" } }, entry.cluster || "every cluster"),
      el("td", { dataset: { column: "user" } }, filterLink("user", entry.user)),
      el("td", { dataset: { column: "action" } }, filterLink("action", entry.action)),
      el("td", { dataset: { column: "target" } }, entry.target ? filterLink("target", entry.target) : "",
        page ? [" ", el("a", { href: page, title: "Open its page", class: "muted" }, "↗")] : null),
      el("td", { dataset: { column: "status" } },
        el("span", { class: `badge ${entry.ok ? "state-success" : "state-failure"}` }, String(entry.status))),
      el("td", { dataset: { column: "params" } }, el("code", {}, compact(entry.params))),
      el("td", { dataset: { column: "outcome" } }, outcome(entry)));
  }

  function renderFacets() {
    for (const name of ["user", "action"]) {
      const select = form.elements[name];
      const chosen = select.value || wanted[name];
      const values = new Set(facets[name] || []);
      if (chosen) values.add(chosen);
      replace(select, el("option", { value: "" }, name === "user" ? "All users" : "All actions"),
        [...values].sort().map((value) => el("option", { value }, value)));
      select.value = chosen;
    }
  }

  function render() {
    if (!entries.length) {
      replace(body, el("tr", {}, el("td", { colspan: COLUMNS, class: "muted" }, "No audit entries match")));
    } else {
      replace(body, entries.map(row));
    }
    $("#audit-total").textContent = number(total);
    const first = total ? state.offset + 1 : 0;
    $("#page-info").textContent = `${number(first)}–${number(state.offset + entries.length)} of ${number(total)}`;
    $("#prev").disabled = state.offset === 0;
    $("#next").disabled = state.offset + entries.length >= total;
  }

  async function load() {
    const chosen = filters();
    const kept = config.cluster ? { cluster: config.cluster } : {};
    history.replaceState(null, "", `?${new URLSearchParams({ ...kept, ...chosen, offset: state.offset, limit: state.limit })}`);
    const params = { ...kept, offset: state.offset, limit: state.limit };
    for (const [name, value] of Object.entries(chosen)) params[name] = TIMES.has(name) ? epoch(value) : value;
    pushedDuringLoad = [];
    const data = await getJSON("/ui/audit.json", params);
    const newest = data.entries.length ? data.entries[0].id : 0;
    const missed = state.offset === 0 ? pushedDuringLoad.filter((entry) => entry.id > newest) : [];
    pushedDuringLoad = null;
    entries = [...missed.reverse(), ...data.entries].slice(0, state.limit);
    total = data.total + missed.length;
    facets = data.facets;
    renderFacets();
    render();
  }

  // One fetch at a time, each with the filters as they are when it starts: answers never cross.
  let loading = null;
  function reload() {
    loading = (loading || Promise.resolve()).then(load).catch((error) => {
      replace(body, el("tr", {}, el("td", { colspan: COLUMNS, class: "error" }, error.message)));
    });
    return loading;
  }

  for (const name of FILTERS) form.elements[name].value = wanted[name];
  form.addEventListener("submit", (event) => { event.preventDefault(); state.offset = 0; reload(); });
  form.addEventListener("reset", () => setTimeout(() => { state.offset = 0; reload(); }));
  for (const name of ["user", "action", "since", "until"]) {
    form.elements[name].addEventListener("change", () => { state.offset = 0; reload(); });
  }
  $("#prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - state.limit); reload(); });
  $("#next").addEventListener("click", () => { state.offset += state.limit; reload(); });
  $("#page-size").addEventListener("change", (event) => {
    state.limit = Number(event.target.value); state.offset = 0; reload();
  });

  // Listen before the first fetch, so an action taken while it runs is not missed.
  connectLive({
    topics: ["audit"],
    cluster: config.cluster,
    onMessage(message) {
      for (const entry of message.audit || []) {
        for (const name of ["user", "action"]) {
          if (!(facets[name] || []).includes(entry[name])) facets[name] = [...(facets[name] || []), entry[name]];
        }
        if (!accepts(entry) || entries.some((shown) => shown.id === entry.id)) continue;
        if (pushedDuringLoad) pushedDuringLoad.push(entry);
        total += 1;
        if (state.offset === 0) entries = [entry, ...entries].slice(0, state.limit);
      }
      renderFacets();
      render();
    },
    onReconnect: reload,
  });
  await reload();

  // Natural times age: refresh their wording without refetching.
  setInterval(() => {
    for (const node of $$("tr[data-id] time", body)) {
      const entry = entries.find((shown) => String(shown.id) === node.closest("tr").dataset.id);
      if (entry) node.textContent = when(entry.time);
    }
  }, 10000);
}
