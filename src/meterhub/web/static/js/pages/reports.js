// Energy reports (the energy capability's /api/v1/reports router): per circuit or zone, per interval,
// tariff split, cost, CO2, maximum demand; the site balance; CSV download.

import { ApiError, get, qs } from "../api.js";
import { esc, num, toSiteInput } from "../format.js";
import { t } from "../i18n.js";
import { COLORS, chartsAvailable, init } from "../charts.js";

/** "2026-03-29": the site's date `days` days from today (the report API reads days in the site's zone). */
function siteDay(days = 0) {
  const today = toSiteInput(Date.now()).slice(0, 10);
  const [y, m, d] = today.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
}

function shortTime(iso, interval) {
  // the report gives local ISO times with offset: show the part that matters for the interval
  if (interval === "month") return iso.slice(0, 7);
  if (interval === "day") return iso.slice(0, 10);
  return `${iso.slice(5, 10)} ${iso.slice(11, 16)}`;
}

export async function render(root, { app }) {
  const circuits = await get("/circuits");
  const zones = [...new Set(circuits.map((c) => c.zone).filter(Boolean))].sort();
  root.innerHTML = `
    <h1>${esc(t("reports.title"))}</h1>
    <form class="panel toolbar" id="r-form">
      <div><label for="r-scope">${esc(t("reports.scope"))}</label>
        <select id="r-scope">
          <optgroup label="${esc(t("reports.circuits"))}">${circuits.map((c) => `<option value="circuit:${esc(c.id)}">${esc(c.name)}</option>`).join("")}</optgroup>
          ${zones.length ? `<optgroup label="${esc(t("reports.zones"))}">${zones.map((z) => `<option value="zone:${esc(z)}">${esc(z)}</option>`).join("")}</optgroup>` : ""}
        </select></div>
      <div><label for="r-interval">${esc(t("reports.interval"))}</label>
        <select id="r-interval">${["15min", "hour", "day", "month"].map((i) => `<option value="${i}" ${i === "day" ? "selected" : ""}>${esc(t(`reports.${i}`))}</option>`).join("")}</select></div>
      <div><label for="r-from">${esc(t("history.from"))}</label><input type="date" id="r-from" value="${siteDay(-6)}"></div>
      <div><label for="r-to">${esc(t("reports.to_excl"))}</label><input type="date" id="r-to" value="${siteDay(1)}"></div>
      <div><button type="submit">${esc(t("history.show"))}</button> <a id="r-csv" href="#">${esc(t("reports.csv"))}</a></div>
    </form>
    <div class="panel"><div class="chart" id="r-chart"></div></div>
    <div class="panel"><div class="table-wrap" id="r-table"></div><p class="muted" id="r-note"></p></div>
    <div class="panel"><h2>${esc(t("reports.balance"))}</h2><div class="table-wrap" id="r-balance"></div></div>`;
  const $ = (s) => root.querySelector(s);
  const chart = chartsAvailable() ? init($("#r-chart")) : null;
  if (!chart) $("#r-chart").innerHTML = `<p class="muted">${esc(t("charts.missing"))}</p>`;

  const params = () => {
    const [kind, id] = $("#r-scope").value.split(/:(.*)/s);
    return { [kind]: id, interval: $("#r-interval").value, from: $("#r-from").value, to: $("#r-to").value };
  };

  const load = async () => {
    const p = params();
    $("#r-csv").href = `/api/v1/reports/energy${qs({ ...p, format: "csv" })}`;
    $("#r-note").textContent = "";
    let rep;
    try {
      rep = await get(`/reports/energy${qs(p)}`);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      $("#r-table").innerHTML = "";
      $("#r-note").textContent = e.status === 404 && !e.detail ? t("reports.unavailable") : e.message;
      return;
    }
    const rows = rep.intervals;
    const rateKeys = rows.length ? Object.keys(rows[0]).filter((k) => k.startsWith("energy_active_import_")) : [];
    const currency = app.site?.currency || "";
    $("#r-table").innerHTML = `<table id="report-table"><thead><tr><th>${esc(t("reports.start"))}</th><th>${esc(t("q.energy_active_import"))} [kWh]</th>
      ${rateKeys.map((k) => `<th>${esc(k.replace("energy_active_import_", ""))} [kWh]</th>`).join("")}
      <th>${esc(t("q.energy_active_export"))} [kWh]</th><th>${esc(t("reports.cost"))} [${esc(currency)}]</th><th>CO2 [kg]</th>
      <th>${esc(t("reports.max_demand"))} [kW]</th><th class="l">${esc(t("reports.at"))}</th></tr></thead><tbody>
      ${rows
        .map(
          (r) => `<tr${r.estimated ? ' class="sub" title="estimated"' : ""}><td>${esc(shortTime(r.start, p.interval))}${r.estimated ? " *" : ""}</td>
          <td>${num(r.energy_active_import === null ? null : r.energy_active_import / 1000, 2)}</td>
          ${rateKeys.map((k) => `<td>${num(r[k] === null ? null : r[k] / 1000, 2)}</td>`).join("")}
          <td>${num(r.energy_active_export === null ? null : r.energy_active_export / 1000, 2)}</td>
          <td>${num(r.cost, 2)}</td><td>${num(r.co2, 2)}</td>
          <td>${num(r.max_demand === null ? null : r.max_demand / 1000, 2)}</td><td class="l">${esc(r.max_demand_time ? shortTime(r.max_demand_time, "hour") : "")}</td></tr>`,
        )
        .join("")}</tbody></table>`;
    if (rows.some((r) => r.estimated)) $("#r-note").textContent = t("reports.estimated");
    if (chart) {
      const x = rows.map((r) => shortTime(r.start, p.interval));
      const bars = rateKeys.length
        ? rateKeys.map((k) => ({ name: k.replace("energy_active_import_", ""), type: "bar", stack: "e", data: rows.map((r) => (r[k] === null ? null : r[k] / 1000)) }))
        : [{ name: t("q.energy_active_import"), type: "bar", data: rows.map((r) => (r.energy_active_import === null ? null : r.energy_active_import / 1000)) }];
      chart.chart.setOption(
        {
          color: COLORS,
          animation: false,
          legend: { top: 0 },
          tooltip: { trigger: "axis" },
          grid: { left: 60, right: 60, top: 40, bottom: 30 },
          xAxis: { type: "category", data: x },
          yAxis: [{ type: "value", name: "kWh" }, { type: "value", name: currency }],
          series: [...bars, { name: t("reports.cost"), type: "line", yAxisIndex: 1, data: rows.map((r) => r.cost) }],
        },
        { notMerge: true },
      );
    }
  };

  const loadBalance = async () => {
    const p = params();
    try {
      const bal = await get(`/reports/balance${qs({ interval: p.interval, from: p.from, to: p.to })}`);
      const cols = ["grid_import", "grid_export", "generation", "consumption", "self_consumption"];
      $("#r-balance").innerHTML = `<table><thead><tr><th>${esc(t("reports.start"))}</th>${cols.map((k) => `<th>${esc(t(`reports.${k}`))} [kWh]</th>`).join("")}</tr></thead><tbody>
        ${bal.intervals.map((r) => `<tr><td>${esc(shortTime(r.start, p.interval))}</td>${cols.map((k) => `<td>${num(r[k] === null ? null : r[k] / 1000, 2)}</td>`).join("")}</tr>`).join("")}</tbody></table>`;
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      $("#r-balance").innerHTML = `<p class="muted">${esc(e.message)}</p>`;
    }
  };

  $("#r-form").onsubmit = (ev) => {
    ev.preventDefault();
    load();
    loadBalance();
  };
  await Promise.all([load(), loadBalance()]);
  return () => chart?.dispose();
}
