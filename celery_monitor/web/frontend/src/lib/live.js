// One WebSocket for the page's pushes; reconnects with backoff and shows its state in the header.
// A refusal the server explains (a sign-in that ended, a page of another origin) ends the retries
// and says why, in the header and in a message: retrying could not fix it.
import { config, url } from "./config.js";
import { flash } from "./dom.js";
import { getJSON } from "./http.js";

const MAX_BACKOFF = 15000;
const ADVICE_AFTER = 3; // failed attempts in a row, never connected, before the page says what to check
const SIGNED_OUT = "Your sign-in has ended: reload the page to sign in again.";
const NEVER_OPENS = "The live connection does not open. If a proxy is in front of the monitor, it must pass "
  + "WebSocket upgrades on (see the README's reverse-proxy section).";

function indicator(state, label, reason = "Live updates") {
  const node = document.getElementById("live");
  if (!node) return;
  node.dataset.state = state;
  node.textContent = label;
  node.title = reason;
}

function refused(label, reason) {
  indicator("refused", label, reason);
  flash(reason, "error");
}

// A page whose data has no pushes (deliveries, say) says so, rather than "connecting" for ever.
export function refreshesEvery(seconds) {
  if (!config.autoRefresh) {
    indicator("off", "live updates off");
    return false;
  }
  indicator("polling", `refreshes every ${seconds} s`, "This page reloads its data on a timer: it has no live pushes");
  return true;
}

// cluster: the tables' pages pass the chosen one; pages of one task or worker follow it whatever the choice.
export function connectLive({ topics, task, cluster, onMessage, onReconnect }) {
  if (!config.autoRefresh) {
    indicator("off", "live updates off");
    return;
  }
  let backoff = 500;
  let failures = 0;
  let connectedOnce = false;
  const params = new URLSearchParams({ topics: topics.join(",") });
  if (task) params.set("task", task);
  // The server sends only the chosen cluster's tasks and workers: another's never reach this page.
  if (cluster) params.set("cluster", cluster);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const address = `${scheme}//${location.host}${url("/api/ws")}?${params}`;

  async function open() {
    indicator("connecting", "connecting");
    try {
      // Over HTTP first: is pushing on? (It may have been turned off since the page loaded.)
      if (!(await getJSON("/live")).auto_refresh) {
        indicator("off", "live updates off");
        return;
      }
    } catch (error) {
      if (error.status === 401) refused("signed out", SIGNED_OUT);
      else retry();
      return;
    }
    const socket = new WebSocket(address);
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.hello) {
        indicator("live", "live");
        backoff = 500;
        failures = 0;
        if (connectedOnce && onReconnect) onReconnect();
        connectedOnce = true;
        return;
      }
      if (message.overflow && onReconnect) onReconnect();
      onMessage(message);
    });
    socket.addEventListener("close", (event) => {
      if (event.code === 4403 && event.reason.includes("--auto_refresh")) indicator("off", "live updates off");
      else if (event.code === 4401) refused("signed out", SIGNED_OUT);
      else if (event.code === 4403) refused("live updates refused", `Live updates refused: ${event.reason}`);
      else retry();
    });
  }

  function retry() {
    failures += 1;
    if (!connectedOnce && failures === ADVICE_AFTER) flash(NEVER_OPENS, "error");
    indicator("down", `disconnected, retrying in ${Math.round(backoff / 1000)} s`);
    setTimeout(open, backoff);
    backoff = Math.min(backoff * 2, MAX_BACKOFF);
  }
  open();
}
