// Configuration (admin): devices with profile picker and bus scan; circuits with wiring, CT picker,
// CT and VT ratio, purpose, zone; tariffs; interface options; display mode. Everything goes through
// the public REST API (PATCH /circuits/{id}, PATCH /devices/{id}, PUT /config/tariffs, PATCH /site …).

import { ApiError, api, del, get, patch, post, put, qs } from "../api.js";
import { esc, time, timeZone, withUnit } from "../format.js";
import { LANGUAGES, has, t } from "../i18n.js";

const TABS = ["circuits", "devices", "io", "tariffs", "billing", "interface", "display"];
const WIRINGS = ["1P2W", "1P3W", "3P4W", "3P3W", "DC"];
const CT_KINDS = ["built-in", "direct", "current-output", "voltage-output", "rogowski", "adapter-5a"];
const PURPOSES = ["grid", "consumable", "renewable"];

const opt = (values, selected, label = (v) => v) =>
  values.map((v) => `<option value="${esc(v)}" ${v === selected ? "selected" : ""}>${esc(label(v))}</option>`).join("");

function field(id, label, input) {
  return `<div><label for="${id}">${esc(label)}</label>${input}</div>`;
}

export async function render(root, ctx) {
  const tab = TABS.includes(ctx.args[0]) ? ctx.args[0] : "circuits";
  root.innerHTML = `<h1>${esc(t("nav.config"))}</h1>
    <nav class="tabs">${TABS.map((x) => `<a href="#/config/${x}" class="${x === tab ? "active" : ""}" data-tab="${x}">${esc(t(`config.${x}`))}</a>`).join("")}</nav>
    <div id="cfg"></div>`;
  const body = root.querySelector("#cfg");
  const renderers = { circuits, devices, io: ioTab, tariffs, billing, interface: interfaceTab, display };
  await renderers[tab](body, ctx);
}

function showError(el, e) {
  if (!(e instanceof ApiError)) throw e;
  el.textContent = e.message;
  el.className = "error";
}

// A refused save (422) names each bad field by its path (`loc`: ["body", "ct", "ratio"]); the message is
// shown next to the input marked data-loc="ct.ratio" (or "ratio"), and the whole answer in `msgEl`.
function fieldErrors(form, e, msgEl) {
  form.querySelectorAll(".field-error").forEach((x) => x.remove());
  form.querySelectorAll("[aria-invalid]").forEach((x) => x.removeAttribute("aria-invalid"));
  if (!(e instanceof ApiError)) throw e;
  for (const d of Array.isArray(e.detail) ? e.detail : []) {
    const full = (d.loc || []).filter((x) => x !== "body").map(String);
    const named = full.filter((x) => !/^\d+$/.test(x));
    const keys = [...full.map((_, i) => full.slice(i).join(".")), ...named.map((_, i) => named.slice(i).join("."))];
    for (const key of keys) {
      const input = key && form.querySelector(`[data-loc="${CSS.escape(key)}"]`);
      if (!input) continue;
      input.setAttribute("aria-invalid", "true");
      input.insertAdjacentHTML("afterend", `<span class="field-error error" role="alert">${esc(d.msg)}</span>`);
      break;
    }
  }
  showError(msgEl, e);
}

function clearFieldErrors(form) {
  form.querySelectorAll(".field-error").forEach((x) => x.remove());
  form.querySelectorAll("[aria-invalid]").forEach((x) => x.removeAttribute("aria-invalid"));
}

// -- circuits -------------------------------------------------------------------------------------
async function circuits(root, { args, app }) {
  const [all, presets, devs] = await Promise.all([get("/circuits"), get("/config/ct-presets"), get("/devices")]);
  const list = all.filter((c) => !c.virtual); // virtual circuits (energy section) have no CT or device to edit
  root.innerHTML = `<div class="table-wrap panel"><table id="circuit-table"><thead><tr>
      <th>${esc(t("common.id"))}</th><th class="l">${esc(t("common.name"))}</th><th class="l">${esc(t("common.device"))}</th><th class="l">${esc(t("config.wiring"))}</th>
      <th class="l">CT</th><th>${esc(t("config.ct_ratio"))}</th><th>${esc(t("config.vt_ratio"))}</th><th class="l">${esc(t("common.purpose"))}</th><th></th></tr></thead>
      <tbody>${list
        .map(
          (c) => `<tr data-circuit="${esc(c.id)}"><td>${esc(c.id)}</td><td class="l">${esc(c.name)}</td><td class="l">${esc(c.device)}</td><td class="l">${esc(c.wiring)}</td>
          <td class="l">${esc(c.ct_kind)}</td><td data-ct="${esc(c.id)}">${esc(c.ct_ratio)}</td><td>${esc(c.vt_ratio)}</td>
          <td class="l"><span class="badge ${esc(c.purpose)}">${esc(t(`purpose.${c.purpose}`))}</span> ${esc(c.zone || "")}</td>
          <td><a href="#/config/circuits/${encodeURIComponent(c.id)}" data-edit="${esc(c.id)}">${esc(t("config.edit"))}</a></td></tr>`,
        )
        .join("")}</tbody></table></div><div id="circuit-form"></div>${addCircuitForm(devs, presets)}`;
  wireAddCircuit(root, presets, app, args);
  const id = args[1];
  const c = list.find((x) => x.id === id);
  if (!c) return;
  const form = root.querySelector("#circuit-form");
  form.innerHTML = `<form class="panel" id="edit-circuit"><h2>${esc(t("config.edit"))}: ${esc(c.name)} <span class="muted">(${esc(c.id)})</span></h2>
    <div class="form-grid">
      ${field("c-name", t("common.name"), `<input id="c-name" value="${esc(c.name)}">`)}
      ${field("c-wiring", t("config.wiring"), `<select id="c-wiring">${opt(WIRINGS, c.wiring)}</select>`)}
      ${field("c-preset", t("config.ct_picker"), `<select id="c-preset"><option value="">${esc(t("config.ct_custom"))}</option>${presets
        .map((p) => `<option value="${esc(p.id)}" ${p.kind === c.ct_kind && p.ratio === c.ct_ratio ? "selected" : ""}>${esc(p.label)}</option>`)
        .join("")}</select>`)}
      ${field("c-ct-kind", t("config.ct_kind"), `<select id="c-ct-kind">${opt(CT_KINDS, c.ct_kind)}</select>`)}
      ${field("c-ct-ratio", t("config.ct_ratio"), `<input id="c-ct-ratio" value="${esc(c.ct_ratio)}" placeholder="800/5">`)}
      ${field("c-vt-ratio", t("config.vt_ratio"), `<input id="c-vt-ratio" value="${esc(c.vt_ratio)}" placeholder="1/1">`)}
      ${field("c-purpose", t("config.purpose"), `<select id="c-purpose">${opt(PURPOSES, c.purpose, (p) => t(`purpose.${p}`))}</select>`)}
      ${field("c-zone", t("circuit.zone"), `<input id="c-zone" value="${esc(c.zone || "")}">`)}
    </div>
    <div class="actions"><button type="submit" id="c-save">${esc(t("common.save"))}</button>
      <button type="button" class="danger" id="c-delete">${esc(t("common.delete"))}</button>
      <a href="#/config/circuits">${esc(t("common.cancel"))}</a><span id="c-msg"></span></div></form>`;
  const $ = (s) => form.querySelector(s);
  $("#c-preset").onchange = () => {
    const p = presets.find((x) => x.id === $("#c-preset").value);
    if (!p) return;
    $("#c-ct-kind").value = p.kind;
    $("#c-ct-ratio").value = p.ratio;
  };
  $("#c-delete").onclick = async () => {
    if (!confirm(t("config.confirm_delete", { id: c.id }))) return;
    try {
      await del(`/circuits/${encodeURIComponent(c.id)}`);
      app.toast(t("config.removed", { id: c.id }));
      location.hash = "#/config/circuits";
    } catch (e) {
      showError($("#c-msg"), e);
    }
  };
  $("#edit-circuit").onsubmit = async (ev) => {
    ev.preventDefault();
    const msg = $("#c-msg");
    msg.textContent = "";
    const changes = {};
    if ($("#c-name").value !== c.name) changes.name = $("#c-name").value;
    if ($("#c-wiring").value !== c.wiring) changes.wiring = $("#c-wiring").value;
    const ct = {};
    if ($("#c-ct-kind").value !== c.ct_kind) ct.kind = $("#c-ct-kind").value;
    if ($("#c-ct-ratio").value.trim() !== c.ct_ratio) ct.ratio = $("#c-ct-ratio").value.trim();
    const preset = presets.find((x) => x.id === $("#c-preset").value);
    if (preset && preset.rated_current) ct.rated_current = preset.rated_current;
    if (Object.keys(ct).length) changes.ct = ct;
    if ($("#c-vt-ratio").value.trim() !== c.vt_ratio) changes.vt_ratio = $("#c-vt-ratio").value.trim();
    if ($("#c-purpose").value !== c.purpose) changes.purpose = $("#c-purpose").value;
    const zone = $("#c-zone").value.trim() || null;
    if (zone !== (c.zone || null)) changes.zone = zone;
    try {
      const updated = await patch(`/circuits/${encodeURIComponent(c.id)}`, changes);
      app.toast(t("config.applied"));
      root.querySelector(`[data-ct="${CSS.escape(c.id)}"]`).textContent = updated.ct_ratio;
      Object.assign(c, updated);
      msg.className = "";
      msg.textContent = t("config.applied");
    } catch (e) {
      showError(msg, e);
    }
  };
}

