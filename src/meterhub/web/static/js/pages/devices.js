// Device readings table: per device its status, whether its data is used (a badge and the reason in a
// line of its own: "all values NaN since 10:02:03", a quarantined register step …, with the counters)
// and, per circuit, the system and each phase; under an
// IO module its points (pulse meters, inputs, relays, analog sensors) in their engineering units, from
// GET /api/v1/io, with an on/off switch for admins on latched relays (POST .../outputs/{point}).

import { get, post } from "../api.js";
import { esc, num, time, withUnit } from "../format.js";
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

// Functions whose active state needs attention (red badge); others show active in green.
const ALARMING = new Set(["breaker-sd", "door", "fault"]);

/** Decimal places that show a single pulse of ``weight`` (0.01 → 2), at most 3. */
function pulseDigits(weight) {
  return Math.min(3, Math.max(0, Math.ceil(-Math.log10(weight) - 1e-9)));
}

function kindText(p) {
  const kind = t(`io.kind_${p.kind.replace("-", "_")}`);
  const where = p.channel !== null ? t("io.channel", { n: p.channel }) : p.sensor;
  const extra = p.kind === "pulse" ? t(`io.medium_${p.medium}`) : p.kind === "digital" ? t(`io.fn_${p.function.replace("-", "_")}`) : "";
  return [kind, extra, where].filter(Boolean).join(" · ");
}

function valueText(p) {
  if (p.kind === "pulse") return withUnit(p.total, p.unit, pulseDigits(p.weight));
  if (p.kind === "digital" || p.kind === "relay") return "";
  return withUnit(p.value, p.unit, 2);
}

function detailText(p) {
  if (p.kind === "pulse") {
    const count = p.count === null ? "–" : t(p.count === 1 ? "io.pulse_one" : "io.pulses", { n: num(p.count, 0) });
    return p.rate === null ? count : `${count} · ${withUnit(p.rate, p.rate_unit, p.rate_unit === "W" ? undefined : 3)}`;
  }
  if (p.kind === "analog-in" || p.kind === "analog-out") return `${p.signal} → ${num(p.range[0], 1)} … ${num(p.range[1], 1)}${p.unit ? ` ${p.unit}` : ""}`;
  if (p.kind === "digital") return p.contact;
  if (p.kind === "relay" && p.mode === "pulse") return t("io.pulse_mode");
  return "";
}

function stateBadge(p) {
  if (p.state === null) return `<span class="muted">${esc(t("io.no_value"))}</span>`;
  const tone = !p.state ? "io-inactive" : p.kind === "digital" && ALARMING.has(p.function) ? "io-alarm" : "io-active";
  return `<span class="badge ${tone}" data-state="${p.state}">${esc(t(`io.label_${p.label}`))}</span>`;
}

function switchHtml(p) {
  return `<button type="button" class="switch" role="switch" data-switch="${esc(p.id)}" data-device="${esc(p.device)}" data-name="${esc(p.name)}"
    aria-checked="${p.state === true}" aria-label="${esc(t("io.switch_label", { name: p.name }))}"${p.state === null ? " disabled" : ""}><span class="knob"></span></button>`;
}

function ioRows(points, canSwitch) {
  return points
    .map((p) => {
      const switchable = canSwitch && p.kind === "relay" && p.mode === "latched";
      const state = p.kind === "digital" || p.kind === "relay" ? `<span class="io-badge">${stateBadge(p)}</span>` : "";
      return `<tr data-io="${esc(p.id)}"><td>${esc(p.name)} <span class="muted">${esc(p.id)}</span></td>
        <td class="l">${esc(kindText(p))}</td>
        <td class="io-value">${esc(valueText(p))}</td>
        <td class="l io-state">${switchable ? switchHtml(p) : ""}${state}</td>
        <td class="l"><span class="io-detail muted">${esc(detailText(p))}</span><span class="io-msg" role="status"></span></td>
        <td class="io-ts">${p.ts ? esc(time(p.ts)) : "–"}</td></tr>`;
    })
    .join("");
}

function ioTable(points, canSwitch) {
  const head = ["io.point", "io.type", "io.value", "io.state", "io.detail", "io.updated"]
    .map((k, i) => `<th${i === 1 || i === 3 || i === 4 ? ' class="l"' : ""}>${esc(t(k))}</th>`)
    .join("");
  return `<h3>${esc(t("devices.io_points"))}</h3>
    <div class="table-wrap"><table class="io-table"><thead><tr>${head}</tr></thead><tbody>${ioRows(points, canSwitch)}</tbody></table></div>`;
}

