// Every request says who sent it (a CSRF check keys on this header) and reads errors as JSON.
import { url } from "./config.js";

const HEADERS = { "X-Requested-With": "celery-monitor", Accept: "application/json" };

async function parse(response) {
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = { error: text.slice(0, 200) };
  }
  if (!response.ok) {
    const reason = (body && (body.error || body.message)) || response.statusText;
    const error = new Error(`${response.status}: ${reason}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

export async function getJSON(path, params) {
  const query = params ? `?${new URLSearchParams(params)}` : "";
  const response = await fetch(url(path) + query, { headers: HEADERS, credentials: "same-origin" });
  return parse(response);
}

export async function post(path, params, json) {
  const query = params && Object.keys(params).length ? `?${new URLSearchParams(params)}` : "";
  const init = { method: "POST", headers: { ...HEADERS }, credentials: "same-origin" };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  return parse(await fetch(url(path) + query, init));
}

// PUT or DELETE with an optional JSON body (the API's changes of one named thing).
export async function send(method, path, json) {
  const init = { method, headers: { ...HEADERS }, credentials: "same-origin" };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  return parse(await fetch(url(path), init));
}
