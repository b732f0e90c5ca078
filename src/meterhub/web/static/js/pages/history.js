// History: a zoomable chart of any quantity of one or more circuits (compare), with a range picker.

import { get, qs } from "../api.js";
import { esc } from "../format.js";
import { t } from "../i18n.js";
import { COLORS, chartsAvailable, init } from "../charts.js";

const RANGES = { "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400 };

function localInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}

export async function render(root, { args }) {
  const [circuits, catalogue, devices] = await Promise.all([get("/circuits"), get("/quantities"), get("/devices")]);
  const usable = catalogue.filter((q) => q.kind !== "spectrum");
  const first = args[0] && circuits.some((c) => c.id === args[0]) ? args[0] : circuits[0]?.id;
  root.innerHTML = `
    <h1>${esc(t("history.title"))}</h1>
    <form class="panel toolbar" id="h-form">
      <div><label for="h-circuits">${esc(t("history.circuits"))}</label>
        <select id="h-circuits" multiple size="4">
          <optgroup label="${esc(t("reports.circuits"))}">${circuits.map((c) => `<option value="${esc(c.id)}" ${c.id === first ? "selected" : ""}>${esc(c.name)}</option>`).join("")}</optgroup>
          <optgroup label="${esc(t("nav.devices"))}">${devices.map((d) => `<option value="${esc(d.id)}">${esc(d.name)}</option>`).join("")}</optgroup>
        </select></div>
      <div><label for="h-quantity">${esc(t("history.quantity"))}</label>
        <select id="h-quantity">${usable.map((q) => `<option value="${esc(q.id)}" ${q.id === "active_power" ? "selected" : ""}>${esc(q.id)}${q.unit ? ` [${esc(q.unit)}]` : ""}</option>`).join("")}</select></div>
      <div><label for="h-phase">${esc(t("common.phase"))}</label><select id="h-phase"></select></div>
      <div><label for="h-range">${esc(t("history.range"))}</label>
        <select id="h-range">${Object.keys(RANGES).map((r) => `<option value="${r}" ${r === "1h" ? "selected" : ""}>${esc(t(`history.last_${r}`))}</option>`).join("")}<option value="custom">${esc(t("history.custom"))}</option></select></div>
      <div><label for="h-start">${esc(t("history.from"))}</label><input type="datetime-local" id="h-start"></div>
      <div><label for="h-end">${esc(t("history.to"))}</label><input type="datetime-local" id="h-end"></div>
      <div><label for="h-res">${esc(t("history.resolution"))}</label>
        <select id="h-res">${["auto", "raw", "1min", "15min", "1h", "1d"].map((r) => `<option>${r}</option>`).join("")}</select></div>
      <div><button type="submit" id="h-load">${esc(t("history.show"))}</button></div>
    </form>
    <div class="panel"><div class="chart" id="h-chart" style="height:420px"></div><p class="muted" id="h-info"></p></div>`;

  const $ = (s) => root.querySelector(s);
  const setPhases = () => {
    const q = usable.find((x) => x.id === $("#h-quantity").value);
    $("#h-phase").innerHTML = (q?.phases || ["total"]).map((p) => `<option ${p === "total" ? "selected" : ""}>${p}</option>`).join("");
  };
  const setRange = () => {
    const r = $("#h-range").value;
    if (r === "custom") return;
    const end = Date.now();
    $("#h-start").value = localInput(end - RANGES[r] * 1000);
    $("#h-end").value = localInput(end);
  };
  $("#h-quantity").onchange = setPhases;
  $("#h-range").onchange = setRange;
  for (const s of ["#h-start", "#h-end"]) $(s).onchange = () => ($("#h-range").value = "custom");
  setPhases();
  setRange();

  let chart = null;
  if (chartsAvailable()) chart = init($("#h-chart"));
  else $("#h-chart").innerHTML = `<p class="muted">${esc(t("charts.missing"))}</p>`;

  const load = async () => {
    if ($("#h-range").value !== "custom") setRange();
    const ids = [...$("#h-circuits").selectedOptions].map((o) => o.value);
    const params = {
      quantity: $("#h-quantity").value,
      phase: $("#h-phase").value,
      start: new Date($("#h-start").value).toISOString(),
      end: new Date($("#h-end").value).toISOString(),
      resolution: $("#h-res").value,
    };
    const results = await Promise.all(ids.map((id) => get(`/circuits/${encodeURIComponent(id)}/history${qs(params)}`)));
    const names = Object.fromEntries([...devices, ...circuits].map((c) => [c.id, c.name]));
    const n = results.reduce((a, r) => a + r.points.length, 0);
    $("#h-info").textContent = t("history.info", { n, res: results[0]?.resolution ?? "–" });
    if (!chart) return;
    const unit = results[0]?.unit ?? "";
    chart.chart.setOption(
      {
        color: COLORS,
        animation: false,
        grid: { left: 60, right: 20, top: 40, bottom: 70 },
        legend: { top: 0 },
        tooltip: { trigger: "axis" },
        toolbox: { feature: { dataZoom: { yAxisIndex: "none" }, restore: {}, saveAsImage: {} } },
        dataZoom: [{ type: "inside" }, { type: "slider", bottom: 10 }],
        xAxis: { type: "time" },
        yAxis: { type: "value", name: unit, scale: true },
        series: results.flatMap((r) => {
          const main = { name: names[r.circuit], type: "line", showSymbol: false, data: r.points.map((p) => [p.ts, p.mean]) };
          if (r.resolution === "raw" || results.length > 1) return [main];
          // min/max band for rollups of a single circuit
          return [
            main,
            { name: `${names[r.circuit]} min`, type: "line", showSymbol: false, lineStyle: { opacity: 0.3 }, data: r.points.map((p) => [p.ts, p.min]) },
            { name: `${names[r.circuit]} max`, type: "line", showSymbol: false, lineStyle: { opacity: 0.3 }, data: r.points.map((p) => [p.ts, p.max]) },
          ];
        }),
      },
      { notMerge: true },
    );
  };
  $("#h-form").onsubmit = (ev) => {
    ev.preventDefault();
    load().catch((e) => ($("#h-info").textContent = e.message));
  };
  await load();
  return () => chart?.dispose();
}
