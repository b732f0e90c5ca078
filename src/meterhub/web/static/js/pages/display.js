// Display mode for a lobby screen (seed 001 real-time display, seed 000 D10): full-screen site values
// with today's energy, cost and CO2; every circuit, a page at a time; the renewable display (source
// type, colour, production against the maximum); messages with title, wait and duration; the logo.
// Production is shown as a positive number labelled "production", whatever sign the meter reads.

import { ApiError, get, post } from "../api.js";
import { clock, esc, kw, money, num, time, withUnit } from "../format.js";
import { activeAlarms, severityText, stateText, unacknowledged } from "./alarms.js";
import { t } from "../i18n.js";
import { recentTotals, siteTotals } from "../livebind.js";
import { chartsAvailable, gauge, lineChart } from "../charts.js";

/** Circuits per page: two rows of as many cards as fit across (a card is at least 22 % of the width). */
export function pageSize(width = window.innerWidth) {
  const across = width >= 1000 ? 4 : width >= 600 ? 3 : 2;
  return across * (width >= 600 ? 2 : 3);
}

export async function render(root, { args, live, app }) {
  const [settings, circuits] = await Promise.all([get("/display"), get("/circuits")]);
  const params = new URLSearchParams(location.search);
  const mode = args[0] || params.get("mode") || settings.mode;
  const shown = settings.circuits.length ? circuits.filter((c) => settings.circuits.includes(c.id)) : circuits;
  const title = app.site?.title || app.site?.name || "meterhub";
  const ren = settings.renewable ?? { source: "solar", colour: "#16a34a", max_production: null };
  const source = t(`display.source_${ren.source}`);
  const production = `${t("display.production")} (${source})`;
  root.innerHTML = `
    <div class="display">
      <span class="clock" id="d-clock"></span>
      <h1>${app.site?.logo ? `<img class="d-logo" src="${esc(app.site.logo)}" alt="">` : ""}${esc(title)}
        <button class="secondary" id="d-full" style="font-size:2vh">${esc(t("display.fullscreen"))}</button>
        <a href="#/overview" style="font-size:2vh" id="d-exit">${esc(t("display.exit"))}</a></h1>
      <section id="d-alarms" class="d-alarms" hidden></section>
      <section id="d-realtime">
        <div class="cards">
          <div class="card"><div class="label">${esc(t("overview.consumption"))}</div><div class="big" id="d-cons">–</div></div>
          <div class="card renewable" style="border-top-color:${esc(ren.colour)}"><div class="label">${esc(production)}</div><div class="big" id="d-gen">–</div></div>
          <div class="card"><div class="label" id="d-grid-label">${esc(t("overview.grid"))}</div><div class="big" id="d-grid">–</div></div>
          <div class="card"><div class="label">${esc(t("overview.today_energy"))}</div><div class="big" id="d-today">–</div></div>
          ${settings.show_cost === false ? "" : `<div class="card"><div class="label">${esc(t("overview.today_cost"))}</div><div class="big" id="d-cost">–</div></div>
          <div class="card"><div class="label">${esc(t("overview.today_co2"))}</div><div class="big" id="d-co2">–</div></div>`}
        </div>
        <h2 class="d-circuits-head">${esc(t("overview.circuits"))} <span class="muted" id="d-page"></span></h2>
        <div class="cards" id="d-circuits"></div>
        <div class="chart" id="d-chart" style="margin-top:2vh"></div>
      </section>
      <section id="d-renewable" hidden>
        <div class="cards">
          <div class="card renewable" style="border-top-color:${esc(ren.colour)}"><div class="label">${esc(production)}</div><div class="big" id="r-gen">–</div></div>
          <div class="card"><div class="label">${esc(t("overview.consumption"))}</div><div class="big" id="r-cons">–</div></div>
          <div class="card"><div class="label">${esc(t("display.share"))}</div><div class="big" id="r-share">–</div></div>
          <div class="card"><div class="label">${esc(t("display.generated_today"))}</div><div class="big" id="r-today">–</div></div>
        </div>
        <div class="row2"><div class="chart" id="r-gauge"></div>
          <div><div style="margin-top:4vh" class="ren-bar" id="r-bar"><div style="background:${esc(ren.colour)};width:0%" id="r-bar-ren"></div><div style="background:#2563eb;flex:1"></div></div>
          <p style="font-size:2.5vh;color:#9fb9c4" id="r-legend"></p>
          <p style="font-size:2.2vh;color:#9fb9c4" id="r-max">${ren.max_production ? esc(t("display.max_production", { value: kw(ren.max_production, 2) })) : ""}</p></div></div>
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

  // every circuit, a page at a time
  let page = 0;
  const pages = () => Math.max(1, Math.ceil(shown.length / pageSize()));
  const renderPage = () => {
    const size = pageSize();
    if (page >= pages()) page = 0;
    $("#d-circuits").innerHTML = shown
      .slice(page * size, (page + 1) * size)
      .map((c) => {
        const label = c.purpose === "renewable" ? `${c.name} · ${t("display.production")}` : c.name;
        const style = c.purpose === "renewable" ? ` style="border-top:4px solid ${esc(ren.colour)}"` : "";
        return `<div class="card"${style}><div class="label">${esc(label)}</div><div class="big" style="font-size:4vh" data-p="${esc(c.id)}" data-purpose="${esc(c.purpose)}">–</div></div>`;
      })
      .join("");
    $("#d-page").textContent = pages() > 1 ? t("display.page", { page: page + 1, pages: pages() }) : "";
    paintCircuits();
  };
  const paintCircuits = () => {
    for (const el of root.querySelectorAll("[data-p]")) {
      const p = live.value(el.dataset.p, "active_power", "total");
      el.textContent = kw(p === null || el.dataset.purpose !== "renewable" ? p : Math.abs(p), 2);
    }
  };
  renderPage();
  const pageTimer = setInterval(() => {
    if (pages() < 2) return;
    page = (page + 1) % pages();
    renderPage();
  }, settings.page_every * 1000);

  const chart = chartsAvailable()
    ? lineChart($("#d-chart"), [t("overview.consumption"), production], "kW", { keep: 600, dark: true })
    : null;
  if (chart) {
    recentTotals(circuits, 600).then((b) => {
      const kW = (pts) => pts.map(([ts, w]) => [ts, w / 1000]);
      chart.backfill([kW(b.consumption), kW(b.generation)]);
    });
  }
  const g = chartsAvailable() ? gauge($("#r-gauge"), production, "kW", { max: ren.max_production ? ren.max_production / 1000 : null, digits: 1, dark: true }) : null;
  g?.chart.setOption({ series: [{ itemStyle: { color: ren.colour }, progress: { itemStyle: { color: ren.colour } } }] });
  const tick = () => {
    $("#d-clock").textContent = clock();
    const tot = siteTotals(circuits, live);
    $("#d-cons").textContent = kw(tot.consumption, 1);
    $("#d-gen").textContent = kw(tot.generation, 1);
    // the grid: import or export, as a positive number with the direction in the label
    const exporting = tot.grid !== null && tot.grid < 0;
    $("#d-grid-label").textContent = exporting ? t("display.grid_export") : t("display.grid_import");
    $("#d-grid").textContent = kw(tot.grid === null ? null : Math.abs(tot.grid), 1);
    paintCircuits();
    chart?.push(Date.now(), [tot.consumption, tot.generation].map((w) => (w === null ? null : w / 1000)));
    $("#r-gen").textContent = kw(tot.generation, 1);
    $("#r-cons").textContent = kw(tot.consumption, 1);
    g?.set(tot.generation === null ? null : tot.generation / 1000);
    const share = tot.consumption > 0 && tot.generation !== null ? Math.min(100, (100 * tot.generation) / tot.consumption) : null;
    $("#r-share").textContent = share === null ? "–" : `${num(share, 0)} %`;
    $("#r-bar-ren").style.width = `${share ?? 0}%`;
    $("#r-legend").textContent = share === null ? "" : t("display.legend", { share: num(share, 0), source });
  };
  const timer = setInterval(tick, 1000);
  tick();

  const loadToday = async () => {
    try {
      const s = await get("/site/today");
      $("#d-today").textContent = withUnit(s.energy_consumed, "Wh", 1);
      $("#r-today").textContent = withUnit(s.energy_generated, "Wh", 1);
      if ($("#d-cost")) $("#d-cost").textContent = money(s.cost, s.currency);
      if ($("#d-co2")) $("#d-co2").textContent = s.co2 === null ? "–" : withUnit(s.co2, "kg", 1);
    } catch {
      // keep dashes
    }
  };
  loadToday();
  const todayTimer = setInterval(loadToday, 15000);

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

  // messages in turn: each after its wait, for its duration (the legacy single message goes first)
  const messages = [
    ...(settings.message ? [{ title: "", text: settings.message, after: settings.message_after, duration: settings.message_for }] : []),
    ...(settings.messages ?? []),
  ];
  const overlay = document.getElementById("message-overlay");
  let msgTimer = null;
  let next = 0;
  const cycle = () => {
    if (!messages.length) return;
    const m = messages[next];
    next = (next + 1) % messages.length;
    msgTimer = setTimeout(() => {
      overlay.innerHTML = `<div>${m.title ? `<h2 class="msg-title">${esc(m.title)}</h2>` : ""}<p class="msg-text">${esc(m.text)}</p></div>`;
      overlay.hidden = false;
      msgTimer = setTimeout(() => {
        overlay.hidden = true;
        cycle();
      }, m.duration * 1000);
    }, m.after * 1000);
  };
  cycle();
  const onResize = () => renderPage();
  window.addEventListener("resize", onResize);
  return () => {
    clearInterval(timer);
    clearInterval(todayTimer);
    clearInterval(alarmTimer);
    clearInterval(rotateTimer);
    clearInterval(pageTimer);
    clearTimeout(msgTimer);
    overlay.hidden = true;
    window.removeEventListener("keydown", onKey);
    window.removeEventListener("resize", onResize);
    chart?.dispose();
    g?.dispose();
  };
}
