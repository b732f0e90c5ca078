// History: a zoomable chart of any quantity of one or more circuits (compare), with a range picker.

import { get, qs } from "../api.js";
import { esc, fromSiteInput, timeZone, toSiteInput } from "../format.js";
import { has, t } from "../i18n.js";
import { COLORS, chartsAvailable, init, wallPoints } from "../charts.js";

const RANGES = { "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400 };

// the pickers and the axis are in the site's time (format.toSiteInput / fromSiteInput), not the browser's

/** <option>s of the quantity catalogue grouped by kind, each with its name and unit. */
function quantityOptions(usable, selected) {
  const kinds = [...new Set(usable.map((q) => q.kind))];
  // the long name where the table heading is a symbol ("Active power P" for "P"), else the heading
  const name = (q) => (has(`qname.${q.id}`) ? t(`qname.${q.id}`) : has(`q.${q.id}`) ? t(`q.${q.id}`) : q.description || q.id);
  const label = (q) => `${name(q)}${q.unit ? ` [${q.unit}]` : ""}`;
  return kinds
    .map((k) => `<optgroup label="${esc(has(`kind.${k}`) ? t(`kind.${k}`) : k)}">${usable
      .filter((q) => q.kind === k)
      .map((q) => `<option value="${esc(q.id)}" ${q.id === selected ? "selected" : ""}>${esc(label(q))}</option>`)
      .join("")}</optgroup>`)
    .join("");
}

export async function render(root, { args }) {
  const [circuits, catalogue, devices] = await Promise.all([get("/circuits"), get("/quantities"), get("/devices")]);
  const usable = catalogue.filter((q) => q.kind !== "spectrum");
  const first = args[0] && [...circuits, ...devices].some((c) => c.id === args[0]) ? args[0] : circuits[0]?.id;
  root.innerHTML = `
    <h1>${esc(t("history.title"))}</h1>
    <form class="panel toolbar" id="h-form">
      <div><label for="h-circuits">${esc(t("history.circuits"))}</label>
        <select id="h-circuits" multiple size="4">
          <optgroup label="${esc(t("reports.circuits"))}">${circuits.map((c) => `<option value="${esc(c.id)}" ${c.id === first ? "selected" : ""}>${esc(c.name)}</option>`).join("")}</optgroup>
          <optgroup label="${esc(t("nav.devices"))}">${devices.map((d) => `<option value="${esc(d.id)}" ${d.id === first ? "selected" : ""}>${esc(d.name)}</option>`).join("")}</optgroup>
        </select></div>
      <div><label for="h-quantity">${esc(t("history.quantity"))}</label>
        <select id="h-quantity">${quantityOptions(usable, "active_power")}</select></div>
      <div><label for="h-phase">${esc(t("common.phase"))}</label><select id="h-phase"></select></div>
      <div><label for="h-range">${esc(t("history.range"))}</label>
        <select id="h-range">${Object.keys(RANGES).map((r) => `<option value="${r}" ${r === "1h" ? "selected" : ""}>${esc(t(`history.last_${r}`))}</option>`).join("")}<option value="custom">${esc(t("history.custom"))}</option></select></div>
      <div><label for="h-start">${esc(t("history.from"))} <span class="muted">(${esc(timeZone() ?? "")})</span></label><input type="datetime-local" id="h-start"></div>
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
  // the pickers show minutes; a "last …" range ends now, to the second (else the newest values are cut)
  let span = null;
  const setRange = () => {
    const r = $("#h-range").value;
    if (r === "custom") return;
    const end = Date.now();
    span = [end - RANGES[r] * 1000, end];
    $("#h-start").value = toSiteInput(end - RANGES[r] * 1000);
    $("#h-end").value = toSiteInput(end);
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
      start: new Date($("#h-range").value === "custom" ? fromSiteInput($("#h-start").value) : span[0]).toISOString(),
      end: new Date($("#h-range").value === "custom" ? fromSiteInput($("#h-end").value) : span[1]).toISOString(),
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
        useUTC: true, // times are the site's wall clock (wallPoints)
        backgroundColor: "transparent",
        grid: { left: 60, right: 20, top: 40, bottom: 70 },
        legend: { top: 0 },
        tooltip: { trigger: "axis" },
        toolbox: { feature: { dataZoom: { yAxisIndex: "none" }, restore: {}, saveAsImage: {} } },
        dataZoom: [{ type: "inside" }, { type: "slider", bottom: 10 }],
        xAxis: { type: "time" },
        yAxis: { type: "value", name: unit, scale: true },
        series: results.flatMap((r) => {
          const main = { name: names[r.circuit], type: "line", showSymbol: false, data: wallPoints(r.points.map((p) => [Date.parse(p.ts), p.mean])) };
          if (r.resolution === "raw" || results.length > 1) return [main];
          // min/max band for rollups of a single circuit
          return [
            main,
            { name: `${names[r.circuit]} min`, type: "line", showSymbol: false, lineStyle: { opacity: 0.3 }, data: wallPoints(r.points.map((p) => [Date.parse(p.ts), p.min])) },
            { name: `${names[r.circuit]} max`, type: "line", showSymbol: false, lineStyle: { opacity: 0.3 }, data: wallPoints(r.points.map((p) => [Date.parse(p.ts), p.max])) },
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
