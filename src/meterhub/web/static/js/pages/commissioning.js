// Commissioning (issue 17): per panel, every circuit's wiring checks as traffic lights, the evidence of
// each finding and, for admins, the button that applies its fix (POST /commissioning/fix). Refreshes
// every few seconds while open: a circuit collects evidence for its observation time before a verdict.

import { ApiError, get, post } from "../api.js";
import { esc } from "../format.js";
import { t } from "../i18n.js";

const REFRESH = 3000; // [ms]
const LIGHT = { ok: "ok", suspect: "bad", "insufficient-load": "wait" };

function evidenceText(f) {
  const e = f.evidence || {};
  const parts = [];
  if (Array.isArray(e.angle)) parts.push(`${t("commissioning.angles")}: ${e.angle.map((a) => (a === null ? "–" : `${a}°`)).join(" / ")}`);
  else if (typeof e.angle === "number") parts.push(`${t("commissioning.angle")}: ${e.angle}°`);
  if (e.expected !== undefined) parts.push(`${t("commissioning.expected")}: ${e.expected}`);
  if (Array.isArray(e.load_angle_if_fixed)) parts.push(`${t("commissioning.if_fixed")}: ${e.load_angle_if_fixed.map((a) => `${a}°`).join(" / ")}`);
  if (Array.isArray(e.amps)) parts.push(`${t("commissioning.currents")}: ${e.amps.map((a) => (a === null ? "–" : `${a} A`)).join(" / ")}`);
  for (const k of ["volts", "hz", "peak_amps", "rated", "unmetered", "main_power", "sub_circuits_power", "neutral_measured", "neutral_vector_sum"]) {
    if (e[k] !== undefined && e[k] !== null) parts.push(`${k}: ${e[k]}`);
  }
  if (e.alternative) parts.push(`${t("commissioning.alternative")}: ${JSON.stringify(e.alternative)}`);
  return parts.join(" · ");
}

function circuitRow(c, admin) {
  const light = LIGHT[c.verdict] || "wait";
  const findings = c.findings.length
    ? `<ul class="findings">${c.findings
        .map(
          (f) => `<li data-finding="${esc(f.id)}"><strong>${esc(t(`commissioning.kind_${f.kind.replace(/-/g, "_")}`))}</strong>${f.phase ? ` ${esc(f.phase)}` : ""}
            <span class="muted">(${esc(t("commissioning.confidence"))} ${Math.round(f.confidence * 100)} %)</span>
            <div class="fix">${esc(f.fix.text)}</div>
            <div class="muted small">${esc(evidenceText(f))}</div>
            ${admin && f.fix.patch ? `<button data-fix="${esc(f.id)}">${esc(t("commissioning.apply"))}</button>` : ""}</li>`,
        )
        .join("")}</ul>`
    : `<span class="muted">${esc(c.verdict === "ok" ? t("commissioning.nothing_found") : c.note)}</span>`;
  const all = admin && c.patch && c.findings.length > 1 ? `<button class="secondary" data-fix-circuit="${esc(c.id)}">${esc(t("commissioning.apply_all"))}</button>` : "";
  return `<tr data-circuit="${esc(c.id)}" data-verdict="${esc(c.verdict)}">
    <td><span class="light ${light}" title="${esc(t(`commissioning.verdict_${c.verdict.replace(/-/g, "_")}`))}"></span></td>
    <td class="l"><a href="#/circuit/${encodeURIComponent(c.id)}">${esc(c.name || c.id)}</a><div class="muted small">${esc(c.id)}</div></td>
    <td class="l verdict">${esc(t(`commissioning.verdict_${c.verdict.replace(/-/g, "_")}`))}</td>
    <td class="l">${findings}${all}</td></tr>`;
}

export async function render(root, { app }) {
  root.innerHTML = `<h1>${esc(t("nav.commissioning"))}</h1>
    <div class="panel"><p>${esc(t("commissioning.intro"))}</p><p class="muted" id="cm-status"></p></div>
    <div id="cm-panels"></div><p id="cm-msg"></p>`;
  const $ = (s) => root.querySelector(s);
  let timer = null;
  let busy = false;

  async function refresh() {
    const report = await get("/commissioning");
    const byPanel = new Map();
    for (const c of report.circuits) {
      const key = c.panel || "";
      if (!byPanel.has(key)) byPanel.set(key, []);
      byPanel.get(key).push(c);
    }
    const checked = [...new Set(report.circuits.flatMap((c) => c.checked))];
    $("#cm-status").textContent = t("commissioning.status", {
      snapshots: report.snapshots,
      seconds: report.min_observation,
      checks: checked.join(", ") || "–",
    });
    $("#cm-panels").innerHTML = [...byPanel.entries()]
      .map(([panel, circuits]) => {
        const counts = { ok: 0, suspect: 0, "insufficient-load": 0 };
        for (const c of circuits) counts[c.verdict] = (counts[c.verdict] || 0) + 1;
        return `<div class="panel table-wrap" data-panel="${esc(panel)}"><h2>${esc(panel ? `${t("commissioning.panel")} ${panel}` : t("commissioning.no_panel"))}
          <span class="muted small">${counts.ok} ${esc(t("commissioning.verdict_ok"))} · ${counts.suspect} ${esc(t("commissioning.verdict_suspect"))} · ${counts["insufficient-load"]} ${esc(t("commissioning.verdict_insufficient_load"))}</span></h2>
          <table class="commissioning"><thead><tr><th></th><th class="l">${esc(t("common.circuit"))}</th><th class="l">${esc(t("common.status"))}</th><th class="l">${esc(t("commissioning.findings"))}</th></tr></thead>
          <tbody>${circuits.map((c) => circuitRow(c, app.isAdmin)).join("")}</tbody></table></div>`;
      })
      .join("");
  }

  root.onclick = async (ev) => {
    const b = ev.target.closest("button[data-fix], button[data-fix-circuit]");
    if (!b || busy) return;
    busy = true;
    b.disabled = true;
    const msg = $("#cm-msg");
    try {
      const body = b.dataset.fix ? { finding: b.dataset.fix } : { circuit: b.dataset.fixCircuit };
      const r = await post("/commissioning/fix", body);
      msg.className = "ok";
      msg.textContent = t("commissioning.applied", { circuit: r.circuit });
      app.toast(t("commissioning.applied", { circuit: r.circuit }));
      await refresh();
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      msg.className = "error";
      msg.textContent = e.message;
    } finally {
      busy = false;
    }
  };

  await refresh();
  timer = setInterval(() => {
    if (!busy) refresh().catch((e) => console.warn(e));
  }, REFRESH);
  return () => clearInterval(timer);
}
