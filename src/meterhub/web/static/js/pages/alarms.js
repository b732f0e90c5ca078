// Alarms: the active list (GET /api/v1/alarms, ISA-18.2 states) with Acknowledge (comment) and Shelve
// (duration), the alarm log with filters, the power-quality log and the audit log (admin), each with a
// CSV download. Also the helpers the navigation badge (main.js) and the display page use.

import { ApiError, api, get, post, qs } from "../api.js";
import { esc, num, time, withUnit } from "../format.js";
import { t } from "../i18n.js";

export const SEVERITIES = ["critical", "high", "medium", "low", "info"];
const STATES = ["unack-active", "ack-active", "rtn-unack", "shelved", "suppressed", "out-of-service", "normal"];
const KINDS = ["raised", "reminder", "cleared", "acknowledged", "shelved", "unshelved", "suppressed", "unsuppressed", "out-of-service", "in-service"];
const PQ_KINDS = ["dip", "swell", "interruption", "frequency-deviation"];
const SHELVE = [900, 3600, 4 * 3600, 8 * 3600, 86400]; // [s]
const REFRESH = 10000; // the active list and the badge [ms]

/** States somebody still has to acknowledge (the badge counts these). */
export const unacknowledged = (a) => a.state === "unack-active" || a.state === "rtn-unack";

let served = null;

/** Whether this gateway serves the active list (GET /api/v1/alarms), from its OpenAPI document, asked
 * once: a page never requests an API that is not there (the browser would log every 404). */
export function alarmsServed() {
  served ??= fetch("/openapi.json", { credentials: "same-origin" })
    .then((r) => (r.ok ? r.json() : {}))
    .then((doc) => !!doc.paths?.["/api/v1/alarms"]?.get)
    .catch(() => false);
  return served;
}

/** The active list, most severe first, or null when the gateway serves none or we may not see it. */
export async function activeAlarms() {
  if (!(await alarmsServed())) return null;
  try {
    const body = await get("/alarms");
    return (body.alarms || []).slice().sort((a, b) => SEVERITIES.indexOf(a.severity) - SEVERITIES.indexOf(b.severity) || String(b.since).localeCompare(String(a.since)));
  } catch (e) {
    if (e instanceof ApiError && [401, 403, 404, 503].includes(e.status)) return null;
    throw e;
  }
}

export const stateText = (s) => t(`alarms.state_${String(s).replaceAll("-", "_")}`);
export const severityText = (s) => t(`alarms.sev_${s}`);
const kindText = (k) => t(`alarms.kind_${String(k).replaceAll("-", "_")}`);
const pqText = (k) => t(`alarms.pq_${String(k).replaceAll("-", "_")}`);
const value = (v, unit) => (v === null || v === undefined ? "–" : withUnit(v, unit ?? "", unit ? undefined : 3));

function localInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}

function isoOf(input) {
  return input ? new Date(input).toISOString() : "";
}

function duration(s) {
  if (s < 1) return `${num(s * 1000, 0)} ms`;
  if (s < 120) return `${num(s, 2)} s`;
  return `${num(s / 60, 1)} min`;
}

function change(before, after) {
  const show = (v) => (v === null || v === undefined ? "–" : typeof v === "object" ? JSON.stringify(v) : String(v));
  const text = `${show(before)} → ${show(after)}`;
  return text.length > 160 ? `${text.slice(0, 157)}…` : text;
}

export async function render(root, { app, args }) {
  const tabs = ["active", "log", "pq", "rules", ...(app.isAdmin ? ["audit"] : [])];
  const tab = tabs.includes(args[0]) ? args[0] : "active";
  root.innerHTML = `
    <h1>${esc(t("alarms.title"))}</h1>
    <nav class="tabs" id="a-tabs">${tabs.map((k) => `<a href="#/alarms/${k}" data-tab="${k}" class="${k === tab ? "active" : ""}">${esc(t(`alarms.tab_${k}`))}</a>`).join("")}</nav>
    <div id="a-body"></div>`;
  const body = root.querySelector("#a-body");
  const view = { active: renderActive, log: renderLog, pq: renderPq, rules: renderRules, audit: renderAudit }[tab];
  return view(body, app);
}