// Add a circuit: the device and its channels, wiring, CT (picker or kind and ratio), zone, panel, purpose.
function addCircuitForm(devs, presets) {
  const f = (id, loc, label, input) => field(id, label, input.replace(/^<(\w+)/, `<$1 data-loc="${loc}"`));
  return `<form class="panel" id="add-circuit"><h2>${esc(t("config.add_circuit"))}</h2><div class="form-grid">
      ${f("n-id", "id", t("common.id"), `<input id="n-id" required placeholder="kitchen">`)}
      ${f("n-name", "name", t("common.name"), `<input id="n-name">`)}
      ${f("n-device", "device", t("common.device"), `<select id="n-device">${opt(devs.map((d) => d.id), devs[0]?.id, (id) => `${devs.find((d) => d.id === id).name} (${id})`)}</select>`)}
      ${f("n-channels", "channels", t("config.channels"), `<input id="n-channels" value="1" placeholder="1, 2, 3" inputmode="numeric">`)}
      ${f("n-wiring", "wiring", t("config.wiring"), `<select id="n-wiring">${opt(WIRINGS, "1P2W")}</select>`)}
      ${f("n-preset", "preset", t("config.ct_picker"), `<select id="n-preset"><option value="">${esc(t("config.ct_custom"))}</option>${presets.map((p) => `<option value="${esc(p.id)}">${esc(p.label)}</option>`).join("")}</select>`)}
      ${f("n-ct-kind", "ct.kind", t("config.ct_kind"), `<select id="n-ct-kind">${opt(CT_KINDS, "current-output")}</select>`)}
      ${f("n-ct-ratio", "ct.ratio", t("config.ct_ratio"), `<input id="n-ct-ratio" placeholder="100/0.1">`)}
      ${f("n-zone", "zone", t("circuit.zone"), `<input id="n-zone">`)}
      ${f("n-panel", "panel", t("config.panel"), `<input id="n-panel">`)}
      ${f("n-purpose", "purpose", t("config.purpose"), `<select id="n-purpose">${opt(PURPOSES, "consumable", (p) => t(`purpose.${p}`))}</select>`)}
    </div><div class="actions"><button type="submit" id="n-add">${esc(t("common.add"))}</button><span id="n-msg"></span></div></form>`;
}

function wireAddCircuit(root, presets, app, args) {
  const form = root.querySelector("#add-circuit");
  const $ = (s) => form.querySelector(s);
  $("#n-preset").onchange = () => {
    const p = presets.find((x) => x.id === $("#n-preset").value);
    if (!p) return;
    $("#n-ct-kind").value = p.kind;
    $("#n-ct-ratio").value = p.ratio;
  };
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    clearFieldErrors(form);
    const msg = $("#n-msg");
    msg.textContent = "";
    const channels = $("#n-channels").value.split(/[ ,;]+/).filter(Boolean).map(Number);
    if (!channels.length || channels.some((n) => !Number.isInteger(n))) {
      fieldErrors(form, new ApiError(422, t("config.channels_hint"), [{ loc: ["body", "channels"], msg: t("config.channels_hint") }]), msg);
      return;
    }
    const ct = { kind: $("#n-ct-kind").value };
    if ($("#n-ct-ratio").value.trim()) ct.ratio = $("#n-ct-ratio").value.trim();
    const preset = presets.find((x) => x.id === $("#n-preset").value);
    if (preset && preset.rated_current) ct.rated_current = preset.rated_current;
    const body = { id: $("#n-id").value.trim(), device: $("#n-device").value, channels, wiring: $("#n-wiring").value, ct, purpose: $("#n-purpose").value };
    for (const [k, sel] of [["name", "#n-name"], ["zone", "#n-zone"], ["panel", "#n-panel"]]) if ($(sel).value.trim()) body[k] = $(sel).value.trim();
    try {
      await post("/circuits", body);
      app.toast(t("config.applied"));
      if (location.hash === `#/config/circuits/${encodeURIComponent(body.id)}`) await circuits(root, { args, app });
      else location.hash = `#/config/circuits/${encodeURIComponent(body.id)}`;
    } catch (e) {
      fieldErrors(form, e, msg);
    }
  };
}

// -- devices --------------------------------------------------------------------------------------
async function devices(root, { args, app }) {
  const [list, profiles, buses] = await Promise.all([get("/devices"), get("/config/profiles"), get("/config/buses")]);
  const profileIds = profiles.map((p) => p.id);
  const profileLabel = (id) => {
    const p = profiles.find((x) => x.id === id);
    return p && p.vendor ? `${p.vendor} ${p.model} (${id})` : id;
  };
  root.innerHTML = `<div class="table-wrap panel"><table><thead><tr><th>${esc(t("common.id"))}</th><th class="l">${esc(t("common.name"))}</th>
      <th class="l">${esc(t("common.profile"))}</th><th class="l">${esc(t("common.bus"))}</th><th>${esc(t("common.unit"))}</th><th>${esc(t("common.poll"))}</th>
      <th>${esc(t("common.status"))}</th><th></th></tr></thead><tbody>${list
        .map(
          (d) => `<tr><td>${esc(d.id)}</td><td class="l">${esc(d.name)}</td><td class="l">${esc(d.profile)}</td><td class="l">${esc(d.bus)}</td>
          <td>${d.unit ?? ""}</td><td>${d.poll_interval}</td><td><span class="badge ${d.status}">${esc(t(`common.${d.status}`))}</span>${d.enabled ? "" : ` <span class="muted">(${esc(t("config.disabled"))})</span>`}</td>
          <td><a href="#/config/devices/${encodeURIComponent(d.id)}">${esc(t("config.edit"))}</a></td></tr>`,
        )
        .join("")}</tbody></table></div>
    <div id="device-form"></div>
    <div class="panel"><h2>${esc(t("config.scan"))}</h2>
      <form class="toolbar" id="scan-form">
        ${field("s-bus", t("common.bus"), `<select id="s-bus">${buses.filter((b) => b.kind.startsWith("modbus")).map((b) => `<option value="${esc(b.id)}">${esc(b.id)} (${esc(b.kind)} ${esc(b.serial || `${b.host}:${b.port}`)})</option>`).join("")}</select>`)}
        ${field("s-units", t("config.units"), `<input id="s-units" value="1-16" size="10">`)}
        <div><button type="submit" id="s-go">${esc(t("config.scan_go"))}</button></div><span id="s-msg"></span>
      </form><div id="scan-result"></div></div>
    <form class="panel" id="add-device"><h2>${esc(t("config.add_device"))}</h2><div class="form-grid">
      ${field("a-id", t("common.id"), `<input id="a-id" data-loc="id" required pattern="[a-z0-9][a-z0-9_.\\-]*">`)}
      ${field("a-name", t("common.name"), `<input id="a-name" data-loc="name">`)}
      ${field("a-bus", t("common.bus"), `<select id="a-bus" data-loc="bus">${opt(buses.map((b) => b.id), buses[0]?.id)}</select>`)}
      ${field("a-unit", t("common.unit"), `<input id="a-unit" data-loc="unit" type="number" min="1" max="247">`)}
      ${field("a-profile", t("common.profile"), `<select id="a-profile" data-loc="profile">${opt(profileIds, profileIds[0], profileLabel)}</select>`)}
    </div><div class="actions"><button type="submit">${esc(t("common.add"))}</button><span id="a-msg"></span></div></form>
    ${busPanel(buses)}`;
  const $ = (s) => root.querySelector(s);
  $("#add-device").onsubmit = async (ev) => {
    ev.preventDefault();
    try {
      const unit = $("#a-unit").value ? Number($("#a-unit").value) : null;
      await post("/devices", { id: $("#a-id").value.trim(), name: $("#a-name").value, bus: $("#a-bus").value, unit, profile: $("#a-profile").value });
      app.toast(t("config.applied"));
      await devices(root, { args: [], app });
    } catch (e) {
      fieldErrors($("#add-device"), e, $("#a-msg"));
    }
  };
  wireBuses(root, app);
  $("#scan-form").onsubmit = async (ev) => {
    ev.preventDefault();
    $("#s-msg").textContent = t("config.scanning");
    $("#s-msg").className = "muted";
    try {
      const res = await post(`/config/buses/${encodeURIComponent($("#s-bus").value)}/scan`, { units: $("#s-units").value });
      $("#s-msg").textContent = t("config.scan_done", { n: res.devices.length, silent: res.silent });
      $("#scan-result").innerHTML = `<table><thead><tr><th>${esc(t("common.unit"))}</th><th class="l">${esc(t("common.profile"))}</th><th class="l">${esc(t("config.configured"))}</th><th class="l"></th></tr></thead><tbody>
        ${res.devices.map((d) => `<tr><td>${d.unit}</td><td class="l">${esc(d.candidates.join(", ") || "?")}${d.sure ? "" : " ?"}</td><td class="l">${esc(d.configured || "–")}</td><td class="l error">${esc(d.duplicate || "")}</td></tr>`).join("")}</tbody></table>`;
    } catch (e) {
      showError($("#s-msg"), e);
    }
  };
  const id = args[1];
  const d = list.find((x) => x.id === id);
  if (!d) return;
  $("#device-form").innerHTML = `<form class="panel" id="edit-device"><h2>${esc(t("config.edit"))}: ${esc(d.name)} <span class="muted">(${esc(d.id)})</span></h2><div class="form-grid">
      ${field("d-name", t("common.name"), `<input id="d-name" data-loc="name" value="${esc(d.name)}">`)}
      ${field("d-profile", t("common.profile"), `<select id="d-profile" data-loc="profile">${opt(profileIds.includes(d.profile) ? profileIds : [d.profile, ...profileIds], d.profile, profileLabel)}</select>`)}
      ${field("d-unit", t("common.unit"), `<input id="d-unit" data-loc="unit" type="number" min="1" max="247" value="${d.unit ?? ""}">`)}
      ${field("d-poll", t("common.poll"), `<input id="d-poll" data-loc="poll_interval" type="number" step="0.1" min="0.1" value="${d.poll_interval}">`)}
      ${field("d-enabled", t("common.enabled"), `<input id="d-enabled" type="checkbox" ${d.enabled ? "checked" : ""}>`)}
    </div><div class="actions"><button type="submit">${esc(t("common.save"))}</button>
      <button type="button" class="danger" id="d-delete">${esc(t("common.delete"))}</button>
      <a href="#/config/devices">${esc(t("common.cancel"))}</a><span id="d-msg"></span></div></form>`;
  $("#edit-device").onsubmit = async (ev) => {
    ev.preventDefault();
    const changes = {};
    if ($("#d-name").value !== d.name) changes.name = $("#d-name").value;
    if ($("#d-profile").value !== d.profile) changes.profile = $("#d-profile").value;
    const unit = $("#d-unit").value === "" ? null : Number($("#d-unit").value);
    if (unit !== d.unit) changes.unit = unit;
    if (Number($("#d-poll").value) !== d.poll_interval) changes.poll_interval = Number($("#d-poll").value);
    if ($("#d-enabled").checked !== d.enabled) changes.enabled = $("#d-enabled").checked;
    try {
      await patch(`/devices/${encodeURIComponent(d.id)}`, changes);
      app.toast(t("config.applied"));
      location.hash = "#/config/devices";
    } catch (e) {
      fieldErrors($("#edit-device"), e, $("#d-msg"));
    }
  };
  $("#d-delete").onclick = async () => {
    if (!confirm(t("config.confirm_delete", { id: d.id }))) return;
    try {
      await del(`/devices/${encodeURIComponent(d.id)}`);
      location.hash = "#/config/devices";
    } catch (e) {
      showError($("#d-msg"), e);
    }
  };
}

