// Time-series charts (uPlot): one accent palette, sized to their box, redrawn on theme change.
import uPlot from "uplot";
import { config } from "./config.js";

const PALETTE = ["#3b7d4f", "#d64545", "#3a6ea5", "#d08a1e", "#8a4fb8", "#2a9d8f", "#b5651d", "#6c757d"];
const charts = new Set();

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

// A series named after a task state takes the state's colour (app.css: --state-<name>).
function colour(name, index) {
  const own = config.states.includes(name) ? cssVar(`--state-${name.toLowerCase()}`) : "";
  return own || PALETTE[index % PALETTE.length];
}

function options(box, names, unit) {
  const ink = cssVar("--muted") || "#777";
  const grid = cssVar("--line") || "#ddd";
  const axis = { stroke: ink, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
  return {
    width: Math.max(box.clientWidth, 240),
    height: 220,
    legend: { live: true },
    cursor: { drag: { x: true, y: false } },
    scales: { x: { time: true } },
    axes: [axis, { ...axis, size: 64, values: (_u, ticks) => ticks.map((t) => `${+t.toFixed(3)}${unit || ""}`) }],
    series: [{}, ...names.map((name, index) => ({
      label: name, stroke: colour(name, index), width: 2, spanGaps: true,
    }))],
  };
}

export class TimeChart {
  constructor(box, unit = "") {
    this.box = box;
    this.unit = unit;
    this.names = [];
    this.plot = null;
    this.data = [[]];
    charts.add(this);
  }

  // columns: {x: [...], series: {name: [...]}}
  set(x, series) {
    const names = Object.keys(series).sort();
    this.data = [x, ...names.map((name) => series[name])];
    const sameSeries = this.plot && names.length === this.names.length && names.every((n, i) => n === this.names[i]);
    if (sameSeries) {
      this.plot.setData(this.data);
      return;
    }
    this.names = names;
    this.rebuild();
  }

  rebuild() {
    if (this.plot) this.plot.destroy();
    this.box.replaceChildren();
    if (!this.names.length) {
      const empty = document.createElement("p");
      empty.className = "muted empty";
      empty.textContent = "No data yet";
      this.box.append(empty);
      this.plot = null;
      return;
    }
    this.plot = new uPlot(options(this.box, this.names, this.unit), this.data, this.box);
  }

  resize() {
    if (this.plot) this.plot.setSize({ width: Math.max(this.box.clientWidth, 240), height: 220 });
  }
}

export function redrawCharts() {
  for (const chart of charts) chart.rebuild();
}

let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => { for (const chart of charts) chart.resize(); }, 150);
});
