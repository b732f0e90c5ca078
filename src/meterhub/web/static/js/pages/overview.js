// Site overview: consumption/generation/grid now, power gauge, live power chart, today's energy,
// cost and CO2, and every circuit's live values.

import { get } from "../api.js";
import { esc, kw, money, withUnit } from "../format.js";
import { t } from "../i18n.js";
import { bindLive, recentTotals, siteTotals } from "../livebind.js";
import { gauge, lineChart, chartsAvailable } from "../charts.js";

const COLUMNS = [
  ["active_power", "total", "W"],
  ["reactive_power", "total", "var"],
  ["apparent_power", "total", "VA"],
  ["voltage", "total", "V"],
  ["current", "total", "A"],
  ["power_factor", "total", ""],
  ["energy_active_import", "total", "Wh"],
];

const renewable = (c) => c.purpose === "renewable" && !c.virtual;

/** A live cell; a renewable circuit's active power is its production, shown positive (the meter
 * reads it negative) and labelled so, as on the display page. The API's values keep their sign. */
function cell(c, q, p, u) {
  const live = `data-live="${esc(c.id)}/${q}/${p}" data-unit="${u}"`;
  if (q === "active_power" && renewable(c)) {
    return `<td ${live} data-abs class="production" title="${esc(t("display.production"))}">–</td>`;
  }
  return `<td ${live}>–</td>`;
}

export async function render(root, { live, app }) {
  const circuits = await get("/circuits");
  root.innerHTML = `
    <h1>${esc(t("overview.title"))}</h1>
    <div class="cards">
      <div class="card grid"><div class="label">${esc(t("overview.grid"))}</div><div class="big" id="ov-grid">–</div></div>
      <div class="card consumable"><div class="label">${esc(t("overview.consumption"))}</div><div class="big" id="ov-cons">–</div></div>
      <div class="card renewable"><div class="label">${esc(t("overview.generation"))}</div><div class="big" id="ov-gen">–</div></div>
      <div class="card"><div class="label">${esc(t("overview.unmetered"))}</div><div class="big" id="ov-unmetered">–</div></div>
      <div class="card"><div class="label">${esc(t("overview.today_energy"))}</div><div class="big" id="ov-energy">–</div></div>
      <div class="card"><div class="label">${esc(t("overview.today_cost"))}</div><div class="big" id="ov-cost">–</div></div>
      <div class="card"><div class="label">${esc(t("overview.today_co2"))}</div><div class="big" id="ov-co2">–</div></div>
    </div>
    <div class="row2">
      <div class="panel"><h2>${esc(t("overview.gauge"))}</h2><div class="chart" id="ov-gauge"></div></div>
      <div class="panel"><h2>${esc(t("overview.chart"))}</h2><div class="chart" id="ov-chart"></div></div>
    </div>
    <div class="panel">
      <h2>${esc(t("overview.circuits"))}</h2>
      <div class="table-wrap"><table id="ov-table">
        <thead><tr><th>${esc(t("common.circuit"))}</th><th class="l">${esc(t("common.purpose"))}</th>
        ${COLUMNS.map(([q]) => `<th>${esc(t(`q.${q}`))}</th>`).join("")}</tr></thead>
        <tbody>${circuits
          .map(
            (c) => `<tr data-circuit="${esc(c.id)}"${renewable(c) ? ' class="renewable"' : ""}><td><a href="#/${c.virtual ? "history" : "circuit"}/${encodeURIComponent(c.id)}">${esc(c.name)}</a></td>
            <td class="l"><span class="badge ${esc(c.purpose)}">${esc(t(`purpose.${c.purpose}`))}</span> <span class="muted">${esc(c.zone || "")}</span></td>
            ${COLUMNS.map(([q, p, u]) => (c.virtual && q !== "active_power" ? "<td></td>" : cell(c, q, p, u))).join("")}</tr>`,
          )
          .join("")}</tbody>
      </table></div>
    </div>`;

  const unbind = bindLive(root, live);
  const chart = chartsAvailable() ? lineChart(root.querySelector("#ov-chart"), [t("overview.consumption"), t("overview.generation"), t("overview.grid")], "kW") : null;
  const g = chartsAvailable() ? gauge(root.querySelector("#ov-gauge"), t("overview.consumption"), "kW") : null;
  if (!chartsAvailable()) root.querySelector("#ov-gauge").innerHTML = `<p class="muted">${esc(t("charts.missing"))}</p>`;
  // the chart starts with the last minutes from history, not empty
  if (chart) {
    recentTotals(circuits, 300).then((b) => {
      const kW = (pts) => pts.map(([ts, w]) => [ts, w / 1000]);
      chart.backfill([kW(b.consumption), kW(b.generation), kW(b.grid)]);
    });
  }

  function update() {
    const tot = siteTotals(circuits, live);
    root.querySelector("#ov-grid").textContent = kw(tot.grid);
    root.querySelector("#ov-cons").textContent = kw(tot.consumption);
    root.querySelector("#ov-gen").textContent = kw(tot.generation);
    root.querySelector("#ov-unmetered").textContent = kw(tot.unmetered);
    const now = Date.now();
    chart?.push(now, [tot.consumption, tot.generation, tot.grid].map((w) => (w === null ? null : w / 1000)));
    g?.set(tot.consumption === null ? null : tot.consumption / 1000);
  }
  const timer = setInterval(update, 1000);
  update();
  // today's figures: every 15 s, every 3 s while they are not known yet (a gateway just started)
  let todayTimer = null;
  let closed = false;
  const today = async () => {
    const known = await loadToday(root, app, circuits);
    if (!closed) todayTimer = setTimeout(today, known ? 15000 : 3000);
  };
  today();
  return () => {
    unbind();
    clearInterval(timer);
    closed = true;
    clearTimeout(todayTimer);
    chart?.dispose();
    g?.dispose();
  };
}

/** Shows today's energy, cost and CO2; true when the cost is known. */
async function loadToday(root, app, circuits) {
  try {
    const s = await get("/site/today");
    if (!root.isConnected) return true; // the page was left meanwhile (its box is detached)
    root.querySelector("#ov-energy").textContent = withUnit(s.energy_consumed, "Wh", 1);
    root.querySelector("#ov-cost").textContent = money(s.cost, s.currency);
    root.querySelector("#ov-co2").textContent = s.co2 === null ? "–" : withUnit(s.co2, "kg", 1);
    return s.cost !== null;
  } catch {
    return false; // today's figures need history; leave the dashes
  }
}
