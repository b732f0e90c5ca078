// Circuit detail: gauges (P, U, PF), live chart of P, I or S, phasor diagram, harmonic spectrum,
// THD, unbalance, energy registers, demand and maximum demand.

import { ApiError, get } from "../api.js";
import { esc, num, time, withUnit } from "../format.js";
import { t } from "../i18n.js";
import { bindLive, recent } from "../livebind.js";
import { chartsAvailable, gauge, lineChart, spectrumChart } from "../charts.js";
import { phasorDiagram } from "../phasor.js";

const ENERGY = [
  ["energy_active_import", "Wh"],
  ["energy_active_export", "Wh"],
  ["energy_reactive_import", "varh"],
  ["energy_reactive_export", "varh"],
  ["energy_reactive_q1", "varh"],
  ["energy_reactive_q2", "varh"],
  ["energy_reactive_q3", "varh"],
  ["energy_reactive_q4", "varh"],
  ["energy_apparent", "VAh"],
  ["energy_active_net", "Wh"],
  ["energy_active_absolute", "Wh"],
  ["energy_reactive_net", "varh"],
  ["energy_reactive_absolute", "varh"],
];
const DEMAND = [
  ["demand_active_import", "W"],
  ["demand_active_import_predicted", "W"],
  ["max_demand_active_import", "W"],
  ["demand_active_export", "W"],
  ["max_demand_active_export", "W"],
  ["demand_reactive_import", "var"],
  ["demand_reactive_import_predicted", "var"],
  ["max_demand_reactive_import", "var"],
  ["demand_reactive_export", "var"],
  ["max_demand_reactive_export", "var"],
  ["demand_apparent", "VA"],
  ["demand_apparent_predicted", "VA"],
  ["max_demand_apparent", "VA"],
];
const DEMAND_UNIT = Object.fromEntries(DEMAND);
const CHART_Q = { active_power: "W", current: "A", apparent_power: "VA" };