// Buses: the lines and endpoints devices are reached through (POST/DELETE /config/buses). A bus in use
// by devices cannot be removed (409 naming them).
const BUS_KINDS = ["modbus-tcp", "modbus-rtu", "modbus-rtu-over-tcp", "dlms", "iec62056-21", "mqtt", "io", "waveform"];

function busPanel(buses) {
  return `<div class="panel" id="buses"><h2>${esc(t("config.buses"))}</h2>
    <div class="table-wrap"><table id="bus-table"><thead><tr><th class="l">${esc(t("common.id"))}</th><th class="l">${esc(t("config.bus_kind"))}</th><th class="l">${esc(t("config.bus_address"))}</th><th class="l">${esc(t("nav.devices"))}</th><th></th></tr></thead><tbody>
      ${buses.map((b) => `<tr data-bus="${esc(b.id)}"><td class="l">${esc(b.id)}</td><td class="l">${esc(b.kind)}</td><td class="l">${esc(b.serial || `${b.host}${b.port ? `:${b.port}` : ""}`)}</td><td class="l">${esc(b.devices.join(", ") || "–")}</td>
        <td><button type="button" class="secondary" data-bus-remove="${esc(b.id)}">${esc(t("common.delete"))}</button></td></tr>`).join("")}</tbody></table></div>
    <span id="bus-msg"></span>
    <form id="add-bus" novalidate><h3>${esc(t("config.add_bus"))}</h3><div class="form-grid">
      ${field("bus-id", t("common.id"), `<input id="bus-id" data-loc="id" placeholder="rs485">`)}
      ${field("bus-kind", t("config.bus_kind"), `<select id="bus-kind" data-loc="kind">${opt(BUS_KINDS, "modbus-tcp")}</select>`)}
      ${field("bus-host", t("config.bus_host"), `<input id="bus-host" data-loc="host" placeholder="192.168.1.50">`)}
      ${field("bus-port", t("config.bus_port"), `<input id="bus-port" data-loc="port" type="number" min="1" max="65535" placeholder="502">`)}
      ${field("bus-serial", t("config.bus_serial"), `<input id="bus-serial" data-loc="serial" placeholder="/dev/ttyUSB0">`)}
      ${field("bus-baud", t("config.bus_baud"), `<select id="bus-baud" data-loc="baud">${opt(["1200", "2400", "4800", "9600", "19200", "38400", "57600", "115200"], "9600")}</select>`)}
      ${field("bus-parity", t("config.bus_parity"), `<select id="bus-parity" data-loc="parity">${opt(["N", "E", "O"], "N")}</select>`)}
    </div><div class="actions"><button type="submit">${esc(t("common.add"))}</button><span id="bus-add-msg"></span></div></form></div>`;
}

function wireBuses(root, app) {
  const form = root.querySelector("#add-bus");
  const $ = (x) => root.querySelector(x);
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    clearFieldErrors(form);
    const body = { id: $("#bus-id").value.trim(), kind: $("#bus-kind").value };
    if ($("#bus-host").value.trim()) body.host = $("#bus-host").value.trim();
    if ($("#bus-port").value) body.port = Number($("#bus-port").value);
    if ($("#bus-serial").value.trim()) {
      body.serial = $("#bus-serial").value.trim();
      body.baud = Number($("#bus-baud").value);
      body.parity = $("#bus-parity").value;
    }
    try {
      await post("/config/buses", body);
      app.toast(t("config.applied"));
      await devices(root, { args: [], app });
    } catch (e) {
      fieldErrors(form, e, $("#bus-add-msg"));
    }
  };
  for (const btn of root.querySelectorAll("[data-bus-remove]"))
    btn.onclick = async () => {
      if (!confirm(t("config.confirm_delete", { id: btn.dataset.busRemove }))) return;
      try {
        await del(`/config/buses/${encodeURIComponent(btn.dataset.busRemove)}`);
        app.toast(t("config.removed", { id: btn.dataset.busRemove }));
        await devices(root, { args: [], app });
      } catch (e) {
        showError($("#bus-msg"), e);
      }
    };
}

// -- IO points and 1-wire probes -------------------------------------------------------------------
// Every kind of point of the site file's io section (GET/POST/PUT/DELETE /config/io…), through the
// same audited path as circuits: a refused field is marked, a point that rules use is not removed (the
// answer names them). Probes found on the 1-wire bus (GET /config/onewire) are named here: that adds a
// temperature point for the probe.
const IO_KINDS = ["pulse", "digital", "relay", "analog-in", "analog-out", "temperature"];
const MEDIA = ["electricity", "gas", "water", "oil"];
const PULSE_UNITS = { electricity: ["kWh", "Wh"], gas: ["m3", "l"], water: ["m3", "l"], oil: ["m3", "l"] };
const FUNCTIONS = ["breaker-of", "breaker-sd", "door", "run", "fault", "generic"];
const SIGNALS = ["4-20mA", "0-20mA", "0-10V", "0-30V"];
const kindLabel = (k) => t(`io.kind_${k.replace("-", "_")}`);
const unitText = (u) => (u === "m3" ? "m³" : u);
const signalText = (s) => s.replace(/^(\d+)-(\d+)(mA|V)$/, "$1–$2 $3");

// The fields of a point of `kind` (p: its settings, or {} for a new one), each with data-k (the key
// sent) and data-loc (where a refusal is shown).
function pointFields(kind, p, devices, pre, points = []) {
  const f = (k, label, input) => field(`${pre}-${k}`, label, input.replace(/^<(\w+)/, `<$1 id="${pre}-${k}" data-k="${k}" data-loc="${k}"`));
  const num = (k, label, value, attrs = "") => f(k, label, `<input type="number" step="any" ${attrs} value="${value ?? ""}">`);
  const sel = (k, label, values, selected, text) => f(k, label, `<select>${opt(values, selected, text)}</select>`);
  const check = (k, label, on) =>
    `<div><label class="check"><input type="checkbox" id="${pre}-${k}" data-k="${k}" data-loc="${k}" ${on ? "checked" : ""}> ${esc(label)}</label></div>`;
  const w1 = kind === "temperature";
  // the devices whose profile has this kind of input or output (the 1-wire master for a probe)
  const devs = devices.filter((d) => (w1 ? d.onewire : (d.channels[kind] || []).length));
  const device = devs.find((d) => d.id === p.device) || devs.find((d) => points.some((x) => x.kind === kind && x.device === d.id)) || devs[0];
  const out = [
    f("id", t("common.id"), `<input ${p.id ? `value="${esc(p.id)}" readonly` : 'placeholder="gas-main"'}>`),
    f("name", t("common.name"), `<input value="${esc(p.name || "")}">`),
    devs.length
      ? sel("device", t("common.device"), devs.map((d) => d.id), device.id, (id) => `${devs.find((d) => d.id === id).name} (${id})`)
      : `<p class="error" id="${pre}-nodevice">${esc(t(w1 ? "config.io_no_master" : "config.io_no_module"))}</p>`,
  ];
  if (!w1 && device) out.push(f("channel", t("config.io_channel"), `<select>${channelOptions(device, kind, points, p)}</select>`));
  if (kind === "pulse") {
    const medium = p.medium || "electricity";
    out.push(
      sel("medium", t("config.io_medium"), MEDIA, medium, (m) => t(`io.medium_${m}`)),
      sel("unit", t("config.io_pulse_unit"), PULSE_UNITS[medium], p.unit || PULSE_UNITS[medium][0], unitText),
      num("weight", t("config.io_weight"), p.weight, 'min="0"'),
      sel("contact", t("config.io_contact"), ["NO", "NC"], p.contact || "NO", (c) => t(`config.io_contact_${c.toLowerCase()}`)),
      num("debounce", t("config.io_debounce"), p.debounce ?? 0.1, 'min="0.1" max="10"'),
      num("initial", t("config.io_initial"), p.initial ?? 0, 'min="0"'),
    );
  } else if (kind === "digital") {
    out.push(
      sel("function", t("config.io_function"), FUNCTIONS, p.function || "generic", (x) => t(`io.fn_${x.replace("-", "_")}`)),
      sel("contact", t("config.io_contact"), ["NO", "NC"], p.contact || "NO", (c) => t(`config.io_contact_${c.toLowerCase()}`)),
      num("debounce", t("config.io_debounce"), p.debounce ?? 0, 'min="0" max="60"'),
    );
  } else if (kind === "relay") {
    out.push(
      sel("mode", t("config.io_mode"), ["latched", "pulse"], p.mode || "latched", (m) => t(`config.io_mode_${m}`)),
      num("pulse_duration", t("config.io_pulse_duration"), p.pulse_duration ?? 1, 'min="0.1" max="3600"'),
      check("inverted", t("config.io_inverted"), p.inverted),
    );
  } else if (kind === "analog-in" || kind === "analog-out") {
    const range = p.range || [0, 10];
    out.push(
      sel("signal", t("config.io_signal"), SIGNALS, p.signal || "4-20mA", signalText),
      num("range.0", t("config.io_range_low"), range[0]),
      num("range.1", t("config.io_range_high"), range[1]),
      f("unit", t("config.io_unit"), `<input maxlength="16" value="${esc(p.unit || "")}" placeholder="bar">`),
    );
    if (kind === "analog-in") out.push(check("clamp", t("config.io_clamp"), p.clamp ?? true));
  } else {
    out.push(
      f("sensor", t("config.io_sensor"), `<input value="${esc(p.sensor || "")}" placeholder="28-0316a2795bff">`),
      num("offset", t("config.io_offset"), p.offset ?? 0, 'min="-10" max="10"'),
      num("poll_interval", t("config.io_poll"), p.poll_interval, 'min="0.1"'),
    );
  }
  return out.join("");
}

