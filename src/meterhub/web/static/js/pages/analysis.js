// Energy analysis (issue 16): Compare (opens on last month against the same month last year, with the
// cost per zone and circuit), Flow (Sankey), Rankings, Heat map. Data from /api/v1/analysis/*; days,
// months and hours are the site's (app.site.timezone), whatever the browser's time zone is.

import { ApiError, get, qs } from "../api.js";
import { esc, num } from "../format.js";
import { t } from "../i18n.js";
import { COLORS, chartsAvailable, init } from "../charts.js";

const TABS = ["compare", "flow", "ranking", "heatmap"];

/** Today's date YYYY-MM-DD in the IANA zone `tz` (the site's, not the browser's). */
function siteToday(tz) {
  const parts = new Intl.DateTimeFormat("en-CA", { timeZone: tz || "UTC", year: "numeric", month: "2-digit", day: "2-digit" }).formatToParts(new Date());
  const get1 = (type) => parts.find((p) => p.type === type).value;
  return `${get1("year")}-${get1("month")}-${get1("day")}`;
}

/** The first day of the month `delta` months from the month of `day` (YYYY-MM-DD strings, calendar only). */
function monthStart(day, delta = 0) {
  let y = Number(day.slice(0, 4));
  let m = Number(day.slice(5, 7)) - 1 + delta;
  y += Math.floor(m / 12);
  m = ((m % 12) + 12) % 12;
  return `${y}-${String(m + 1).padStart(2, "0")}-01`;
}

/** A short name of a comparison period: 2026-11-30, 2026-11-23 … 2026-11-29, 2026-11 or 2026. */
function periodName(period, { from, to }) {
  if (period === "month") return from.slice(0, 7);
  if (period === "year") return from.slice(0, 4);
  if (period === "day") return from;
  const last = new Date(`${to}T00:00:00Z`);
  last.setUTCDate(last.getUTCDate() - 1);
  return `${from} … ${last.toISOString().slice(0, 10)}`;
}

function download(url, name) {
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
}

