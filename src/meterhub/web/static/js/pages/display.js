// Display mode for a lobby screen: full-screen real-time values, the renewable display
// (generation vs consumption), and a custom message shown after a delay for a duration.

import { ApiError, get, post } from "../api.js";
import { esc, kw, num, time, withUnit } from "../format.js";
import { activeAlarms, severityText, stateText, unacknowledged } from "./alarms.js";
import { lang, t } from "../i18n.js";
import { siteTotals } from "../livebind.js";
import { chartsAvailable, lineChart } from "../charts.js";

export async function render(root, { args, live, app }) {
  const [settings, circuits] = await Promise.all([get("/display"), get("/circuits")]);
  const params = new URLSearchParams(location.search);
  const mode = args[0] || params.get("mode") || settings.mode;
  const shown = settings.circuits.length ? circuits.filter((c) => settings.circuits.includes(c.id)) : circuits;
  const title = app.site?.title || app.site?.name || "meterhub";
  root.innerHTML = `
    <div class="display">
      <span class="clock" id="d-clock"></span>
      <h1>${esc(title)} <button class="secondary" id="d-full" style="font-size:2vh">${esc(t("display.fullscreen"))}</button>
        <a href="#/overview" style="font-size:2vh" id="d-exit">${esc(t("display.exit"))}</a></h1>
      <section id="d-alarms" class="d-alarms" hidden></section>
      <section id="d-realtime">
        <div class="cards">
          <div class="card"><div class="label">${esc(t("overview.consumption"))}</div><div class="big" id="d-cons">–</div></div>
          <div class="card"><div class="label">${esc(t("overview.generation"))}</div><div class="big" id="d-gen">–</div></div>
          <div class="card"><div class="label">${esc(t("overview.grid"))}</div><div class="big" id="d-grid">–</div></div>
          <div class="card"><div class="label">${esc(t("overview.today_energy"))}</div><div class="big" id="d-today">–</div></div>
        </div>
        <div class="cards" style="margin-top:2vh" id="d-circuits">${shown
          .slice(0, 12)
          .map((c) => `<div class="card"><div class="label">${esc(c.name)}</div><div class="big" style="font-size:4vh" data-p="${esc(c.id)}">–</div></div>`)
          .join("")}</div>
        <div class="chart" id="d-chart" style="margin-top:2vh"></div>
      </section>
      <section id="d-renewable" hidden>
        <div class="cards">
          <div class="card"><div class="label">${esc(t("overview.generation"))}</div><div class="big" id="r-gen">–</div></div>
          <div class="card"><div class="label">${esc(t("overview.consumption"))}</div><div class="big" id="r-cons">–</div></div>
          <div class="card"><div class="label">${esc(t("display.share"))}</div><div class="big" id="r-share">–</div></div>
          <div class="card"><div class="label">${esc(t("display.generated_today"))}</div><div class="big" id="r-today">–</div></div>
        </div>
        <div style="margin-top:4vh" class="ren-bar" id="r-bar"><div style="background:#16a34a;width:0%" id="r-bar-ren"></div><div style="background:#2563eb;flex:1"></div></div>
        <p style="font-size:2.5vh;color:#9fb9c4" id="r-legend"></p>
      </section>
    </div>`;
  const $ = (s) => root.querySelector(s);
  const views = { realtime: $("#d-realtime"), renewable: $("#d-renewable") };
  let current = mode === "renewable" ? "renewable" : "realtime";
  const show = (v) => {
    current = v;
    for (const [k, el] of Object.entries(views)) el.hidden = k !== v;
  };
  show(current);
  $("#d-full").onclick = () => document.documentElement.requestFullscreen?.().catch(() => {});
  const onKey = (ev) => {
    if (ev.key === "Escape" && !document.fullscreenElement) location.hash = "#/overview";
  };
  window.addEventListener("keydown", onKey);

  const chart = chartsAvailable() ? lineChart($("#d-chart"), [t("overview.consumption"), t("overview.generation")], "kW", { keep: 600, dark: true }) : null;
  const tick = () => {
    $("#d-clock").textContent = new Date().toLocaleTimeString(lang(), app.site?.timezone ? { timeZone: app.site.timezone } : {});
    const tot = siteTotals(circuits, live);
    $("#d-cons").textContent = kw(tot.consumption, 1);
    $("#d-gen").textContent = kw(tot.generation, 1);
    $("#d-grid").textContent = kw(tot.grid, 1);
    for (const el of root.querySelectorAll("[data-p]")) el.textContent = kw(live.value(el.dataset.p, "active_power", "total"), 2);
    chart?.push(Date.now(), [tot.consumption, tot.generation].map((w) => (w === null ? null : w / 1000)));
    $("#r-gen").textContent = kw(tot.generation, 1);
    $("#r-cons").textContent = kw(tot.consumption, 1);
    const share = tot.consumption > 0 && tot.generation !== null ? Math.min(100, (100 * tot.generation) / tot.consumption) : null;
    $("#r-share").textContent = share === null ? "–" : `${num(share, 0)} %`;
    $("#r-bar-ren").style.width = `${share ?? 0}%`;
    $("#r-legend").textContent = share === null ? "" : t("display.legend", { share: num(share, 0) });
  };
  const timer = setInterval(tick, 1000);
  tick();

  const loadToday = async () => {
    try {
      const s = await get("/site/today");
      $("#d-today").textContent = withUnit(s.energy_consumed, "Wh", 1);
      $("#r-today").textContent = withUnit(s.energy_generated, "Wh", 1);
    } catch {
      // keep dashes
    }
  };
  loadToday();
  const todayTimer = setInterval(loadToday, 60000);

  // active alarms (D10): every alarm that is active or waits for acknowledgement, most severe first
  const loadAlarms = async () => {
    let alarms = null;
    try {
      if (app.signedIn) alarms = await activeAlarms(); // the active list needs a user
    } catch (e) {
      console.warn(e);
    }
    const shown = (alarms || []).filter((a) => a.state === "unack-active" || a.state === "ack-active" || a.state === "rtn-unack");
    const box = $("#d-alarms");
    box.hidden = !shown.length;
    box.innerHTML = shown.length
      ? `<h2>${esc(t("alarms.active_n", { n: shown.length }))}</h2>${shown
          .slice(0, 6)
          .map(
            (a) => `<div class="d-alarm sev-${esc(a.severity)} ${unacknowledged(a) ? "unack" : ""}">
              <span class="badge sev-${esc(a.severity)}">${esc(severityText(a.severity))}</span>
              <strong>${esc(a.title || a.rule)}</strong> — ${esc(a.target)}${a.phase ? ` ${esc(a.phase)}` : ""}${a.value !== null && a.value !== undefined ? `: ${withUnit(a.value, a.unit ?? "", a.unit ? undefined : 3)}` : ""}${a.limit !== null && a.limit !== undefined ? ` (${esc(t("alarms.limit"))} ${withUnit(a.limit, a.unit ?? "", a.unit ? undefined : 3)})` : ""}
              <span class="muted">${esc(stateText(a.state))} · ${esc(time(a.since))}</span>
              ${app.signedIn && unacknowledged(a) ? `<button class="secondary d-ack" data-id="${esc(a.id)}">${esc(t("alarms.ack"))}</button>` : ""}</div>`,
          )
          .join("")}`
      : "";
    for (const b of box.querySelectorAll(".d-ack")) {
      b.onclick = async () => {
        try {
          await post(`/alarms/${encodeURIComponent(b.dataset.id)}/ack`, { comment: t("alarms.from_display") });
          await loadAlarms();
        } catch (e) {
          if (!(e instanceof ApiError)) throw e;
          app.toast(e.message, true);
        }
      };
    }
  };
  loadAlarms();
  const alarmTimer = setInterval(loadAlarms, 10000);

  let rotateTimer = null;
  if (mode === "rotate") rotateTimer = setInterval(() => show(current === "realtime" ? "renewable" : "realtime"), settings.rotate_every * 1000);

  // the custom message: after `message_after` s, for `message_for` s, then again
  const overlay = document.getElementById("message-overlay");
  let msgTimer = null;
  if (settings.message) {
    const cycle = () => {
      msgTimer = setTimeout(() => {
        overlay.textContent = settings.message;
        overlay.hidden = false;
        msgTimer = setTimeout(() => {
          overlay.hidden = true;
          cycle();
        }, settings.message_for * 1000);
      }, settings.message_after * 1000);
    };
    cycle();
  }
  return () => {
    clearInterval(timer);
    clearInterval(todayTimer);
    clearInterval(alarmTimer);
    clearInterval(rotateTimer);
    clearTimeout(msgTimer);
    overlay.hidden = true;
    window.removeEventListener("keydown", onKey);
    chart?.dispose();
  };
}