export async function render(root, { args, live, app }) {
  const id = args[0];
  let c;
  try {
    c = await get(`/circuits/${encodeURIComponent(id)}`);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      root.innerHTML = `<p class="error">${esc(t("circuit.unknown", { id }))}</p>`;
      return;
    }
    throw e;
  }
  const phases = c.phases;
  const cols = ["total", ...phases];
  const tableRows = (list, only = cols) =>
    list
      .map(([q, u]) => `<tr data-row><td>${esc(t(`q.${q}`))}</td>${only.map((p) => `<td data-live="${esc(c.id)}/${q}/${p}" data-unit="${u}">–</td>`).join("")}</tr>`)
      .join("");
  const spectrumLabels = { voltage: t("circuit.h_voltage"), current: t("circuit.h_current") };
  const energyRows = tableRows(ENERGY);
  const demandRows = tableRows(DEMAND, ["total"]);
  root.innerHTML = `
    <h1>${esc(c.name)} <span class="badge ${esc(c.purpose)}">${esc(t(`purpose.${c.purpose}`))}</span></h1>
    <p class="muted">${esc(c.id)} · ${esc(c.wiring)} · ${esc(t("common.device"))} ${esc(c.device)} · CT ${esc(c.ct_kind)} ${esc(c.ct_ratio)} · VT ${esc(c.vt_ratio)}${c.zone ? ` · ${esc(t("circuit.zone"))} ${esc(c.zone)}` : ""}
      ${app.isAdmin ? ` · <a href="#/config/circuits/${encodeURIComponent(c.id)}">${esc(t("circuit.edit"))}</a>` : ""}</p>
    <div class="row3">
      <div class="panel"><div class="chart small" id="g-p"></div></div>
      <div class="panel"><div class="chart small" id="g-u"></div></div>
      <div class="panel"><div class="chart small" id="g-pf"></div></div>
    </div>
    <div class="panel">
      <div class="toolbar"><h2 style="margin:0;flex:1">${esc(t("circuit.live_chart"))}</h2>
        <div class="tabs" id="chart-q">${Object.keys(CHART_Q).map((q, i) => `<a role="button" tabindex="0" data-q="${q}" class="${i ? "" : "active"}">${esc(t(`q.${q}`))}</a>`).join("")}</div></div>
      <div class="chart" id="live-chart"></div>
    </div>
    <div class="row2">
      <div class="panel"><h2>${esc(t("circuit.phasors"))}</h2><div id="phasor"></div><p class="muted" id="phasor-note"></p></div>
      <div class="panel" id="harmonics-panel"><h2>${esc(t("circuit.harmonics"))}</h2>
        ${c.spectrum ? `<div class="toolbar"><div class="tabs" id="h-quantity">${Object.entries(spectrumLabels).filter(([q]) => (c.spectra ?? ["current", "voltage"]).includes(q)).map(([q, label], i) => `<a role="button" tabindex="0" data-q="${q}" class="${i ? "" : "active"}">${esc(label)}</a>`).join("")}</div>
        <div class="tabs" id="h-phase">${phases.map((p, i) => `<a role="button" tabindex="0" data-p="${p}" class="${i ? "" : "active"}">${p}</a>`).join("")}</div></div>
        <div class="chart small" id="harmonics"></div>` : ""}<p class="muted" id="harmonics-note"></p></div>
    </div>
    <div class="panel"><h2>${esc(t("circuit.quality"))}</h2>
      <div class="table-wrap"><table><thead><tr><th></th>${cols.map((p) => `<th>${p === "total" ? esc(t("common.total")) : p}</th>`).join("")}</tr></thead><tbody>
        ${tableRows([["voltage", "V"], ["voltage_line", "V"], ["current", "A"], ["active_power", "W"], ["reactive_power", "var"], ["apparent_power", "VA"], ["power_factor", ""], ["displacement_power_factor", ""], ["thd_voltage", "%"], ["thd_current", "%"], ["frequency", "Hz"]])}
        <tr><td>${esc(t("circuit.unbalance_u"))}</td><td data-live="${esc(c.id)}/voltage_unbalance_negative/total" data-unit="%">–</td>${phases.map(() => "<td></td>").join("")}</tr>
        <tr><td>${esc(t("circuit.unbalance_i"))}</td><td id="i-unbalance">–</td>${phases.map(() => "<td></td>").join("")}</tr>
      </tbody></table></div></div>
    <div class="row2">
      <div class="panel"><h2>${esc(t("circuit.energy"))}</h2>
        <div class="table-wrap"><table><thead><tr><th></th>${cols.map((p) => `<th>${p === "total" ? esc(t("common.total")) : p}</th>`).join("")}</tr></thead><tbody>${energyRows}</tbody></table></div></div>
      <div class="panel"><h2>${esc(t("circuit.demand"))}</h2>
        <div class="table-wrap"><table id="demand-table"><thead><tr><th></th><th>${esc(t("common.total"))}</th></tr></thead><tbody>${demandRows}</tbody></table></div><p class="muted" id="demand-none">${esc(t("circuit.no_data"))}</p>
        <div id="max-demand"></div></div>
    </div>`;

  // tabs are links without a URL (a javascript: URL would break the CSP): Enter and Space click them
  for (const tabs of root.querySelectorAll(".tabs")) {
    tabs.onkeydown = (ev) => {
      if ((ev.key === "Enter" || ev.key === " ") && ev.target.dataset) {
        ev.preventDefault();
        ev.target.click();
      }
    };
  }
  const unbind = bindLive(root, live);
  // rows of quantities this device does not report stay hidden
  const hideEmpty = () => {
    for (const tr of root.querySelectorAll("tr[data-row]")) {
      const cells = [...tr.querySelectorAll("[data-live]")];
      tr.classList.toggle("empty", !cells.some((td) => {
        const [cc, q, p] = td.dataset.live.split("/");
        return live.reading(cc, q, p) !== null;
      }));
    }
    root.querySelector("#demand-none").hidden = !!root.querySelector("#demand-table tr[data-row]:not(.empty)");
  };
  hideEmpty();
  const emptyTimer = setInterval(hideEmpty, 2000);
  const cleanups = [unbind, () => clearInterval(emptyTimer)];
  let chartQ = "active_power";
  if (chartsAvailable()) {
    const gp = gauge(root.querySelector("#g-p"), t("q.active_power"), "kW", { digits: 2 });
    const gu = gauge(root.querySelector("#g-u"), t("q.voltage"), "V", { min: 0, max: 300, digits: 1 });
    const gpf = gauge(root.querySelector("#g-pf"), t("q.power_factor"), "", { min: 0, max: 1, digits: 3 });
    let chart = null;
    const makeChart = () => {
      chart?.dispose();
      chart = lineChart(root.querySelector("#live-chart"), cols.map((p) => (p === "total" ? t("common.total") : p)), CHART_Q[chartQ]);
      // not empty on open: the last minutes from history (only the phases the quantity has)
      const mine = chart;
      const q = chartQ;
      Promise.all(cols.map((p) => recent(c.id, q, p, 300))).then((series) => {
        if (chart === mine) mine.backfill(series);
      });
    };
    makeChart();
    root.querySelector("#chart-q").onclick = (ev) => {
      const q = ev.target.dataset?.q;
      if (!q) return;
      chartQ = q;
      root.querySelectorAll("#chart-q a").forEach((a) => a.classList.toggle("active", a.dataset.q === q));
      makeChart();
    };
    const tick = () => {
      const p = live.value(c.id, "active_power", "total");
      gp.set(p === null ? null : p / 1000);
      gu.set(live.value(c.id, "voltage", "total"));
      const pf = live.value(c.id, "power_factor", "total");
      gpf.set(pf === null ? null : Math.abs(pf));
      chart.push(Date.now(), cols.map((ph) => live.value(c.id, chartQ, ph)));
    };
    const timer = setInterval(tick, 1000);
    tick();
    cleanups.push(() => {
      clearInterval(timer);
      gp.dispose();
      gu.dispose();
      gpf.dispose();
      chart?.dispose();
    });
  } else {
    root.querySelector("#live-chart").innerHTML = `<p class="muted">${esc(t("charts.missing"))}</p>`;
  }

  // phasors: measured angles where the device reports them, else from P and Q (displacement)
  const ph = phasorDiagram(root.querySelector("#phasor"));
  const nominal = { L1: 0, L2: -120, L3: 120 };
  const drawPhasors = () => {
    const us = phases.map((p) => live.value(c.id, "voltage", p));
    const is = phases.map((p) => live.value(c.id, "current", p));
    const umax = Math.max(...us.map((u) => Math.abs(u ?? 0)), 1e-9);
    const imax = Math.max(...is.map((i) => Math.abs(i ?? 0)), 1e-9);
    let derived = false;
    const out = [];
    phases.forEach((p, k) => {
      const au = live.value(c.id, "angle_voltage", p) ?? nominal[p];
      out.push({ phase: p, kind: "U", magnitude: (us[k] ?? 0) / umax, angle: au });
      let ai = live.value(c.id, "angle_current", p);
      if (ai === null) {
        const phi = live.value(c.id, "angle_voltage_current", p);
        if (phi !== null) ai = au - phi;
      }
      if (ai === null) {
        const P = live.value(c.id, "active_power", p);
        const Q = live.value(c.id, "reactive_power", p);
        if (P !== null && Q !== null) {
          ai = au - (Math.atan2(Q, P) * 180) / Math.PI;
          derived = true;
        }
      }
      if (ai !== null) out.push({ phase: p, kind: "I", magnitude: (is[k] ?? 0) / imax, angle: ai });
    });
    ph.set(out);
    root.querySelector("#phasor-note").textContent = derived ? t("circuit.phasor_derived") : "";
    const valid = is.filter((x) => x !== null);
    if (valid.length > 1) {
      const mean = valid.reduce((a, b) => a + b, 0) / valid.length;
      const dev = Math.max(...valid.map((x) => Math.abs(x - mean)));
      root.querySelector("#i-unbalance").textContent = mean > 0 ? `${num((100 * dev) / mean, 1)} %` : "–";
    }
  };
  drawPhasors();
  const phTimer = setInterval(drawPhasors, 1000);
  cleanups.push(() => clearInterval(phTimer));

  // harmonic spectrum: orders 0…50 of U or I of one phase, from sources that measure it (the ADC board)
  const hNote = root.querySelector("#harmonics-note");
  if (!c.spectrum) {
    hNote.textContent = t("circuit.no_spectrum");
  } else if (!chartsAvailable()) {
    hNote.textContent = t("charts.missing");
  } else {
    let hQ = (c.spectra ?? ["current"])[0] ?? "current"; // a module with a voltage unit may have voltage only
    let hPhase = phases[0];
    let seq = 0;
    let closed = false;
    const bars = spectrumChart(root.querySelector("#harmonics"), { orderName: t("circuit.order") });
    const loadSpectrum = async () => {
      const mine = ++seq; // a later request (another tab) wins over a slow earlier one
      let s = null;
      let failed = null;
      try {
        s = await get(`/circuits/${encodeURIComponent(c.id)}/spectrum?quantity=${hQ}&phase=${hPhase}`);
      } catch (e) {
        failed = e;
      }
      if (closed || mine !== seq) return;
      if (s === null) {
        bars.set(null);
        hNote.textContent = failed instanceof ApiError && failed.status === 503 ? t("circuit.spectrum_waiting") : t("circuit.no_spectrum");
        return;
      }
      bars.set(s);
      hNote.textContent = t("circuit.spectrum_note", {
        quantity: spectrumLabels[s.quantity] ?? s.quantity,
        phase: s.phase,
        thd: withUnit(s.thd, "%", 2),
        h1: withUnit(s.rms[1], s.unit, s.unit === "V" ? 1 : 3),
        time: time(s.ts),
      });
      if (s.stale) hNote.textContent = `${t("circuit.spectrum_stale", { time: time(s.ts) })} ${hNote.textContent}`;
    };
    const pick = (sel, attr, set) => (ev) => {
      const v = ev.target.dataset?.[attr];
      if (!v) return;
      set(v);
      root.querySelectorAll(`${sel} a`).forEach((a) => a.classList.toggle("active", a.dataset[attr] === v));
      loadSpectrum();
    };
    root.querySelector("#h-quantity").onclick = pick("#h-quantity", "q", (v) => (hQ = v));
    root.querySelector("#h-phase").onclick = pick("#h-phase", "p", (v) => (hPhase = v));
    loadSpectrum();
    const hTimer = setInterval(loadSpectrum, 3000);
    cleanups.push(() => {
      closed = true;
      clearInterval(hTimer);
      bars.dispose();
    });
  }

  // maximum demand since the last reset (energy pipeline), when available
  if (app.signedIn) {
    get("/energy/demand")
      .then((md) => {
        const mine = Object.entries(md.max_demand || {}).filter(([k, rates]) => k.startsWith(`${c.id}/`) && Object.values(rates).some((v) => v.value !== null));
        if (!mine.length) return;
        root.querySelector("#max-demand").innerHTML = `<h2>${esc(t("circuit.max_demand"))}</h2><table><tbody>${mine
          .flatMap(([k, rates]) =>
            Object.entries(rates).filter(([, v]) => v.value !== null).map(([rate, v]) => `<tr><td>${esc(k.split("/")[1])} · ${esc(rate)}</td><td>${withUnit(v.value, DEMAND_UNIT[k.split("/")[1]] ?? "W")}</td><td class="muted">${esc(v.time ? time(v.time) : "")}</td></tr>`),
          )
          .join("")}</tbody></table>`;
      })
      .catch(() => {});
  }
  return () => cleanups.forEach((f) => f());
}