// -- the active list ----------------------------------------------------------------------------------
async function renderActive(root, app) {
  root.innerHTML = `
    <form class="panel" id="a-act" hidden>
      <h2 id="a-act-title"></h2>
      <div class="toolbar">
        <div id="a-dur-box"><label for="a-duration">${esc(t("alarms.duration"))}</label>
          <select id="a-duration">${SHELVE.map((s) => `<option value="${s}">${esc(s < 3600 ? `${s / 60} min` : `${s / 3600} h`)}</option>`).join("")}</select></div>
        <div style="flex:1"><label for="a-comment">${esc(t("alarms.comment"))}</label><input id="a-comment" maxlength="500" style="width:100%"></div>
        <div><button type="submit" id="a-confirm"></button> <button type="button" class="secondary" id="a-cancel">${esc(t("common.cancel"))}</button></div>
      </div>
    </form>
    <div class="panel"><div class="table-wrap" id="a-active"></div><p class="muted" id="a-note"></p></div>`;
  const $ = (s) => root.querySelector(s);
  let pending = null; // {action: "ack" | "shelve", alarm}

  const load = async () => {
    const alarms = await activeAlarms();
    if (alarms === null) {
      $("#a-active").innerHTML = "";
      $("#a-note").textContent = t("alarms.unavailable");
      return;
    }
    $("#a-note").textContent = alarms.length ? "" : t("alarms.none_active");
    $("#a-active").innerHTML = alarms.length
      ? `<table id="active-alarms"><thead><tr><th class="l">${esc(t("alarms.severity"))}</th><th class="l">${esc(t("alarms.state"))}</th>
        <th class="l">${esc(t("alarms.rule"))}</th><th class="l">${esc(t("alarms.target"))}</th><th class="l">${esc(t("common.phase"))}</th>
        <th class="l">${esc(t("history.quantity"))}</th><th>${esc(t("alarms.value"))}</th><th>${esc(t("alarms.limit"))}</th>
        <th class="l">${esc(t("alarms.since"))}</th><th class="l">${esc(t("alarms.acked_by"))}</th><th></th></tr></thead><tbody>
        ${alarms
          .map(
            (a) => `<tr data-id="${esc(a.id)}" class="alarm-row ${unacknowledged(a) ? "unack" : ""}">
            <td class="l"><span class="badge sev-${esc(a.severity)}">${esc(severityText(a.severity))}</span></td>
            <td class="l wrap">${esc(stateText(a.state))}</td><td class="l wrap">${esc(a.title || a.rule)}</td><td class="l">${esc(a.target)}</td>
            <td class="l">${esc(a.phase ?? "")}</td><td class="l wrap">${esc(a.quantity ?? "")}</td>
            <td>${value(a.value, a.unit)}</td><td>${value(a.limit, a.unit)}</td>
            <td class="l wrap">${esc(time(a.since))}</td><td class="l">${esc(a.acked_by ?? "")}</td>
            <td class="l actions">${unacknowledged(a) ? `<button class="ack" data-id="${esc(a.id)}">${esc(t("alarms.ack"))}</button>` : ""}
              ${a.state !== "shelved" ? `<button class="secondary shelve" data-id="${esc(a.id)}">${esc(t("alarms.shelve"))}</button>` : ""}</td></tr>`,
          )
          .join("")}</tbody></table>`
      : "";
    for (const b of root.querySelectorAll("button.ack, button.shelve")) {
      b.onclick = () => open(b.classList.contains("ack") ? "ack" : "shelve", alarms.find((a) => a.id === b.dataset.id));
    }
  };

  const open = (action, alarm) => {
    pending = { action, alarm };
    $("#a-act-title").textContent = `${t(action === "ack" ? "alarms.ack" : "alarms.shelve")}: ${alarm.title || alarm.rule} — ${alarm.target}`;
    $("#a-dur-box").hidden = action !== "shelve";
    $("#a-confirm").textContent = t(action === "ack" ? "alarms.ack" : "alarms.shelve");
    $("#a-comment").value = "";
    $("#a-act").hidden = false;
    $("#a-comment").focus();
  };
  $("#a-cancel").onclick = () => {
    pending = null;
    $("#a-act").hidden = true;
  };
  $("#a-act").onsubmit = async (ev) => {
    ev.preventDefault();
    if (!pending) return;
    const { action, alarm } = pending;
    const comment = $("#a-comment").value.trim();
    const path = `/alarms/${encodeURIComponent(alarm.id)}/${action}`;
    try {
      if (action === "ack") await post(path, { comment: comment || null });
      else await post(path, { duration_s: Number($("#a-duration").value), comment: comment || null });
      app.toast(t(action === "ack" ? "alarms.acked" : "alarms.shelved"));
      pending = null;
      $("#a-act").hidden = true;
      await load();
      refreshBadge();
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      app.toast(e.message, true);
    }
  };
  await load();
  const timer = setInterval(() => {
    if ($("#a-act").hidden) load().catch((e) => console.warn(e));
  }, REFRESH);
  return () => clearInterval(timer);
}