/** The data badge of a device: ok, warning (values refused lately) or error (nothing usable); an
 * offline device with nothing refused has none. */
function dataBadge(d) {
  const state = d.data || "ok";
  const hidden = state === "ok" && d.status !== "online" ? " hidden" : ""; // no data to judge yet
  return `<span class="badge data-${state}" data-data="${esc(d.id)}" data-state="${state}"${hidden}>${esc(t(`devices.data_${state}`))}</span>`;
}

/** Why the data is (not) used, and the counters; empty when nothing was ever refused. */
function dataLine(d) {
  const c = d.counters || {};
  const parts = [];
  if (d.data_message) parts.push(`<span class="data-message">${esc(d.data_message)}</span>`);
  if (c.refused_values) parts.push(esc(t("devices.refused_values", { n: c.refused_values })));
  if (c.quarantined_steps) parts.push(esc(t("devices.quarantined_steps", { n: c.quarantined_steps })));
  if (c.pending_readings) parts.push(esc(t("devices.pending_readings", { n: c.pending_readings })));
  if (c.lost_samples !== undefined || c.duplicate_frames !== undefined) {
    parts.push(esc(t("devices.waveform_counters", { lost: c.lost_samples || 0, dup: c.duplicate_frames || 0 })));
  }
  return parts.join(" · ");
}

function paintData(root, d) {
  const badge = root.querySelector(`[data-data="${CSS.escape(d.id)}"]`);
  if (badge) badge.outerHTML = dataBadge(d);
  const line = root.querySelector(`[data-data-line="${CSS.escape(d.id)}"]`);
  if (line) {
    const html = dataLine(d);
    line.innerHTML = html;
    line.className = `data-line data-${d.data || "ok"}`;
    line.hidden = !html;
  }
}

/** Registers of a device waiting for a reset or a new meter to be confirmed (GET /energy/registers),
 * each with a confirm button for admins (POST /energy/registers/confirm). */
function pendingHtml(regs, canConfirm) {
  if (!regs.length) return "";
  return `<ul class="pending-registers">${regs
    .map(
      (r) => `<li><strong>${esc(r.circuit)} · ${esc(r.quantity)}${r.phase ? ` ${esc(r.phase)}` : ""}</strong>: ${esc(r.message)}
        ${canConfirm ? `<button type="button" data-confirm="${esc(r.circuit)}" data-quantity="${esc(r.quantity)}" data-phase="${esc(r.phase || "")}">${esc(t("devices.confirm_change"))}</button>` : ""}</li>`,
    )
    .join("")}</ul>`;
}

function rows(seriesId, label, phases, cls = "") {
  return phases
    .map(
      (p, i) => `<tr class="${i ? "sub" : cls}"><td>${i ? `&nbsp;&nbsp;${esc(p)}` : label}</td>
      ${COLS.map(([q, u, d]) => `<td data-live="${esc(seriesId)}/${q}/${esc(p)}" data-unit="${u}" ${d !== undefined ? `data-digits="${d}"` : ""}>–</td>`).join("")}</tr>`,
    )
    .join("");
}

// bus supervision (issue 13): new, vanished and doubly used addresses of each Modbus line
function busHtml(buses) {
  const kinds = [
    ["new", "devices.bus_new", "data-warning"],
    ["vanished", "devices.bus_vanished", "data-error"],
    ["conflicts", "devices.bus_conflict", "data-error"],
  ];
  return buses
    .map((b) => {
      const now = kinds.flatMap(([key, label, cls]) =>
        b[key].map((r) => `<li data-bus-row="${esc(key)}" data-unit="${r.unit}"><span class="badge ${cls}">${esc(t(label))}</span> ${esc(r.message)} <span class="muted">(${esc(time(r.since))})</span></li>`),
      );
      const scan = b.scan ? ` · ${esc(t("devices.bus_scan", { share: Math.round(b.scan.share * 1000) / 10, n: b.scan.addresses }))}` : "";
      const events = b.events.slice(0, 10).map((e) => `<li data-bus-event="${esc(e.kind)}"><span class="muted">${esc(time(e.ts))}</span> ${esc(e.message)}</li>`);
      return `<div data-bus="${esc(b.bus)}"><h3>${esc(t("common.bus"))} ${esc(b.bus)}<span class="muted">${scan}</span></h3>
        ${now.length ? `<ul>${now.join("")}</ul>` : `<p class="muted">${esc(t("devices.bus_quiet"))}</p>`}
        ${events.length ? `<details><summary>${esc(t("devices.bus_events"))}</summary><ul>${events.join("")}</ul></details>` : ""}</div>`;
    })
    .join("");
}

