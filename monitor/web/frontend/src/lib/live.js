// One WebSocket for the page's pushes; reconnects with backoff and shows its state in the header.
import { config, url } from "./config.js";
import { getJSON } from "./http.js";

const MAX_BACKOFF = 15000;

function indicator(state, label) {
  const node = document.getElementById("live");
  if (!node) return;
  node.dataset.state = state;
  node.textContent = label;
}

export function connectLive({ topics, task, onMessage, onReconnect }) {
  if (!config.autoRefresh) {
    indicator("off", "live updates off");
    return;
  }
  let backoff = 500;
  let connectedOnce = false;
  const params = new URLSearchParams({ topics: topics.join(",") });
  if (task) params.set("task", task);
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
    } catch {
      retry();
      return;
    }
    const socket = new WebSocket(address);
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.hello) {
        indicator("live", "live");
        backoff = 500;
        if (connectedOnce && onReconnect) onReconnect();
        connectedOnce = true;
        return;
      }
      if (message.overflow && onReconnect) onReconnect();
      onMessage(message);
    });
    socket.addEventListener("close", (event) => {
      if (event.code === 4403) {
        indicator("off", "live updates off");
        return;
      }
      retry();
    });
  }

  function retry() {
    indicator("down", `disconnected, retrying in ${Math.round(backoff / 1000)} s`);
    setTimeout(open, backoff);
    backoff = Math.min(backoff * 2, MAX_BACKOFF);
  }
  open();
}