// The inputs or outputs of `device` for a point of `kind`, those other points use marked with their id;
// the first free one chosen for a new point.
function channelOptions(device, kind, points, p) {
  // (an input may carry a digital and a pulse point at once: only points of the same kind compete)
  const user = (ch) => points.find((x) => x.device === device.id && x.kind === kind && x.channel === ch && x.id !== p.id);
  const channels = device.channels[kind] || [];
  const chosen = p.channel ?? channels.find((ch) => !user(ch)) ?? channels[0];
  return channels
    .map((ch) => `<option value="${ch}" ${ch === chosen ? "selected" : ""}>${esc(user(ch) ? t("config.io_channel_used", { n: ch, id: user(ch).id }) : String(ch))}</option>`)
    .join("");
}

// A point form's channel list follows its device.
function wireChannels(form, kind, devices, points, p) {
  const dev = form.querySelector('[data-k="device"]');
  const ch = form.querySelector('[data-k="channel"]');
  if (!dev || !ch) return;
  dev.onchange = () => (ch.innerHTML = channelOptions(devices.find((d) => d.id === dev.value), kind, points, { ...p, channel: undefined }));
}

// The body of a point form: every [data-k] input, numbers as numbers, empty ones left out.
function pointBody(form, kind) {
  const body = { kind };
  for (const el of form.querySelectorAll("[data-k]")) {
    const k = el.dataset.k;
    if (el.type === "checkbox") body[k] = el.checked;
    else if (el.value.trim() === "") continue;
    else body[k] = el.type === "number" || k === "channel" ? Number(el.value) : el.value.trim();
  }
  if ("range.0" in body || "range.1" in body) {
    body.range = [body["range.0"], body["range.1"]];
    delete body["range.0"];
    delete body["range.1"];
  }
  return body;
}

function pointDetail(p) {
  if (p.kind === "pulse") return `${t(`io.medium_${p.medium}`)} · ${p.weight} ${unitText(p.unit)}/${t("config.io_per_pulse")} · ${p.contact}`;
  if (p.kind === "digital") return `${t(`io.fn_${p.function.replace("-", "_")}`)} · ${p.contact}`;
  if (p.kind === "relay") return `${t(`config.io_mode_${p.mode}`)}${p.inverted ? ` · ${t("config.io_inverted")}` : ""}`;
  if (p.kind === "temperature") return p.sensor;
  return `${signalText(p.signal)} → ${p.range[0]} … ${p.range[1]}${p.unit ? ` ${p.unit}` : ""}`;
}

async function ioTab(root, ctx) {
  const { args, app } = ctx;
  const [cfg, w1] = await Promise.all([get("/config/io"), get("/config/onewire")]);
  const devName = Object.fromEntries(cfg.devices.map((d) => [d.id, d.name]));
  const editing = cfg.points.find((p) => p.id === args[1]);
  const free = w1.probes.filter((p) => p.present && !p.point);
  root.innerHTML = `<div class="panel"><h2>${esc(t("config.io_points"))}</h2><p class="muted">${esc(t("config.io_hint"))}</p>
      ${cfg.points.length ? `<div class="table-wrap"><table id="io-config-table"><thead><tr><th class="l">${esc(t("common.id"))}</th><th class="l">${esc(t("common.name"))}</th><th class="l">${esc(t("io.type"))}</th>
        <th class="l">${esc(t("common.device"))}</th><th>${esc(t("config.io_channel"))}</th><th class="l">${esc(t("io.detail"))}</th><th></th></tr></thead><tbody>
        ${cfg.points.map((p) => `<tr data-point="${esc(p.id)}"><td class="l">${esc(p.id)}</td><td class="l">${esc(p.name || p.id)}</td><td class="l">${esc(kindLabel(p.kind))}</td>
          <td class="l">${esc(devName[p.device] || p.device)}</td><td>${p.channel ?? "–"}</td><td class="l">${esc(pointDetail(p))}</td>
          <td><a href="#/config/io/${encodeURIComponent(p.id)}">${esc(t("config.edit"))}</a> <button type="button" class="secondary" data-point-remove="${esc(p.id)}">${esc(t("common.delete"))}</button></td></tr>`).join("")}</tbody></table></div>`
        : `<p class="muted" id="io-none">${esc(t("config.io_none"))}</p>`}
      <span id="io-msg" role="status"></span></div>
    ${editing ? `<form class="panel" id="io-edit" novalidate><h2>${esc(t("config.edit"))}: ${esc(editing.name || editing.id)} <span class="muted">(${esc(kindLabel(editing.kind))})</span></h2>
      <div class="form-grid">${pointFields(editing.kind, editing, cfg.devices, "ie", cfg.points)}</div>
      <div class="actions"><button type="submit">${esc(t("common.save"))}</button><a href="#/config/io">${esc(t("common.cancel"))}</a><span id="ie-msg" role="status"></span></div></form>` : ""}
    <form class="panel" id="io-add" novalidate><h2>${esc(t("config.io_add"))}</h2><div class="form-grid">
      ${field("ia-kind", t("io.type"), `<select id="ia-kind">${opt(IO_KINDS, "pulse", kindLabel)}</select>`)}</div>
      <div class="form-grid" id="ia-fields"></div>
      <div class="actions"><button type="submit" id="ia-go">${esc(t("common.add"))}</button><span id="ia-msg" role="status"></span></div></form>
    <div class="panel" id="onewire"><h2>${esc(t("config.w1_probes"))}</h2><p class="muted">${esc(t("config.w1_hint"))}</p>
      ${w1.error ? `<p class="error" id="w1-error">${esc(t("config.w1_no_bus"))}</p>` : ""}
      ${w1.probes.length ? `<div class="table-wrap"><table id="w1-table"><thead><tr><th class="l">${esc(t("config.io_sensor"))}</th><th class="l">${esc(t("io.type"))}</th><th>${esc(t("io.value"))}</th><th class="l">${esc(t("io.point"))}</th></tr></thead><tbody>
        ${w1.probes.map((p) => `<tr data-probe="${esc(p.sensor)}"><td class="l">${esc(p.sensor)}</td><td class="l">${esc(p.family)}</td>
          <td>${p.temperature === null ? `<span class="muted">${esc(t(p.present ? "config.w1_unreadable" : "config.w1_missing"))}</span>` : esc(withUnit(p.temperature, "°C", 2))}</td>
          <td class="l">${p.point ? esc(p.point_name) : `<button type="button" data-name-probe="${esc(p.sensor)}">${esc(t("config.w1_name_it"))}</button>`}</td></tr>`).join("")}</tbody></table></div>`
        : w1.error ? "" : `<p class="muted" id="w1-none">${esc(t("config.w1_none"))}</p>`}
      ${free.length && w1.masters.length ? `<form id="w1-form" novalidate><h3>${esc(t("config.w1_name_title"))}</h3><div class="form-grid">
        ${field("w1-sensor", t("config.io_sensor"), `<select id="w1-sensor" data-loc="sensor">${opt(free.map((p) => p.sensor), free[0].sensor)}</select>`)}
        ${field("w1-id", t("common.id"), `<input id="w1-id" data-loc="id" placeholder="boiler-temp">`)}
        ${field("w1-name", t("common.name"), `<input id="w1-name" data-loc="name">`)}
        ${field("w1-master", t("common.device"), `<select id="w1-master" data-loc="device">${opt(w1.masters.map((m) => m.id), w1.masters[0].id, (id) => `${w1.masters.find((m) => m.id === id).name} (${id})`)}</select>`)}
      </div><div class="actions"><button type="submit" id="w1-go">${esc(t("config.w1_save"))}</button><span id="w1-msg" role="status"></span></div></form>` : ""}
      ${free.length && !w1.masters.length ? `<p class="error">${esc(t("config.io_no_master"))}</p>` : ""}</div>`;
  const $ = (x) => root.querySelector(x);
  const again = async () => {
    if (location.hash === "#/config/io") await ioTab(root, { ...ctx, args: ["io"] });
    else location.hash = "#/config/io";
  };
  const applied = () => app.toast(t("config.io_applied"));
  // add: the fields follow the kind; a pulse meter's units follow its medium
  const fillAdd = () => {
    // a new point goes on the device that carries this kind of point already, if one does
    $("#ia-fields").innerHTML = pointFields($("#ia-kind").value, {}, cfg.devices, "ia", cfg.points);
    wireChannels($("#ia-fields"), $("#ia-kind").value, cfg.devices, cfg.points, {});
    $("#ia-go").disabled = !!$("#ia-nodevice"); // no device can carry this kind: said above the button
    const medium = $("#ia-medium");
    if (medium) medium.onchange = () => ($("#ia-unit").innerHTML = opt(PULSE_UNITS[medium.value], PULSE_UNITS[medium.value][0], unitText));
  };
  $("#ia-kind").onchange = fillAdd;
  fillAdd();
  $("#io-add").onsubmit = async (ev) => {
    ev.preventDefault();
    clearFieldErrors($("#io-add"));
    $("#ia-msg").textContent = "";
    try {
      await post("/config/io/points", pointBody($("#ia-fields"), $("#ia-kind").value));
      applied();
      await again();
    } catch (e) {
      fieldErrors($("#io-add"), e, $("#ia-msg"));
    }
  };
  if (editing) {
    const form = $("#io-edit");
    wireChannels(form, editing.kind, cfg.devices, cfg.points, editing);
    const medium = form.querySelector("#ie-medium");
    if (medium) medium.onchange = () => (form.querySelector("#ie-unit").innerHTML = opt(PULSE_UNITS[medium.value], PULSE_UNITS[medium.value][0], unitText));
    form.onsubmit = async (ev) => {
      ev.preventDefault();
      clearFieldErrors(form);
      try {
        await put(`/config/io/points/${encodeURIComponent(editing.id)}`, pointBody(form, editing.kind));
        applied();
        location.hash = "#/config/io";
      } catch (e) {
        fieldErrors(form, e, $("#ie-msg"));
      }
    };
  }
  for (const btn of root.querySelectorAll("[data-point-remove]"))
    btn.onclick = async () => {
      const id = btn.dataset.pointRemove;
      if (!confirm(t("config.confirm_delete", { id }))) return;
      try {
        await del(`/config/io/points/${encodeURIComponent(id)}`);
        app.toast(t("config.removed", { id }));
        await again();
      } catch (e) {
        showError($("#io-msg"), e);
      }
    };
  const w1form = $("#w1-form");
  if (!w1form) return;
  for (const btn of root.querySelectorAll("[data-name-probe]"))
    btn.onclick = () => {
      $("#w1-sensor").value = btn.dataset.nameProbe;
      $("#w1-id").focus();
    };
  w1form.onsubmit = async (ev) => {
    ev.preventDefault();
    clearFieldErrors(w1form);
    const body = { kind: "temperature", id: $("#w1-id").value.trim(), device: $("#w1-master").value, sensor: $("#w1-sensor").value };
    if ($("#w1-name").value.trim()) body.name = $("#w1-name").value.trim();
    try {
      await post("/config/io/points", body);
      applied();
      await again();
    } catch (e) {
      fieldErrors(w1form, e, $("#w1-msg"));
    }
  };
}

