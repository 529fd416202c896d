// Times natural ("3 min ago") or absolute per --natural_time; both forms shown on hover.
import { config } from "./config.js";

const UNITS = [
  ["d", 86400], ["h", 3600], ["min", 60], ["s", 1],
];

export function absolute(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const date = new Date(seconds * 1000);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} `
    + `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

export function natural(seconds, now = Date.now() / 1000) {
  if (seconds === null || seconds === undefined) return "";
  const delta = now - seconds;
  const size = Math.abs(delta);
  if (size < 1) return "just now";
  for (const [unit, length] of UNITS) {
    if (size >= length) {
      const count = Math.floor(size / length);
      return delta >= 0 ? `${count} ${unit} ago` : `in ${count} ${unit}`;
    }
  }
  return "just now";
}

export function when(seconds) {
  return config.naturalTime ? natural(seconds) : absolute(seconds);
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 1) return `${(seconds * 1000).toFixed(1)} ms`;
  if (seconds < 120) return `${seconds.toFixed(3)} s`;
  return `${(seconds / 60).toFixed(1)} min`;
}

export function number(value) {
  if (value === null || value === undefined) return "";
  return Number(value).toLocaleString("en-US");
}

export function text(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

export function loadavg(values) {
  return Array.isArray(values) ? values.map((v) => Number(v).toFixed(2)).join(", ") : "";
}