export async function render(root, { live, app }) {
  const [devices, circuits, io] = await Promise.all([get("/devices"), get("/circuits"), get("/io")]);
  const canSwitch = app.isAdmin;
  const pending = new Set(); // relays with a command on its way: refreshes leave their switch alone
  const head = `<tr><th>${esc(t("common.circuit"))}</th>${COLS.map(([q]) => `<th>${esc(t(`q.${q}`))}</th>`).join("")}</tr>`;
  const deviceIds = new Set(devices.map((d) => d.id));
  const devicePoints = new Set([...live.all()].map((r) => r.circuit).filter((c) => deviceIds.has(c)));
  root.innerHTML = `<h1>${esc(t("devices.title"))}</h1>
    <section class="panel" data-bus-supervision hidden><h2>${esc(t("devices.bus_title"))}</h2><div data-bus-body></div></section>
    ${devices
      .map((d) => {
        const mine = circuits.filter((c) => c.device === d.id);
        const points = io.points.filter((p) => p.device === d.id);
        const own = devicePoints.has(d.id) ? rows(d.id, `<em>${esc(t("devices.device_values"))}</em>`, ["total", "L1", "L2", "L3"]) : "";
        return `<section class="panel" data-device="${esc(d.id)}">
          <h2>${esc(d.name)} <span class="badge ${d.status}" data-status="${esc(d.id)}">${esc(t(`common.${d.status}`))}</span> ${dataBadge(d)}</h2>
          <p class="muted">${esc(d.id)} · ${esc(t("common.profile"))}: ${esc(d.profile)} · ${esc(t("common.bus"))}: ${esc(d.bus)}${d.unit !== null ? ` · ${esc(t("common.unit"))} ${d.unit}` : ""}
           · ${esc(t("common.last_seen"))}: <span data-seen="${esc(d.id)}">${d.last_seen ? esc(time(d.last_seen)) : esc(t("common.never"))}</span>${d.serial_number ? ` · ${esc(t("devices.serial"))}: ${esc(d.serial_number)}` : ""}</p>
          <p class="data-line data-${esc(d.data || "ok")}" data-data-line="${esc(d.id)}" role="status"${dataLine(d) ? "" : " hidden"}>${dataLine(d)}</p>
          <div data-pending="${esc(d.id)}"></div>
          ${mine.length || own ? `<div class="table-wrap"><table><thead>${head}</thead><tbody>${own}${mine
            .map((c) => rows(c.id, `<a href="#/circuit/${encodeURIComponent(c.id)}">${esc(c.name)}</a>`, ["total", ...c.phases]))
            .join("")}</tbody></table></div>` : points.length ? "" : `<p class="muted">${esc(t("devices.no_circuits"))}</p>`}
          ${points.length ? ioTable(points, canSwitch) : ""}
        </section>`;
      })
      .join("")}`;
  const unbind = bindLive(root, live);
  const paintBuses = async () => {
    let buses;
    try {
      buses = await get("/bus-supervision");
    } catch {
      return; // keep what is shown; the next tick retries
    }
    const box = root.querySelector("[data-bus-supervision]");
    if (!box) return;
    box.hidden = !buses.length;
    const body = box.querySelector("[data-bus-body]");
    if (!body.contains(document.activeElement)) body.innerHTML = busHtml(buses);
  };
  paintBuses();

  // registers awaiting confirmation: listed under their device (readers see them, admins confirm)
  const deviceOf = new Map([...devices.map((d) => [d.id, d.id]), ...circuits.map((c) => [c.id, c.device])]);
  const paintPending = async (list) => {
    let regs = [];
    if (app.signedIn && list.some((d) => d.counters && d.counters.pending_readings)) {
      try {
        regs = (await get("/energy/registers")).registers.filter((r) => r.state === "pending");
      } catch {
        return; // keep what is shown; the next tick retries
      }
    }
    for (const d of list) {
      const box = root.querySelector(`[data-pending="${CSS.escape(d.id)}"]`);
      if (box && !box.contains(document.activeElement)) {
        box.innerHTML = pendingHtml(regs.filter((r) => deviceOf.get(r.circuit) === d.id), app.isAdmin);
      }
    }
  };
  paintPending(devices);

  const setSwitch = (btn, state) => {
    btn.setAttribute("aria-checked", String(state === true));
    btn.disabled = state === null;
  };
  const paintPoint = (p) => {
    const row = root.querySelector(`tr[data-io="${CSS.escape(p.id)}"]`);
    if (!row) return;
    const value = row.querySelector(".io-value");
    const text = valueText(p);
    if (value.textContent !== text) value.textContent = text;
    row.querySelector(".io-detail").textContent = detailText(p);
    row.querySelector(".io-ts").textContent = p.ts ? time(p.ts) : "–";
    if (pending.has(p.id)) return;
    const badge = row.querySelector(".io-badge");
    if (badge) badge.innerHTML = stateBadge(p);
    const btn = row.querySelector("button[data-switch]");
    if (btn) setSwitch(btn, p.state);
  };

  const onConfirm = async (btn) => {
    const body = { circuit: btn.dataset.confirm, quantity: btn.dataset.quantity };
    if (btn.dataset.phase) body.phase = btn.dataset.phase;
    btn.disabled = true;
    try {
      const res = await post("/energy/registers/confirm", body);
      app.toast(res.message);
      const item = btn.closest("li");
      if (item) item.remove();
    } catch (e) {
      app.toast(t("devices.confirm_failed", { error: e.message }), true);
      btn.disabled = false;
    }
  };

  const onClick = async (ev) => {
    const confirmBtn = ev.target.closest("button[data-confirm]");
    if (confirmBtn && !confirmBtn.disabled) {
      await onConfirm(confirmBtn);
      return;
    }
    const btn = ev.target.closest("button[data-switch]");
    if (!btn || btn.disabled) return;
    const point = btn.dataset.switch;
    const row = btn.closest("tr");
    const msg = row.querySelector(".io-msg");
    const name = btn.dataset.name;
    const want = btn.getAttribute("aria-checked") !== "true";
    pending.add(point);
    btn.disabled = true;
    btn.setAttribute("aria-busy", "true");
    msg.className = "io-msg muted";
    msg.textContent = t("io.switching");
    try {
      const res = await post(`/devices/${encodeURIComponent(btn.dataset.device)}/outputs/${encodeURIComponent(point)}`, { state: want });
      const label = res.state ? "on" : "off";
      setSwitch(btn, res.state);
      row.querySelector(".io-badge").innerHTML = stateBadge({ kind: "relay", state: res.state, label });
      msg.className = "io-msg ok";
      msg.setAttribute("role", "status");
      msg.textContent = t("io.confirmed", { state: t(`io.label_${label}`), time: time(new Date().toISOString()) });
    } catch (e) {
      const text = t("io.switch_failed", { name, error: e.message });
      msg.className = "io-msg error";
      msg.setAttribute("role", "alert");
      msg.textContent = text;
      app.toast(text, true);
      btn.disabled = false;
    } finally {
      btn.removeAttribute("aria-busy");
      pending.delete(point);
    }
  };
  root.addEventListener("click", onClick);

  const timer = setInterval(async () => {
    if (io.points.length) {
      get("/io")
        .then((now) => now.points.forEach(paintPoint))
        .catch(() => {}); // keep the last values; the next tick retries
    }
    try {
      const list = await get("/devices");
      paintPending(list);
      paintBuses();
      for (const d of list) {
        const badge = root.querySelector(`[data-status="${CSS.escape(d.id)}"]`);
        if (badge) {
          badge.className = `badge ${d.status}`;
          badge.textContent = t(`common.${d.status}`);
        }
        const seen = root.querySelector(`[data-seen="${CSS.escape(d.id)}"]`);
        if (seen) seen.textContent = d.last_seen ? time(d.last_seen) : t("common.never");
        paintData(root, d);
      }
    } catch {
      // keep the last known status; the next tick retries
    }
  }, 2000);
  return () => {
    unbind();
    clearInterval(timer);
    root.removeEventListener("click", onClick);
  };
}