export async function render(root, { app, args }) {
  const tz = app.site?.timezone || "UTC";
  const currency = app.site?.currency || "";
  const today = siteToday(tz);
  const lastMonth = monthStart(today, -1);
  const thisMonth = monthStart(today, 0);
  const circuits = await get("/circuits");
  let tab = TABS.includes(args?.[0]) ? args[0] : "compare";

  root.innerHTML = `
    <h1>${esc(t("analysis.title"))}</h1>
    <p class="muted" id="a-tz">${esc(t("analysis.timezone", { tz }))}</p>
    <div class="tabs" role="tablist">${TABS.map((k) => `<a role="tab" tabindex="0" data-tab="${k}" id="tab-${k}">${esc(t(`analysis.tab_${k}`))}</a>`).join("")}</div>
    <form class="panel toolbar" id="a-form">
      <div data-for="compare"><label for="a-period">${esc(t("analysis.period"))}</label>
        <select id="a-period">${["day", "week", "month", "year"].map((p) => `<option value="${p}" ${p === "month" ? "selected" : ""}>${esc(t(`analysis.period_${p}`))}</option>`).join("")}</select></div>
      <div data-for="compare"><label for="a-at">${esc(t("analysis.at"))}</label><input type="date" id="a-at" value="${lastMonth}"></div>
      <div data-for="heatmap"><label for="a-circuit">${esc(t("analysis.circuit"))}</label>
        <select id="a-circuit">${circuits.map((c) => `<option value="${esc(c.id)}">${esc(c.name || c.id)}</option>`).join("")}</select></div>
      <div data-for="ranking"><label for="a-by">${esc(t("analysis.by"))}</label>
        <select id="a-by">${["energy", "cost", "co2", "peak"].map((b) => `<option value="${b}">${esc(t(`analysis.by_${b}`))}</option>`).join("")}</select></div>
      <div data-for="flow ranking heatmap"><label for="a-from">${esc(t("history.from"))}</label><input type="date" id="a-from" value="${lastMonth}"></div>
      <div data-for="flow ranking heatmap"><label for="a-to">${esc(t("reports.to_excl"))}</label><input type="date" id="a-to" value="${thisMonth}"></div>
      <div data-for="flow"><label for="a-unit">${esc(t("analysis.show"))}</label>
        <select id="a-unit"><option value="kwh">kWh</option><option value="cost">${esc(t("reports.cost"))} [${esc(currency)}]</option><option value="co2">CO2 [kg]</option></select></div>
      <div><button type="submit">${esc(t("history.show"))}</button>
        <a id="a-csv" href="#">${esc(t("reports.csv"))}</a>
        <button type="button" class="secondary" id="a-png">${esc(t("analysis.png"))}</button></div>
    </form>
    <div class="panel" id="a-summary"></div>
    <div class="panel"><div class="chart" id="a-chart" style="height:420px"></div></div>
    <div class="panel"><div class="table-wrap" id="a-table"></div><p class="muted" id="a-note"></p></div>`;
  const $ = (s) => root.querySelector(s);
  const holder = chartsAvailable() ? init($("#a-chart")) : null;
  if (!holder) $("#a-chart").innerHTML = `<p class="muted">${esc(t("charts.missing"))}</p>`;
  const chart = holder?.chart;

  const request = () => {
    if (tab === "compare") return ["compare", { period: $("#a-period").value, at: $("#a-at").value }];
    const span = { from: $("#a-from").value, to: $("#a-to").value };
    if (tab === "flow") return ["flow", span];
    if (tab === "ranking") return ["ranking", { ...span, by: $("#a-by").value }];
    return ["heatmap", { circuit: $("#a-circuit").value, ...span }];
  };

  const show = {
    compare(rep) {
      const P = ["this", "previous", "last_year"];
      const short = (p) => periodName(rep.period, rep.periods[p]);
      const label = (p) => `${t(`analysis.${p}`)}: ${short(p)}`;
      const diff = (a, b) => (b ? `${a >= b ? "+" : ""}${num(((a - b) / b) * 100, 1)} %` : "–");
      $("#a-summary").innerHTML = `<div class="cards">${P.map(
        (p) => `<div class="card" data-period="${p}"><div class="label">${esc(label(p))}</div>
          <div class="big">${num(rep.total[p].cost, 2)} ${esc(currency)}</div><div>${num(rep.total[p].kwh, 1)} kWh</div>
          ${p === "this" ? "" : `<div class="muted">${esc(t("analysis.change"))}: ${diff(rep.total.this.cost, rep.total[p].cost)}</div>`}</div>`,
      ).join("")}</div>`;
      const n = Math.max(...P.map((p) => rep.series[p].length));
      const x = Array.from({ length: n }, (_, i) => (rep.bucket === "hour" ? `${i}:00` : String(i + 1)));
      chart?.setOption(
        {
          color: COLORS,
          animation: false,
          legend: { top: 0 },
          tooltip: { trigger: "axis", confine: true },
          grid: { left: 48, right: 12, top: 40, bottom: 30 },
          xAxis: { type: "category", data: x },
          yAxis: { type: "value", name: "kWh" },
          series: [
            { name: t("analysis.this"), type: "bar", data: rep.series.this },
            { name: t("analysis.previous"), type: "line", data: rep.series.previous },
            { name: t("analysis.last_year"), type: "line", lineStyle: { type: "dashed" }, data: rep.series.last_year },
          ],
        },
        { notMerge: true },
      );
      const rows = [...rep.rows].sort((a, b) => b.this.cost - a.this.cost);
      $("#a-table").innerHTML = `<h2>${esc(t("analysis.cost_breakdown"))} [${esc(currency)}]</h2><table id="compare-table"><thead><tr><th class="l">${esc(t("analysis.name"))}</th>
        <th>${esc(short("this"))}</th><th>${esc(short("last_year"))}</th><th>${esc(t("analysis.change"))}</th></tr></thead><tbody>
        ${rows.map((r) => `<tr${r.kind === "zone" ? ' class="zone"' : ""}><td class="l">${r.kind === "zone" ? "<b>" : ""}${esc(r.name)}${r.kind === "zone" ? "</b>" : ""}</td><td>${num(r.this.cost, 2)}</td><td>${num(r.last_year.cost, 2)}</td><td>${diff(r.this.cost, r.last_year.cost)}</td></tr>`).join("")}
        </tbody></table>`;
    },
    flow(rep) {
      const unit = $("#a-unit").value;
      const names = Object.fromEntries(rep.nodes.map((n) => [n.id, n.id === "unmetered" ? t("analysis.unmetered") : n.id === "grid" ? t("analysis.grid") : n.id === "export" ? t("analysis.export") : n.name]));
      const b = rep.balance;
      $("#a-summary").innerHTML = `<div class="cards">
        <div class="card grid"><div class="label">${esc(t("analysis.grid"))}</div><div class="big">${num(b.grid_import_kwh, 1)} kWh</div><div>${num(b.grid_cost, 2)} ${esc(currency)}</div></div>
        <div class="card renewable"><div class="label">${esc(t("reports.generation"))}</div><div class="big">${num(b.generation_kwh, 1)} kWh</div></div>
        <div class="card consumable"><div class="label">${esc(t("reports.consumption"))}</div><div class="big">${num(b.consumption_kwh, 1)} kWh</div></div>
        <div class="card"><div class="label">${esc(t("analysis.unmetered"))}</div><div class="big">${num(b.unmetered_kwh, 1)} kWh</div></div></div>`;
      const links = rep.links.map((l) => ({ source: l.source, target: l.target, value: Math.max(l[unit], 0), raw: l }));
      const fmt = (v) => (unit === "kwh" ? `${num(v, 1)} kWh` : unit === "cost" ? `${num(v, 2)} ${currency}` : `${num(v, 1)} kg`);
      chart?.setOption(
        {
          animation: false,
          tooltip: {
            trigger: "item",
            confine: true,
            formatter: (p) => (p.dataType === "edge" ? `${esc(names[p.data.source])} → ${esc(names[p.data.target])}: ${fmt(p.data.raw[unit])}` : `${esc(names[p.name])}: ${fmt(rep.nodes.find((n) => n.id === p.name)?.[unit])}`),
          },
          series: [
            {
              type: "sankey",
              left: 8,
              right: 90,
              top: 10,
              bottom: 10,
              nodeGap: 10,
              emphasis: { focus: "adjacency" },
              draggable: false,
              data: rep.nodes.map((n, i) => ({ name: n.id, itemStyle: { color: { grid: "#64748b", renewable: "#16a34a", unmetered: "#a8a29e", export: "#0891b2", site: "#ea580c" }[n.kind] || COLORS[i % COLORS.length] } })),
              links,
              label: { formatter: (p) => names[p.name], overflow: "truncate", width: 84 },
              lineStyle: { color: "gradient", opacity: 0.45 },
            },
          ],
        },
        { notMerge: true },
      );
      $("#a-table").innerHTML = `<table id="flow-table"><thead><tr><th class="l">${esc(t("analysis.from_node"))}</th><th class="l">${esc(t("analysis.to_node"))}</th><th>kWh</th><th>${esc(t("reports.cost"))} [${esc(currency)}]</th></tr></thead><tbody>
        ${rep.links.map((l) => `<tr><td class="l">${esc(names[l.source])}</td><td class="l">${esc(names[l.target])}</td><td>${num(l.kwh, 1)}</td><td>${num(l.cost, 2)}</td></tr>`).join("")}</tbody></table>`;
    },
    ranking(rep) {
      const key = { energy: "kwh", cost: "cost", co2: "co2", peak: "peak_kw" }[rep.by];
      const unit = { energy: "kWh", cost: currency, co2: "kg", peak: "kW" }[rep.by];
      const circ = rep.rows.filter((r) => r.kind === "circuit");
      $("#a-summary").innerHTML = "";
      chart?.setOption(
        {
          color: COLORS,
          animation: false,
          tooltip: { trigger: "axis", confine: true },
          grid: { left: 8, right: 24, top: 10, bottom: 20, containLabel: true },
          xAxis: { type: "value", name: unit },
          yAxis: { type: "category", inverse: true, data: circ.map((r) => r.name), axisLabel: { width: 90, overflow: "truncate" } },
          series: [{ type: "bar", name: t(`analysis.by_${rep.by}`), data: circ.map((r) => r[key]) }],
        },
        { notMerge: true },
      );
      $("#a-table").innerHTML = `<table id="ranking-table"><thead><tr><th>#</th><th class="l">${esc(t("analysis.name"))}</th><th>${esc(t(`analysis.by_${rep.by}`))} [${esc(unit)}]</th><th>${esc(t("analysis.share"))}</th></tr></thead><tbody>
        ${rep.rows.map((r) => `<tr><td>${r.rank}</td><td class="l">${r.kind === "zone" ? `<b>${esc(r.name)}</b> (${esc(t("reports.zones"))})` : esc(r.name)}</td><td>${num(r[key], 2)}</td><td>${r.share === null ? "–" : `${num(r.share * 100, 1)} %`}</td></tr>`).join("")}</tbody></table>`;
    },
    heatmap(rep) {
      $("#a-summary").innerHTML = "";
      chart?.setOption(
        {
          animation: false,
          tooltip: { confine: true, formatter: (p) => `${rep.days[p.value[1]]} ${p.value[0]}:00 — ${num(p.value[2], 3)} kWh` },
          grid: { left: 8, right: 8, top: 10, bottom: 70, containLabel: true },
          xAxis: { type: "category", data: rep.hours.map((h) => String(h)), splitArea: { show: true } },
          yAxis: { type: "category", data: rep.days.map((d) => d.slice(5)), splitArea: { show: true } },
          visualMap: { min: 0, max: rep.max || 1, calculable: true, orient: "horizontal", left: "center", bottom: 0, text: ["kWh", ""] },
          series: [{ type: "heatmap", data: rep.cells }],
        },
        { notMerge: true },
      );
      $("#a-table").innerHTML = "";
      $("#a-note").textContent = t("analysis.heatmap_note", { tz: rep.timezone });
    },
  };

  const load = async () => {
    const [kind, params] = request();
    $("#a-csv").href = `/api/v1/analysis/${kind}${qs({ ...params, format: "csv" })}`;
    $("#a-note").textContent = "";
    let rep;
    try {
      rep = await get(`/analysis/${kind}${qs(params)}`);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      $("#a-summary").innerHTML = "";
      $("#a-table").innerHTML = "";
      chart?.clear();
      $("#a-note").textContent = e.message;
      return;
    }
    if (kind === request()[0]) show[kind](rep);
  };

  const selectTab = (name) => {
    tab = name;
    for (const a of root.querySelectorAll(".tabs a")) {
      a.classList.toggle("active", a.dataset.tab === tab);
      a.setAttribute("aria-selected", a.dataset.tab === tab);
    }
    for (const el of root.querySelectorAll("[data-for]")) el.hidden = !el.dataset.for.split(" ").includes(tab);
    $("#a-chart").style.height = tab === "heatmap" ? `${Math.max(320, 22 * 31 + 90)}px` : "420px";
    holder?.chart.resize();
    history.replaceState(null, "", `#/analysis/${tab}`);
    return load();
  };
  for (const a of root.querySelectorAll(".tabs a")) {
    a.onclick = () => selectTab(a.dataset.tab);
    a.onkeydown = (ev) => {
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        selectTab(a.dataset.tab);
      }
    };
  }
  $("#a-form").onsubmit = (ev) => {
    ev.preventDefault();
    load();
  };
  $("#a-png").onclick = () => {
    if (!chart) return;
    // the page's own background, so the image reads the same in a light and a dark colour scheme
    const backgroundColor = getComputedStyle(document.body).backgroundColor || "#fff";
    download(chart.getDataURL({ type: "png", pixelRatio: 2, backgroundColor }), `${request()[0]}.png`);
  };
  await selectTab(tab);
  return () => holder?.dispose();
}
