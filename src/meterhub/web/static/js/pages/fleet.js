// meterhub central — the fleet page: portfolio totals, the site list (status, last seen, backlog, energy
// today, power), a comparison (kWh, kWh/m², peak demand) over today or the last 7 days, and a site's
// circuits with their latest values. Served by `meterhub central` at "/"; reads GET /api/v1/sites,
// /api/v1/fleet/totals, /api/v1/fleet/compare and /api/v1/sites/{id}. Refreshes every 10 s.
// Signed-in only: on 401 it shows a sign-in form (POST /api/v1/auth/login, central's users: `meterhub user
// add NAME --role reader --data CENTRAL_DATA`). Fleet alarms (site silent, gateway offline) show per site.

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
  if (s === null || s === undefined) return "never";
  if (s < 120) return `${Math.round(s)} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

class SignInNeeded extends Error {}

async function get(path) {
  const r = await fetch(`/api/v1${path}`, { headers: { Accept: "application/json" } });
  const body = await r.json().catch(() => ({}));
  if (r.status === 401) throw new SignInNeeded(body.detail || "sign in");
  if (!r.ok) throw new Error(body.detail || body.message || `HTTP ${r.status}`);
  return body;
}

function signInForm(message) {
  view.innerHTML = `<h1>Fleet</h1><form id="fleet-login" class="card">
    <p>Sign in to see the fleet.</p>
    <label>User name <input name="username" autocomplete="username" required></label>
    <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
    <button type="submit">Sign in</button>
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
    .map((a) => `<span class="badge data-warning" data-alarm="${esc(a.kind)}" title="${esc(a.message)}">${esc(a.kind.replace("_", " "))}</span>`)
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
        <td><span class="badge ${TONE[s.status] || "data-ok"}" data-status="${esc(s.status)}">${esc(s.status.replace("_", " "))}</span></td>
        <td>${esc(age(s.age_s))}</td><td class="num">${esc(num(s.backlog, 0))}</td>
        <td class="num" data-col="energy">${esc(num(s.energy_today_kwh, 2))}</td><td class="num">${esc(num(s.power_w, 0))}</td>
        <td class="num">${esc(String(s.refused))}</td><td>${alarmsCell(s.alarms)}</td></tr>`,
    )
    .join("");
  return `<div class="table-wrap"><table id="fleet-sites"><thead><tr><th>Site</th><th>Name</th><th>Status</th>
    <th>Last seen</th><th>Backlog [messages]</th><th>Energy today [kWh]</th><th>Power [W]</th><th>Refused</th><th>Alarms</th></tr></thead>
    <tbody>${rows || `<tr><td colspan="9">No site has published yet.</td></tr>`}</tbody></table></div>`;
}

function compareTable(cmp) {
  const maxE = Math.max(0, ...cmp.sites.map((r) => r.energy_kwh || 0));
  const maxA = Math.max(0, ...cmp.sites.map((r) => r.kwh_per_m2 || 0));
  const maxP = Math.max(0, ...cmp.sites.map((r) => r.peak_demand_w || 0));
  const rows = cmp.sites
    .map(
      (r) => `<tr data-compare="${esc(r.id)}"><td>${esc(r.name)}</td>
        <td>${bar(r.energy_kwh, maxE, num(r.energy_kwh, 2, "kWh"))}</td>
        <td>${bar(r.kwh_per_m2, maxA, r.floor_area_m2 ? num(r.kwh_per_m2, 3, "kWh/m²") : "no floor area")}</td>
        <td>${bar(r.peak_demand_w, maxP, num(r.peak_demand_w, 0, "W"))}</td></tr>`,
    )
    .join("");
  return `<p>${esc(cmp.start)} – ${esc(cmp.end)}</p><div class="table-wrap"><table id="fleet-compare"><thead><tr>
    <th>Site</th><th>Energy</th><th>Energy per floor area</th><th>Peak demand</th></tr></thead><tbody>${rows}</tbody></table></div>`;
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
  return `<section id="fleet-site"><h2>${esc(site.name)} <button class="secondary" id="fleet-close">Close</button></h2>
    <p>Status ${esc(site.status)}, last seen ${esc(age(site.age_s))}, ${esc(String(site.messages))} messages,
    ${esc(String(site.refused))} refused${site.last_refusal ? ` (last: ${esc(site.last_refusal)})` : ""}.</p>
    ${(site.alarms || []).map((a) => `<p class="error" data-alarm="${esc(a.kind)}">${esc(a.kind.replace("_", " "))}: ${esc(a.message)}</p>`).join("")}${circuits}</section>`;
}

async function render() {
  try {
    const q = search ? `?search=${encodeURIComponent(search)}` : "";
    const now = Math.floor(Date.now() / 1000);
    const cq = period === "week" ? `?start=${now - 7 * 86400}&end=${now}` : "";
    const [sites, totals, cmp] = await Promise.all([get(`/sites${q}`), get("/fleet/totals"), get(`/fleet/compare${cq}`)]);
    const detail = selected ? siteDetail(await get(`/sites/${encodeURIComponent(selected)}`)) : "";
    const status = Object.entries(totals.by_status).map(([k, v]) => `${v} ${k.replace("_", " ")}`).join(", ");
    view.innerHTML = `<h1>Fleet <button class="secondary" id="fleet-logout">Sign out</button></h1>
      <p id="fleet-totals">${esc(String(totals.sites))} sites (${esc(status)}) · ${esc(num(totals.energy_today_kwh, 1, "kWh"))} today ·
      ${esc(num(totals.power_w / 1000, 1, "kW"))} now · backlog ${esc(String(totals.backlog))} messages ·
      <span id="fleet-alarms">${esc(String(totals.alarms ?? 0))} alarms</span></p>
      <label>Search <input id="fleet-search" value="${esc(search)}" placeholder="site id or name"></label>
      ${sitesTable(sites.sites)}
      ${detail}
      <h2>Compare <select id="fleet-period"><option value="today">today</option><option value="week">last 7 days</option></select></h2>
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
    view.innerHTML = `<h1>Fleet</h1><p class="error" id="fleet-error">Central's API did not answer: ${esc(e.message)}</p>`;
  }
}

render();
setInterval(() => {
  if (document.activeElement?.id !== "fleet-search") render();
}, 10000);