// -- logs ---------------------------------------------------------------------------------------------
function rangeInputs(prefix) {
  const end = Date.now();
  return `<div><label for="${prefix}-from">${esc(t("history.from"))}</label><input type="datetime-local" id="${prefix}-from" value="${localInput(end - 7 * 86400000)}"></div>
    <div><label for="${prefix}-to">${esc(t("history.to"))}</label><input type="datetime-local" id="${prefix}-to" value="${localInput(end + 60000)}"></div>`;
}

function options(values, text) {
  return `<option value="">${esc(t("alarms.all"))}</option>${values.map((v) => `<option value="${esc(v)}">${esc(text(v))}</option>`).join("")}`;
}

async function logView(root, { prefix, filters, path, rows, head, row, empty }) {
  root.innerHTML = `
    <form class="panel toolbar" id="${prefix}-form">${rangeInputs(prefix)}${filters}
      <div><button type="submit">${esc(t("history.show"))}</button> <a id="${prefix}-csv" href="#">${esc(t("reports.csv"))}</a></div>
    </form>
    <div class="panel"><div class="table-wrap" id="${prefix}-table"></div><p class="muted" id="${prefix}-note"></p></div>`;
  const $ = (s) => root.querySelector(s);
  const load = async () => {
    const params = { from: isoOf($(`#${prefix}-from`).value), to: isoOf($(`#${prefix}-to`).value) };
    for (const el of root.querySelectorAll(`[data-filter]`)) params[el.dataset.filter] = el.value.trim();
    $(`#${prefix}-csv`).href = `/api/v1${path}${qs({ ...params, format: "csv" })}`;
    let page;
    try {
      page = await get(`${path}${qs(params)}`);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      $(`#${prefix}-table`).innerHTML = "";
      $(`#${prefix}-note`).textContent = e.message;
      return;
    }
    const items = rows(page);
    $(`#${prefix}-table`).innerHTML = items.length ? `<table id="${prefix}-rows"><thead><tr>${head}</tr></thead><tbody>${items.map(row).join("")}</tbody></table>` : "";
    $(`#${prefix}-note`).textContent = !items.length ? empty : page.truncated ? t("alarms.truncated", { n: items.length }) : "";
  };
  $(`#${prefix}-form`).onsubmit = (ev) => {
    ev.preventDefault();
    load();
  };
  await load();
}

