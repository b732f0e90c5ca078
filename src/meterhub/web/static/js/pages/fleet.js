// meterhub central — the fleet page: portfolio totals, the site list (status, last seen, backlog, energy
// today, power), a comparison (kWh, kWh/m², cost, CO2, peak demand) over today, the last 7 or 30 days, and a site's
// circuits with their latest values. Served by `meterhub central` at "/"; reads GET /api/v1/sites,
// /api/v1/fleet/totals, /api/v1/fleet/compare and /api/v1/sites/{id}. Refreshes every 10 s.
// Signed-in only: on 401 it shows a sign-in form (POST /api/v1/auth/login, central's users: `meterhub user
// add NAME --role reader --data CENTRAL_DATA`). Fleet alarms (site silent, gateway offline) show per site.
// Strings through i18n (fleet.* keys; the language: this browser's choice on a gateway page, else its own).

import { has, setLanguage, t } from "../i18n.js";

const TONE = { online: "online", silent: "data-warning", offline: "offline", never_seen: "data-ok" };
const view = document.getElementById("view");
let search = "";
let period = "today";
let selected = null;

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function num(v, digits = 1, unit = "") {
  return v === null || v === undefined ? "–" : `${Number(v).toLocaleString(undefined, { maximumFractionDigits: digits })}${unit ? " " + unit : ""}`;
}

function age(s) {
  if (s === null || s === undefined) return t("fleet.never");
  if (s < 120) return t("fleet.ago", { n: Math.round(s), unit: "s" });
  if (s < 7200) return t("fleet.ago", { n: Math.round(s / 60), unit: "min" });
  if (s < 172800) return t("fleet.ago", { n: Math.round(s / 3600), unit: "h" });
  return t("fleet.ago", { n: Math.round(s / 86400), unit: "d" });
}

/** A status or alarm kind in words (the id itself for a kind this page does not know yet). */
function word(prefix, id) {
  return has(`fleet.${prefix}_${id}`) ? t(`fleet.${prefix}_${id}`) : String(id).replaceAll("_", " ");
}

class SignInNeeded extends Error {}

async function get(path) {
  const r = await fetch(`/api/v1${path}`, { headers: { Accept: "application/json" } });
  const body = await r.json().catch(() => ({}));
  if (r.status === 401) throw new SignInNeeded(body.detail || t("fleet.sign_in"));
  if (!r.ok) throw new Error(body.detail || body.message || `HTTP ${r.status}`);
  return body;
}

function signInForm(message) {
  view.innerHTML = `<h1>${esc(t("fleet.title"))}</h1><form id="fleet-login" class="card">
    <p>${esc(t("fleet.sign_in_to_see"))}</p>
    <label>${esc(t("fleet.user_name"))} <input name="username" autocomplete="username" required></label>
    <label>${esc(t("fleet.password"))} <input name="password" type="password" autocomplete="current-password" required></label>
    <button type="submit">${esc(t("fleet.sign_in"))}</button>
    <p class="error" id="fleet-login-error">${esc(message)}</p></form>`;
  const form = view.querySelector("#fleet-login");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const r = await fetch("/api/v1/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ username: form.username.value, password: form.password.value }),
    });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) {
      view.querySelector("#fleet-login-error").textContent = body.detail || `HTTP ${r.status}`;
      return;
    }
    render();
  });
}

async function signOut() {
  const csrf = document.cookie.split("; ").find((c) => c.startsWith("mh_csrf="))?.slice(8) || "";
  await fetch("/api/v1/auth/logout", { method: "POST", headers: { "X-CSRF-Token": csrf } });
  signInForm("");
}

function alarmsCell(alarms) {
  return (alarms || [])
    .map((a) => `<span class="badge data-warning" data-alarm="${esc(a.kind)}" title="${esc(a.message)}">${esc(word("alarm", a.kind))}</span>`)
    .join(" ");
}

