// Notifications: channels (secrets masked by the server), rules, the delivery log; admins may send a test.
import { config } from "../lib/config.js";
import { $, el, flash, replace } from "../lib/dom.js";
import { absolute, when } from "../lib/format.js";
import { getJSON, post, send } from "../lib/http.js";
import { refreshesEvery } from "../lib/live.js";

const OUTCOME_BADGES = { delivered: "state-success", failed: "state-failure", dropped: "state-failure" };

function where(channel) {
  if (channel.kind === "email") return `${(channel.to || []).join(", ")} via ${channel.host}`;
  if (channel.kind === "pagerduty") return channel.url || "PagerDuty Events API v2";
  return channel.url || "";
}

function condition(rule) {
  const parts = [];
  if (rule.tasks.length) parts.push(`tasks ${rule.tasks.join(", ")}`);
  if (rule.exclude_tasks.length) parts.push(`not ${rule.exclude_tasks.join(", ")}`);
  if (rule.exceptions.length) parts.push(`exception ~ ${rule.exceptions.join(" | ")}`);
  if (rule.exclude_exceptions.length) parts.push(`exception !~ ${rule.exclude_exceptions.join(" | ")}`);
  if (rule.threshold !== null) parts.push(`over ${rule.threshold}`);
  if (rule.duration) parts.push(`for ${rule.duration} s`);
  if (rule.queues.length) parts.push(`queues ${rule.queues.join(", ")}`);
  if (rule.workers.length) parts.push(`workers ${rule.workers.join(", ")}`);
  if ((rule.entries || []).length) parts.push(`entries ${rule.entries.join(", ")}`);
  if (rule.kind === "retries_exhausted") parts.push(`after ${rule.min_retries}+ retries`);
  if ((rule.clusters || []).length) parts.push(`clusters ${rule.clusters.join(", ")}`);
  return parts.join("; ");
}

export async function notificationsPage() {
  async function sendTest(button, name) {
    button.disabled = true;
    try {
      const reply = await post(`/api/notifications/channels/${encodeURIComponent(name)}/test`);
      if (reply.delivered) flash(`Test message delivered on ${name}`);
      else flash(`Test message on ${name} failed: ${reply.error}`, "error");
    } catch (error) {
      flash(`Test message on ${name} failed: ${error.message}`, "error");
    } finally {
      button.disabled = false;
      await load();
    }
  }

  async function remove(kind, name) {
    if (!window.confirm(`Delete the ${kind === "rules" ? "rule" : "channel"} ${name}?`)) return;
    try {
      await send("DELETE", `/api/notifications/${kind}/${encodeURIComponent(name)}`);
      flash(`Deleted ${name}`);
    } catch (error) {
      flash(`Could not delete ${name}: ${error.message}`, "error");
    }
    await load();
  }

  // Rules carry no secret, so one can be loaded into the form as it is; a channel is written anew
  // (its secrets come back masked, and saving the mask would replace them).
  function editRule(rule) {
    const { name, source, ...fields } = rule;
    $("#edit-kind").value = "rules";
    $("#edit-name").value = name;
    $("#edit-body").value = JSON.stringify(fields, null, 2);
    $("#edit-body").focus();
  }

  function deleteButton(kind, name) {
    const button = el("button", { type: "button", class: "small danger delete", dataset: { name } }, "Delete");
    button.addEventListener("click", () => remove(kind, name));
    return button;
  }

  function channelRow(channel) {
    const cells = [
      el("td", {}, channel.name), el("td", {}, channel.kind), el("td", {}, el("code", {}, where(channel))),
      el("td", {}, channel.source),
    ];
    if (!config.readOnly) {
      const button = el("button", { type: "button", class: "send-test", dataset: { channel: channel.name } },
        "Send test");
      button.addEventListener("click", () => sendTest(button, channel.name));
      cells.push(el("td", {}, button, channel.source === "api" ? deleteButton("channels", channel.name) : null));
    }
    return el("tr", { dataset: { name: channel.name } }, cells);
  }

  function ruleRow(rule) {
    const cells = [
      el("td", {}, rule.name), el("td", {}, rule.kind), el("td", {}, rule.severity),
      el("td", {}, condition(rule)), el("td", {}, `${rule.window} s`), el("td", {}, rule.channels.join(", ")),
      el("td", {}, rule.source + (rule.enabled ? "" : " (disabled)")),
    ];
    if (!config.readOnly) {
      const actions = [];
      if (rule.source === "api") {
        const edit = el("button", { type: "button", class: "small icon edit", dataset: { name: rule.name } }, "Edit");
        edit.addEventListener("click", () => editRule(rule));
        actions.push(edit, deleteButton("rules", rule.name));
      }
      cells.push(el("td", {}, actions));
    }
    return el("tr", { dataset: { name: rule.name } }, cells);
  }

  async function save(event) {
    event.preventDefault();
    const kind = $("#edit-kind").value;
    const name = $("#edit-name").value.trim();
    let body;
    try {
      body = JSON.parse($("#edit-body").value);
    } catch (error) {
      flash(`Not JSON: ${error.message}`, "error");
      return;
    }
    try {
      await send("PUT", `/api/notifications/${kind}/${encodeURIComponent(name)}`, body);
      flash(`Saved ${kind === "rules" ? "rule" : "channel"} ${name}`);
      $("#notify-edit").reset();
    } catch (error) {
      flash(`Could not save ${name}: ${error.message}`, "error");
    }
    await load();
  }

  function deliveryRow(row) {
    return el("tr", { dataset: { id: row.id, outcome: row.outcome } },
      el("td", {}, el("time", { title: absolute(row.at) }, when(row.at))), el("td", {}, row.rule),
      el("td", {}, row.channel), el("td", {}, row.summary),
      el("td", {}, el("span", { class: `badge ${OUTCOME_BADGES[row.outcome] || ""}` }, row.outcome)),
      el("td", {}, String(row.attempts)), el("td", {}, row.last_error || ""));
  }

  function fill(selector, rows, render, columns, empty) {
    const body = $(`${selector} tbody`);
    if (!rows.length) replace(body, el("tr", {}, el("td", { colspan: columns, class: "muted" }, empty)));
    else replace(body, rows.map(render));
  }

  async function load() {
    const data = await getJSON("/ui/notifications.json");
    fill("#channels", data.channels, channelRow, config.readOnly ? 4 : 5, "No channels configured");
    fill("#rules", data.rules, ruleRow, config.readOnly ? 7 : 8, "No rules configured");
    fill("#deliveries", data.deliveries, deliveryRow, 7, "Nothing sent yet");
    $("#deliveries-total").textContent = String(data.deliveries.length);
  }

  if (!config.readOnly) $("#notify-edit").addEventListener("submit", save);
  await load();
  if (refreshesEvery(10)) setInterval(() => load().catch(() => {}), 10000);
}
