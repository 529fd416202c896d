// A workflow's graph: one column per step (layer), one box per task, drawn as SVG by this script
// (no layout library: the server gives each task its layer and its place in it). Task data is only
// ever set as text or attribute values, never parsed as markup. Kept live by the task pushes.
import { config, url } from "../lib/config.js";
import { $, badge, el, flash, replace } from "../lib/dom.js";
import { duration, text } from "../lib/format.js";
import { getJSON, post } from "../lib/http.js";
import { connectLive } from "../lib/live.js";

const SVG = "http://www.w3.org/2000/svg";
const BOX_WIDTH = 200;
const BOX_HEIGHT = 46;
const GAP_X = 60;
const GAP_Y = 14;
const PAD = 10;
const NAME_CHARS = 28;

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null) node.setAttribute(key, String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function short(value, length) {
  const shown = value || "";
  return shown.length > length ? `${shown.slice(0, length - 1)}…` : shown;
}

function stateClass(state) {
  return `state-${String(state || "unknown").toLowerCase().replace(/[^a-z0-9_-]/g, "")}`;
}

function taskHref(id) {
  return url(`/task/${encodeURIComponent(id)}`);
}

function place(node) {
  return { x: PAD + node.layer * (BOX_WIDTH + GAP_X), y: PAD + node.position * (BOX_HEIGHT + GAP_Y) };
}

function drawGraph(graph) {
  const byId = new Map(graph.nodes.map((node) => [node.id, node]));
  const slowest = new Set(graph.slowest_path.tasks);
  const slowestEdges = new Set(graph.slowest_path.tasks.slice(1).map((id, i) => `${graph.slowest_path.tasks[i]}>${id}`));
  const layers = Math.max(0, ...graph.nodes.map((n) => n.layer)) + 1;
  const rows = Math.max(0, ...graph.nodes.map((n) => n.position)) + 1;
  const width = PAD * 2 + layers * BOX_WIDTH + (layers - 1) * GAP_X;
  const height = PAD * 2 + rows * BOX_HEIGHT + (rows - 1) * GAP_Y;
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `Workflow graph of ${graph.nodes.length} tasks` });
  root.append(svg("defs", {}, svg("marker", { id: "wf-arrow", viewBox: "0 0 10 10", refX: 10, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, svg("path", { d: "M 0 0 L 10 5 L 0 10 z",
    class: "wf-arrow" }))));
  for (const edge of graph.edges) {
    const from = byId.get(edge.source);
    const to = byId.get(edge.target);
    if (!from || !to) continue;
    const a = place(from);
    const b = place(to);
    const x1 = a.x + BOX_WIDTH;
    const y1 = a.y + BOX_HEIGHT / 2;
    const x2 = b.x;
    const y2 = b.y + BOX_HEIGHT / 2;
    const bend = Math.max(20, (x2 - x1) / 2);
    const classes = ["wf-edge", `wf-${edge.kind}`];
    if (slowestEdges.has(`${edge.source}>${edge.target}`)) classes.push("wf-slowest");
    root.append(svg("path", { d: `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`,
      class: classes.join(" "), "marker-end": "url(#wf-arrow)", "data-source": edge.source,
      "data-target": edge.target, "data-kind": edge.kind }));
  }
  for (const node of graph.nodes) {
    const { x, y } = place(node);
    const classes = ["wf-node", stateClass(node.state)];
    if (slowest.has(node.id)) classes.push("wf-slowest");
    const tip = [node.name || node.id, `state: ${node.state || "UNKNOWN"}`, `id: ${node.id}`];
    if (node.args) tip.push(`args: ${text(node.args)}`);
    if (node.kwargs && node.kwargs !== "{}") tip.push(`kwargs: ${text(node.kwargs)}`);
    if (node.worker) tip.push(`worker: ${node.worker}`);
    const link = svg("a", { href: taskHref(node.id) },
      svg("title", {}, tip.join("\n")),
      svg("rect", { x, y, width: BOX_WIDTH, height: BOX_HEIGHT, rx: 6 }),
      svg("text", { x: x + 8, y: y + 18, class: "wf-name" }, short(node.name || node.id, NAME_CHARS)),
      svg("text", { x: x + 8, y: y + 36, class: "wf-meta" },
        `${node.state || "UNKNOWN"}${node.duration !== null && node.duration !== undefined
          ? ` · ${duration(node.duration)}` : ""}`));
    root.append(svg("g", { class: classes.join(" "), "data-id": node.id, "data-state": node.state || "",
      "data-layer": node.layer, "data-position": node.position }, link));
  }
  return root;
}