// -- tariffs --------------------------------------------------------------------------------------
async function tariffs(root, { app }) {
  const tar = await get("/config/tariffs");
  const rateRow = (r = { id: "", name: "", price: 0, export_price: 0 }) => `<tr>
      <td><input class="r-id" value="${esc(r.id)}" size="10"></td><td><input class="r-name" value="${esc(r.name || "")}"></td>
      <td><input class="r-price" type="number" step="0.0001" min="0" value="${r.price}"></td>
      <td><input class="r-export" type="number" step="0.0001" min="0" value="${r.export_price || 0}"></td>
      <td><button type="button" class="secondary r-del" aria-label="${esc(t("common.remove"))}" title="${esc(t("common.remove"))}">×</button></td></tr>`;
  root.innerHTML = `<form class="panel" id="tariff-form">
    <h2>${esc(t("config.rates"))}</h2>
    <table><thead><tr><th class="l">${esc(t("common.id"))}</th><th class="l">${esc(t("common.name"))}</th><th class="l">${esc(t("config.price"))} [/kWh]</th><th class="l">${esc(t("config.export_price"))} [/kWh]</th><th></th></tr></thead>
      <tbody id="rates">${(tar.rates.length ? tar.rates : [undefined]).map(rateRow).join("")}</tbody></table>
    <div class="actions"><button type="button" class="secondary" id="add-rate">${esc(t("config.add_rate"))}</button></div>
    <div class="form-grid">
      ${field("t-standing", t("config.standing"), `<input id="t-standing" type="number" step="0.01" min="0" value="${tar.standing_charge}">`)}
      ${field("t-demand", t("config.demand_charge"), `<input id="t-demand" type="number" step="0.01" min="0" value="${tar.demand_charge}">`)}
      ${field("t-currency", t("config.currency"), `<input id="t-currency" value="${esc(tar.currency || "")}" placeholder="${esc(app.site?.currency || "EUR")}" maxlength="3">`)}
      ${field("t-from", t("config.effective_from"), `<input id="t-from" type="date">`)}
    </div>
    ${tar.effective_from ? `<p class="muted" id="t-since">${esc(t("config.in_force_since"))}: ${esc(tar.effective_from)}</p>` : ""}
    <h2>${esc(t("config.seasons"))}</h2><p class="muted">${esc(t("config.seasons_hint"))}</p>
    <div id="seasons">${(tar.seasons || []).map((x) => seasonBlock(x, rateIds(tar.rates))).join("")}</div>
    <div class="actions"><button type="button" class="secondary" id="add-season">${esc(t("config.add_season"))}</button></div>
    <label for="t-holidays">${esc(t("config.holidays"))}</label>
    <input id="t-holidays" style="width:100%" value="${esc((tar.holidays || []).join(", "))}" placeholder="2026-12-25, 2026-12-26">
    <div class="actions"><button type="submit">${esc(t("common.save"))}</button><span id="t-msg"></span></div></form>`;
  const $ = (s) => root.querySelector(s);
  $("#add-rate").onclick = () => $("#rates").insertAdjacentHTML("beforeend", rateRow());
  const currentRates = () => [...$("#rates").querySelectorAll(".r-id")].map((i) => i.value.trim()).filter(Boolean);
  // the bands' rate pickers follow the rate table (ids typed, added or removed)
  const syncRates = () => {
    const ids = currentRates();
    for (const sel of root.querySelectorAll("#seasons .b-rate")) {
      const v = sel.value;
      sel.innerHTML = opt(ids.includes(v) || !v ? ids : [v, ...ids], v);
    }
  };
  $("#rates").addEventListener("change", syncRates);
  $("#add-season").onclick = () => {
    const n = root.querySelectorAll("#seasons [data-season]").length;
    const ids = currentRates();
    $("#seasons").insertAdjacentHTML("beforeend", seasonBlock({ name: "", start: n ? "" : "01-01", weekday: [{ from: "00:00", rate: ids[0] || "" }] }, ids));
  };
  $("#seasons").onclick = (ev) => {
    const b = ev.target.closest("button");
    if (!b) return;
    if (b.dataset.removeSeason !== undefined) b.closest("[data-season]").remove();
    else if (b.dataset.removeBand !== undefined) b.closest("[data-band]").remove();
    else if (b.dataset.addBand !== undefined) b.closest("[data-dt]").querySelector(".bands").insertAdjacentHTML("beforeend", bandRow({ from: "", rate: currentRates()[0] || "" }, currentRates()));
  };
  $("#seasons").onchange = (ev) => {
    if (ev.target.dataset.own === undefined) return;
    ev.target.closest("[data-dt]").querySelector(".bands-wrap").hidden = !ev.target.checked;
  };
  $("#rates").onclick = (ev) => {
    if (ev.target.classList.contains("r-del")) ev.target.closest("tr").remove();
  };
  $("#tariff-form").onsubmit = async (ev) => {
    ev.preventDefault();
    const msg = $("#t-msg");
    clearFieldErrors($("#tariff-form"));
    const seasons = collectSeasons(root);
    const rates = [...$("#rates").querySelectorAll("tr")]
      .map((tr) => ({ id: tr.querySelector(".r-id").value.trim(), name: tr.querySelector(".r-name").value, price: Number(tr.querySelector(".r-price").value), export_price: Number(tr.querySelector(".r-export").value) }))
      .filter((r) => r.id);
    const body = {
      rates,
      seasons,
      standing_charge: Number($("#t-standing").value),
      demand_charge: Number($("#t-demand").value),
      holidays: $("#t-holidays").value.split(/[ ,;]+/).filter(Boolean),
    };
    if ($("#t-currency").value.trim()) body.currency = $("#t-currency").value.trim().toUpperCase();
    if (tar.switch) body.switch = tar.switch;
    // a date is local midnight of the site; without one the change applies from now (energy used before keeps its price)
    if ($("#t-from").value) body.effective_from = $("#t-from").value;
    try {
      await put("/config/tariffs", body);
      msg.className = "";
      msg.textContent = t("config.applied");
    } catch (e) {
      fieldErrors($("#tariff-form"), e, msg);
    }
  };
}

// Time-of-use seasons (energy.tariffs.seasons): each from its start day (MM-DD) until the next season's,
// with bands per day type. Saturday, Sunday and holidays are optional: without their own bands Saturday
// follows Sunday, Sunday follows the weekdays and holidays follow Sunday (meterhub.config.energy.Season).
const DAY_TYPES = ["weekday", "saturday", "weekend", "holiday"];
const rateIds = (rates) => (rates || []).map((r) => r.id);