function renderLog(root) {
  const th = (k, l = true) => `<th${l ? ' class="l"' : ""}>${esc(t(k))}</th>`;
  return logView(root, {
    prefix: "log",
    path: "/alarms/log",
    filters: `<div><label for="log-severity">${esc(t("alarms.severity"))}</label><select id="log-severity" data-filter="severity">${options(SEVERITIES, severityText)}</select></div>
      <div><label for="log-kind">${esc(t("alarms.kind"))}</label><select id="log-kind" data-filter="kind">${options(KINDS, kindText)}</select></div>
      <div><label for="log-rule">${esc(t("alarms.rule"))}</label><input id="log-rule" data-filter="rule" size="12"></div>
      <div><label for="log-target">${esc(t("alarms.target"))}</label><input id="log-target" data-filter="target" size="12"></div>`,
    rows: (page) => page.events,
    head: `${th("alarms.time")}${th("alarms.kind")}${th("alarms.state")}${th("alarms.severity")}${th("alarms.rule")}${th("alarms.target")}${th("common.phase")}${th("alarms.value", false)}${th("alarms.limit", false)}${th("alarms.user")}${th("alarms.comment")}${th("alarms.message")}`,
    row: (e) => `<tr><td class="l">${esc(time(e.ts))}</td><td class="l">${esc(kindText(e.kind))}</td><td class="l">${esc(stateText(e.state))}</td>
      <td class="l"><span class="badge sev-${esc(e.severity)}">${esc(severityText(e.severity))}</span></td><td class="l">${esc(e.title || e.rule)}</td>
      <td class="l">${esc(e.target)}</td><td class="l">${esc(e.phase ?? "")}</td><td>${value(e.value, e.unit)}</td><td>${value(e.limit, e.unit)}</td>
      <td class="l">${esc(e.user ?? "")}</td><td class="l wrap">${esc(e.comment ?? "")}</td><td class="l wrap">${esc(e.message)}</td></tr>`,
    empty: t("alarms.log_empty"),
  });
}

function renderPq(root) {
  const th = (k, l = true) => `<th${l ? ' class="l"' : ""}>${esc(t(k))}</th>`;
  return logView(root, {
    prefix: "pq",
    path: "/events/pq",
    filters: `<div><label for="pq-kind">${esc(t("alarms.kind"))}</label><select id="pq-kind" data-filter="kind">${options(PQ_KINDS, pqText)}</select></div>`,
    rows: (page) => page.events,
    head: `${th("alarms.start")}${th("alarms.kind")}${th("common.phase")}${th("alarms.duration", false)}${th("alarms.extreme", false)}${th("alarms.threshold", false)}${th("alarms.flagged")}${th("common.device")}${th("alarms.source")}`,
    row: (e) => `<tr><td class="l">${esc(time(e.start))}</td><td class="l">${esc(pqText(e.kind))}</td><td class="l">${esc(e.phase ?? "")}</td>
      <td>${esc(duration(e.duration))}</td><td>${value(e.extreme, e.unit)}</td><td>${e.threshold === null ? "–" : esc(e.unit === "Hz" ? `${num(e.threshold, 2)} Hz` : `${num(e.threshold, 0)} %`)}</td>
      <td class="l">${e.flagged ? "✓" : ""}</td><td class="l">${esc(e.device)}</td><td class="l">${esc(t(`alarms.src_${e.source}`))}</td></tr>`,
    empty: t("alarms.pq_empty"),
  });
}

function renderAudit(root) {
  const th = (k) => `<th class="l">${esc(t(k))}</th>`;
  return logView(root, {
    prefix: "audit",
    path: "/audit",
    filters: `<div><label for="audit-actor">${esc(t("alarms.actor"))}</label><input id="audit-actor" data-filter="actor" size="12"></div>
      <div><label for="audit-action">${esc(t("alarms.action"))}</label><input id="audit-action" data-filter="action" size="14" placeholder="config.write"></div>`,
    rows: (page) => page.entries,
    head: `${th("alarms.time")}${th("alarms.actor")}${th("alarms.action")}${th("alarms.target")}${th("alarms.change")}${th("alarms.comment")}`,
    row: (e) => `<tr><td class="l">${esc(time(e.ts))}</td><td class="l">${esc(e.actor)}</td><td class="l">${esc(e.action)}</td><td class="l">${esc(e.target)}</td>
      <td class="l change" title="${esc(change(e.before, e.after))}">${esc(change(e.before, e.after))}</td><td class="l">${esc(e.comment ?? "")}</td></tr>`,
    empty: t("alarms.audit_empty"),
  });
}