function bar(value, max, label) {
  const w = value && max ? Math.max(1, Math.round((100 * value) / max)) : 0;
  return `<div class="fleet-bar" title="${esc(label)}"><span style="display:inline-block;height:0.8em;width:${w}%;background:var(--accent, #2a7ae2)"></span> ${esc(label)}</div>`;
}

function sitesTable(sites) {
  const rows = sites
    .map(
      (s) => `<tr data-site="${esc(s.id)}">
        <td><a href="#" data-open="${esc(s.id)}">${esc(s.id)}</a></td><td>${esc(s.name)}</td>
        <td><span class="badge ${TONE[s.status] || "data-ok"}" data-status="${esc(s.status)}">${esc(word("status", s.status))}</span></td>
        <td>${esc(age(s.age_s))}</td><td class="num">${esc(num(s.backlog, 0))}</td>
        <td class="num" data-col="energy">${esc(num(s.energy_today_kwh, 2))}</td><td class="num">${esc(num(s.power_w, 0))}</td>
        <td class="num">${esc(String(s.refused))}</td><td>${alarmsCell(s.alarms)}</td></tr>`,
    )
    .join("");
  const head = ["site", "name", "status", "last_seen", "backlog", "energy_today", "power", "refused", "alarms"]
    .map((k) => `<th>${esc(t(`fleet.col_${k}`))}</th>`)
    .join("");
  return `<div class="table-wrap"><table id="fleet-sites"><thead><tr>${head}</tr></thead>
    <tbody>${rows || `<tr><td colspan="9">${esc(t("fleet.no_site"))}</td></tr>`}</tbody></table></div>`;
}

function compareTable(cmp) {
  const maxE = Math.max(0, ...cmp.sites.map((r) => r.energy_kwh || 0));
  const maxA = Math.max(0, ...cmp.sites.map((r) => r.kwh_per_m2 || 0));
  const maxP = Math.max(0, ...cmp.sites.map((r) => r.peak_demand_w || 0));
  const maxCO2 = Math.max(0, ...cmp.sites.map((r) => r.co2_kg || 0));
  // cost bars compare within one currency only
  const maxCost = {};
  for (const r of cmp.sites) if (r.currency) maxCost[r.currency] = Math.max(maxCost[r.currency] || 0, r.cost || 0);
  const rows = cmp.sites
    .map(
      (r) => `<tr data-compare="${esc(r.id)}"><td>${esc(r.name)}</td>
        <td>${bar(r.energy_kwh, maxE, num(r.energy_kwh, 2, "kWh"))}</td>
        <td>${bar(r.kwh_per_m2, maxA, r.floor_area_m2 ? num(r.kwh_per_m2, 3, "kWh/m²") : t("fleet.no_floor_area"))}</td>
        <td data-col="cost">${bar(r.cost, maxCost[r.currency], r.currency ? num(r.cost, 2, r.currency) : t("fleet.no_tariff"))}</td>
        <td data-col="co2">${bar(r.co2_kg, maxCO2, r.co2_g_per_kwh !== null && r.co2_g_per_kwh !== undefined ? num(r.co2_kg, 1, "kg") : t("fleet.no_co2_factor"))}</td>
        <td>${bar(r.peak_demand_w, maxP, num(r.peak_demand_w, 0, "W"))}</td></tr>`,
    )
    .join("");
  const head = ["site", "energy", "energy_per_area", "cost", "co2", "peak"].map((k) => `<th>${esc(t(`fleet.cmp_${k}`))}</th>`).join("");
  return `<p>${esc(cmp.start)} – ${esc(cmp.end)}</p><div class="table-wrap"><table id="fleet-compare"><thead><tr>
    ${head}</tr></thead><tbody>${rows}</tbody></table></div>`;
}

