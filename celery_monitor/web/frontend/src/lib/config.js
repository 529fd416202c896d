// Settings the server renders as data attributes on <body> (no inline script, for a strict CSP).
const data = document.body.dataset;

// Facts the server owns, sent as JSON so the scripts never repeat them: Celery's state names,
// which of them end a task, and the keys the tasks list can be sorted by.
function vocabulary() {
  try {
    return JSON.parse(data.vocabulary || "{}");
  } catch {
    return {};
  }
}
const facts = vocabulary();

export const config = {
  page: data.page || "",
  prefix: data.prefix || "",
  naturalTime: data.naturalTime === "true",
  autoRefresh: data.autoRefresh === "true",
  readOnly: data.readOnly === "true",
  columns: (data.columns || "").split(",").filter(Boolean),
  worker: data.worker || "",
  task: data.task || "",
  root: data.root || "",
  states: facts.states || [],
  finishedStates: facts.finished_states || [],
  judgedStates: facts.judged_states || [],
  monitorReasons: facts.monitor_reasons || [],
  sortKeys: facts.sort_keys || [],
  // The cluster chosen in the address (?cluster=, validated by the server; "" for every cluster),
  // and whether the monitor watches several (then tables show a Cluster column).
  cluster: data.cluster || "",
  severalClusters: data.severalClusters === "true",
};

export function url(path) {
  return config.prefix + path;
}

// A link to another page of the monitor, carrying the chosen cluster so the view stays narrowed.
export function pageUrl(path) {
  return config.cluster ? `${url(path)}?${new URLSearchParams({ cluster: config.cluster })}` : url(path);
}
