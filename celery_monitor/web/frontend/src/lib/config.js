// Settings the server renders as data attributes on <body> (no inline script, for a strict CSP).
const data = document.body.dataset;

export const config = {
  page: data.page || "",
  prefix: data.prefix || "",
  naturalTime: data.naturalTime === "true",
  autoRefresh: data.autoRefresh === "true",
  readOnly: data.readOnly === "true",
  columns: (data.columns || "").split(",").filter(Boolean),
  worker: data.worker || "",
  task: data.task || "",
};

export function url(path) {
  return config.prefix + path;
}