function bandRow(b, ids) {
  return `<div class="band" data-band><input type="time" class="b-from" value="${esc(b.from || "")}" aria-label="${esc(t("config.band_from"))}" required>
    <select class="b-rate" aria-label="${esc(t("config.band_rate"))}">${opt(ids.includes(b.rate) || !b.rate ? ids : [b.rate, ...ids], b.rate)}</select>
    <button type="button" class="secondary" data-remove-band aria-label="${esc(t("common.remove"))}" title="${esc(t("common.remove"))}">×</button></div>`;
}

function seasonBlock(x, ids) {
  const dayType = (dt) => {
    const own = dt === "weekday" || Boolean(x[dt]);
    const bands = x[dt] || [{ from: "00:00", rate: ids[0] || "" }];
    return `<div class="day-type" data-dt="${dt}"><h3>${esc(t(`config.day_${dt}`))}</h3>
      ${dt === "weekday" ? "" : `<label class="check"><input type="checkbox" data-own ${own ? "checked" : ""}> ${esc(t(`config.own_${dt}`))}</label>`}
      <div class="bands-wrap" ${own ? "" : "hidden"}><div class="bands">${bands.map((b) => bandRow(b, ids)).join("")}</div>
      <button type="button" class="secondary" data-add-band>${esc(t("config.add_band"))}</button></div></div>`;
  };
  return `<fieldset class="panel season" data-season><div class="form-grid">
      <div><label>${esc(t("common.name"))}<input data-k="name" value="${esc(x.name || "")}"></label></div>
      <div><label>${esc(t("config.season_start"))}<input data-k="start" value="${esc(x.start || "")}" placeholder="04-01" pattern="\\d\\d-\\d\\d" required></label></div>
    </div>${DAY_TYPES.map(dayType).join("")}
    <div class="actions"><button type="button" class="danger" data-remove-season>${esc(t("config.remove_season"))}</button></div></fieldset>`;
}

/** The seasons as the API takes them; every input gets the data-loc a 422 names it by. */
function collectSeasons(root) {
  return [...root.querySelectorAll("#seasons [data-season]")].map((fs, i) => {
    const season = {};
    for (const k of ["name", "start"]) {
      const input = fs.querySelector(`[data-k="${k}"]`);
      input.dataset.loc = `seasons.${i}.${k}`;
      season[k] = input.value.trim();
    }
    for (const dt of DAY_TYPES) {
      const box = fs.querySelector(`[data-dt="${dt}"]`);
      const own = box.querySelector("[data-own]");
      box.querySelector("h3").dataset.loc = `seasons.${i}.${dt}`;
      if (own && !own.checked) continue;
      season[dt] = [...box.querySelectorAll("[data-band]")].map((row, j) => {
        row.querySelector(".b-from").dataset.loc = `seasons.${i}.${dt}.${j}.from`;
        row.querySelector(".b-rate").dataset.loc = `seasons.${i}.${dt}.${j}.rate`;
        return { from: row.querySelector(".b-from").value, rate: row.querySelector(".b-rate").value };
      });
    }
    return season;
  });
}

// -- billing and maximum demand -------------------------------------------------------------------
// Monthly billing day and hour (PUT /config/billing), closing a period now and the periods closed
// (/energy/billing), and the maximum demands since the last reset with their reset (/energy/demand).
async function billing(root, ctx) {
  const [b, st, md, list, cap, lp, quantities, dm] = await Promise.all([get("/config/billing"), get("/energy/billing"), get("/energy/demand"), get("/circuits"), get("/config/capacity"), get("/config/load-profiles"), get("/quantities"), get("/config/demand")]);
  const names = Object.fromEntries(list.map((c) => [c.id, c.name]));
  const peaks = Object.entries(md.max_demand)
    .map(([key, rates]) => {
      const [circuit, quantity] = key.split("/");
      return Object.entries(rates).map(([rate, v]) => ({ circuit, quantity, rate, ...v }));
    })
    .flat()
    .filter((r) => r.value !== null);
  // demand of a register: active → kW, reactive → kvar, apparent → kVA (values in W, var, VA)
  const demandUnit = (q) => (/reactive/.test(q) ? "kvar" : /apparent/.test(q) ? "kVA" : "kW");
  const qLabel = (q) => (has(`q.${q}`) ? t(`q.${q}`) : q);
  root.innerHTML = `<form class="panel" id="billing-form" novalidate><h2>${esc(t("config.billing_schedule"))}</h2><div class="form-grid">
      ${field("b-day", t("config.billing_day"), `<input id="b-day" data-loc="day" type="number" min="1" max="28" value="${b.day}">`)}
      ${field("b-hour", t("config.billing_hour"), `<input id="b-hour" data-loc="hour" type="number" min="0" max="23" value="${b.hour}">`)}
      ${field("b-history", t("config.billing_keep"), `<input id="b-history" data-loc="history" type="number" min="1" max="240" value="${b.history}">`)}
      <div><label class="check"><input id="b-auto" type="checkbox" ${b.automatic ? "checked" : ""}> ${esc(t("config.billing_automatic"))}</label></div>
      <div><label class="check"><input id="b-reset" type="checkbox" ${b.reset_max_demand ? "checked" : ""}> ${esc(t("config.billing_reset_md"))}</label></div>
    </div>
    <p class="muted" id="b-next">${esc(t("config.billing_count"))}: <b id="b-count">${st.count}</b> · ${esc(t("config.billing_next"))}: <span id="b-next-time">${st.next ? esc(time(st.next)) : "–"}</span></p>
    <div class="actions"><button type="submit">${esc(t("common.save"))}</button>
      <button type="button" class="secondary" id="b-close">${esc(t("config.billing_close"))}</button><span id="b-msg"></span></div></form>
    <div class="panel"><h2>${esc(t("config.billing_history"))}</h2>
      ${st.history.length ? `<div class="table-wrap"><table id="billing-history"><thead><tr><th>${esc(t("config.billing_count"))}</th><th class="l">${esc(t("config.billing_from"))}</th><th class="l">${esc(t("config.billing_until"))}</th><th class="l">${esc(t("config.billing_reason"))}</th></tr></thead><tbody>
        ${st.history.map((h) => `<tr data-count="${h.count}"><td>${h.count}</td><td class="l">${h.start ? esc(time(new Date(h.start * 1000).toISOString())) : "–"}</td><td class="l">${esc(time(h.time))}</td><td class="l" data-reason="${esc(h.reason)}">${esc(has(`config.billing_reason_${h.reason}`) ? t(`config.billing_reason_${h.reason}`) : h.reason)}</td></tr>`).join("")}</tbody></table></div>` : `<p class="muted" id="billing-none">${esc(t("config.billing_none"))}</p>`}
    </div>
    ${demandPanel(dm, qLabel)}
    <div class="panel"><h2>${esc(t("config.max_demand"))}</h2>
      ${peaks.length ? `<div class="table-wrap"><table id="md-table"><thead><tr><th class="l">${esc(t("common.circuit"))}</th><th class="l">${esc(t("config.md_register"))}</th><th class="l">${esc(t("config.band_rate"))}</th><th>${esc(t("config.max_demand"))}</th><th class="l">${esc(t("config.md_time"))}</th><th></th></tr></thead><tbody>
        ${peaks.map((r) => `<tr data-md="${esc(r.circuit)}"><td class="l">${esc(names[r.circuit] || r.circuit)}</td><td class="l">${esc(qLabel(r.quantity))}</td><td class="l">${esc(r.rate)}</td><td>${esc(withUnit(r.value / 1000, demandUnit(r.quantity), 2))}</td><td class="l">${esc(time(r.time))}</td>
          <td><button type="button" class="secondary" data-reset="${esc(r.circuit)}">${esc(t("config.md_reset"))}</button></td></tr>`).join("")}</tbody></table></div>` : `<p class="muted" id="md-none">${esc(t("config.md_none"))}</p>`}
      <div class="actions"><button type="button" class="danger" id="md-reset-all">${esc(t("config.md_reset_all"))}</button><span id="md-msg"></span></div></div>
    <form class="panel" id="capacity-form" novalidate><h2>${esc(t("config.capacity"))}</h2><p class="muted">${esc(t("config.capacity_hint"))}</p><div class="form-grid">
      ${field("k-min", t("config.capacity_minimum"), `<input id="k-min" data-loc="minimum" type="number" min="0" step="0.1" value="${cap.minimum / 1000}">`)}
      ${field("k-circuit", t("common.circuit"), `<select id="k-circuit">${opt(list.map((c) => c.id), (list.find((c) => c.purpose === "grid") || list[0])?.id, (id) => names[id])}</select>`)}
    </div><div class="actions"><button type="submit">${esc(t("common.save"))}</button><span id="k-msg"></span></div><div id="capacity-report"></div></form>
    ${loadProfilePanel(lp.profiles, list, quantities)}`;
  const $ = (x) => root.querySelector(x);
  $("#billing-form").onsubmit = async (ev) => {
    ev.preventDefault();
    clearFieldErrors($("#billing-form"));
    const body = { day: Number($("#b-day").value), hour: Number($("#b-hour").value), history: Number($("#b-history").value), automatic: $("#b-auto").checked, reset_max_demand: $("#b-reset").checked };
    try {
      await put("/config/billing", body);
      const now = await get("/energy/billing");
      $("#b-next-time").textContent = now.next ? time(now.next) : "–";
      $("#b-msg").className = "";
      $("#b-msg").textContent = t("config.applied");
    } catch (e) {
      fieldErrors($("#billing-form"), e, $("#b-msg"));
    }
  };
  $("#b-close").onclick = async () => {
    if (!confirm(t("config.billing_close_confirm"))) return;
    try {
      await post("/energy/billing", {});
      ctx.app.toast(t("config.applied"));
      await billing(root, ctx);
    } catch (e) {
      showError($("#b-msg"), e);
    }
  };
  const reset = async (body, label) => {
    if (!confirm(t("config.md_reset_confirm", { what: label }))) return;
    try {
      await post("/energy/demand/reset", body);
      ctx.app.toast(t("config.applied"));
      await billing(root, ctx);
    } catch (e) {
      showError($("#md-msg"), e);
    }
  };
  $("#md-reset-all").onclick = () => reset({ all: true }, t("config.md_all"));
  wireDemand(root);
  // the last 12 months' 15-min peaks and their rolling mean (GET /reports/capacity), site-local months
  const capacityReport = async () => {
    const el = $("#capacity-report");
    const today = new Date().toLocaleDateString("en-CA", { timeZone: ctx.app.site?.timezone });
    const [y, m] = today.split("-").map(Number);
    const from = `${m === 12 ? y : y - 1}-${String((m % 12) + 1).padStart(2, "0")}-01`;
    try {
      const rep = await get(`/reports/capacity?from=${from}&to=${today}&circuit=${encodeURIComponent($("#k-circuit").value)}`);
      if (!rep.months.length) {
        el.innerHTML = `<p class="muted" id="capacity-none">${esc(t("config.capacity_none"))}</p>`;
        return;
      }
      el.innerHTML = `<div class="table-wrap"><table id="capacity-table"><thead><tr><th class="l">${esc(t("config.capacity_month"))}</th><th>${esc(t("config.capacity_peak"))}</th><th class="l">${esc(t("config.md_time"))}</th><th>${esc(t("config.capacity_mean"))}</th></tr></thead><tbody>
        ${rep.months.map((r) => `<tr data-month="${esc(r.month)}"><td class="l">${esc(r.month)}</td><td>${esc(withUnit(r.peak === null ? null : r.peak / 1000, "kW", 2))}</td><td class="l">${r.time ? esc(time(r.time)) : "–"}</td><td>${esc(withUnit(r.rolling_mean === null ? null : r.rolling_mean / 1000, "kW", 2))}</td></tr>`).join("")}</tbody></table></div>`;
    } catch (e) {
      showError(el, e);
    }
  };
  $("#k-circuit").onchange = capacityReport;
  $("#capacity-form").onsubmit = async (ev) => {
    ev.preventDefault();
    clearFieldErrors($("#capacity-form"));
    try {
      await put("/config/capacity", { minimum: Number($("#k-min").value) * 1000 });
      $("#k-msg").className = "";
      $("#k-msg").textContent = t("config.applied");
      wireLoadProfiles(root, list, quantities);
  await capacityReport();
    } catch (e) {
      fieldErrors($("#capacity-form"), e, $("#k-msg"));
    }
  };
  wireLoadProfiles(root, list, quantities);
  await capacityReport();
  for (const btn of root.querySelectorAll("[data-reset]")) btn.onclick = () => reset({ circuit: btn.dataset.reset }, names[btn.dataset.reset] || btn.dataset.reset);
}

