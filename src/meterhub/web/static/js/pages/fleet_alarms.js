// meterhub central — the fleet page's "Active fleet alarms" section (docs/fleet.md, "Alarms"): the alarms
// central raised and has not cleared (site silent, gateway offline, device offline), newest first, with
// who acknowledged them; an admin acknowledges one with a comment. Reads GET /api/v1/fleet/alarms and
// /api/v1/auth/me; writes POST /api/v1/fleet/alarms/{id}/ack (with the session's X-CSRF-Token).
// Its own script on the page (central/api.py FLEET_PAGE) drawing into #fleet-alarm-list, above fleet.js's
// #view: refreshed every 10 s (every 2 s while signed out, so it appears right after sign-in), not while
// a comment is being typed. Kept apart from fleet.js so the two evolve without touching each other.

import { setLanguage, t } from "../i18n.js";
import { installCardTables } from "../ui.js";

let ready = null;

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function kindLabel(kind) {
  const labels = {
    site_silent: t("fleet_alarms.kind_site_silent"),
    gateway_offline: t("fleet_alarms.kind_gateway_offline"),
    device_offline: t("fleet_alarms.kind_device_offline"),
  };
  return labels[kind] || t("fleet_alarms.kind_other");
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "–";
}

function csrf() {
  return document.cookie.split("; ").find((c) => c.startsWith("mh_csrf="))?.slice(8) || "";
}

function rows(active, admin) {
  return active
    .map((a) => {
      const acked = a.acked_by
        ? `<span data-acked="${esc(a.id)}">${esc(t("fleet_alarms.acked_by", { user: a.acked_by, time: when(a.acked_at) }))}${a.ack_comment ? `: ${esc(a.ack_comment)}` : ""}</span>`
        : admin
          ? `<form class="fleet-ack" data-ack="${esc(a.id)}"><input name="comment" maxlength="2000" aria-label="${esc(t("fleet_alarms.comment"))}" placeholder="${esc(t("fleet_alarms.comment"))}">
             <button type="submit">${esc(t("fleet_alarms.ack"))}</button></form>`
          : esc(t("fleet_alarms.not_acked"));
      return `<tr data-fleet-alarm="${esc(a.id)}" data-kind="${esc(a.kind)}">
        <td data-label="${esc(t("fleet_alarms.site"))}">${esc(a.site)}</td>
        <td data-label="${esc(t("fleet_alarms.kind"))}"><span class="badge ${a.severity === "high" ? "data-warning" : "data-ok"}">${esc(kindLabel(a.kind))}</span>${a.device ? ` ${esc(a.device)}` : ""}</td>
        <td data-label="${esc(t("fleet_alarms.since"))}">${esc(when(a.raised_at))}</td>
        <td data-label="${esc(t("fleet_alarms.message"))}">${esc(a.message)}</td>
        <td data-label="${esc(t("fleet_alarms.acknowledged"))}">${acked}</td></tr>`;
    })
    .join("");
}

/** Draw the active fleet alarms into `container`; false when nobody is signed in. */
export async function renderFleetAlarms(container) {
  if (!container) return false;
  ready ??= setLanguage(localStorage.getItem("meterhub.lang") || (navigator.language || "en").slice(0, 2));
  await ready;
  let data;
  let me;
  try {
    const [r1, r2] = await Promise.all([fetch("/api/v1/fleet/alarms?limit=1"), fetch("/api/v1/auth/me")]);
    if (r1.status === 401) {
      container.innerHTML = ""; // signed out: fleet.js shows the sign-in form
      return false;
    }
    if (!r1.ok) throw new Error((await r1.json().catch(() => ({}))).detail || `HTTP ${r1.status}`);
    data = await r1.json();
    me = r2.ok ? await r2.json() : {};
  } catch (e) {
    container.innerHTML = `<p class="error">${esc(t("fleet_alarms.load_failed", { error: e.message }))}</p>`;
    return true;
  }
  const admin = me.role === "admin";
  container.innerHTML = `<h2>${esc(t("fleet_alarms.title"))} <small id="fleet-alarm-count">(${esc(String(data.active.length))})</small></h2>
    ${
      data.active.length
        ? `<div class="table-wrap"><table id="fleet-active-alarms"><thead><tr><th>${esc(t("fleet_alarms.site"))}</th><th>${esc(t("fleet_alarms.kind"))}</th>
          <th>${esc(t("fleet_alarms.since"))}</th><th>${esc(t("fleet_alarms.message"))}</th><th>${esc(t("fleet_alarms.acknowledged"))}</th></tr></thead>
          <tbody>${rows(data.active, admin)}</tbody></table></div>`
        : `<p id="fleet-active-alarms-none">${esc(t("fleet_alarms.none"))}</p>`
    }
    <p class="error" id="fleet-ack-error"></p>`;
  container.querySelectorAll("form[data-ack]").forEach((form) =>
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const r = await fetch(`/api/v1/fleet/alarms/${encodeURIComponent(form.dataset.ack)}/ack`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrf() },
        body: JSON.stringify({ comment: form.comment.value.trim() || null }),
      });
      if (!r.ok) {
        const body = await r.json().catch(() => ({}));
        container.querySelector("#fleet-ack-error").textContent = t("fleet_alarms.ack_failed", { error: body.detail || `HTTP ${r.status}` });
        return;
      }
      renderFleetAlarms(container);
    }),
  );
  return true;
}

const section = document.getElementById("fleet-alarm-list");
// the page's tables (this section's and fleet.js's) become labelled cards where their columns do not fit
for (const root of [section, document.getElementById("view")]) if (root) installCardTables(root);
async function tick() {
  const typing = section && section.contains(document.activeElement) && document.activeElement.tagName === "INPUT";
  const signedIn = typing ? true : await renderFleetAlarms(section);
  setTimeout(tick, signedIn ? 10000 : 2000);
}
if (section) tick();