function tableRows(graph) {
  const nodes = [...graph.nodes].sort((a, b) => a.layer - b.layer || a.position - b.position);
  return nodes.map((node) => el("tr", { dataset: { id: node.id } },
    el("td", { class: "num" }, String(node.layer + 1)),
    el("td", {}, node.name || ""),
    el("td", {}, badge(node.state)),
    el("td", {}, node.worker || ""),
    el("td", {}, el("code", {}, text(node.args))),
    el("td", { class: "num" }, node.duration === null || node.duration === undefined ? "" : duration(node.duration)),
    el("td", {}, el("a", { href: taskHref(node.id) }, node.id))));
}

function summary(graph) {
  const counts = Object.entries(graph.states).sort().map(([state, count]) => `${count} ${state}`).join(", ");
  const parts = [`${graph.nodes.length} task(s): ${counts}`];
  if (config.severalClusters) parts.unshift(`cluster ${graph.cluster}`);
  if (graph.groups.length) parts.push(`${graph.groups.length} group(s)`);
  if (graph.slowest_path.tasks.length) {
    parts.push(`slowest path: ${graph.slowest_path.tasks.length} task(s), ${duration(graph.slowest_path.seconds)}`);
  }
  if (graph.truncated) parts.push("only the first tasks are drawn");
  return parts.join(" · ");
}

export async function workflowPage() {
  const rootId = config.root;
  let known = new Set();
  let unfinished = [];
  let timer = null;

  async function load() {
    const graph = await getJSON(`/api/workflow/${encodeURIComponent(rootId)}`);
    known = new Set(graph.nodes.map((node) => node.id));
    unfinished = graph.unfinished;
    replace($("#workflow-graph"), drawGraph(graph));
    replace($("#workflow-tasks"), tableRows(graph));
    $("#workflow-summary").textContent = summary(graph);
    const button = $("#revoke-workflow");
    if (button) {
      button.disabled = unfinished.length === 0;
      button.title = unfinished.length ? `Revoke the ${unfinished.length} task(s) not yet finished`
        : "Every task has finished";
    }
  }

  function reloadSoon() {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      load().catch((error) => flash(`Could not reload the workflow: ${error.message}`, "error"));
    }, 300);
  }

  const button = $("#revoke-workflow");
  if (!config.readOnly && button) {
    button.addEventListener("click", async () => {
      if (!window.confirm(`Revoke the ${unfinished.length} task(s) of this workflow not yet finished?`)) return;
      button.disabled = true;
      try {
        const terminate = $("#workflow-terminate") && $("#workflow-terminate").checked;
        const reply = await post(`/api/workflow/${encodeURIComponent(rootId)}/revoke`,
          { terminate: terminate ? "true" : "false" });
        flash(reply.message || "Done", "ok");
      } catch (error) {
        flash(error.message, "error");
      }
      await load();
    });
  }

  connectLive({
    topics: ["tasks"],
    onMessage(message) {
      if (message.tasks.some((task) => known.has(task.uuid) || task.root_id === rootId)) reloadSoon();
    },
    onReconnect: load,
  });
  try {
    await load();
  } catch (error) {
    if (error.status === 404) {
      replace($("#workflow-graph"), el("p", { class: "muted" }, "No task of this workflow is known (yet)."));
      $("#workflow-summary").textContent = "";
      return;
    }
    throw error;
  }
}