// Demand measurement (energy.demand: PUT /config/demand): interval, block/sliding/thermal, subintervals
// of a sliding window, the registers measured. Applied at once: open windows start anew, maximum
// demands are kept until reset (the reset is in the next panel).
const DEMAND_INTERVALS = [1, 5, 10, 15, 30, 60];

function demandPanel(dm, qLabel) {
  return `<form class="panel" id="demand-form" novalidate><h2>${esc(t("config.demand_settings"))}</h2><div class="form-grid">
      ${field("dm-interval", t("config.demand_interval"), `<select id="dm-interval" data-loc="interval">${opt(DEMAND_INTERVALS.map(String), String(dm.interval), (m) => t("config.demand_minutes", { n: m }))}</select>`)}
      ${field("dm-method", t("config.demand_method"), `<select id="dm-method" data-loc="method">${opt(["block", "sliding", "thermal"], dm.method, (m) => t(`config.demand_${m}`))}</select>`)}
      ${field("dm-subs", t("config.demand_subintervals"), `<input id="dm-subs" data-loc="subintervals" type="number" min="1" max="60" step="1" value="${dm.subintervals}">`)}
      ${field("dm-quantities", t("config.demand_registers"), `<select id="dm-quantities" data-loc="quantities" multiple size="5">${dm.registers.map((q) => `<option value="${esc(q)}" ${dm.quantities.includes(q) ? "selected" : ""}>${esc(qLabel(q))}</option>`).join("")}</select>`)}
    </div><p class="muted" id="dm-effect">${esc(t("config.demand_effect"))}</p>
    <div class="actions"><button type="submit">${esc(t("common.save"))}</button><span id="dm-msg" role="status"></span></div></form>`;
}

function wireDemand(root) {
  const form = root.querySelector("#demand-form");
  const $ = (x) => form.querySelector(x);
  const subs = () => ($("#dm-subs").disabled = $("#dm-method").value !== "sliding");
  $("#dm-method").onchange = subs;
  subs();
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    clearFieldErrors(form);
    const sliding = $("#dm-method").value === "sliding";
    const body = {
      interval: Number($("#dm-interval").value),
      method: $("#dm-method").value,
      subintervals: sliding ? Number($("#dm-subs").value) : 1,
      quantities: [...$("#dm-quantities").selectedOptions].map((o) => o.value),
    };
    try {
      await put("/config/demand", body);
      $("#dm-msg").className = "";
      $("#dm-msg").textContent = t("config.demand_applied");
    } catch (e) {
      fieldErrors(form, e, $("#dm-msg"));
    }
  };
}

// Load profiles (energy.profiles, seed 002 appendix 5): per circuit the capture interval and quantities,
// and a download of the profile as CSV (GET /reports/profile, times in the site's zone).
const PROFILE_INTERVALS = [1, 5, 10, 15, 30, 60];

function quantityPicker(quantities, selected, attrs) {
  const kinds = [...new Set(quantities.map((q) => q.kind))];
  const label = (q) => `${has(`q.${q.id}`) ? t(`q.${q.id}`) : q.id}${q.unit ? ` [${q.unit}]` : ""}`;
  return `<select multiple size="4" ${attrs}>${kinds
    .map((k) => `<optgroup label="${esc(k)}">${quantities.filter((q) => q.kind === k).map((q) => `<option value="${esc(q.id)}" ${selected.includes(q.id) ? "selected" : ""}>${esc(label(q))}</option>`).join("")}</optgroup>`)
    .join("")}</select>`;
}

function profileRow(p, list, quantities) {
  return `<div class="form-grid lp-row" data-lp>
    <div><label>${esc(t("common.circuit"))}<select class="lp-circuit">${opt(list.map((c) => c.id), p.circuit, (id) => list.find((c) => c.id === id)?.name || id)}</select></label></div>
    <div><label>${esc(t("config.lp_interval"))}<select class="lp-interval">${opt(PROFILE_INTERVALS.map(String), String(p.interval))}</select></label></div>
    <div><label>${esc(t("config.lp_quantities"))}${quantityPicker(quantities, p.quantities, 'class="lp-quantities"')}</label></div>
    <div><button type="button" class="secondary" data-lp-remove>${esc(t("common.remove"))}</button></div></div>`;
}

function loadProfilePanel(profiles, list, quantities) {
  const today = new Date().toLocaleDateString("en-CA", { timeZone: timeZone() || undefined });
  return `<form class="panel" id="lp-form" novalidate><h2>${esc(t("config.load_profiles"))}</h2><p class="muted">${esc(t("config.lp_hint"))}</p>
    <div id="lp-rows">${profiles.map((p) => profileRow(p, list, quantities)).join("")}</div>
    <div class="actions"><button type="button" class="secondary" id="lp-add">${esc(t("config.lp_add"))}</button><button type="submit">${esc(t("common.save"))}</button><span id="lp-msg"></span></div>
    <h3>${esc(t("config.lp_download"))}</h3><div class="form-grid">
      ${field("lp-d-circuit", t("common.circuit"), `<select id="lp-d-circuit">${opt(list.map((c) => c.id), list[0]?.id, (id) => list.find((c) => c.id === id)?.name || id)}</select>`)}
      ${field("lp-d-from", t("config.billing_from"), `<input id="lp-d-from" type="date" value="${today.slice(0, 8)}01">`)}
      ${field("lp-d-to", t("config.billing_until"), `<input id="lp-d-to" type="date" value="${today}">`)}
    </div><div class="actions"><button type="button" id="lp-d-go">${esc(t("config.lp_csv"))}</button><span id="lp-d-msg"></span></div></form>`;
}

