// The cluster switcher in the header: choosing a cluster reloads the page with ?cluster= in the
// address (so the view can be shared, and every list and the live socket start narrowed), keeping
// the page's other filters but its position and its worker (a worker belongs to one cluster).
import { $ } from "./dom.js";

const DROPPED = ["cluster", "offset", "workername"];

export function setupClusterSwitch() {
  const select = $("#cluster");
  if (!select) return;
  select.addEventListener("change", () => {
    const query = new URLSearchParams(location.search);
    for (const name of DROPPED) query.delete(name);
    if (select.value) query.set("cluster", select.value);
    const search = query.toString();
    location.assign(`${location.pathname}${search ? `?${search}` : ""}`);
  });
}
