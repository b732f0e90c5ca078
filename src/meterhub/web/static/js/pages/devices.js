// Device readings table: per device its status and, per circuit, the system and each phase.

import { get } from "../api.js";
import { esc, time } from "../format.js";
import { t } from "../i18n.js";
import { bindLive } from "../livebind.js";

const COLS = [
  ["voltage", "V", 1],
  ["current", "A", 2],
  ["active_power", "W"],
  ["reactive_power", "var"],
  ["apparent_power", "VA"],
  ["power_factor", "", 3],
  ["frequency", "Hz", 2],
  ["pulse_count", "", 0],
];

function rows(seriesId, label, phases, cls = "") {
  return phases
    .map(
      (p, i) => `<tr class="${i ? "sub" : cls}"><td>${i ? `&nbsp;&nbsp;${esc(p)}` : label}</td>
      ${COLS.map(([q, u, d]) => `<td data-live="${esc(seriesId)}/${q}/${esc(p)}" data-unit="${u}" ${d !== undefined ? `data-digits="${d}"` : ""}>–</td>`).join("")}</tr>`,
    )
    .join("");
}

export async function render(root, { live, app }) {
  const [devices, circuits] = await Promise.all([get("/devices"), get("/circuits")]);
  const head = `<tr><th>${esc(t("common.circuit"))}</th>${COLS.map(([q]) => `<th>${esc(t(`q.${q}`))}</th>`).join("")}</tr>`;
  const deviceIds = new Set(devices.map((d) => d.id));
  const devicePoints = new Set([...live.all()].map((r) => r.circuit).filter((c) => deviceIds.has(c)));
  root.innerHTML = `<h1>${esc(t("devices.title"))}</h1>
    ${devices
      .map((d) => {
        const mine = circuits.filter((c) => c.device === d.id);
        const own = devicePoints.has(d.id) ? rows(d.id, `<em>${esc(t("devices.device_values"))}</em>`, ["total", "L1", "L2", "L3"]) : "";
        return `<section class="panel" data-device="${esc(d.id)}">
          <h2>${esc(d.name)} <span class="badge ${d.status}" data-status="${esc(d.id)}">${esc(t(`common.${d.status}`))}</span></h2>
          <p class="muted">${esc(d.id)} · ${esc(t("common.profile"))}: ${esc(d.profile)} · ${esc(t("common.bus"))}: ${esc(d.bus)}${d.unit !== null ? ` · ${esc(t("common.unit"))} ${d.unit}` : ""}
           · ${esc(t("common.last_seen"))}: <span data-seen="${esc(d.id)}">${d.last_seen ? esc(time(d.last_seen)) : esc(t("common.never"))}</span></p>
          ${mine.length || own ? `<div class="table-wrap"><table><thead>${head}</thead><tbody>${own}${mine
            .map((c) => rows(c.id, `<a href="#/circuit/${encodeURIComponent(c.id)}">${esc(c.name)}</a>`, ["total", ...c.phases]))
            .join("")}</tbody></table></div>` : `<p class="muted">${esc(t("devices.no_circuits"))}</p>`}
        </section>`;
      })
      .join("")}`;
  const unbind = bindLive(root, live);
  const timer = setInterval(async () => {
    try {
      for (const d of await get("/devices")) {
        const badge = root.querySelector(`[data-status="${CSS.escape(d.id)}"]`);
        if (badge) {
          badge.className = `badge ${d.status}`;
          badge.textContent = t(`common.${d.status}`);
        }
        const seen = root.querySelector(`[data-seen="${CSS.escape(d.id)}"]`);
        if (seen) seen.textContent = d.last_seen ? time(d.last_seen) : t("common.never");
      }
    } catch {
      // keep the last known status; the next tick retries
    }
  }, 3000);
  return () => {
    unbind();
    clearInterval(timer);
  };
}