function wireLoadProfiles(root, list, quantities) {
  const form = root.querySelector("#lp-form");
  const $ = (x) => form.querySelector(x);
  $("#lp-add").onclick = () => {
    const used = new Set([...form.querySelectorAll(".lp-circuit")].map((x) => x.value));
    const circuit = (list.find((c) => !used.has(c.id)) || list[0]).id;
    $("#lp-rows").insertAdjacentHTML("beforeend", profileRow({ circuit, interval: 15, quantities: [] }, list, quantities));
  };
  $("#lp-rows").onclick = (ev) => {
    if (ev.target.dataset.lpRemove !== undefined) ev.target.closest("[data-lp]").remove();
  };
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    clearFieldErrors(form);
    const profiles = [...form.querySelectorAll("[data-lp]")].map((row, i) => {
      for (const [cls, k] of [["lp-circuit", "circuit"], ["lp-interval", "interval"], ["lp-quantities", "quantities"]]) row.querySelector(`.${cls}`).dataset.loc = `profiles.${i}.${k}`;
      const p = { circuit: row.querySelector(".lp-circuit").value, interval: Number(row.querySelector(".lp-interval").value) };
      const chosen = [...row.querySelector(".lp-quantities").selectedOptions].map((o) => o.value);
      if (chosen.length) p.quantities = chosen; // none chosen: the default (±energy, active power)
      return p;
    });
    try {
      await put("/config/load-profiles", { profiles });
      $("#lp-msg").className = "";
      $("#lp-msg").textContent = t("config.applied");
    } catch (e) {
      fieldErrors(form, e, $("#lp-msg"));
    }
  };
  $("#lp-d-go").onclick = async () => {
    const msg = $("#lp-d-msg");
    msg.textContent = "";
    try {
      const circuit = $("#lp-d-circuit").value;
      if (!$("#lp-d-from").value || !$("#lp-d-to").value) {
        msg.className = "error";
        msg.textContent = t("config.lp_dates");
        return;
      }
      // the last day is included: the API's `to` is exclusive (the next day's midnight)
      const to = new Date(Date.parse(`${$("#lp-d-to").value}T00:00:00Z`) + 86400000).toISOString().slice(0, 10);
      const rep = await get(`/reports/profile${qs({ from: $("#lp-d-from").value, to, circuit })}`);
      const lines = [["end", ...rep.quantities].join(","), ...rep.rows.map((r) => [r.end, ...rep.quantities.map((q) => (r[q] === null ? "" : r[q]))].join(","))];
      const a = document.createElement("a");
      a.href = URL.createObjectURL(new Blob([`${lines.join("\r\n")}\r\n`], { type: "text/csv" }));
      a.download = `load-profile-${circuit}-${$("#lp-d-from").value}-${$("#lp-d-to").value}.csv`;
      document.body.append(a);
      a.click();
      a.remove();
    } catch (e) {
      showError(msg, e);
    }
  };
}

// -- interface options ----------------------------------------------------------------------------
async function interfaceTab(root, { app }) {
  const s = await get("/site");
  root.innerHTML = `<form class="panel" id="site-form"><div class="form-grid">
      ${field("i-title", t("config.title"), `<input id="i-title" value="${esc(s.title || "")}" placeholder="${esc(s.name)}">`)}
      ${field("i-name", t("config.site_name"), `<input id="i-name" value="${esc(s.name)}">`)}
      ${field("i-tz", t("config.timezone"), `<input id="i-tz" value="${esc(s.timezone)}" list="tz-list"><datalist id="tz-list">${(Intl.supportedValuesOf ? Intl.supportedValuesOf("timeZone") : []).map((z) => `<option value="${esc(z)}">`).join("")}</datalist>`)}
      ${field("i-lang", t("config.language"), `<select id="i-lang">${opt(Object.keys(LANGUAGES), s.language, (l) => LANGUAGES[l])}</select>`)}
      ${field("i-currency", t("config.currency"), `<input id="i-currency" value="${esc(s.currency)}" maxlength="3">`)}
      ${field("i-co2", t("config.co2"), `<input id="i-co2" type="number" step="0.001" min="0" max="5" value="${s.co2_factor}">`)}
      ${field("i-public", t("config.public_live"), `<input id="i-public" type="checkbox" ${s.public_live ? "checked" : ""}>`)}
    </div><div class="actions"><button type="submit">${esc(t("common.save"))}</button><span id="i-msg"></span></div></form>
    <form class="panel" id="logo-form"><h2>${esc(t("config.logo"))}</h2>
      ${s.logo ? `<img src="${esc(s.logo)}" alt="logo" style="max-height:60px">` : `<p class="muted">${esc(t("config.no_logo"))}</p>`}
      <input type="file" id="logo-file" accept="image/png,image/jpeg,image/svg+xml,image/webp">
      <div class="actions"><button type="submit">${esc(t("config.upload"))}</button>${s.logo ? `<button type="button" class="secondary" id="logo-remove">${esc(t("common.delete"))}</button>` : ""}<span id="l-msg"></span></div></form>`;
  const $ = (x) => root.querySelector(x);
  $("#site-form").onsubmit = async (ev) => {
    ev.preventDefault();
    const body = {
      title: $("#i-title").value.trim() || null,
      name: $("#i-name").value.trim(),
      timezone: $("#i-tz").value.trim(),
      language: $("#i-lang").value,
      currency: $("#i-currency").value.trim().toUpperCase(),
      co2_factor: Number($("#i-co2").value),
      public_live: $("#i-public").checked,
    };
    try {
      await patch("/site", body);
      localStorage.removeItem("meterhub.lang");
      await app.refreshMe();
      await render(root.parentElement, { args: ["interface"], app });
      app.toast(t("config.applied"));
    } catch (e) {
      showError($("#i-msg"), e);
    }
  };
  $("#logo-form").onsubmit = async (ev) => {
    ev.preventDefault();
    const f = $("#logo-file").files[0];
    if (!f) return;
    const fd = new FormData();
    fd.append("file", f);
    try {
      await api("PUT", "/site/logo", fd);
      await app.refreshMe();
      await interfaceTab(root, { app });
    } catch (e) {
      showError($("#l-msg"), e);
    }
  };
  const rm = $("#logo-remove");
  if (rm)
    rm.onclick = async () => {
      await del("/site/logo");
      await app.refreshMe();
      await interfaceTab(root, { app });
    };
}

// -- display mode ---------------------------------------------------------------------------------
const SOURCES = ["solar", "wind", "hydro", "biomass", "chp", "other"];

function messageRow(m = { title: "", text: "", after: 60, duration: 10 }) {
  return `<tr data-msg><td><input data-k="title" maxlength="120" value="${esc(m.title)}" aria-label="${esc(t("config.msg_title"))}"></td>
    <td><input data-k="text" maxlength="500" value="${esc(m.text)}" aria-label="${esc(t("config.message"))}"></td>
    <td><input data-k="after" type="number" min="0" value="${m.after}" aria-label="${esc(t("config.message_after"))}"></td>
    <td><input data-k="duration" type="number" min="1" value="${m.duration}" aria-label="${esc(t("config.message_for"))}"></td>
    <td><button type="button" class="secondary" data-remove>${esc(t("common.remove"))}</button></td></tr>`;
}

async function display(root, { app }) {
  const [d, list] = await Promise.all([get("/display"), get("/circuits")]);
  const ren = d.renewable;
  root.innerHTML = `<form class="panel" id="display-form"><div class="form-grid">
      ${field("x-mode", t("config.display_mode"), `<select id="x-mode">${opt(["realtime", "renewable", "rotate"], d.mode, (m) => t(`display.${m}`))}</select>`)}
      ${field("x-rotate", t("config.rotate_every"), `<input id="x-rotate" type="number" min="5" value="${d.rotate_every}">`)}
      ${field("x-page", t("config.page_every"), `<input id="x-page" type="number" min="2" value="${d.page_every}">`)}
      ${field("x-cost", t("config.show_cost"), `<select id="x-cost">${opt(["yes", "no"], d.show_cost ? "yes" : "no", (v) => t(`common.${v}`))}</select>`)}
      ${field("x-source", t("config.ren_source"), `<select id="x-source">${opt(SOURCES, ren.source, (v) => t(`display.source_${v}`))}</select>`)}
      ${field("x-colour", t("config.ren_colour"), `<input id="x-colour" type="color" value="${esc(ren.colour)}">`)}
      ${field("x-max", t("config.ren_max"), `<input id="x-max" type="number" min="0" step="0.1" value="${ren.max_production ? ren.max_production / 1000 : ""}">`)}
    </div>
    <h2>${esc(t("config.messages"))}</h2>
    <div class="table-wrap"><table id="x-messages"><thead><tr><th class="l">${esc(t("config.msg_title"))}</th><th class="l">${esc(t("config.message"))}</th>
      <th>${esc(t("config.message_after"))}</th><th>${esc(t("config.message_for"))}</th><th></th></tr></thead>
      <tbody>${[...(d.message ? [{ title: "", text: d.message, after: d.message_after, duration: d.message_for }] : []), ...d.messages].map(messageRow).join("")}</tbody></table></div>
    <div class="actions"><button type="button" class="secondary" id="x-add">${esc(t("config.msg_add"))}</button></div>
    <label for="x-circuits">${esc(t("config.display_circuits"))}</label>
    <select id="x-circuits" multiple size="6">${list.map((c) => `<option value="${esc(c.id)}" ${d.circuits.includes(c.id) ? "selected" : ""}>${esc(c.name)}</option>`).join("")}</select>
    <div class="actions"><button type="submit">${esc(t("common.save"))}</button><a href="/display" target="_blank">${esc(t("config.open_display"))}</a><span id="x-msg"></span></div></form>`;
  const $ = (x) => root.querySelector(x);
  $("#x-add").onclick = () => $("#x-messages tbody").insertAdjacentHTML("beforeend", messageRow());
  $("#x-messages").onclick = (ev) => {
    if (ev.target.dataset?.remove !== undefined) ev.target.closest("tr").remove();
  };
  $("#display-form").onsubmit = async (ev) => {
    ev.preventDefault();
    const messages = [...root.querySelectorAll("#x-messages tr[data-msg]")]
      .map((tr) => Object.fromEntries([...tr.querySelectorAll("[data-k]")].map((i) => [i.dataset.k, i.type === "number" ? Number(i.value) : i.value])))
      .filter((m) => m.title.trim() || m.text.trim());
    const max = Number($("#x-max").value);
    try {
      await put("/display", {
        mode: $("#x-mode").value,
        rotate_every: Number($("#x-rotate").value),
        page_every: Number($("#x-page").value),
        show_cost: $("#x-cost").value === "yes",
        message: "", // the single message of older versions now lives in `messages`
        messages,
        renewable: { source: $("#x-source").value, colour: $("#x-colour").value, max_production: max > 0 ? max * 1000 : null },
        circuits: [...$("#x-circuits").selectedOptions].map((o) => o.value),
      });
      $("#x-msg").className = "";
      $("#x-msg").textContent = t("config.applied");
    } catch (e) {
      showError($("#x-msg"), e);
    }
  };
}