function siteDetail(site) {
  const circuits = site.circuits_list
    .map(
      (c) => `<h3>${esc(c.name || c.id)} <small>(${esc(c.id)}, last ${esc(c.last_data)})</small></h3>
      <div class="table-wrap"><table><tbody>${c.values
        .map((v) => `<tr><td>${esc(v.quantity)}</td><td>${esc(v.phase || "")}</td><td class="num">${esc(num(v.value, 3, v.unit))}</td></tr>`)
        .join("")}</tbody></table></div>`,
    )
    .join("");
  const summary = t("fleet.site_summary", {
    status: word("status", site.status),
    age: age(site.age_s),
    messages: String(site.messages),
    refused: String(site.refused),
  });
  return `<section id="fleet-site"><h2>${esc(site.name)} <button class="secondary" id="fleet-close">${esc(t("fleet.close"))}</button></h2>
    <p>${esc(summary)}${site.last_refusal ? ` (${esc(t("fleet.last_refusal"))}: ${esc(site.last_refusal)})` : ""}</p>
    ${(site.alarms || []).map((a) => `<p class="error" data-alarm="${esc(a.kind)}">${esc(word("alarm", a.kind))}: ${esc(a.message)}</p>`).join("")}${circuits}</section>`;
}

async function render() {
  try {
    const q = search ? `?search=${encodeURIComponent(search)}` : "";
    const now = Math.floor(Date.now() / 1000);
    const days = { week: 7, month: 30 }[period];
    const cq = days ? `?start=${now - days * 86400}&end=${now}` : "";
    const [sites, totals, cmp] = await Promise.all([get(`/sites${q}`), get("/fleet/totals"), get(`/fleet/compare${cq}`)]);
    const detail = selected ? siteDetail(await get(`/sites/${encodeURIComponent(selected)}`)) : "";
    const status = Object.entries(totals.by_status).map(([k, v]) => `${v} ${word("status", k)}`).join(", ");
    const periods = ["today", "week", "month"].map((p) => `<option value="${p}">${esc(t(`fleet.period_${p}`))}</option>`).join("");
    view.innerHTML = `<h1>${esc(t("fleet.title"))} <button class="secondary" id="fleet-logout">${esc(t("fleet.sign_out"))}</button></h1>
      <p id="fleet-totals">${esc(t("fleet.totals", {
        sites: String(totals.sites),
        status,
        energy: num(totals.energy_today_kwh, 1, "kWh"),
        power: num(totals.power_w / 1000, 1, "kW"),
        backlog: String(totals.backlog),
      }))} ·
      <span id="fleet-alarms">${esc(t("fleet.alarms_count", { n: String(totals.alarms ?? 0) }))}</span></p>
      <label>${esc(t("fleet.search"))} <input id="fleet-search" value="${esc(search)}" placeholder="${esc(t("fleet.search_hint"))}"></label>
      ${sitesTable(sites.sites)}
      ${detail}
      <h2>${esc(t("fleet.compare"))} <select id="fleet-period">${periods}</select></h2>
      ${compareTable(cmp)}`;
    view.querySelector("#fleet-period").value = period;
    const input = view.querySelector("#fleet-search");
    input.addEventListener("change", () => {
      search = input.value.trim();
      render();
    });
    view.querySelector("#fleet-period").addEventListener("change", (e) => {
      period = e.target.value;
      render();
    });
    view.querySelectorAll("[data-open]").forEach((a) =>
      a.addEventListener("click", (e) => {
        e.preventDefault();
        selected = a.dataset.open;
        render();
      }),
    );
    view.querySelector("#fleet-logout").addEventListener("click", signOut);
    view.querySelector("#fleet-close")?.addEventListener("click", () => {
      selected = null;
      render();
    });
  } catch (e) {
    if (e instanceof SignInNeeded) {
      if (!view.querySelector("#fleet-login")) signInForm("");
      return;
    }
    view.innerHTML = `<h1>${esc(t("fleet.title"))}</h1><p class="error" id="fleet-error">${esc(t("fleet.api_error", { message: e.message }))}</p>`;
  }
}

await setLanguage(localStorage.getItem("meterhub.lang") || navigator.language.slice(0, 2));
render();
setInterval(() => {
  if (document.activeElement?.id !== "fleet-search") render();
}, 10000);