// -- the rule editor (GET|POST /alarm-rules, PUT|DELETE /alarm-rules/{id}; changes need an admin) ----------
const CONDITIONS = ["high", "low", "band", "rate", "state"];
const RULE_PHASES = ["total", "L1", "L2", "L3", "any", "all"];
const NEEDS = { high: ["high"], low: ["low"], band: ["low", "high"], rate: ["rate"], state: ["state"] };

function limitsText(r) {
  const u = r.unit ? ` ${r.unit}` : "";
  if (r.condition === "high") return `> ${r.high}${u}`;
  if (r.condition === "low") return `< ${r.low}${u}`;
  if (r.condition === "band") return `${t("alarms.outside")} ${r.low} … ${r.high}${u}`;
  if (r.condition === "rate") return `|Δ| > ${r.rate}${u}/min`;
  return `= ${r.state ? t("alarms.on") : t("alarms.off")}`;
}

async function renderRules(root, app) {
  const [rules, circuits, devices, io, catalogue] = await Promise.all([
    get("/alarm-rules"),
    get("/circuits"),
    get("/devices"),
    get("/io").catch(() => ({ points: [] })),
    get("/quantities"),
  ]);
  const targets = [
    "site",
    ...circuits.map((c) => c.id),
    ...[...new Set(circuits.map((c) => c.zone).filter(Boolean))],
    ...devices.map((d) => d.id),
    ...(io.points || []).map((p) => p.id),
  ];
  const quantities = catalogue.filter((q) => q.kind !== "spectrum");
  const numInput = (id, label, extra = "") => `<div><label for="${id}">${esc(label)}</label><input type="number" step="any" id="${id}" ${extra}></div>`;
  root.innerHTML = `
    ${app.isAdmin ? `<div class="actions"><button id="rule-add">${esc(t("alarms.rule_add"))}</button></div>` : ""}
    <form class="panel" id="rule-form" hidden>
      <h2 id="rule-form-title"></h2>
      <div class="form-grid">
        <div><label for="rule-id">${esc(t("common.id"))}</label><input id="rule-id" required maxlength="64"></div>
        <div><label for="rule-title">${esc(t("alarms.rule_title"))}</label><input id="rule-title" maxlength="200"></div>
        <div><label for="rule-target">${esc(t("alarms.target"))}</label><input id="rule-target" list="rule-targets" required>
          <datalist id="rule-targets">${targets.map((x) => `<option value="${esc(x)}">`).join("")}</datalist></div>
        <div><label for="rule-quantity">${esc(t("history.quantity"))}</label>
          <select id="rule-quantity">${quantities.map((q) => `<option value="${esc(q.id)}">${esc(q.id)}${q.unit ? ` [${esc(q.unit)}]` : ""}</option>`).join("")}</select></div>
        <div><label for="rule-phase">${esc(t("common.phase"))}</label><select id="rule-phase">${RULE_PHASES.map((p) => `<option>${p}</option>`).join("")}</select></div>
        <div><label for="rule-condition">${esc(t("alarms.condition"))}</label>
          <select id="rule-condition">${CONDITIONS.map((c) => `<option value="${c}">${esc(t(`alarms.cond_${c}`))}</option>`).join("")}</select></div>
        ${numInput("rule-low", t("alarms.low"))}${numInput("rule-high", t("alarms.high"))}${numInput("rule-rate", t("alarms.rate"), 'min="0"')}
        <div data-need="state"><label for="rule-state">${esc(t("alarms.input_state"))}</label>
          <select id="rule-state"><option value="true">${esc(t("alarms.on"))}</option><option value="false">${esc(t("alarms.off"))}</option></select></div>
        <div><label for="rule-unit">${esc(t("alarms.unit"))}</label><input id="rule-unit" maxlength="16" placeholder="${esc(t("alarms.unit_default"))}"></div>
        ${numInput("rule-deadband", t("alarms.deadband"), 'min="0" value="0"')}
        ${numInput("rule-on-delay", t("alarms.on_delay"), 'min="0" value="0"')}${numInput("rule-recovery", t("alarms.recovery"), 'min="0" value="0"')}
        ${numInput("rule-reminder", t("alarms.reminder"), 'min="0" value="0"')}
        <div><label for="rule-severity">${esc(t("alarms.severity"))}</label><select id="rule-severity">${SEVERITIES.map((v) => `<option value="${v}">${esc(severityText(v))}</option>`).join("")}</select></div>
        <div><label><input type="checkbox" id="rule-enabled" checked> ${esc(t("common.enabled"))}</label></div>
      </div>
      <label for="rule-message">${esc(t("alarms.message"))}</label><input id="rule-message" style="width:100%" maxlength="2000">
      <p class="muted">${esc(t("alarms.placeholders"))}</p>
      <div class="actions"><button type="submit" id="rule-save">${esc(t("common.save"))}</button>
        <button type="button" class="secondary" id="rule-cancel">${esc(t("common.cancel"))}</button><span class="error" id="rule-error"></span></div>
    </form>
    <div class="panel"><div class="table-wrap" id="rule-table"></div><p class="muted" id="rule-note"></p></div>`;
  const $ = (sel) => root.querySelector(sel);
  let editing = null; // the rule id being edited, or "" for a new rule
  const field = (name) => $(`#rule-${name.replaceAll("_", "-")}`);
  const showNeeded = () => {
    const need = NEEDS[$("#rule-condition").value];
    for (const k of ["low", "high", "rate", "state"]) field(k).closest("div").hidden = !need.includes(k);
  };
  $("#rule-condition").onchange = showNeeded;

  const paint = (list) => {
    $("#rule-note").textContent = list.length ? "" : t("alarms.no_rules");
    $("#rule-table").innerHTML = list.length
      ? `<table id="rule-rows"><thead><tr>${["common.id", "alarms.rule_title", "alarms.target", "history.quantity", "common.phase", "alarms.condition", "alarms.on_delay", "alarms.recovery", "alarms.reminder", "alarms.severity", "common.enabled"]
          .map((k) => `<th class="l">${esc(t(k))}</th>`)
          .join("")}<th></th></tr></thead><tbody>${list
          .map(
            (r) => `<tr data-rule="${esc(r.id)}"><td class="l">${esc(r.id)}</td><td class="l wrap">${esc(r.title || "")}</td><td class="l">${esc(r.target)}</td>
            <td class="l">${esc(r.quantity)}</td><td class="l">${esc(r.phase)}</td><td class="l">${esc(limitsText(r))}</td>
            <td class="l">${num0(r.on_delay)}</td><td class="l">${num0(r.recovery)}</td><td class="l">${num0(r.reminder)}</td>
            <td class="l"><span class="badge sev-${esc(r.severity)}">${esc(severityText(r.severity))}</span></td><td class="l">${r.enabled ? "✓" : "–"}</td>
            <td class="l stack">${app.isAdmin ? `<button class="secondary rule-edit" data-id="${esc(r.id)}">${esc(t("alarms.edit"))}</button> <button class="danger rule-del" data-id="${esc(r.id)}">${esc(t("common.delete"))}</button>` : ""}</td></tr>`,
          )
          .join("")}</tbody></table>`
      : "";
    for (const b of root.querySelectorAll(".rule-edit")) b.onclick = () => open(list.find((r) => r.id === b.dataset.id));
    for (const b of root.querySelectorAll(".rule-del")) {
      b.onclick = async () => {
        if (!confirm(t("alarms.confirm_delete", { id: b.dataset.id }))) return;
        try {
          await api("DELETE", `/alarm-rules/${encodeURIComponent(b.dataset.id)}`);
          app.toast(t("common.saved"));
          await reload();
        } catch (e) {
          if (!(e instanceof ApiError)) throw e;
          app.toast(e.message, true);
        }
      };
    }
  };
  const num0 = (s) => (s ? esc(num(s, 0)) : "–"); // [s], as the column says
  const reload = async () => paint((await get("/alarm-rules")).rules);

  const open = (rule) => {
    editing = rule ? rule.id : "";
    const r = rule || { id: "", title: "", target: "", quantity: "active_power", phase: "total", condition: "high", deadband: 0, on_delay: 0, recovery: 0, reminder: 0, severity: "medium", enabled: true, message: "" };
    $("#rule-form-title").textContent = rule ? `${t("alarms.edit")}: ${rule.id}` : t("alarms.rule_add");
    field("id").value = r.id;
    field("id").readOnly = !!rule;
    for (const k of ["title", "target", "quantity", "phase", "condition", "severity", "message", "unit"]) field(k).value = r[k] ?? "";
    for (const k of ["low", "high", "rate", "deadband", "on_delay", "recovery", "reminder"]) field(k).value = r[k] ?? "";
    field("state").value = String(r.state ?? true);
    field("enabled").checked = r.enabled !== false;
    $("#rule-error").textContent = "";
    showNeeded();
    $("#rule-form").hidden = false;
    field(rule ? "title" : "id").focus();
  };
  if (app.isAdmin) $("#rule-add").onclick = () => open(null);
  $("#rule-cancel").onclick = () => {
    $("#rule-form").hidden = true;
  };
  $("#rule-form").onsubmit = async (ev) => {
    ev.preventDefault();
    const body = { id: field("id").value.trim(), target: field("target").value.trim(), quantity: field("quantity").value, phase: field("phase").value, condition: field("condition").value, severity: field("severity").value, enabled: field("enabled").checked };
    for (const k of ["title", "message", "unit"]) if (field(k).value.trim()) body[k] = field(k).value.trim();
    for (const k of ["deadband", "on_delay", "recovery", "reminder"]) if (field(k).value !== "") body[k] = Number(field(k).value);
    for (const k of NEEDS[body.condition]) body[k] = k === "state" ? field("state").value === "true" : field(k).value === "" ? null : Number(field(k).value);
    try {
      if (editing) await api("PUT", `/alarm-rules/${encodeURIComponent(editing)}`, body);
      else await post("/alarm-rules", body);
      $("#rule-form").hidden = true;
      app.toast(t("common.saved"));
      await reload();
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      $("#rule-error").textContent = e.message;
    }
  };
  paint(rules.rules);
}

// -- the badge in the navigation (main.js starts it) ----------------------------------------------------
let badgeTimer = null;

let badgeCount = 0;

/** Count the alarms waiting for acknowledgement and show the count on the Alarms link. */
export async function refreshBadge() {
  try {
    const alarms = await activeAlarms();
    badgeCount = alarms ? alarms.filter(unacknowledged).length : 0;
  } catch (e) {
    console.warn(e);
  }
  paintBadge();
}

/** Show the last count on the Alarms link (the navigation is re-rendered on every page change). */
export function paintBadge() {
  const link = document.querySelector('#nav a[data-page="alarms"]');
  if (!link) return;
  let badge = link.querySelector(".alarm-badge");
  if (!badge) {
    badge = document.createElement("span");
    badge.className = "alarm-badge";
    badge.id = "alarm-badge";
    link.append(" ", badge);
  }
  badge.textContent = String(badgeCount);
  badge.hidden = badgeCount === 0;
  badge.title = t("alarms.badge", { n: badgeCount });
}

export function startBadge() {
  stopBadge();
  refreshBadge();
  badgeTimer = setInterval(refreshBadge, REFRESH);
}

export function stopBadge() {
  clearInterval(badgeTimer);
  badgeTimer = null;
}
